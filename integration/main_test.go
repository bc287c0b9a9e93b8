// Package integration tests the real stomp-broker binary end to end: real
// processes, real sockets, real clients (go-stomp's client and raw
// frames). Every test ends by checking that no broker process and no
// semaphore set is left (brokertest does that in its cleanup).
package integration

import (
	"testing"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
)

func TestMain(m *testing.M) { brokertest.Main(m) }
