#!/usr/bin/python3
"""Connects to a broker that refuses every new client, N times, with stomp.py.

Usage: stomp_refused.py HOST:PORT N

For each attempt prints one line:

    SAW_ERROR <message header>   the library handed the ERROR frame to the listener
    NO_ERROR <what happened>     it did not (exception, or nothing)

Must be run with /usr/bin/python3 (Debian's python3-stomp).
"""

import sys
import threading

import stomp


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.error = None
        self.done = threading.Event()

    def on_error(self, frame):
        self.error = frame.headers.get("message", "")
        self.done.set()

    def on_disconnected(self):
        self.done.set()


def attempt(host, port):
    conn = stomp.Connection12(host_and_ports=[(host, port)], heartbeats=(0, 0),
                              reconnect_attempts_max=1)
    listener = Listener()
    conn.set_listener("l", listener)
    what = "no ERROR frame"
    try:
        conn.connect(wait=True, headers={"host": "localhost"})
        what = "connected"
    except Exception as e:  # the refusal ends the connection attempt
        what = "%s %s" % (type(e).__name__, e)
    listener.done.wait(5)
    try:
        conn.disconnect()
    except Exception:
        pass
    if listener.error is not None:
        return "SAW_ERROR " + listener.error + " | " + what
    return "NO_ERROR " + what


def main():
    host, port = sys.argv[1].rsplit(":", 1)
    for _ in range(int(sys.argv[2])):
        print(attempt(host, int(port)), flush=True)


if __name__ == "__main__":
    main()
