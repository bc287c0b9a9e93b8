"""The TCP side of the WebSocket tests: a stomp.py client.

Usage: python3 tcp_peer.py HOST PORT BACK

Subscribes to BACK and prints READY once the subscription is in place
(a receipt); then reads lines "SEND <destination> <body>" from stdin and
sends each; prints "GOT <body>" for each message on BACK.
"""
import sys
import threading

import stomp

host, port, back = sys.argv[1], int(sys.argv[2]), sys.argv[3]
subscribed = threading.Event()


class Listener(stomp.ConnectionListener):
    def on_receipt(self, frame):
        if frame.headers.get("receipt-id") == "sub":
            subscribed.set()

    def on_message(self, frame):
        print("GOT " + frame.body, flush=True)

    def on_error(self, frame):
        print("FAIL " + frame.headers.get("message", ""), flush=True)


conn = stomp.Connection([(host, port)], heartbeats=(0, 0))
conn.set_listener("", Listener())
conn.connect(wait=True)
conn.subscribe(back, id="back", ack="auto", headers={"receipt": "sub"})
if not subscribed.wait(10):
    print("FAIL no receipt for SUBSCRIBE", flush=True)
    sys.exit(1)
print("READY", flush=True)
for line in sys.stdin:
    parts = line.rstrip("\n").split(" ", 2)
    if len(parts) == 3 and parts[0] == "SEND":
        conn.send(parts[1], parts[2], receipt="s")
        print("SENT", flush=True)
conn.disconnect()
