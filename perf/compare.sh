#!/usr/bin/env bash
# perf/compare.sh: sluice beside rsyslog, syslog-ng and a raw relay (socat,
# no parsing) on the same workloads, in one run, on one machine.
#
#   (a) TCP, 1 connection, RFC 5424 lines with a ~280-byte Windows-agent
#       JSON payload; every system parses header and JSON (rsyslog:
#       mmjsonparse, syslog-ng: json-parser, sluice: its whole pipeline with
#       classify and enrich rules) and forwards every record over TCP to
#       `sluice sink`, which counts them; $RECORDS records, median of
#       $ROUNDS rounds
#   (b) the same over $CONNS connections
#   (c) UDP at offered rates $UDP_RATES msg/s for $UDP_SECONDS s: loss
#   plus p99 end-to-end latency at $LAT_RATE records/s (TCP, 1 connection)
#   and the peak RSS of each system over all of it.
#
# Runs on a fresh Debian 12 machine with Rust: installs what it needs
# (rsyslog is unpacked beside syslog-ng with apt-get download + dpkg -x,
# since their packages conflict). Writes perf/results.csv (every run),
# perf/results.json (summary) and perf/results.png, and prints the summary.
#
# Knobs (environment): RECORDS ROUNDS CONNS UDP_RATES UDP_SECONDS LAT_RATE
# LAT_SECONDS SYSTEMS ("relay sluice rsyslog syslog-ng"; UDP_RATES="" or
# LAT_RATE=0 skip those parts), PERF_RECORD=1
# (perf record sluice during one round of (a) into perf/sluice-perf.txt),
# PERF_NO_SYSCTL=1 (leave net.core.rmem_max alone).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

RECORDS=${RECORDS:-1000000}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-8}
UDP_RATES=${UDP_RATES-"100000 200000 400000"}  # set but empty: no UDP part
UDP_SECONDS=${UDP_SECONDS:-10}
LAT_RATE=${LAT_RATE:-100000}
LAT_SECONDS=${LAT_SECONDS:-5}
SYSTEMS=${SYSTEMS:-"relay sluice rsyslog syslog-ng"}
RESULTS=$ROOT/perf/results.csv
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sluice-perf
WORK=$(mktemp -d /tmp/sluice-perf.XXXXXX)
SLUICE=$ROOT/target/release/sluice

log() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- what it needs -------------------------------------------------------
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
need=()
command -v syslog-ng >/dev/null || need+=(syslog-ng-core)
command -v socat >/dev/null || need+=(socat)
command -v ss >/dev/null || need+=(iproute2)
/usr/bin/python3 -c 'import matplotlib' 2>/dev/null || need+=(python3-matplotlib)
# rsyslog's shared libraries (the libraries do not conflict; the daemon does).
for lib in libestr0 libfastjson4 liblognorm5; do
  dpkg -s "$lib" >/dev/null 2>&1 || need+=("$lib")
done
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
RSYSLOG_DIR=$CACHE/rsyslog
if [ ! -x "$RSYSLOG_DIR/usr/sbin/rsyslogd" ]; then
  log "unpacking rsyslog into $RSYSLOG_DIR (it conflicts with syslog-ng-core)"
  mkdir -p "$CACHE/deb"
  (cd "$CACHE/deb" && rm -f rsyslog_*.deb && apt-get download rsyslog >/dev/null 2>&1)
  rm -rf "$RSYSLOG_DIR"
  dpkg -x "$CACHE"/deb/rsyslog_*.deb "$RSYSLOG_DIR"
fi
RSYSLOG_MODULES=$(dirname "$(find "$RSYSLOG_DIR" -name imtcp.so | head -1)")
RSYSLOGD="$RSYSLOG_DIR/usr/sbin/rsyslogd"

log "building sluice (release)"
cargo build --release --quiet

# Peers get the same kernel limits as sluice: sluice (as root) forces its
# UDP receive buffer past net.core.rmem_max, the others cannot. Restored at
# exit.
OLD_RMEM=$(cat /proc/sys/net/core/rmem_max)
if [ -z "${PERF_NO_SYSCTL:-}" ] && [ "$OLD_RMEM" -lt 33554432 ]; then
  if $sudo sysctl -qw net.core.rmem_max=33554432 2>/dev/null; then
    log "net.core.rmem_max $OLD_RMEM -> 33554432 for this run"
  else
    OLD_RMEM=""
  fi
else
  OLD_RMEM=""
fi

# The load generator and the sink run at a higher priority, so that on a
# small machine they are not what limits a test or loses datagrams: the
# systems under test get what CPU is left, the same for each.
NICE="nice -n -10"
$NICE true 2>/dev/null || NICE=""

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$OLD_RMEM" ] && $sudo sysctl -qw net.core.rmem_max="$OLD_RMEM" || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port tcp|udp PORT
wait_port() {
  local flag=-ltn
  [ "$1" = udp ] && flag=-lun
  for _ in $(seq 1 200); do
    ss -H $flag "sport = :$2" 2>/dev/null | grep -q . && return 0
    sleep 0.05
  done
  log "nothing listens on $1 port $2"
  return 1
}

