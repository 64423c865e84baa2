//! Service-manager notifications (`sd_notify(3)`): tells systemd when
//! sluice is ready, reloading and stopping, so that a `Type=notify` unit
//! counts as started only once every input is listening.
//!
//! Receives nothing; emits one datagram per state change to the socket
//! named by `NOTIFY_SOCKET` (nothing at all when it is unset, e.g. outside
//! systemd). Must never fail the caller: a notification that cannot be sent
//! is logged and forgotten, because sluice runs the same with or without a
//! service manager.

use sd_notify::NotifyState;

fn send(what: &str, states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        log::warn!("cannot tell the service manager {what}: {e}");
    }
}

/// `READY=1` with a `STATUS=` line: start-up (or a reload) is finished.
pub fn ready(status: &str) {
    send("ready", &[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1`: a reload (SIGHUP) has begun; [`ready`] ends it.
///
/// systemd 253 and later want `MONOTONIC_USEC` beside `RELOADING=1` (it
/// tells a reload that started before the signal from one after it); older
/// versions ignore the extra line.
pub fn reloading() {
    let mut states = vec![NotifyState::Reloading];
    if let Ok(now) = NotifyState::monotonic_usec_now() {
        states.push(now);
    }
    states.push(NotifyState::Status("reloading the config"));
    send("reloading", &states);
}

/// `STOPPING=1`: shutdown has begun (queues are draining).
pub fn stopping() {
    send(
        "stopping",
        &[
            NotifyState::Stopping,
            NotifyState::Status("stopping: draining queues"),
        ],
    );
}
