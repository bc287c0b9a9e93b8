package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// The parent's Go runtime settings (issue 13). Every queue message passes
// through the parent's event loop, so its scheduler and garbage collector
// are on the data path; children get theirs from the spawn environment
// (parent/spawn.go) instead.
//
// One P: every record a child sends is read by that child's reader
// goroutine and handed to the event loop over a channel; with two Ps the
// two goroutines ran on two OS threads and each handoff woke the other
// thread (a futex, plus the spinning threads' nanosleep and sched_yield).
// With one P they take turns on one thread: at a steady 5,000 msgs/s
// (2 producers, 2 consumers, ack:auto) the parent's context switches per
// message fell from 5.2-5.6 to 2.6, its system calls from 16-17 to 12, and
// the whole tree's CPU per message by 10-14 %, with full-speed queue
// throughput unchanged: the event loop is the parent's one busy goroutine,
// and the box's other cores serve the children.
//
// GOGC=300 under a memory limit: at full speed a queue's backlog lives in
// the parent's ledger, and at Go's default GOGC=100 every collection marks
// that whole backlog again each time the heap has doubled (12 % of the
// parent's CPU in a profile of 2 producers x 100,000 messages to 2
// consumers). Collecting a third as often, under a memory limit of twice
// the queue budget (--max-queue-memory, the live heap of a full queue)
// plus headroom, keeps the worst case where GOGC=100 put it: near a full
// budget the runtime collects as before.
const (
	parentProcs        = 1
	parentGCPercent    = 300
	parentHeapHeadroom = 64 << 20 // an empty broker's heap at its largest
)

// parentRuntime is what the parent sets in its own runtime at start. A
// zero field is left alone: the operator chose it in the environment.
type parentRuntime struct {
	procs     int   // runtime.GOMAXPROCS
	gcPercent int   // debug.SetGCPercent
	memLimit  int64 // debug.SetMemoryLimit, bytes
}

// parentRuntimeFor returns the parent's runtime settings for a queue
// budget of maxQueueBytes. GOMAXPROCS in the environment (getenv) wins
// over procs; GOGC or GOMEMLIMIT win over both GC settings.
func parentRuntimeFor(getenv func(string) string, maxQueueBytes int64) parentRuntime {
	var r parentRuntime
	if getenv("GOMAXPROCS") == "" {
		r.procs = parentProcs
	}
	if getenv("GOGC") == "" && getenv("GOMEMLIMIT") == "" {
		r.gcPercent = parentGCPercent
		r.memLimit = 2*maxQueueBytes + parentHeapHeadroom
	}
	return r
}

// apply sets r's non-zero settings in the running program.
func (r parentRuntime) apply() {
	if r.procs > 0 {
		runtime.GOMAXPROCS(r.procs)
	}
	if r.gcPercent > 0 {
		debug.SetGCPercent(r.gcPercent)
		debug.SetMemoryLimit(r.memLimit)
	}
}

// String formats r for the start-up log; "environment" marks a setting
// left to the operator's.
func (r parentRuntime) String() string {
	procs, gc := "environment", "environment"
	if r.procs > 0 {
		procs = fmt.Sprint(r.procs)
	}
	if r.gcPercent > 0 {
		gc = fmt.Sprintf("GOGC=%d GOMEMLIMIT=%d", r.gcPercent, r.memLimit)
	}
	return "GOMAXPROCS=" + procs + " " + gc
}
