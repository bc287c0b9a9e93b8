package child

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSetCommNamesTheMainThreadFromAnyThread: setComm names the process's
// main thread, whose name ps shows, even when the goroutine calling it runs
// on another OS thread; a child no longer locks its main goroutine to the
// main thread (which made the Go runtime start an extra OS thread in every
// child) to be sure it names the right one.
func TestSetCommNamesTheMainThreadFromAnyThread(t *testing.T) {
	leader := fmt.Sprintf("/proc/self/task/%d/comm", os.Getpid())
	before, err := os.ReadFile(leader)
	if err != nil {
		t.Fatal(err)
	}
	defer setComm(strings.TrimSuffix(string(before), "\n"))

	// Call setComm from a goroutine locked to a thread that is not the
	// leader: if the first locked goroutine happens to hold the main
	// thread, a second one, started while it keeps it, cannot.
	onOtherThread := func(tid chan<- int) {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		setComm("stomp-test-comm")
		tid <- unix.Gettid()
	}
	done := make(chan int)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if unix.Gettid() != os.Getpid() {
			onOtherThread(done)
			return
		}
		inner := make(chan int)
		go onOtherThread(inner)
		done <- <-inner
	}()
	if tid := <-done; tid == os.Getpid() {
		t.Fatalf("setComm ran on the main thread (tid %d); the test is wrong", tid)
	}
	got, err := os.ReadFile(leader)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "stomp-test-comm\n" {
		t.Errorf("main thread's comm is %q after setComm on another thread, want %q", got, "stomp-test-comm\n")
	}
}
