#!/usr/bin/python3
"""A slow queue consumer for TestQueueFairShare, written with stomp.py.

Usage: consumer.py HOST:PORT DESTINATION ACK WORK_MS

Subscribes to DESTINATION with the given ack mode (STOMP 1.2), prints
READY once the broker has receipted the SUBSCRIBE, then for every MESSAGE
spends WORK_MS milliseconds "working" (on stomp.py's receiver thread, so
it also reads slowly), ACKs it in the client modes and prints
"MSG <body>". It disconnects and exits when its standard input closes.
"""
import sys
import threading
import time

import stomp


def main():
    addr, dest, ack, work_ms = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    host, port = addr.rsplit(":", 1)
    conn = stomp.Connection12([(host, int(port))], heartbeats=(0, 0))
    ready = threading.Event()
    out = threading.Lock()

    class Listener(stomp.ConnectionListener):
        def on_receipt(self, frame):
            if frame.headers.get("receipt-id") == "sub":
                ready.set()

        def on_message(self, frame):
            time.sleep(work_ms / 1000.0)
            if ack != "auto":
                conn.ack(frame.headers["ack"])
            with out:
                print("MSG", frame.body, flush=True)

        def on_error(self, frame):
            with out:
                print("ERROR", frame.headers.get("message", ""), flush=True)

    conn.set_listener("", Listener())
    conn.connect(wait=True)
    conn.subscribe(destination=dest, id="1", ack=ack, headers={"receipt": "sub"})
    if not ready.wait(10):
        print("ERROR no receipt for SUBSCRIBE", flush=True)
        sys.exit(1)
    print("READY", flush=True)
    sys.stdin.read()
    conn.disconnect()


if __name__ == "__main__":
    main()
