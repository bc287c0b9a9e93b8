package stompwire

import (
	"testing"
	"time"
)

// TestErrorTexts pins every ERROR text byte for byte: clients, operators'
// log searches, docs/protocol-conformance.md and the integration tests rely
// on them, so a change must be deliberate (and show up here).
func TestErrorTexts(t *testing.T) {
	cases := []struct{ got, want string }{
		{ErrTextNotConnected, "expected CONNECT or STOMP frame"},
		{ErrDetailNotConnected("SEND"), "the first frame must be CONNECT (or STOMP), not SEND"},
		{ErrTextAlreadyConnected, "already connected"},
		{ErrTextConnectTimeout(1500 * time.Millisecond), "no CONNECT frame within 1.5s"},
		{ErrTextHeartBeatTimeout(3 * time.Second), "heart-beat timeout: no data from the client within 3s"},
		{ErrTextUnsupportedVersion, "unsupported protocol version"},
		{ErrDetailUnsupportedVersion("2.0"), `this broker speaks STOMP 1.0, 1.1 and 1.2; the client offered "2.0"`},
		{ErrTextAccessDenied, "access denied"},
		{ErrDetailAuthUnavailable, "authentication is unavailable"},
		{ErrDetailWrongLogin, "wrong login or passcode"},
		{ErrTextBodyNotAllowed("SUBSCRIBE"), "SUBSCRIBE frame must not have a body"},
		{ErrTextUnsupportedCommand("MESSAGE"), "unsupported command MESSAGE"},
		{ErrTextNoDestination, "missing destination header"},
		{ErrTextUnknownDestination("/exchange/x"), `unknown destination "/exchange/x": destinations start with /topic/ (broadcast) or /queue/ (one consumer per message)`},
		{ErrTextSubscribeWithoutID, "SUBSCRIBE without id header"},
		{ErrDetailSubscribeWithoutID, "STOMP 1.1 and 1.2 require an id on SUBSCRIBE"},
		{ErrTextSubscriptionInUse("s1"), `subscription id "s1" already in use`},
		{ErrTextTooManySubscriptions(2), "too many subscriptions (limit 2)"},
		{ErrTextUnknownAckMode("never"), `unknown ack mode "never"`},
		{ErrDetailUnknownAckMode, "ack must be auto, client or client-individual"},
		{ErrTextBadHeader(HeaderPrefetchCount, "-1"), `bad prefetch-count header "-1"`},
		{ErrTextUnsubscribeWithoutID, "UNSUBSCRIBE without id header"},
		{ErrTextNoSubscription("9"), `no subscription with id "9"`},
		{ErrTextAckWithoutID("NACK"), "NACK without id header"},
		{ErrDetailAckWithoutID, "STOMP 1.2 acknowledges with id (the MESSAGE's ack header); 1.0 and 1.1 with message-id"},
		{ErrTextBeginWithoutTransaction, "BEGIN without transaction header"},
		{ErrTextUnknownTransaction("t\n1"), `unknown transaction "t\n1"`},
		{ErrTextTransactionBegun("t1"), `transaction "t1" already begun`},
		{ErrTextDisconnectedByOperator, "disconnected by operator"},
		{ErrTextBrokerWentAway, "broker went away"},
		{ErrTextInternal, "internal broker error"},
		{ErrTextSemaphoreGone, "internal broker error (semaphore set gone)"},
		{ErrTextShuttingDown, "broker shutting down"},
		{ErrTextSlowConsumer, "slow consumer: the client is not reading its messages fast enough"},
		{ErrTextBadWholeNumber(HeaderPriority, "high", -1<<31), `bad priority header "high": want a whole number of at least -2147483648`},
		{ErrTextQueueMemoryLimit(1024, "/queue/jobs"), "queue memory limit reached (1024 bytes): message to /queue/jobs not accepted"},
		{ErrTextNotStored("disk full"), "message not stored: disk full"},
		{ErrTextTooManyClients(5), "too many clients (limit 5)"},
		{ErrTextTooManyClientsFrom("127.0.0.1", 3), "too many clients from 127.0.0.1 (limit 3)"},
	}
	for _, c := range cases {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
