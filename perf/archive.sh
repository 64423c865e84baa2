#!/usr/bin/env bash
# The archive's end-to-end figures on the Windows-agent corpus
# (`sluice archive corpus`, see src/archive/corpus.rs):
#   1. ingest: N records sent over one TCP connection through the whole
#      pipeline into an archive output; wall-clock records/s until all are
#      durable, and records per CPU-second of the archive's own thread
#      (what the archive sustains while the pipeline runs on the other core);
#   2. size: raw bytes (as received) / stored bytes (`sluice archive stats`);
#   3. search for one username (warm page cache, both cores), hyperfine;
#   4. full-text substring scan on one core (RAYON_NUM_THREADS=1), as raw
#      bytes scanned per second.
# Usage: perf/archive.sh [N]   (default 10000000). Needs socat, hyperfine,
# curl. Results go to stdout; copy them into perf/archive.md.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
cargo build --release --quiet
B=$PWD/target/release/sluice
T=$(mktemp -d /tmp/sluice-archive-perf.XXXXXX)
trap 'kill $PID 2>/dev/null || true; rm -rf "$T"' EXIT

$B archive keygen --out "$T/k.pem" >/dev/null 2>&1
echo "corpus: $N records"
$B archive corpus --count "$N" > "$T/corpus.txt"
RAW_FILE=$(stat -c %s "$T/corpus.txt")
cat > "$T/sluice.toml" <<CFG
[pipeline]
workers = 1
[metrics]
listen = "127.0.0.1:0"
[[input]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:0"
[[output]]
name = "archive"
type = "archive"
path = "$T/arch"
signing_key = "$T/k.pem"
CFG
$B run --config "$T/sluice.toml" 2>"$T/log" & PID=$!
for _ in $(seq 100); do grep -q ready "$T/log" && break; sleep 0.1; done
PORT=$(grep -o 'tcp 127.0.0.1:[0-9]*' "$T/log" | head -1 | cut -d: -f2)
M=$(grep -o 'http://[0-9.:]*' "$T/log")
metric() { curl -s "$M/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
S=$(date +%s.%N)
socat -u "FILE:$T/corpus.txt" "TCP:127.0.0.1:$PORT"
while [ "$(metric 'sluice_archive_records_total{output="archive"}')" != "$N" ]; do sleep 0.05; done
E=$(date +%s.%N)
# CPU time of the archive's output thread (utime+stime, clock ticks).
TICKS=0
for t in /proc/$PID/task/*; do
  if [ "$(cat "$t/comm")" = "out-archive" ]; then
    TICKS=$(awk '{print $14 + $15}' "$t/stat")
  fi
done
HZ=$(getconf CLK_TCK)
kill $PID; wait $PID || true
WALL=$(echo "$E - $S" | bc -l)
printf 'ingest: %d records in %.2f s through the pipeline: %.0f records/s\n' "$N" "$WALL" "$(echo "$N / $WALL" | bc -l)"
printf 'archive thread: %.2f CPU-s: %.0f records per CPU-second\n' "$(echo "$TICKS / $HZ" | bc -l)" "$(echo "$N * $HZ / ($TICKS + 0.0001)" | bc -l)"
$B archive stats "$T/arch" | tee "$T/stats"
RAW=$(awk '/^raw bytes:/ {print $3}' "$T/stats")
STORED=$(awk '/^stored bytes:/ {print $3}' "$T/stats")
printf 'stored/raw: 1/%.2f\n' "$(echo "$RAW / $STORED" | bc -l)"

# Warm the page cache, then time.
cat "$T"/arch/segments/* > /dev/null
for u in user4000 user0; do
  $B archive search "$T/arch" --where targetusername=$u --json 2>&1 >/dev/null | tail -1
  hyperfine -N --warmup 2 --runs 10 --style basic \
    "$B archive search $T/arch --where targetusername=$u --json" 2>/dev/null | grep -E 'Time|Range'
done
echo "full-text scan, one core (no match, so every block is read):"
hyperfine -N --warmup 1 --runs 5 --style basic \
  --export-json "$T/scan.json" \
  "env RAYON_NUM_THREADS=1 $B archive search $T/arch --text zz-no-such-text-zz --json" 2>/dev/null | grep -E 'Time|Range'
MEAN=$(python3 -c "import json;print(json.load(open('$T/scan.json'))['results'][0]['median'])")
printf 'scan: %.2f GB/s of raw data per core (median %.3f s over %d raw bytes)\n' "$(echo "$RAW / $MEAN / 1000000000" | bc -l)" "$MEAN" "$RAW"
echo "full-text scan, both cores:"
hyperfine -N --warmup 1 --runs 5 --style basic \
  "$B archive search $T/arch --text zz-no-such-text-zz --json" 2>/dev/null | grep -E 'Time|Range'
echo "commit: $(git rev-parse --short HEAD)$(git diff --quiet || echo '+dirty')"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
