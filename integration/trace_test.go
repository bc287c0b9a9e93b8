package integration

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3/frame"

	"github.com/stomp-broker/stomp-broker/internal/brokertest"
	"github.com/stomp-broker/stomp-broker/internal/poll"
	"github.com/stomp-broker/stomp-broker/ipc"
)

// traceLine is one --trace log line: msg=trace and its attributes.
type traceLine struct {
	text  string
	attrs map[string]string
}

// slogAttr matches one key=value of a log/slog text line; quoted values
// are Go-quoted.
var slogAttr = regexp.MustCompile(`(\S+?)=("(?:[^"\\]|\\.)*"|\S*)`)

// traceLines returns the --trace lines of a broker log, in log order.
func traceLines(log string) []traceLine {
	var out []traceLine
	for _, text := range strings.Split(log, "\n") {
		if !strings.Contains(text, " msg=trace ") {
			continue
		}
		l := traceLine{text: text, attrs: map[string]string{}}
		for _, m := range slogAttr.FindAllStringSubmatch(text, -1) {
			v := m[2]
			if strings.HasPrefix(v, `"`) {
				if u, err := strconv.Unquote(v); err == nil {
					v = u
				}
			}
			l.attrs[m[1]] = v
		}
		out = append(out, l)
	}
	return out
}

// hopStep is one expected trace line: a hop, logged by the process with
// role and pid, with at least the attributes in want.
type hopStep struct {
	hop  string
	role string
	pid  int
	want map[string]string
}

func (s hopStep) String() string {
	return fmt.Sprintf("hop %q by %s pid=%d with %v", s.hop, s.role, s.pid, s.want)
}

func (s hopStep) matches(l traceLine) bool {
	if l.attrs["hop"] != s.hop || l.attrs["role"] != s.role || l.attrs["pid"] != strconv.Itoa(s.pid) {
		return false
	}
	for k, v := range s.want {
		if l.attrs[k] != v {
			return false
		}
	}
	return true
}

// missingStep returns the first step of chain that does not appear in
// lines after the steps before it, or "" if every step does, in order.
func missingStep(lines []traceLine, chain []hopStep) string {
	i := 0
	for _, l := range lines {
		if i < len(chain) && chain[i].matches(l) {
			i++
		}
	}
	if i == len(chain) {
		return ""
	}
	after := "at the start"
	if i > 0 {
		after = "after " + chain[i-1].String()
	}
	return fmt.Sprintf("no %s %s", chain[i], after)
}

// childPIDByClient finds the child process serving the client whose local
// address is addr, from the children's command lines ("stomp-broker:
// client ADDR"), which the parent sets independently of any log line.
func childPIDByClient(t *testing.T, b *brokertest.Broker, addr string) int {
	t.Helper()
	for _, pid := range b.Children(t) {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		if err == nil && strings.HasPrefix(string(cmdline), "stomp-broker: client "+addr+"\x00") {
			return pid
		}
	}
	t.Fatalf("no child process serves client %s", addr)
	return 0
}

