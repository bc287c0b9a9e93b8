#!/usr/bin/python3
"""Interop client for stomp.py (Debian package python3-stomp).

Usage: stomp_client.py HOST:PORT SCENARIO VERSION SUFFIX

Runs one scenario of the interop contract (see interop/doc.go) against the
broker at HOST:PORT using stomp.py exactly as an application would, and
prints machine-checkable lines:

    OBS <key> <json value>      an observation (what the library sent/saw)
    OK <scenario>               the scenario passed (exit 0)
    FAIL <scenario>: <why>      it failed (exit 1)
    UNSUPPORTED <scenario>: <why>  the library cannot do it here (exit 2)

VERSION is "1.0" (stomp.Connection10) or "1.2" (stomp.Connection12).
SUFFIX makes destination names unique per run.

Environment: STOMP_INTEROP_VHOST overrides the CONNECT host header (stomp.py
1.2 otherwise sends the server's address as host); STOMP_INTEROP_WAIT_MS
bounds every wait for an expected frame (default 5000); STOMP_INTEROP_QUIET_MS
is how long "nothing arrives" is watched (default 1000).

Must be run with /usr/bin/python3: that is where Debian installs stomp.py.
"""

import json
import os
import sys
import threading
import time

import stomp

WAIT = int(os.environ.get("STOMP_INTEROP_WAIT_MS", "5000")) / 1000.0
QUIET = int(os.environ.get("STOMP_INTEROP_QUIET_MS", "1000")) / 1000.0
VHOST = os.environ.get("STOMP_INTEROP_VHOST") or None


class Fail(Exception):
    """A scenario assertion failed; the message says what was expected."""


class Unsupported(Exception):
    """The library cannot express this scenario at this protocol version."""


def obs(key, value):
    print("OBS %s %s" % (key, json.dumps(value)), flush=True)


class Session(stomp.ConnectionListener):
    """One STOMP connection plus the frames its listener thread collected."""

    def __init__(self, addr, version, name):
        host, port = addr.rsplit(":", 1)
        self.name = name
        self.version = version
        self.cond = threading.Condition()
        self.messages = []
        self.receipts = set()
        self.errors = []
        self.connected = None
        hp = [(host, int(port))]
        if version == "1.0":
            self.conn = stomp.Connection10(hp)
        elif version == "1.2":
            self.conn = stomp.Connection12(hp, vhost=VHOST)
        else:
            raise Unsupported("stomp.py client here only runs 1.0 and 1.2")
        self.conn.set_listener("interop", self)

    # Listener callbacks run on stomp.py's receiver thread.
    def on_connected(self, frame):
        with self.cond:
            self.connected = frame
            self.cond.notify_all()

    def on_message(self, frame):
        with self.cond:
            self.messages.append(frame)
            self.cond.notify_all()

    def on_receipt(self, frame):
        with self.cond:
            self.receipts.add(frame.headers.get("receipt-id"))
            self.cond.notify_all()

    def on_error(self, frame):
        with self.cond:
            self.errors.append(frame)
            self.cond.notify_all()

    def _check_errors(self):
        if self.errors:
            f = self.errors[0]
            raise Fail("%s: ERROR frame: %s %s" % (self.name, f.headers.get("message"), f.body))

    def connect(self, headers=None):
        try:
            self.conn.connect(wait=True, headers=headers or {})
        except stomp.exception.ConnectFailedException:
            err = self.errors[0] if self.errors else None
            raise Fail("%s: connect refused (STOMP_INTEROP_VHOST=%r): %s %s" % (
                self.name, VHOST, err and err.headers.get("message"), err and err.body))
        return self.connected.headers

    def subscribe(self, dest, sid, ack="auto", receipt=None, headers=None):
        hdr = dict(headers or {})
        if receipt:
            hdr["receipt"] = receipt
        if self.version == "1.0" and sid is None:
            self.conn.subscribe(dest, ack=ack, headers=hdr)
        else:
            self.conn.subscribe(dest, sid, ack=ack, headers=hdr)

    def wait_receipt(self, rid):
        deadline = time.monotonic() + WAIT
        with self.cond:
            while rid not in self.receipts:
                self._check_errors()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Fail("%s: no RECEIPT for %s within %.1fs" % (self.name, rid, WAIT))
                self.cond.wait(left)
            self.receipts.discard(rid)

    def next_message(self, timeout=None):
        """Return the next MESSAGE frame, or None when timeout passes first."""
        deadline = time.monotonic() + (WAIT if timeout is None else timeout)
        with self.cond:
            while not self.messages:
                self._check_errors()
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.messages.pop(0)

    def expect_bodies(self, bodies):
        got = []
        frames = []
        for want in bodies:
            f = self.next_message()
            if f is None:
                raise Fail("%s: got %r, still waiting for %r" % (self.name, got, want))
            got.append(f.body)
            frames.append(f)
        if got != bodies:
            raise Fail("%s: got bodies %r, want %r in that order" % (self.name, got, bodies))
        return frames

    def expect_none(self):
        f = self.next_message(QUIET)
        if f is not None:
            raise Fail("%s: unexpected MESSAGE %r (headers %r)" % (self.name, f.body, f.headers))

    def ack(self, frame, receipt=None):
        h = frame.headers
        if self.version == "1.0":
            self.conn.ack(h["message-id"], receipt=receipt)
        else:
            if "ack" not in h:
                raise Fail("%s: 1.2 MESSAGE without ack header: %r" % (self.name, h))
            self.conn.ack(h["ack"], receipt=receipt)

    def nack(self, frame, receipt=None):
        self.conn.nack(frame.headers["ack"], receipt=receipt)

    def disconnect(self):
        # stomp.py always puts a receipt on DISCONNECT and waits for it.
        self.conn.disconnect()


