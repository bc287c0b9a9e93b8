package integration

import (
	"slices"
	"testing"
	"time"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
)

// TestChildRuntimeSettings: every child, a spare as well as one serving a
// client, starts with the Go runtime settings the parent gives it for one
// client (README, Performance): one P, and no memory-profile sampling
// (whose first sample dirties pages of the runtime's profile hash table
// in every child).
func TestChildRuntimeSettings(t *testing.T) {
	b := brokertest.Start(t, "--spare-children", "1", "--max-spare-children", "1")
	r := b.Raw(t)
	r.Connect()
	var client, spare []int
	if !poll.Within(5*time.Second, func() bool {
		kids := b.Children(t)
		client = brokertest.WithCmdline(kids, "stomp-broker: client ")
		spare = brokertest.WithCmdline(kids, "stomp-broker: spare\x00")
		return len(client) == 1 && len(spare) == 1
	}) {
		t.Fatalf("want one client child and one spare, have clients %v, spares %v", client, spare)
	}
	for _, pid := range []int{client[0], spare[0]} {
		env := environOf(t, pid)
		for _, want := range []string{"GOMAXPROCS=1", "GODEBUG=memprofilerate=0"} {
			if !slices.Contains(env, want) {
				t.Errorf("child %d: environment %q lacks %s", pid, env, want)
			}
		}
	}
}
