package main

import "runtime"

// The parent's scheduler (issue 13). Every record a child sends is read by
// that child's reader goroutine and handed to the event loop over a
// channel; with two Ps the two goroutines run on two OS threads, so each
// handoff woke the other thread (a futex, and the runtime's spinning
// threads' nanosleep and sched_yield around it). With one P the reader and
// the event loop take turns on one thread: at a steady 5,000 msgs/s
// (2 producers, 2 consumers, ack:auto) the parent's context switches per
// message fell from 5.2-5.6 to 2.6, its system calls from 16-17 to 12, and
// the whole tree's CPU per message by 10-14 %, with full-speed queue
// throughput unchanged: the event loop is the parent's one busy goroutine,
// and the box's other cores serve the children.
const parentProcs = 1

// parentMaxProcs returns the parent's GOMAXPROCS, and false when the
// operator chose it: GOMAXPROCS in the environment (getenv) wins.
func parentMaxProcs(getenv func(string) string) (int, bool) {
	if getenv("GOMAXPROCS") != "" {
		return 0, false
	}
	return parentProcs, true
}

// applyParentProcs sets the parent's GOMAXPROCS (see parentMaxProcs);
// children get theirs from the parent's spawn environment. It returns the
// value applied, for the start-up log.
func applyParentProcs(getenv func(string) string) (int, bool) {
	n, ok := parentMaxProcs(getenv)
	if ok {
		runtime.GOMAXPROCS(n)
	}
	return n, ok
}
