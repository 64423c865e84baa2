//! Linux authentication: sshd and sudo logons, accepted or failed.
//!
//! A record whose APP-NAME is `sshd`, `sshd-session` (OpenSSH 9.8+) or
//! `sudo` is class `linux-auth`. When its text is one of the logon lines
//! below it also gets `outcome` (`success` or `failure`, as in ECS
//! `event.outcome`), `user` and, where the line has them, `src_ip`,
//! `src_port`, `auth_method`, `target_user`, `command`, `tty`, `pwd`,
//! `reason`. Other lines from these programs (sessions, disconnects) keep
//! just their `message`.
//!
//! sshd: `Accepted|Failed <method> for [invalid user ]<user> from <ip> port
//! <port> ...`, `Invalid user <user> from <ip> [port <port>]`, `error: PAM:
//! Authentication failure for [illegal user ]<user> from <host>`, rsyslog's
//! `message repeated N times: [ ... ]` around any of them. sudo: `<user> :
//! [<reason> ; ]TTY=… ; PWD=… ; USER=… ; COMMAND=…` (a reason means it
//! was refused). Both: `pam_unix(<svc>:auth): authentication failure; …
//! rhost=<ip> user=<user>`.
//!
//! A user name may contain spaces (an attacker chooses it), so the address
//! is taken after the last ` from `. Values borrow the message; nothing is
//! allocated.

use bumpalo::Bump;
use memchr::memmem;

use crate::record::Fields;

/// Does this APP-NAME make a record `linux-auth`?
#[inline]
pub fn is_auth_app(app: &[u8]) -> bool {
    matches!(app, b"sshd" | b"sshd-session" | b"sudo")
}

/// Adds the logon fields of `msg` (from program `app`) to `fields`.
pub fn extract<'a>(bump: &'a Bump, app: &[u8], msg: &'a [u8], fields: &mut Fields<'a>) {
    let msg = unwrap_repeated(msg.trim_ascii());
    if let Some(rest) = msg.strip_prefix(b"pam_unix(") {
        pam_failure(bump, rest, fields);
    } else if app == b"sudo" {
        sudo(bump, msg, fields);
    } else {
        sshd(bump, msg, fields);
    }
}

/// rsyslog's `message repeated 3 times: [ Failed password for ...]`.
fn unwrap_repeated(msg: &[u8]) -> &[u8] {
    if let Some(r) = msg.strip_prefix(b"message repeated ")
        && let Some(i) = memmem::find(r, b": [ ")
    {
        let inner = &r[i + 4..];
        return inner.strip_suffix(b"]").unwrap_or(inner).trim_ascii();
    }
    msg
}

fn sshd<'a>(bump: &'a Bump, msg: &'a [u8], fields: &mut Fields<'a>) {
    let (outcome, rest): (&[u8], &[u8]) = if let Some(r) = msg.strip_prefix(b"Accepted ") {
        (b"success", r)
    } else if let Some(r) = msg.strip_prefix(b"Failed ") {
        (b"failure", r)
    } else if let Some(r) = msg.strip_prefix(b"Invalid user ") {
        return user_from(bump, b"failure", None, r, fields);
    } else if let Some(r) = msg.strip_prefix(b"error: PAM: Authentication failure for ") {
        let r = r.strip_prefix(b"illegal user ").unwrap_or(r);
        return user_from(bump, b"failure", None, r, fields);
    } else {
        return;
    };
    // `<method> for [invalid user ]<user> from ...`
    let Some(i) = memmem::find(rest, b" for ") else {
        return;
    };
    let method = &rest[..i];
    let r = &rest[i + 5..];
    let r = r.strip_prefix(b"invalid user ").unwrap_or(r);
    user_from(bump, outcome, Some(method), r, fields);
}

/// `<user> from <ip>[ port <port>...]`.
fn user_from<'a>(
    bump: &'a Bump,
    outcome: &'static [u8],
    method: Option<&'a [u8]>,
    r: &'a [u8],
    fields: &mut Fields<'a>,
) {
    let Some(i) = memmem::rfind(r, b" from ") else {
        return;
    };
    fields.push(bump, b"outcome", outcome);
    fields.push(bump, b"user", &r[..i]);
    let mut words = r[i + 6..].split(|&b| b == b' ');
    if let Some(ip) = words.next().filter(|w| !w.is_empty()) {
        fields.push(bump, b"src_ip", ip);
    }
    if words.next() == Some(b"port")
        && let Some(port) = words.next()
    {
        fields.push(bump, b"src_port", port.strip_suffix(b":").unwrap_or(port));
    }
    if let Some(m) = method {
        fields.push(bump, b"auth_method", m);
    }
}