# --- the systems ---------------------------------------------------------
# start_system NAME IN_PORT SINK_PORT DIR: sets SYS_PIDS (first = main).
start_system() {
  local name=$1 in=$2 sink=$3 dir=$4
  SYS_PIDS=()
  case $name in
    relay)
      socat -u -b 262144 "TCP-LISTEN:$in,bind=127.0.0.1,fork,reuseaddr" "TCP:127.0.0.1:$sink" 2>"$dir/relay-tcp.log" &
      SYS_PIDS+=($!)
      socat -u -b 65536 "UDP-RECV:$in,bind=127.0.0.1,rcvbuf=33554432" "TCP:127.0.0.1:$sink" 2>"$dir/relay-udp.log" &
      SYS_PIDS+=($!)
      ;;
    sluice)
      cat >"$dir/sluice.toml" <<EOF
# Full work: parse (RFC 5424 + JSON), classify, enrich (rules + identity),
# v2 output (RFC 5424 + record JSON) over TCP.
[[input]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:$in"

[[input]]
name = "udp"
type = "udp"
listen = "127.0.0.1:$in"
receive_buffer = "32MiB"

[[enrich]]
name = "site"
set = { site = "prague-dc1", collector = "{meta.host}" }

[[output]]
name = "sink"
type = "syslog"
target = "127.0.0.1:$sink"
format = "v2"
EOF
      SLUICE_LOG=warn "$SLUICE" run --config "$dir/sluice.toml" 2>"$dir/sluice.log" &
      SYS_PIDS+=($!)
      ;;
    rsyslog)
      mkdir -p "$dir/rsyslog"
      cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir/rsyslog" maxMessageSize="64k")
module(load="imtcp")
module(load="imudp")
module(load="mmjsonparse")
# RFC 5424 header and every parsed JSON property: rsyslog's v2.
template(name="v2" type="string"
  string="<%PRI%>1 %TIMESTAMP:::date-rfc3339% %HOSTNAME% %APP-NAME% %PROCID% %MSGID% - %\$!%\n")
input(type="imtcp" port="$in" address="127.0.0.1" ruleset="fwd")
input(type="imudp" port="$in" address="127.0.0.1" ruleset="fwd" rcvbufSize="32m")
ruleset(name="fwd" queue.type="LinkedList" queue.size="200000"
        queue.dequeueBatchSize="1024" queue.workerThreads="2") {
  action(type="mmjsonparse" cookie="")
  action(type="omfwd" target="127.0.0.1" port="$sink" protocol="tcp" template="v2")
}
EOF
      "$RSYSLOGD" -n -f "$dir/rsyslog.conf" -i "$dir/rsyslog/pid" -M "$RSYSLOG_MODULES" 2>"$dir/rsyslog.log" &
      SYS_PIDS+=($!)
      ;;
    syslog-ng)
      cat >"$dir/syslog-ng.conf" <<EOF
@version: 3.38
options { threaded(yes); log-fifo-size(200000); stats-freq(0); keep-hostname(yes);
          chain-hostnames(no); use-dns(no); use-fqdn(no); log-msg-size(65536); };
source s_in {
  network(ip("127.0.0.1") port($in) transport("tcp") flags(syslog-protocol)
          max-connections(64) log-iw-size(200000));
  network(ip("127.0.0.1") port($in) transport("udp") flags(syslog-protocol)
          so-rcvbuf(33554432));
};
parser p_json { json-parser(prefix(".json.")); };
destination d_sink {
  network("127.0.0.1" port($sink) transport("tcp")
    template("<\${PRI}>1 \${ISODATE} \${HOST} \${PROGRAM} \${PID} \${MSGID} - \$(format-json --key .json.* --rekey .json.* --shift 6)\n"));
};
log { source(s_in); parser(p_json); destination(d_sink); flags(flow-control); };
EOF
      syslog-ng -F -f "$dir/syslog-ng.conf" -R "$dir/syslog-ng.persist" -p "$dir/syslog-ng.pid" \
        -c "$dir/syslog-ng.ctl" 2>"$dir/syslog-ng.log" &
      SYS_PIDS+=($!)
      ;;
  esac
  PIDS+=("${SYS_PIDS[@]}")
}

stop_system() {
  for p in "${SYS_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${SYS_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
}

