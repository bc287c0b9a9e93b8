package store

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"slices"
)

// The error and exitstatus tables: failure counts, failure rows and their
// expiry, exit statuses and their expiry, as TheSchwartz::Job keeps them.

// failureLog is what the error table says about one job.
type failureLog struct {
	count    int
	last     string
	lastTime int64
}

// failures reads the error rows of ids: how many each job has (its
// TheSchwartz failure count) and the latest message.
func (s *schwartzStore) failures(ctx context.Context, jobIDs []int64) (map[int64]failureLog, error) {
	out := make(map[int64]failureLog)
	for chunk := range slices.Chunk(jobIDs, schwartzIDChunk) {
		rows, err := s.db.QueryContext(ctx, s.d.q(`SELECT jobid, CAST(error_time AS BIGINT), message FROM error
			WHERE jobid IN (`+placeholders(len(chunk))+`)`), anys(chunk)...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id, at int64
			var msg string
			if err := rows.Scan(&id, &at, &msg); err != nil {
				rows.Close()
				return nil, err
			}
			f := out[id]
			f.count++
			if f.count == 1 || at >= f.lastTime {
				f.last, f.lastTime = msg, at
			}
			out[id] = f
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// addFailure inserts an error row, as TheSchwartz::Job's add_failure.
func (s *schwartzStore) addFailure(ctx context.Context, tx *sql.Tx, jobid, funcid int64, msg string, now int64) error {
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO error (error_time, jobid, message, funcid) VALUES (?, ?, ?, ?)`),
		now, jobid, headerValue(msg, schwartzMaxErrorMessage), funcid)
	return err
}

// cleanOldErrors deletes error rows past TheSchwartz's maximum age, as
// add_failure does after every failure.
func (s *schwartzStore) cleanOldErrors(ctx context.Context, tx *sql.Tx, now int64) error {
	_, err := tx.ExecContext(ctx, s.d.q(`DELETE FROM error WHERE error_time < ?`), now-schwartzErrorMaxAge)
	return err
}

// recordExitStatus inserts an exitstatus row if keep_exit_status_for is set
// (TheSchwartz::Job's set_exit_status).
func (s *schwartzStore) recordExitStatus(ctx context.Context, tx *sql.Tx, jobid, funcid int64, status int, now int64) error {
	if s.keepExitStatusFor <= 0 {
		return nil
	}
	_, err := tx.ExecContext(ctx, s.d.q(`INSERT INTO exitstatus (jobid, funcid, status, completion_time, delete_after)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`), jobid, funcid, status, now, now+s.keepExitStatusFor)
	return err
}

// maybeCleanExitStatus purges expired exitstatus rows one call in ten, as
// set_exit_status does. A failure only delays the purge.
func (s *schwartzStore) maybeCleanExitStatus(ctx context.Context, now int64) {
	if s.keepExitStatusFor <= 0 || rand.Float64() >= schwartzExitStatusCleanChance {
		return
	}
	_, _ = s.db.ExecContext(ctx, s.d.q(`DELETE FROM exitstatus WHERE delete_after < ?`), now)
}