def producer(addr, version, dest, bodies, headers=None):
    """Connect, send each body with a receipt and wait for it, disconnect."""
    p = Session(addr, version, "producer")
    p.connect()
    for i, body in enumerate(bodies):
        rid = "send-%d" % i
        p.conn.send(dest, body, headers=dict(headers or {}, receipt=rid))
        p.wait_receipt(rid)
    p.disconnect()


def client_ack_mode(version):
    return "client" if version == "1.0" else "client-individual"


def scenario_topic(addr, ver, dest):
    subs = []
    for n in ("a", "b"):
        s = Session(addr, ver, "sub-" + n)
        s.connect()
        s.subscribe(dest, "sub-" + n, receipt="r-sub-" + n)
        s.wait_receipt("r-sub-" + n)
        subs.append(s)
    bodies = ["t1", "t2", "t3"]
    producer(addr, ver, dest, bodies)
    for s in subs:
        frames = s.expect_bodies(bodies)
        for f in frames:
            if f.headers.get("destination") != dest:
                raise Fail("%s: MESSAGE destination %r, want %r" % (s.name, f.headers.get("destination"), dest))
            if ver != "1.0" and f.headers.get("subscription") != s.name:
                raise Fail("%s: MESSAGE subscription %r" % (s.name, f.headers.get("subscription")))
        s.expect_none()
        s.disconnect()


def scenario_queue(addr, ver, dest):
    producer(addr, ver, dest, ["q1", "q2"])
    c = Session(addr, ver, "consumer-1")
    c.connect()
    c.subscribe(dest, "c1", ack=client_ack_mode(ver))
    frames = c.expect_bodies(["q1", "q2"])
    obs("message-headers", frames[0].headers)
    c.ack(frames[0])
    c.ack(frames[1], receipt="r-ack")
    c.wait_receipt("r-ack")
    c.disconnect()
    c2 = Session(addr, ver, "consumer-2")
    c2.connect()
    c2.subscribe(dest, "c2")
    c2.expect_none()
    c2.disconnect()


