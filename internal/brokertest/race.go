//go:build race

package brokertest

// raceEnabled builds the broker with -race when the tests run with -race,
// so data races in the broker fail the tests too.
const raceEnabled = true
