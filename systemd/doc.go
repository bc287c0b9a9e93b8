// Package systemd is the broker's side of the contract with the systemd service manager:
// readiness and watchdog notifications (sd_notify) and socket activation (sd_listen_fds).
// It is written against the documented wire protocol with the standard library only; it does not
// use go-systemd.
//
// # Where it sits
//
// Only the parent process uses this package, and only at its edges: at start-up to obtain the
// listening socket and to announce readiness, in its event loop to ping the watchdog, on SIGHUP
// to announce a reload and on shutdown to announce the stop. Client traffic never passes through
// it. Children never use it: they must not even see the variables systemd hands to the parent,
// which is the main reason this package exists rather than a few inline os.Getenv calls.
//
// # Lifecycle in the parent
//
//  1. NewNotifierFromEnv captures NOTIFY_SOCKET and WATCHDOG_* and removes them from the
//     environment. Capture first: a parent that scrubs the environment before capturing has
//     nowhere to send READY=1 and is never considered started.
//  2. Listeners (or ListenFiles) takes the sockets systemd passed, marks each close-on-exec and
//     removes LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES. Without this every child would inherit
//     every listener and the LISTEN_* variables (observed with systemd-socket-activate). When it
//     returns nothing, the parent falls back to its --listen address.
//  3. ScrubEnv, as a last defence, removes all of those variables again before the first child
//     is spawned. Children are still given an environment built from an allow-list; ScrubEnv only
//     protects code paths that forget to.
//  4. Ready once the listener is open and the semaphore set exists; Watchdog every
//     WatchdogInterval from the event loop (so a wedged loop stops pinging and gets restarted);
//     Reloading then Ready around a SIGHUP reload; Stopping when shutdown begins.
//
// The unit files that configure the service side of this contract are scripts/stomp-broker.service
// and scripts/stomp-broker.socket; scripts/check-units verifies them with systemd-analyze.
//
// References: sd_notify(3), sd_watchdog_enabled(3), sd_listen_fds(3), systemd.service(5),
// systemd.socket(5).
package systemd