def scenario_receipt(addr, ver, dest):
    c = Session(addr, ver, "client")
    c.connect()
    c.subscribe(dest, "s1", receipt="r-subscribe")
    c.wait_receipt("r-subscribe")
    c.conn.send(dest, "r1", headers={"receipt": "r-send"})
    c.wait_receipt("r-send")
    c.expect_bodies(["r1"])
    if ver == "1.0":
        c.conn.unsubscribe(id="s1", headers={"receipt": "r-unsubscribe"})
    else:
        c.conn.unsubscribe("s1", headers={"receipt": "r-unsubscribe"})
    c.wait_receipt("r-unsubscribe")
    c.conn.begin("tx-r", headers={"receipt": "r-begin"})
    c.wait_receipt("r-begin")
    c.conn.commit("tx-r", headers={"receipt": "r-commit"})
    c.wait_receipt("r-commit")
    c.conn.disconnect(receipt="r-disconnect")
    if c.conn.is_connected():
        raise Fail("still connected after DISCONNECT receipt")


def scenario_ack_client(addr, ver, dest):
    producer(addr, ver, dest, ["a1", "a2", "a3"])
    c = Session(addr, ver, "consumer-1")
    c.connect()
    c.subscribe(dest, "c1", ack="client")
    frames = c.expect_bodies(["a1", "a2", "a3"])
    c.ack(frames[1], receipt="r-ack")  # cumulative: covers a1 and a2
    c.wait_receipt("r-ack")
    c.disconnect()  # a3 stays unacknowledged
    c2 = Session(addr, ver, "consumer-2")
    c2.connect()
    c2.subscribe(dest, "c2", ack="client")
    frames = c2.expect_bodies(["a3"])
    obs("redelivered", frames[0].headers.get("redelivered"))
    c2.ack(frames[0], receipt="r-ack2")
    c2.wait_receipt("r-ack2")
    c2.expect_none()
    c2.disconnect()


def scenario_nack_redeliver(addr, ver, dest):
    if ver == "1.0":
        raise Unsupported("NACK does not exist in STOMP 1.0")
    producer(addr, ver, dest, ["n1"])
    c = Session(addr, ver, "consumer")
    c.connect()
    c.subscribe(dest, "c1", ack="client-individual")
    first = c.expect_bodies(["n1"])[0]
    obs("first-redelivered", first.headers.get("redelivered"))
    c.nack(first, receipt="r-nack")
    c.wait_receipt("r-nack")
    again = c.next_message()
    if again is None:
        raise Fail("NACKed message was not delivered again within %.1fs" % WAIT)
    obs("second-headers", again.headers)
    if again.body != "n1":
        raise Fail("redelivered body %r, want n1" % again.body)
    if again.headers.get("redelivered") != "true":
        raise Fail("redelivered header %r, want 'true'" % again.headers.get("redelivered"))
    c.ack(again, receipt="r-ack")
    c.wait_receipt("r-ack")
    c.disconnect()
    c2 = Session(addr, ver, "consumer-2")
    c2.connect()
    c2.subscribe(dest, "c2")
    c2.expect_none()
    c2.disconnect()


def scenario_transaction(addr, ver, dest):
    c = Session(addr, ver, "consumer")
    c.connect()
    c.subscribe(dest, "c1", receipt="r-sub")
    c.wait_receipt("r-sub")
    p = Session(addr, ver, "producer")
    p.connect()
    p.conn.begin("tx-abort")
    p.conn.begin("tx-commit")
    p.conn.send(dest, "x1", transaction="tx-commit")
    p.conn.send(dest, "y1", transaction="tx-abort")
    p.conn.send(dest, "x2", transaction="tx-commit")
    p.conn.send(dest, "y2", transaction="tx-abort")
    # Sync point: a receipt on a later non-transactional frame proves the
    # SENDs were processed. (Not a receipt on a transactional SEND: RabbitMQ
    # holds those back until COMMIT.)
    p.conn.begin("tx-sync", headers={"receipt": "r-sync"})
    p.wait_receipt("r-sync")
    c.expect_none()  # nothing is visible before COMMIT
    p.conn.abort("tx-abort")
    p.conn.commit("tx-commit", headers={"receipt": "r-commit"})
    p.wait_receipt("r-commit")
    c.expect_bodies(["x1", "x2"])
    c.expect_none()
    p.conn.abort("tx-sync")
    p.disconnect()
    c.disconnect()


