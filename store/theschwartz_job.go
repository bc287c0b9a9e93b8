package store

import (
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/stompwire"
)

// Mapping between STOMP messages and TheSchwartz job rows: a SEND becomes a
// job row, a grabbed job row becomes a message with a synthesised header
// block.

// schwartzJob is one job row to insert, derived from a Message.
type schwartzJob struct {
	funcname string
	arg      []byte
	uniqkey  any // string or nil (NULL)
	runAfter int64
	priority any // int64 or nil (NULL)
	coalesce any // string or nil (NULL)
}

// jobFromMessage maps m onto job columns: Queue "/queue/<funcname>", Body
// → arg, UniqKey → uniqkey, Priority → priority (0 = NULL, as TheSchwartz
// leaves it), the run_after header or else NotBefore (rounded up to a whole
// second) or else now → run_after, the coalesce header → coalesce. Headers
// that are not a STOMP header block are ignored. It returns a wrapped
// ErrBadMessage for what TheSchwartz's columns cannot hold.
func jobFromMessage(m *Message, now time.Time) (schwartzJob, error) {
	funcname, ok := strings.CutPrefix(m.Queue, stompwire.QueuePrefix)
	if !ok || funcname == "" || len(funcname) > schwartzMaxVarchar {
		return schwartzJob{}, fmt.Errorf("%w: theschwartz: destination %q is not /queue/<funcname> with a funcname of 1 to %d bytes",
			ErrBadMessage, m.Queue, schwartzMaxVarchar)
	}
	j := schwartzJob{funcname: funcname, arg: m.Body, runAfter: now.Unix()}
	if j.arg == nil {
		j.arg = []byte{} // an empty body is an empty arg, not NULL
	}
	if m.UniqKey != "" {
		if len(m.UniqKey) > schwartzMaxVarchar {
			return j, fmt.Errorf("%w: theschwartz: uniqkey longer than %d bytes", ErrBadMessage, schwartzMaxVarchar)
		}
		j.uniqkey = m.UniqKey
	}
	if m.Priority != 0 {
		if m.Priority < -1<<15 || m.Priority >= 1<<15 {
			return j, fmt.Errorf("%w: theschwartz: priority %d does not fit TheSchwartz's SMALLINT", ErrBadMessage, m.Priority)
		}
		j.priority = int64(m.Priority)
	}
	if !m.NotBefore.IsZero() && m.NotBefore.After(now) {
		j.runAfter = ceilUnix(m.NotBefore)
	}
	hdr := parseHeaderBlock(m.Headers)
	if hdr == nil {
		return j, nil
	}
	if v, ok := hdr.Contains(stompwire.HeaderRunAfter); ok {
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < 0 || n >= 1<<31 {
			return j, fmt.Errorf("%w: theschwartz: bad %s header %q: want unix seconds", ErrBadMessage, stompwire.HeaderRunAfter, v)
		}
		j.runAfter = n
	}
	if v := hdr.Get(stompwire.HeaderCoalesce); v != "" {
		if len(v) > schwartzMaxVarchar {
			return j, fmt.Errorf("%w: theschwartz: coalesce longer than %d bytes", ErrBadMessage, schwartzMaxVarchar)
		}
		j.coalesce = v
	}
	return j, nil
}

// parseHeaderBlock parses a stored SEND header block, or returns nil.
func parseHeaderBlock(b []byte) *frame.Header {
	if len(b) == 0 {
		return nil
	}
	f, _, err := stompwire.Parse(append(append([]byte(nil), b...), 0), stompwire.V12, stompwire.DefaultLimits())
	if err != nil {
		return nil
	}
	return f.Header
}

// ceilUnix is t in unix seconds, rounded up: a job or lease never becomes
// available before t.
func ceilUnix(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec
}

// leaseUntil is the grabbed_until value for a lease of d from now: whole
// seconds, rounded up, and always in the future.
func leaseUntil(now time.Time, d time.Duration) int64 {
	until := ceilUnix(now.Add(d))
	if until <= now.Unix() {
		until = now.Unix() + 1
	}
	return until
}

// grabbedJob is a job row as the grab returns it.
type grabbedJob struct {
	Message
	insertTime sql.NullInt64
	runAfter   int64
	priority   sql.NullInt64
	coalesce   sql.NullString
}

// grabbedIDs lists the jobids of jobs.
func grabbedIDs(jobs []*grabbedJob) []int64 {
	out := make([]int64, len(jobs))
	for i, j := range jobs {
		out[i] = j.ID
	}
	return out
}

// scanGrabbed scans and closes the grab's RETURNING rows.
func scanGrabbed(rows *sql.Rows) ([]*grabbedJob, error) {
	defer rows.Close()
	var out []*grabbedJob
	for rows.Next() {
		j := &grabbedJob{}
		var uniq sql.NullString
		if err := rows.Scan(&j.ID, &j.Body, &uniq, &j.insertTime, &j.runAfter, &j.priority, &j.coalesce); err != nil {
			return nil, err
		}
		j.UniqKey = uniq.String
		j.Priority = int(j.priority.Int64)
		j.NotBefore = time.Unix(j.runAfter, 0)
		j.MaxRedeliveries = -1 // TheSchwartz's max_retries is per function: the broker default stands in
		out = append(out, j)
	}
	return out, rows.Err()
}

// schwartzHeaders is the SEND header block Lease hands the broker for a
// job: what TheSchwartz knows about it, as MESSAGE headers.
func schwartzHeaders(funcname string, j *grabbedJob, f failureLog) []byte {
	h := frame.New(frame.SEND,
		frame.Destination, stompwire.QueuePrefix+funcname,
		stompwire.HeaderPersistent, "true",
		stompwire.HeaderTheSchwartzJobID, strconv.FormatInt(j.ID, 10),
		stompwire.HeaderTheSchwartzFuncname, headerValue(funcname, schwartzMaxVarchar),
		stompwire.HeaderTheSchwartzArg, argKind(j.Body),
		stompwire.HeaderRunAfter, strconv.FormatInt(j.runAfter, 10),
	)
	if j.insertTime.Valid {
		h.Header.Add(stompwire.HeaderInsertTime, strconv.FormatInt(j.insertTime.Int64, 10))
	}
	if j.UniqKey != "" {
		h.Header.Add(stompwire.HeaderUniqKey, headerValue(j.UniqKey, schwartzMaxVarchar))
	}
	if j.priority.Valid {
		h.Header.Add(stompwire.HeaderPriority, strconv.FormatInt(j.priority.Int64, 10))
	}
	if j.coalesce.Valid {
		h.Header.Add(stompwire.HeaderCoalesce, headerValue(j.coalesce.String, schwartzMaxVarchar))
	}
	if f.count > 0 {
		h.Header.Add(stompwire.HeaderTheSchwartzLastError, headerValue(f.last, maxLastErrorHeader))
	}
	return stompwire.AppendFrame(nil, h, stompwire.V12)
}

// headerValue makes s a header value: valid UTF-8 (STOMP headers are
// UTF-8; Perl may store anything) and at most max bytes, cut at a rune
// boundary.
func headerValue(s string, max int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
