package parent

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestAdmissionLimits(t *testing.T) {
	a1, a2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	type step struct {
		ip      netip.Addr
		release bool   // release ip instead of admitting it
		reason  string // expected refusal reason, "" = admitted
	}
	tests := []struct {
		name   string
		limits Limits
		steps  []step
	}{
		{"no limits", Limits{}, []step{{ip: a1}, {ip: a1}, {ip: a1}, {ip: a2}}},
		{"max clients", Limits{MaxClients: 2}, []step{
			{ip: a1}, {ip: a2}, {ip: a1, reason: refusedMaxClients},
			{ip: a2, release: true}, {ip: a1}, {ip: a2, reason: refusedMaxClients},
		}},
		{"per IP", Limits{MaxClientsPerIP: 2}, []step{
			{ip: a1}, {ip: a1}, {ip: a1, reason: refusedPerIP}, {ip: a2}, {ip: a2},
			{ip: a1, release: true}, {ip: a1}, {ip: a1, reason: refusedPerIP},
		}},
		{"max clients checked first", Limits{MaxClients: 1, MaxClientsPerIP: 1}, []step{
			{ip: a1}, {ip: a1, reason: refusedMaxClients},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newAdmission(tt.limits, nil)
			for i, s := range tt.steps {
				if s.release {
					a.release(s.ip)
					continue
				}
				msg, reason := a.admit(s.ip)
				if reason != s.reason {
					t.Fatalf("step %d (%v): refusal %q, want %q", i, s.ip, reason, s.reason)
				}
				if (msg == "") != (reason == "") || (reason == refusedPerIP && !strings.Contains(msg, s.ip.String())) {
					t.Fatalf("step %d: message %q does not fit reason %q", i, msg, reason)
				}
			}
		})
	}
}

func TestAdmissionReleaseForgetsIdleIPs(t *testing.T) {
	a := newAdmission(Limits{}, nil)
	ip := netip.MustParseAddr("2001:db8::1")
	a.admit(ip)
	a.admit(ip)
	a.release(ip)
	a.release(ip)
	if len(a.perIP) != 0 || a.count() != 0 {
		t.Fatalf("after releasing everything: perIP=%v clients=%d", a.perIP, a.count())
	}
}

func TestAdmissionReloadKeepsAdmittedClients(t *testing.T) {
	a := newAdmission(Limits{MaxClients: 3}, nil)
	ip := netip.MustParseAddr("192.0.2.1")
	for i := 0; i < 3; i++ {
		a.admit(ip)
	}
	a.setLimits(Limits{MaxClients: 1})
	if a.count() != 3 {
		t.Fatalf("a reload dropped admitted clients: %d", a.count())
	}
	if _, reason := a.admit(ip); reason != refusedMaxClients {
		t.Fatalf("over the lowered limit: reason %q, want %q", reason, refusedMaxClients)
	}
	a.setLimits(Limits{MaxClients: 10})
	if msg, _ := a.admit(ip); msg != "" {
		t.Fatalf("under the raised limit: refused with %q", msg)
	}
}

// TestAdmissionSpawnRate drives the token bucket with a fake clock: a
// burst goes through at once, then one spawn per 1/rate.
func TestAdmissionSpawnRate(t *testing.T) {
	tests := []struct {
		name      string
		limits    Limits
		spawns    int
		wantSlept time.Duration // total time waited for the spawns
	}{
		{"unlimited", Limits{}, 100, 0},
		{"burst only", Limits{AcceptRate: 10, AcceptBurst: 5}, 5, 0},
		{"beyond the burst", Limits{AcceptRate: 10, AcceptBurst: 5}, 8, 300 * time.Millisecond},
		{"default burst is the rate", Limits{AcceptRate: 4}, 6, 500 * time.Millisecond},
		{"slow rate", Limits{AcceptRate: 0.5, AcceptBurst: 1}, 3, 4 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			var slept time.Duration
			a := newAdmission(tt.limits, nil)
			a.now = func() time.Time { return now }
			a.filled = now
			a.sleep = func(d time.Duration) bool {
				slept += d
				now = now.Add(d)
				return true
			}
			for i := 0; i < tt.spawns; i++ {
				if !a.waitToSpawn() {
					t.Fatal("waitToSpawn gave up")
				}
			}
			if diff := slept - tt.wantSlept; diff < -time.Millisecond || diff > time.Millisecond {
				t.Fatalf("waited %v for %d spawns, want %v", slept, tt.spawns, tt.wantSlept)
			}
		})
	}
}

func TestAdmissionSpawnWaitStopsWithBroker(t *testing.T) {
	stop := make(chan struct{})
	a := newAdmission(Limits{AcceptRate: 0.001, AcceptBurst: 1}, stop)
	if !a.waitToSpawn() {
		t.Fatal("the burst token was not available")
	}
	done := make(chan bool)
	go func() { done <- a.waitToSpawn() }()
	close(stop)
	select {
	case ok := <-done:
		if ok {
			t.Fatal("waitToSpawn returned true after the broker stopped")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("waitToSpawn did not return after the broker stopped")
	}
}

func TestAdmissionRefusalCap(t *testing.T) {
	a := newAdmission(Limits{}, nil)
	for i := 0; i < maxRefusals; i++ {
		if !a.startRefusal() {
			t.Fatalf("refusal %d not allowed", i)
		}
	}
	if a.startRefusal() {
		t.Fatal("more than maxRefusals refusals at once")
	}
	a.endRefusal()
	if !a.startRefusal() {
		t.Fatal("a freed refusal place was not reusable")
	}
}