# The value stomp.py escapes on SEND (1.2) and unescapes on MESSAGE.
TRICKY = "a:b\nc\\d"


def scenario_headers(addr, ver, dest):
    c = Session(addr, ver, "consumer")
    c.connect()
    c.subscribe(dest, "c1", receipt="r-sub")
    c.wait_receipt("r-sub")
    want = {"x-interop-plain": "plain-value"}
    if ver != "1.0":
        want["x-interop-tricky"] = TRICKY
    producer(addr, ver, dest, ["h1"], headers=want)
    got = c.expect_bodies(["h1"])[0].headers
    obs("message-headers", got)
    for k, v in want.items():
        if got.get(k) != v:
            raise Fail("header %s: got %r, want %r" % (k, got.get(k), v))
    c.disconnect()


def scenario_v10(addr, ver, dest):
    if ver != "1.0":
        raise Unsupported("v10 runs only with VERSION 1.0")
    c = Session(addr, ver, "consumer")
    hdrs = c.connect()
    obs("connected-headers", hdrs)
    if hdrs.get("version", "1.0") != "1.0":
        raise Fail("CONNECTED version %r for a 1.0 client" % hdrs.get("version"))
    c.subscribe(dest, None, ack="client", receipt="r-sub")  # 1.0: no id
    c.wait_receipt("r-sub")
    producer(addr, ver, dest, ["v1"])
    f = c.expect_bodies(["v1"])[0]
    obs("message-headers", f.headers)
    c.ack(f, receipt="r-ack")
    c.wait_receipt("r-ack")
    c.conn.unsubscribe(destination=dest, headers={"receipt": "r-unsub"})
    c.wait_receipt("r-unsub")
    c.disconnect()


def scenario_temp_queue(addr, ver, dest):
    """Request/response: the requester sends with reply-to:/temp-queue/NAME
    and gets the reply without subscribing (RabbitMQ's way); the responder
    sees the reply-to rewritten to a name it can send to."""
    resp = Session(addr, ver, "responder")
    resp.connect()
    resp.subscribe(dest, "rpc", receipt="r-sub")
    resp.wait_receipt("r-sub")
    req = Session(addr, ver, "requester")
    req.connect()
    temp = "/temp-queue/answers"
    for i in range(3):
        body = "q%d" % i
        req.conn.send(dest, body, headers={"reply-to": temp, "receipt": "r-%d" % i})
        req.wait_receipt("r-%d" % i)
        f = resp.next_message()
        if f is None or f.body != body:
            raise Fail("responder: got %r, want request %r" % (f and f.body, body))
        reply_to = f.headers.get("reply-to", "")
        obs("reply-to", reply_to)
        if reply_to == temp or not reply_to:
            raise Fail("responder: reply-to %r was not rewritten" % reply_to)
        resp.conn.send(reply_to, "re:" + body)
        r = req.next_message()
        if r is None or r.body != "re:" + body:
            raise Fail("requester: got %r, want reply %r" % (r and r.body, "re:" + body))
        obs("reply-headers", r.headers)
    req.disconnect()
    resp.disconnect()


