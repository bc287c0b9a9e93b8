package parent

import "testing"

func TestParseReplyName(t *testing.T) {
	for _, tc := range []struct {
		dest, node, key, temp string
		ok                    bool
	}{
		{"/reply-queue/n1.k.answers", "n1", "k", "/temp-queue/answers", true},
		{"/reply-queue/n1.k.a.b.c", "n1", "k", "/temp-queue/a.b.c", true},
		{"/reply-queue/n1.k.", "", "", "", false},
		{"/reply-queue/n1..x", "", "", "", false},
		{"/reply-queue/.k.x", "", "", "", false},
		{"/reply-queue/amq.gen-x", "", "", "", false},
		{"/reply-queue/", "", "", "", false},
	} {
		node, key, temp, ok := parseReplyName(tc.dest)
		if node != tc.node || key != tc.key || temp != tc.temp || ok != tc.ok {
			t.Errorf("parseReplyName(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", tc.dest, node, key, temp, ok, tc.node, tc.key, tc.temp, tc.ok)
		}
	}
}
