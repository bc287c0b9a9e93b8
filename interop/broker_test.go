package interop

import (
	"testing"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

// This file is the only place the interop tests touch our own broker, so
// that portable mode (STOMP_INTEROP_ADDR) needs nothing else from this module.

// runTests is TestMain's body outside portable mode: brokertest builds the
// broker binary once, runs the tests and removes the build.
func runTests(m *testing.M) {
	brokertest.Main(m)
}

// startOurBroker starts ./cmd/stomp-broker on a free loopback port for t and
// returns its address; t's cleanup stops it and fails t if it left a process
// or a semaphore set behind.
func startOurBroker(t testing.TB) string {
	t.Helper()
	return brokertest.Start(t).Addr
}

// missing skips t because a client library is absent, or fails it when
// STOMP_BROKER_REQUIRE_ALL=1 (CI), so CI never passes by skipping.
func missing(t testing.TB, msg string) {
	t.Helper()
	brokertest.Missing(t, msg)
}
