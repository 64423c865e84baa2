#!/usr/bin/env bash
# Soak test (issue 5; not run in CI): measures sluice's capacity on this
# machine, then runs `sluice load` at half of it for 10 minutes (SOAK_SECS)
# through `sluice run` into `sluice sink`, sampling sluice's RSS. Passes
# when nothing is lost and the RSS at the end is within 10 % of the RSS
# after the first minute. Prints one summary line for perf/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS="${SOAK_SECS:-600}"
MIX="${SOAK_MIX:-windows=50,flowmon=10,sshd=25,cef=15}"
cargo build --release --quiet
BIN="$PWD/target/release/sluice"
WORK="$(mktemp -d)"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
IN=$(free_port); OUT=$(free_port); MET=$(free_port)
cat > "$WORK/sluice.toml" <<TOML
[pipeline]
workers = 2
[metrics]
listen = "127.0.0.1:$MET"
[[input]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:$IN"
[[output]]
name = "sink"
type = "syslog"
transport = "tcp"
target = "127.0.0.1:$OUT"
format = "v2"
TOML

run_once() { # $1 = load args; prints the sink's JSON report
  "$BIN" sink --tcp "127.0.0.1:$OUT" --json --quiet --idle 10s > "$WORK/sink.json" &
  local sink=$!
  sleep 0.5
  "$BIN" load --tcp "127.0.0.1:$IN" --mix "$MIX" $1 > /dev/null
  wait $sink
  cat "$WORK/sink.json"
}

"$BIN" run --config "$WORK/sluice.toml" 2> "$WORK/sluice.log" &
PID=$!
sleep 1
echo "soak: measuring capacity (flat out, 15 s)..."
CAP=$(run_once "-d 15s" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["records_per_sec"]))')
RATE=$((CAP / 2))
echo "soak: capacity ${CAP}/s; running at ${RATE}/s for ${SECS}s"

rss() { awk '/VmRSS/ {print $2}' /proc/$PID/status; }
"$BIN" sink --tcp "127.0.0.1:$OUT" --json --quiet --idle 15s > "$WORK/sink.json" &
SINK=$!
sleep 0.5
"$BIN" load --tcp "127.0.0.1:$IN" --mix "$MIX" --rate "$RATE" -d "${SECS}s" > /dev/null &
LOAD=$!
sleep 60
RSS1=$(rss)
echo "soak: RSS after the first minute: ${RSS1} KiB"
wait $LOAD
RSS2=$(rss)
wait $SINK
kill -TERM $PID; wait $PID || true
read -r LOST DUP RECV < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["lost"], r["duplicates"], r["records"])' "$WORK/sink.json")
GROWTH=$(python3 -c "print(round(100.0*($RSS2-$RSS1)/$RSS1, 1))")
echo "soak: ${SECS}s at ${RATE}/s (half of ${CAP}/s): received ${RECV}, lost ${LOST}, duplicates ${DUP}; RSS ${RSS1} KiB after 1 min, ${RSS2} KiB at the end (${GROWTH} %)"
ok=$(python3 -c "print(int($LOST == 0 and abs($RSS2-$RSS1) <= 0.10*$RSS1))")
if [ "$ok" = 1 ]; then echo "soak: PASS"; else echo "soak: FAIL"; exit 1; fi
