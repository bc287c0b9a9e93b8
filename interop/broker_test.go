package interop

import (
	"os"
	"testing"
)

// This file is the only place the interop tests touch our own broker, so
// that portable mode (STOMP_INTEROP_ADDR) needs nothing from this module.
//
// TEMPORARY: internal/brokertest did not exist yet when this package was
// written. Wire it by replacing the two bodies below with
//
//	func runTests(m *testing.M) { brokertest.Main(m) }
//	func startOurBroker(t testing.TB) string { return brokertest.Start(t).Addr }

// runTests is TestMain's body: it runs the tests (and, once wired, builds the
// broker binary first and cleans up after).
func runTests(m *testing.M) {
	os.Exit(m.Run())
}

// startOurBroker starts ./cmd/stomp-broker on a free loopback port for the
// calling test and returns its address; the test's cleanup stops it.
func startOurBroker(t testing.TB) string {
	t.Helper()
	t.Skip("our broker not built yet (internal/brokertest missing); set STOMP_INTEROP_ADDR to test another broker")
	return ""
}