def durable_scenario(addr, ver, dest, connect_headers, sub_headers, unsub_headers, close_first=False):
    """A durable topic subscription keeps what is published while its
    subscriber is away, delivers it in order when it comes back, and is
    gone after UNSUBSCRIBE with the spelling's delete header. close_first:
    a plain UNSUBSCRIBE before the deleting one (ActiveMQ refuses to delete
    a durable subscription whose consumer is active: "Durable consumer is
    in use")."""
    if ver == "1.0":
        raise Unsupported("durable subscriptions are tested with STOMP 1.2")
    sid = "dur-" + dest.rsplit(".", 1)[-1]

    def subscribe(name):
        s = Session(addr, ver, name)
        s.connect(connect_headers)
        s.subscribe(dest, sid, ack="client-individual", receipt="r-sub", headers=sub_headers)
        s.wait_receipt("r-sub")
        return s

    subscribe("subscriber").disconnect()  # a plain disconnect keeps it
    bodies = ["d%d" % i for i in range(5)]
    producer(addr, ver, dest, bodies)
    s = subscribe("returning subscriber")
    for f in s.expect_bodies(bodies):
        if f.headers.get("destination") != dest:
            raise Fail("kept message has destination %r, want %r" % (f.headers.get("destination"), dest))
        s.ack(f)

    def delete(s):
        if close_first:
            s.conn.unsubscribe(sid, headers={"receipt": "r-close"})
            s.wait_receipt("r-close")
        s.conn.unsubscribe(sid, headers=dict(unsub_headers, receipt="r-unsub"))
        s.wait_receipt("r-unsub")
        s.disconnect()

    delete(s)
    producer(addr, ver, dest, ["after-delete"])
    s = subscribe("after delete")
    s.expect_none()
    delete(s)


def scenario_durable_rabbitmq(addr, ver, dest):
    durable_scenario(addr, ver, dest, None,
                     {"durable": "true", "auto-delete": "false"}, {"durable": "true"})


def scenario_durable_activemq(addr, ver, dest):
    name = "sub-" + dest.rsplit(".", 1)[-1]
    durable_scenario(addr, ver, dest, {"client-id": "client-" + name},
                     {"activemq.subscriptionName": name}, {"activemq.subscriptionName": name},
                     close_first=True)


SCENARIOS = {
    "topic": ("topic", scenario_topic),
    "queue": ("queue", scenario_queue),
    "receipt": ("queue", scenario_receipt),
    "ack-client": ("queue", scenario_ack_client),
    "nack-redeliver": ("queue", scenario_nack_redeliver),
    "transaction": ("queue", scenario_transaction),
    "headers": ("topic", scenario_headers),
    "v10": ("queue", scenario_v10),
    "temp-queue": ("queue", scenario_temp_queue),
    "durable-rabbitmq": ("topic", scenario_durable_rabbitmq),
    "durable-activemq": ("topic", scenario_durable_activemq),
}


def main(argv):
    if len(argv) != 5:
        print("usage: %s HOST:PORT SCENARIO VERSION SUFFIX" % argv[0], file=sys.stderr)
        return 2
    addr, scenario, ver, suffix = argv[1:]
    if scenario not in SCENARIOS:
        print("UNSUPPORTED %s: unknown scenario" % scenario, flush=True)
        return 2
    kind, fn = SCENARIOS[scenario]
    dest = "/%s/interop.python.%s.v%s.%s" % (kind, scenario, ver.replace(".", ""), suffix)
    obs("destination", dest)
    try:
        fn(addr, ver, dest)
    except Unsupported as e:
        print("UNSUPPORTED %s: %s" % (scenario, e), flush=True)
        return 2
    except Exception as e:  # a library exception is a failure too
        print("FAIL %s: %s: %s" % (scenario, type(e).__name__, e), flush=True)
        return 1
    print("OK %s" % scenario, flush=True)
    return 0


if __name__ == "__main__":
    code = main(sys.argv)
    sys.stdout.flush()
    # stomp.py's receiver threads are daemons; leave without waiting on them.
    os._exit(code)
