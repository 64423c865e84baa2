#!/usr/bin/env bash
# Package acceptance (issue 7): builds the .deb, installs it on this
# machine, checks the systemd unit offline (this machine need not run
# systemd), runs the installed binary the way the unit does (as the
# `sluice` user with only CAP_NET_BIND_SERVICE, on ports 514 and 9598, with
# a notify socket), then removes and purges the package and checks that
# each step left what Debian expects. Needs root (CI runs as root) and
# ports 514 (UDP, TCP) and 9598 free.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "package-test: needs root (dpkg -i)" >&2; exit 1; }
tmp=$(mktemp -d)
chmod 755 "$tmp"
svc_pid=""
sock_pid=""
# The postinst raises net.core.rmem_max; put this machine's value back.
rmem_max=$(cat /proc/sys/net/core/rmem_max)
cleanup() {
    sysctl -q -w "net.core.rmem_max=$rmem_max" 2>/dev/null || true
    [ -n "$svc_pid" ] && kill "$svc_pid" 2>/dev/null || true
    [ -n "$sock_pid" ] && kill "$sock_pid" 2>/dev/null || true
    dpkg_wait --purge sluice >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT
step() { echo "package-test: $*"; }
fail() {
    echo "package-test: FAIL: $*" >&2
    for f in "$tmp"/*.log; do [ -s "$f" ] && { echo "--- $f" >&2; cat "$f" >&2; }; done
    exit 1
}
unit=/lib/systemd/system/sluice.service
# dpkg, waiting (up to 5 minutes) while another apt/dpkg holds its lock.
dpkg_wait() {
    local out
    for _ in $(seq 300); do
        if out=$(dpkg "$@" 2>&1); then printf '%s\n' "$out"; return 0; fi
        case "$out" in
            *"lock was locked by another process"*|*"is locked by another process"*) sleep 1 ;;
            *) printf '%s\n' "$out"; return 1 ;;
        esac
    done
    printf '%s\n' "$out"; return 1
}

if dpkg -s sluice >/dev/null 2>&1; then
    step "purging a sluice package left installed by an earlier run"
    dpkg_wait --purge sluice >/dev/null
fi
rm -rf /var/lib/sluice

step "building the package"
deb=$(scripts/build-deb.sh | tail -1)
[ -f "$deb" ] || fail "scripts/build-deb.sh made no .deb ($deb)"
step "built $deb ($(du -h "$deb" | cut -f1))"

step "dpkg -i"
dpkg_wait -i "$deb" >"$tmp/dpkg-install.log" 2>&1 || fail "dpkg -i failed"
[ "$(cat /proc/sys/net/core/rmem_max)" -ge 16777216 ] || [ ! -w /proc/sys/net/core/rmem_max ] \
    || fail "postinst did not raise net.core.rmem_max"
grep -qi 'warning' "$tmp/dpkg-install.log" && fail "dpkg -i warned"
for f in /usr/bin/sluice /etc/sluice/sluice.toml "$unit" \
    /usr/share/man/man8/sluice.8.gz /usr/share/man/man8/sluice-top.8.gz \
    /usr/share/doc/sluice/examples/sluice.toml \
    /usr/share/doc/sluice/flowmon/identity-patterndb.xml \
    /usr/share/doc/sluice/grafana/sluice.json /usr/share/doc/sluice/operations.md \
    /usr/lib/sysctl.d/50-sluice.conf; do
    [ -e "$f" ] || fail "$f is not installed"
done
grep -qx /etc/sluice/sluice.toml /var/lib/dpkg/info/sluice.conffiles || fail "sluice.toml is not a conffile"
man -w sluice >/dev/null 2>&1 || fail "man cannot find sluice(8)"
zcat /usr/share/man/man8/sluice.8.gz | grep -q '^\.SH SIGNALS' || fail "sluice.8 has no SIGNALS section"
getent passwd sluice | grep -q ':/usr/sbin/nologin$' || fail "no system user sluice with nologin"
[ "$(stat -c '%U:%G %a' /var/lib/sluice)" = "sluice:sluice 750" ] || fail "/var/lib/sluice: $(stat -c '%U:%G %a' /var/lib/sluice)"
[ -L /etc/systemd/system/multi-user.target.wants/sluice.service ] || fail "the unit is not enabled"
if /usr/bin/sluice archive keygen --help >/dev/null 2>&1; then
    [ "$(stat -c '%U:%G %a' /etc/sluice/archive.key)" = "root:sluice 640" ] \
        || fail "no archive signing key readable by the service only"
    grep -qE '^[0-9a-f]{64}$' /etc/sluice/archive.pub || fail "no archive public key"
fi

step "systemd-analyze verify $unit"
systemd-analyze verify "$unit" >"$tmp/verify.log" 2>&1 || fail "systemd-analyze verify failed"
[ -s "$tmp/verify.log" ] && fail "systemd-analyze verify complained"
for d in 'Type=notify' 'User=sluice' 'Group=sluice' \
    'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'CapabilityBoundingSet=CAP_NET_BIND_SERVICE' \
    'NoNewPrivileges=yes' 'ProtectSystem=strict' 'StateDirectory=sluice' \
    'ExecStartPre=/usr/bin/sluice check-config /etc/sluice/sluice.toml' \
    'ExecStart=/usr/bin/sluice run --config /etc/sluice/sluice.toml' \
    'ExecReload=/usr/bin/sluice check-config /etc/sluice/sluice.toml' \
    'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure'; do
    grep -qxF "$d" "$unit" || fail "the unit lacks $d"
done
nofile=$(sed -n 's/^LimitNOFILE=//p' "$unit")
[ "${nofile:-0}" -ge 65536 ] || fail "LimitNOFILE=$nofile is not raised"
# systemd's own hardening score (0 = locked down, 10 = exposed); 2.0 or
# less is what systemd calls "OK".
systemd-analyze security --offline=true "$unit" >"$tmp/security.log" 2>&1 || true
score=$(sed -n 's/.*Overall exposure level for sluice.service: \([0-9.]*\).*/\1/p' "$tmp/security.log")
[ -n "$score" ] || fail "systemd-analyze security gave no score"
awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }' || fail "exposure level $score > 2.0"
step "systemd-analyze security: exposure $score"

step "check-config on the installed config, as root and as the service user"
/usr/bin/sluice check-config /etc/sluice/sluice.toml >"$tmp/check.log" 2>&1 || fail "check-config failed"
as_service=(setpriv --reuid=sluice --regid=sluice --init-groups
    --inh-caps=-all,+net_bind_service --ambient-caps=-all,+net_bind_service
    --bounding-set=-all,+net_bind_service --no-new-privs)
"${as_service[@]}" /usr/bin/sluice check-config /etc/sluice/sluice.toml >"$tmp/check.log" 2>&1 \
    || fail "check-config as the sluice user failed"
# Every example block in the conffile (archive, Flowmon), uncommented,
# must check too: an administrator enables them by removing the '#'.
sed -e '/^# BEGIN/,/^# END/ s/^#\([^ ]\)/\1/' /etc/sluice/sluice.toml >"$tmp/all-examples.toml"
grep -q '^type = "archive"' "$tmp/all-examples.toml" || fail "no archive example to uncomment"
/usr/bin/sluice check-config "$tmp/all-examples.toml" >"$tmp/check.log" 2>&1 \
    || fail "the conffile with its examples uncommented does not check"

step "running the installed sluice as the unit does (user sluice, CAP_NET_BIND_SERVICE only)"
for p in 514 9598; do
    if ss -Hltn "sport = :$p" | grep -q . || { [ $p = 514 ] && ss -Hlun "sport = :$p" | grep -q .; }; then
        fail "port $p is in use: $(ss -Hltunp "sport = :$p")"
    fi
done
socat -u "UNIX-RECV:$tmp/notify.sock,perm=0666" - >"$tmp/notify.log" 2>&1 &
sock_pid=$!
for _ in $(seq 50); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
# shellcheck disable=SC2094
(cd /var/lib/sluice && NOTIFY_SOCKET="$tmp/notify.sock" exec "${as_service[@]}" \
    /usr/bin/sluice run --config /etc/sluice/sluice.toml) 2>"$tmp/service.log" &
svc_pid=$!
for _ in $(seq 100); do grep -q 'ready$' "$tmp/service.log" && break; sleep 0.1; done
grep -q 'ready$' "$tmp/service.log" || fail "sluice did not become ready"
for _ in $(seq 50); do grep -qx 'READY=1' "$tmp/notify.log" && break; sleep 0.1; done
grep -qx 'READY=1' "$tmp/notify.log" || fail "no READY=1 on the notify socket"
tag="package-test-$$"
logger -n 127.0.0.1 -P 514 --tcp --rfc5424 -t pkgtest "$tag tcp"
logger -n 127.0.0.1 -P 514 --udp --rfc5424 -t pkgtest "$tag udp"
out=/var/lib/sluice/archive
found() { /usr/bin/sluice archive search "$out" --from 1h --text "$tag" --json 2>/dev/null | grep -c "$tag"; }
# A partly filled archive block is sealed within about a second.
for _ in $(seq 100); do [ "$(found)" = 2 ] && break; sleep 0.1; done
[ "$(found)" = 2 ] || fail "the two logger records did not reach the archive in $out"
[ "$(stat -c %U "$out")" = sluice ] || fail "$out is not owned by sluice"
/usr/bin/sluice archive verify "$out" --pubkey "$(cat /etc/sluice/archive.pub)" >"$tmp/verify.log" 2>&1 \
    || fail "the archive does not verify: $(cat "$tmp/verify.log")"
exec 3<>/dev/tcp/127.0.0.1/9598
printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
metrics=$(cat <&3)
exec 3<&-
echo "$metrics" | grep -qx 'sluice_input_records_total{input="tcp"} 1' || fail "metrics on :9598 do not count the TCP record"
kill -TERM "$svc_pid"
wait "$svc_pid" || fail "sluice exited with status $? on SIGTERM"
svc_pid=""
grep -qx 'STOPPING=1' "$tmp/notify.log" || fail "no STOPPING=1 on the notify socket"

step "dpkg -r"
dpkg_wait -r sluice >"$tmp/dpkg-remove.log" 2>&1 || fail "dpkg -r failed"
grep -qi 'warning' "$tmp/dpkg-remove.log" && fail "dpkg -r warned"
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' sluice)" = "rc " ] || fail "not in state rc after dpkg -r"
for f in /usr/bin/sluice "$unit" /usr/share/man/man8/sluice.8.gz /usr/share/doc/sluice; do
    [ -e "$f" ] && fail "$f is still there after dpkg -r"
done
[ -f /etc/sluice/sluice.toml ] || fail "dpkg -r removed the conffile (it stays until purge)"
getent passwd sluice >/dev/null || fail "dpkg -r removed the user (that is for purge)"

step "dpkg --purge"
dpkg_wait --purge sluice >"$tmp/dpkg-purge.log" 2>&1 || fail "dpkg --purge failed"
[ -s "$tmp/dpkg-purge.log" ] && grep -v -e '^(Reading database' -e '^Purging configuration files' "$tmp/dpkg-purge.log" | grep -q . \
    && fail "dpkg --purge said more than expected"
dpkg -s sluice >/dev/null 2>&1 && fail "sluice is still known to dpkg after purge"
[ -e /etc/sluice ] && fail "/etc/sluice is still there after purge"
getent passwd sluice >/dev/null && fail "user sluice is still there after purge"
getent group sluice >/dev/null && fail "group sluice is still there after purge"
find /etc/systemd/system -name 'sluice*' | grep -q . && fail "systemd links to sluice left after purge"
# The records sluice received are kept on purge (see docs/operations.md).
find "$out" -type f -size +0 | grep -q . || fail "purge removed the archive"
rm -rf /var/lib/sluice
step "ok"