/// `pam_unix(<svc>:auth): authentication failure; logname=… ruser=… rhost=… user=…`
fn pam_failure<'a>(bump: &'a Bump, rest: &'a [u8], fields: &mut Fields<'a>) {
    let Some(i) = memmem::find(rest, b"): authentication failure;") else {
        return;
    };
    let kv = &rest[i + 26..];
    let mut user: &[u8] = b"";
    let mut logname: &[u8] = b"";
    let mut rhost: &[u8] = b"";
    for pair in kv.split(|&b| b == b' ') {
        if let Some(v) = pair.strip_prefix(b"user=") {
            user = v;
        } else if let Some(v) = pair.strip_prefix(b"logname=") {
            logname = v;
        } else if let Some(v) = pair.strip_prefix(b"rhost=") {
            rhost = v;
        }
    }
    fields.push(bump, b"outcome", b"failure");
    fields.push(bump, b"user", if user.is_empty() { logname } else { user });
    if !rhost.is_empty() {
        fields.push(bump, b"src_ip", rhost);
    }
}

/// `<user> : [<reason> ; ]TTY=pts/0 ; PWD=/home/u ; USER=root ; COMMAND=/bin/id`
fn sudo<'a>(bump: &'a Bump, msg: &'a [u8], fields: &mut Fields<'a>) {
    let Some(i) = memmem::find(msg, b" : ") else {
        return;
    };
    let user = msg[..i].trim_ascii();
    let rest = &msg[i + 3..];
    if user.is_empty() || user.contains(&b' ') {
        return;
    }
    let mut reason: &[u8] = b"";
    let mut items: [(&'static [u8], &'a [u8]); 4] = [(b"", b""); 4];
    let mut n = 0;
    let mut r = rest;
    while !r.is_empty() {
        let (item, next) = if r.starts_with(b"COMMAND=") {
            (r, &b""[..])
        } else {
            match memmem::find(r, b" ; ") {
                Some(j) => (&r[..j], &r[j + 3..]),
                None => (r, &b""[..]),
            }
        };
        let named: Option<(&'static [u8], &[u8])> = [
            (&b"TTY="[..], &b"tty"[..]),
            (b"PWD=", b"pwd"),
            (b"USER=", b"target_user"),
            (b"COMMAND=", b"command"),
        ]
        .into_iter()
        .find_map(|(p, k)| item.strip_prefix(p).map(|v| (k, v)));
        match named {
            Some(kv) if n < items.len() => {
                items[n] = kv;
                n += 1;
            }
            Some(_) => {}
            None if reason.is_empty() && !item.contains(&b'=') => reason = item,
            None => {}
        }
        r = next;
    }
    if n == 0 {
        return;
    }
    let failed = !reason.is_empty();
    fields.push(
        bump,
        b"outcome",
        if failed { b"failure" } else { b"success" },
    );
    fields.push(bump, b"user", user);
    if failed {
        fields.push(bump, b"reason", reason);
    }
    for (k, v) in &items[..n] {
        fields.push(bump, k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(app: &str, msg: &'static str) -> Vec<(String, String)> {
        let bump = Bump::new();
        let mut f = Fields::with_capacity(&bump, 4);
        extract(&bump, app.as_bytes(), msg.as_bytes(), &mut f);
        f.as_slice()
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.key).into_owned(),
                    String::from_utf8_lossy(f.value).into_owned(),
                )
            })
            .collect()
    }

    fn kv(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn accepted_and_failed_ssh_logons_give_user_address_and_outcome() {
        assert_eq!(
            run(
                "sshd",
                "Accepted publickey for alice from 10.0.0.5 port 51000 ssh2: RSA SHA256:abc"
            ),
            kv(&[
                ("outcome", "success"),
                ("user", "alice"),
                ("src_ip", "10.0.0.5"),
                ("src_port", "51000"),
                ("auth_method", "publickey")
            ])
        );
        assert_eq!(
            run(
                "sshd",
                "Failed password for invalid user a from b from 203.0.113.9 port 4242 ssh2"
            ),
            kv(&[
                ("outcome", "failure"),
                ("user", "a from b"),
                ("src_ip", "203.0.113.9"),
                ("src_port", "4242"),
                ("auth_method", "password")
            ])
        );
    }

    #[test]
    fn other_sshd_lines_add_nothing() {
        assert!(run("sshd", "Connection closed by 10.0.0.5 port 22 [preauth]").is_empty());
        assert!(run("sshd", "Server listening on 0.0.0.0 port 22.").is_empty());
    }

    #[test]
    fn sudo_refusals_carry_their_reason() {
        assert_eq!(
            run(
                "sudo",
                "   bob : 3 incorrect password attempts ; TTY=pts/1 ; PWD=/home/bob ; USER=root ; COMMAND=/bin/cat /etc/shadow ; x"
            ),
            kv(&[
                ("outcome", "failure"),
                ("user", "bob"),
                ("reason", "3 incorrect password attempts"),
                ("tty", "pts/1"),
                ("pwd", "/home/bob"),
                ("target_user", "root"),
                ("command", "/bin/cat /etc/shadow ; x")
            ])
        );
    }
}
