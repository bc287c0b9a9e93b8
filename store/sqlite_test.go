package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/store"
)

// The test binary impersonates a broker process: TestSQLiteDurableAcrossKill
// re-runs it with envHelper set, and only TestHelperSQLitePut then does
// anything.
const (
	envHelper   = "STORE_TEST_HELPER"    // which helper to play; "sqlite-put"
	envHelperDB = "STORE_TEST_HELPER_DB" // the SQLite file the helper writes
	helperQueue = "/queue/durability"
	helperIDTag = "stored-id " // prefix of the helper's one line per stored message
)

// TestSQLiteDurableAcrossKill: a helper process Puts messages from several
// producers and prints each ID only after Put returned. It is SIGKILLed
// mid-stream. Every ID it printed (that is: every Put that returned, the
// moment a broker would send the RECEIPT) must be in the database when it
// is reopened.
func TestSQLiteDurableAcrossKill(t *testing.T) {
	const killAfter = 300 // IDs read before the kill
	path := filepath.Join(t.TempDir(), "store.db")

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperSQLitePut$", "-test.count=1", "-test.timeout=60s")
	cmd.Env = append(os.Environ(), envHelper+"=sqlite-put", envHelperDB+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	// Stop waiting on a helper that hangs.
	watchdog := time.AfterFunc(30*time.Second, func() { cmd.Process.Kill() })
	defer watchdog.Stop()

	var printed []int64
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, helperIDTag) {
			continue // test framework chatter
		}
		id, err := strconv.ParseInt(strings.TrimPrefix(line, helperIDTag), 10, 64)
		if err != nil {
			t.Fatalf("helper printed %q: %v", line, err)
		}
		printed = append(printed, id)
		if len(printed) == killAfter && !killed {
			// SIGKILL: no deferred Close, no checkpoint, no flush. Lines
			// already in the pipe are still read below; they were printed
			// after their Put returned, so they count.
			if err := cmd.Process.Kill(); err != nil {
				t.Fatalf("kill helper: %v", err)
			}
			killed = true
		}
	}
	waitErr := cmd.Wait()
	if !killed {
		t.Fatalf("helper ended before the kill after %d IDs: %v", len(printed), waitErr)
	}

	s, err := store.Open(testContext(t), "sqlite:"+path)
	if err != nil {
		t.Fatalf("reopen after kill: %v", err)
	}
	defer s.Close()
	stored, err := s.Lease(testContext(t), helperQueue, "checker", 1<<20, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	have := make(map[int64]bool, len(stored))
	for _, m := range stored {
		have[m.ID] = true
	}
	var lost []int64
	for _, id := range printed {
		if !have[id] {
			lost = append(lost, id)
		}
	}
	t.Logf("helper printed %d IDs before dying; %d messages found after reopen", len(printed), len(stored))
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged Puts lost across SIGKILL, e.g. %v", len(lost), lost[:min(5, len(lost))])
	}
}

// TestHelperSQLitePut is the helper process of TestSQLiteDurableAcrossKill;
// run normally it skips. Four producers Put one message at a time and print
// helperIDTag+ID after each Put returns, until killed (or 20s pass).
func TestHelperSQLitePut(t *testing.T) {
	if os.Getenv(envHelper) != "sqlite-put" {
		t.Skip("helper process for TestSQLiteDurableAcrossKill, not a test by itself")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := store.Open(ctx, "sqlite:"+os.Getenv(envHelperDB))
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		os.Exit(2)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for p := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil; i++ {
				m := &store.Message{Queue: helperQueue, Body: []byte(fmt.Sprintf("p%d-%d", p, i))}
				if _, err := s.Put(ctx, []*store.Message{m}); err != nil {
					return
				}
				out.Lock()
				_, err := fmt.Fprintf(os.Stdout, "%s%d\n", helperIDTag, m.ID) // unbuffered: a write(2) per line
				out.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
}

// BenchmarkPutSQLite measures 4 concurrent producers, one message per Put,
// on a real file (fsync per commit). It reports messages per second and how
// many group commits carried them.
func BenchmarkPutSQLite(b *testing.B) { benchmarkPutSQLite(b, 4) }

// BenchmarkPutSQLiteSingleProducer is the baseline: one producer, so every
// Put pays a whole fsync.
func BenchmarkPutSQLiteSingleProducer(b *testing.B) { benchmarkPutSQLite(b, 1) }

func benchmarkPutSQLite(b *testing.B, producers int) {
	s, err := store.Open(context.Background(), "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	counter := s.(store.CommitCounter)
	body := make([]byte, 256)
	c0, _ := counter.PutCommits()

	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for next.Add(1) <= int64(b.N) {
				m := &store.Message{Queue: "/queue/bench", Headers: []byte("destination:/queue/bench\n"), Body: body}
				if _, err := s.Put(ctx, []*store.Message{m}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	c1, _ := counter.PutCommits()
	commits := float64(c1 - c0)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(commits, "commits")
	b.ReportMetric(float64(b.N)/max(commits, 1), "msgs/commit")
}
