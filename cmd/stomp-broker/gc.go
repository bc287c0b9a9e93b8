package main

import (
	"runtime/debug"
	"strconv"
)

// Garbage collection of the parent (issue 13). At full speed a queue's
// backlog lives in the parent's ledger, and with Go's default GOGC=100
// every collection marks that whole backlog again each time the heap has
// doubled: 12 % of the parent's CPU in a perf profile of 2 producers x
// 100000 messages to 2 consumers, on the one process every queue message
// passes through. A higher GC percentage collects a third as often; a
// memory limit of twice the queue budget (--max-queue-memory, the live
// heap of a full queue) plus headroom keeps the worst case where GOGC=100
// put it: near a full budget the runtime collects as before.
const (
	// parentGCPercent is the parent's GC percentage unless GOGC is set.
	parentGCPercent = 300
	// parentHeapHeadroom is added to twice the queue budget for the
	// parent's memory limit: the heap of an empty broker (subscriptions,
	// buffers, the runtime) at its largest.
	parentHeapHeadroom = 64 << 20
)

// gcTuning is what parentGC sets.
type gcTuning struct {
	percent int   // debug.SetGCPercent
	limit   int64 // debug.SetMemoryLimit, bytes
}

// parentGCTuning returns the parent's GC settings for a queue budget of
// maxQueueBytes, and false when the operator chose them: GOGC or
// GOMEMLIMIT in the environment (getenv) wins over both.
func parentGCTuning(getenv func(string) string, maxQueueBytes int64) (gcTuning, bool) {
	if getenv("GOGC") != "" || getenv("GOMEMLIMIT") != "" {
		return gcTuning{}, false
	}
	return gcTuning{percent: parentGCPercent, limit: 2*maxQueueBytes + parentHeapHeadroom}, true
}

// applyParentGC sets the parent's GC percentage and memory limit (see
// parentGCTuning); children are separate programs and keep the runtime's
// defaults. It returns the settings applied, for the start-up log.
func applyParentGC(getenv func(string) string, maxQueueBytes int64) (gcTuning, bool) {
	t, ok := parentGCTuning(getenv, maxQueueBytes)
	if ok {
		debug.SetGCPercent(t.percent)
		debug.SetMemoryLimit(t.limit)
	}
	return t, ok
}

// String formats t for a log line.
func (t gcTuning) String() string {
	return "GOGC=" + strconv.Itoa(t.percent) + " GOMEMLIMIT=" + strconv.FormatInt(t.limit, 10)
}