// TestTraceNamesEveryHop follows one topic and one queue message, each
// sent with a receipt, through --trace: every hop must be logged, in
// order, by the right process (the producer's child, the parent, the
// consumer's child) and name the message where that process knows it.
func TestTraceNamesEveryHop(t *testing.T) {
	b := brokertest.Start(t, "--trace")

	consumer := b.Raw(t)
	consumer.Connect()
	consumer.Send("SUBSCRIBE\nid:t\ndestination:/topic/trace\nack:auto\n\n\x00")
	consumer.Send("SUBSCRIBE\nid:q\ndestination:/queue/trace\nack:client-individual\nreceipt:subscribed\n\n\x00")
	consumer.Expect(frame.RECEIPT)
	producer := b.Raw(t)
	producer.Connect()

	producer.Send("SEND\ndestination:/topic/trace\nreceipt:topic-sent\n\nto every subscriber\x00")
	producer.Expect(frame.RECEIPT)
	topicMsg := consumer.Expect(frame.MESSAGE)
	producer.Send("SEND\ndestination:/queue/trace\nreceipt:queue-sent\n\nto one consumer\x00")
	producer.Expect(frame.RECEIPT)
	queueMsg := consumer.Expect(frame.MESSAGE)
	consumer.Send("ACK\nid:" + queueMsg.Header.Get(frame.Ack) + "\nreceipt:acked\n\n\x00")
	consumer.Expect(frame.RECEIPT)

	topicID, queueID := topicMsg.Header.Get(frame.MessageId), queueMsg.Header.Get(frame.MessageId)
	if topicID == "" || queueID == "" || topicMsg.Header.Get(frame.Destination) != "/topic/trace" || queueMsg.Header.Get(frame.Destination) != "/queue/trace" {
		t.Fatalf("unexpected messages: topic %v, queue %v", topicMsg.Header, queueMsg.Header)
	}
	prod := childPIDByClient(t, b, producer.Conn.LocalAddr().String())
	cons := childPIDByClient(t, b, consumer.Conn.LocalAddr().String())
	parent := b.PID
	pids := map[string]string{"parent": strconv.Itoa(parent), "producer's child": strconv.Itoa(prod), "consumer's child": strconv.Itoa(cons)}

	// send is the path of a SEND from the producer's client into the parent.
	send := func(dest, id string) []hopStep {
		return []hopStep{
			{ipc.HopClientRead, "child", prod, map[string]string{"frame": "SEND", "destination": dest}},
			{ipc.HopChildToIPC, "child", prod, map[string]string{"record": "FRAME", "frame": "SEND", "destination": dest}},
			{ipc.HopParentRead, "parent", parent, map[string]string{"record": "FRAME", "frame": "SEND", "destination": dest, "message-id": id, "from_child_pid": strconv.Itoa(prod)}},
		}
	}
	// receipt is the path of a receipt header, from the producer's child
	// to the parent and back.
	receipt := func(dest, receiptID string) []hopStep {
		return []hopStep{
			{ipc.HopChildToIPC, "child", prod, map[string]string{"frame": "SEND", "destination": dest}},
			{ipc.HopSync, "child", prod, map[string]string{"record": "SYNC", "receipt-id": receiptID}},
			{ipc.HopSynced, "parent", parent, map[string]string{"record": "SYNCED", "to_child_pid": strconv.Itoa(prod)}},
			{ipc.HopReceipt, "child", prod, map[string]string{"record": "SYNCED", "frame": "RECEIPT", "receipt-id": receiptID}},
		}
	}
	tests := []struct {
		name  string
		chain []hopStep
	}{
		{"topic message", append(send("/topic/trace", topicID),
			hopStep{ipc.HopTopicRoute, "parent", parent, map[string]string{"record": "DELIVER", "destination": "/topic/trace", "message-id": topicID, "to_child_pid": strconv.Itoa(cons)}},
			hopStep{ipc.HopChildRead, "child", cons, map[string]string{"record": "DELIVER", "destination": "/topic/trace", "message-id": topicID}},
			hopStep{ipc.HopClientWrite, "child", cons, map[string]string{"frame": "MESSAGE", "destination": "/topic/trace", "message-id": topicID, "subscription": "t"}},
		)},
		{"topic receipt", receipt("/topic/trace", "topic-sent")},
		{"queue message", append(send("/queue/trace", queueID),
			hopStep{ipc.HopQueueOffer, "parent", parent, map[string]string{"record": "OFFER", "destination": "/queue/trace", "message-id": queueID, "to_child_pid": strconv.Itoa(cons)}},
			hopStep{ipc.HopRace, "child", cons, map[string]string{"record": "OFFER", "destination": "/queue/trace", "message-id": queueID, "won": "true"}},
			hopStep{ipc.HopGrant, "parent", parent, map[string]string{"record": "GRANT", "destination": "/queue/trace", "message-id": queueID, "to_child_pid": strconv.Itoa(cons)}},
			hopStep{ipc.HopChildRead, "child", cons, map[string]string{"record": "GRANT", "destination": "/queue/trace", "message-id": queueID}},
			hopStep{ipc.HopClientWrite, "child", cons, map[string]string{"frame": "MESSAGE", "destination": "/queue/trace", "message-id": queueID, "subscription": "q"}},
			hopStep{ipc.HopAck, "child", cons, map[string]string{"record": "ACK", "destination": "/queue/trace", "message-id": queueID}},
			hopStep{ipc.HopSettle, "parent", parent, map[string]string{"record": "ACK", "message-id": queueID, "from_child_pid": strconv.Itoa(cons), "outcome": "acked: removed from the ledger"}},
		)},
		{"queue receipt", receipt("/queue/trace", "queue-sent")},
	}

	// Children log through the same stderr pipe as the parent, read by
	// another goroutine: wait until the last hop has been read.
	var lines []traceLine
	missing := ""
	complete := func() bool {
		lines = traceLines(b.Logs())
		missing = ""
		for _, tt := range tests {
			if m := missingStep(lines, tt.chain); m != "" {
				missing = tt.name + ": " + m
				break
			}
		}
		return missing == ""
	}
	if !poll.Within(10*time.Second, complete) {
		var log strings.Builder
		for _, l := range lines {
			log.WriteString(l.text + "\n")
		}
		t.Fatalf("%s\npids: %v\ntrace:\n%s", missing, pids, log.String())
	}

	// Every hop name is used by at least one of the chains above.
	for _, hop := range []string{ipc.HopClientRead, ipc.HopChildToIPC, ipc.HopParentRead, ipc.HopTopicRoute, ipc.HopQueueOffer,
		ipc.HopRace, ipc.HopGrant, ipc.HopChildRead, ipc.HopClientWrite, ipc.HopAck, ipc.HopSettle, ipc.HopSync, ipc.HopSynced, ipc.HopReceipt} {
		used := false
		for _, tt := range tests {
			for _, s := range tt.chain {
				used = used || s.hop == hop
			}
		}
		if !used {
			t.Errorf("hop %q is not checked by this test", hop)
		}
	}
}

// TestTraceOffByDefault checks that a broker without --trace logs no trace
// line for the same traffic.
func TestTraceOffByDefault(t *testing.T) {
	b := brokertest.Start(t)
	consumer := b.Raw(t)
	consumer.Connect()
	consumer.Send("SUBSCRIBE\nid:q\ndestination:/queue/quiet\nack:auto\nreceipt:subscribed\n\n\x00")
	consumer.Expect(frame.RECEIPT)
	producer := b.Raw(t)
	producer.Connect()
	producer.Send("SEND\ndestination:/queue/quiet\nreceipt:sent\n\nshh\x00")
	producer.Expect(frame.RECEIPT)
	consumer.Expect(frame.MESSAGE)
	if lines := traceLines(b.Logs()); len(lines) > 0 {
		t.Fatalf("trace lines without --trace:\n%s", lines[0].text)
	}
}
