package stompwire

import (
	"testing"

	"github.com/go-stomp/stomp/v3/frame"
)

func TestDurableQueue(t *testing.T) {
	cases := []struct {
		name         string
		headers      []string
		clientID     string
		want         string
		needClientID bool
	}{
		{"plain", []string{"id", "1"}, "", "", false},
		{"rabbitmq", []string{"id", "s1", "durable", "true", "auto-delete", "false"}, "", DurablePrefix + "s1", false},
		{"rabbitmq without auto-delete", []string{"id", "s1", "durable", "true"}, "", DurablePrefix + "s1", false},
		{"rabbitmq persistent", []string{"id", "s1", "persistent", "true"}, "", DurablePrefix + "s1", false},
		{"rabbitmq auto-delete", []string{"id", "s1", "durable", "true", "auto-delete", "true"}, "", "", false},
		{"rabbitmq durable:false", []string{"id", "s1", "durable", "false"}, "", "", false},
		{"rabbitmq without id", []string{"durable", "true"}, "", "", false},
		{"activemq", []string{"id", "1", "activemq.subscriptionName", "news"}, "c1", DurablePrefix + "c1/news", false},
		{"activemq without client-id", []string{"id", "1", "activemq.subscriptionName", "news"}, "", "", true},
		{"activemq wins over durable", []string{"id", "1", "durable", "true", "activemq.subscriptionName", "news"}, "c1", DurablePrefix + "c1/news", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := frame.New(frame.SUBSCRIBE, c.headers...)
			got, need := DurableQueue(f.Header, c.clientID)
			if got != c.want || need != c.needClientID {
				t.Fatalf("DurableQueue = %q, %v; want %q, %v", got, need, c.want, c.needClientID)
			}
			if got != "" && !IsDurable(got) {
				t.Fatalf("IsDurable(%q) = false", got)
			}
		})
	}
}