# Peak resident memory of the main process (KiB), 0 when unknown.
peak_rss_kib() {
  awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

echo "workload,system,round,offered_rate,sent_rate,sent,received,lost,loss_pct,records_per_sec,seconds,p50_ms,p99_ms,max_ms,rss_kib,complete" >"$RESULTS"

# run WORKLOAD SYSTEM ROUND LOAD_ARGS...
run() {
  local workload=$1 system=$2 round=$3
  shift 3
  local dir=$WORK/$workload-$system-$round
  mkdir -p "$dir"
  local sink_port in_port idle=10s
  sink_port=$(free_port)
  in_port=$(free_port)
  case $workload in c-*) idle=3s ;; esac
  $NICE "$SLUICE" sink --tcp "127.0.0.1:$sink_port" --json --quiet --idle "$idle" >"$dir/sink.json" 2>"$dir/sink.log" &
  local sink_pid=$!
  PIDS+=("$sink_pid")
  wait_port tcp "$sink_port"
  start_system "$system" "$in_port" "$sink_port" "$dir"
  wait_port tcp "$in_port"
  wait_port udp "$in_port"
  sleep 0.5
  local perf_pid=""
  if [ -n "${PERF_RECORD:-}" ] && [ "$system" = sluice ] && [ "$workload" = a ] && [ "$round" = 1 ]; then
    perf record -F 999 -g -p "${SYS_PIDS[0]}" -o "$WORK/sluice.perf.data" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.3
  fi
  local proto=--tcp
  case $workload in c-*) proto=--udp ;; esac
  $NICE "$SLUICE" load "$proto" "127.0.0.1:$in_port" --mix perf --json --quiet "$@" >"$dir/load.json" 2>"$dir/load.log" || {
    log "$workload/$system: sluice load failed: $(tail -3 "$dir/load.log")"
  }
  # The sink stops once every record arrived, or when idle.
  local waited=0
  while kill -0 "$sink_pid" 2>/dev/null; do
    sleep 0.2
    waited=$((waited + 1))
    if [ $waited -gt 3000 ]; then kill "$sink_pid"; fi
  done
  wait "$sink_pid" 2>/dev/null || true
  if [ -n "$perf_pid" ]; then
    kill -INT "$perf_pid" 2>/dev/null || true
    wait "$perf_pid" 2>/dev/null || true
    {
      echo "# perf record -g of sluice during workload (a), round 1 ($(git rev-parse --short HEAD))"
      echo "# CPU samples by thread:"
      perf report -i "$WORK/sluice.perf.data" --no-children -g none --sort comm --stdio 2>/dev/null | grep -E '^ +[0-9]'
      echo "# hottest functions (thread, object, symbol):"
      perf report -i "$WORK/sluice.perf.data" --no-children -g none --percent-limit 0.7 --stdio 2>/dev/null \
        | grep -E '^ +[0-9]'
    } >"$ROOT/perf/sluice-perf.txt" || true
  fi
  local rss
  rss=$(peak_rss_kib "${SYS_PIDS[0]}")
  [ "$system" = relay ] && rss=0
  stop_system
  /usr/bin/python3 - "$dir/load.json" "$dir/sink.json" "$workload" "$system" "$round" "$rss" >>"$RESULTS" <<'EOF'
import json, sys
load_f, sink_f, workload, system, rnd, rss = sys.argv[1:]
try:
    load = json.load(open(load_f))
except Exception:
    load = {"sent": 0, "rate": 0}
try:
    sink = json.load(open(sink_f))
except Exception:
    sink = {"unique": 0, "e2e_records_per_sec": 0, "e2e_seconds": 0,
            "latency_ms": {"p50": 0, "p99": 0, "max": 0}, "complete": False}
sent, got = load["sent"], sink["unique"]
lost = max(sent - got, 0)
lat = sink["latency_ms"]
print(",".join(str(x) for x in [
    workload, system, rnd, int(load.get("rate", 0)), round(load.get("records_per_sec", 0)),
    sent, got, lost,
    round(100.0 * lost / sent, 3) if sent else 0,
    round(sink["e2e_records_per_sec"]), round(sink["e2e_seconds"], 3),
    lat["p50"], lat["p99"], lat["max"], rss, str(sink["complete"]).lower()]))
EOF
  local row
  row=$(tail -1 "$RESULTS")
  log "$row"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
log "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo); systems: $SYSTEMS"
for round in $(seq 1 "$ROUNDS"); do
  for s in $SYSTEMS; do run a "$s" "$round" --count "$RECORDS"; done
  for s in $SYSTEMS; do run b "$s" "$round" --count "$RECORDS" --connections "$CONNS"; done
done
for rate in $UDP_RATES; do
  for s in $SYSTEMS; do
    run "c-$rate" "$s" 1 --rate "$rate" --duration "${UDP_SECONDS}s" --udp-lf
  done
done
if [ "$LAT_RATE" -gt 0 ]; then
  for s in $SYSTEMS; do
    run lat "$s" 1 --rate "$LAT_RATE" --duration "${LAT_SECONDS}s"
  done
fi

COMMIT=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || echo "+dirty")
/usr/bin/python3 "$ROOT/perf/summarize.py" "$RESULTS" \
  --commit "$COMMIT" \
  --rsyslog "$("$RSYSLOGD" -v 2>/dev/null | head -1 | awk '{print $2}')" \
  --syslog-ng "$(syslog-ng --version 2>/dev/null | head -1 | awk '{print $3}' | tr -d '()')" \
  --socat "$(socat -V 2>/dev/null | awk '/socat version/ {print $3}')" \
  --records "$RECORDS" --rounds "$ROUNDS" --conns "$CONNS" --lat-rate "$LAT_RATE" \
  --loadavg "$LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)" \
  --json "$ROOT/perf/results.json" --png "$ROOT/perf/results.png"
