#!/usr/bin/env bash
# The cost of acknowledge-after-commit: readings/s through a real mosquitto
# into `sluice run` (passthrough to a file sink, every reading committed to
# the SQLite outbox before its ack) at QoS 1, against the same run at QoS 0,
# plus the agent's CPU seconds per 100,000 readings.
#
#   bash tests/bench/ingest_bench.sh [BUILD_DIR] [READINGS]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build-rel}
count=${2:-50000}
sluice="$build/agent/sluice"
[ -x "$sluice" ] || { echo "build first: cmake --build $build --target sluice" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

port=$((20000 + RANDOM % 20000))
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 0
$( [ "$(id -u)" -eq 0 ] && echo "user root" )
CONF
/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
pids+=($!)
for _ in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

printf "%-6s %10s %12s %14s\n" "qos" "readings" "readings/s" "cpu s/100k"
for qos in 0 1; do
  rm -rf "$work/data" "$work/out.jsonl"
  cat > "$work/sluice.yaml" <<YAML
agent: { id: bench, data_dir: $work/data, http: off }
sources:
  plant: { url: "tcp://127.0.0.1:$port", topics: ["sensors/+/+"], qos: $qos, session: clean,
           time: { field: ts, unit: ms } }
pipelines:
  raw: { from: plant, to: [ out ] }
sinks:
  out: { type: file, path: $work/out.jsonl }
YAML
  "$sluice" run -c "$work/sluice.yaml" 2>"$work/agent-$qos.log" &
  agent=$!
  pids+=($agent)
  until grep -q "subscribed" "$work/agent-$qos.log"; do sleep 0.05; done
  before=$(cpu_ticks "$agent")
  start=$(date +%s.%N)
  "$sluice" simulate --url "tcp://127.0.0.1:$port" --devices 100 --rate 0 --count "$count" \
    --qos "$qos" --seed 1 >/dev/null 2>&1
  until [ "$(wc -l < "$work/out.jsonl" 2>/dev/null || echo 0)" -ge "$count" ]; do
    sleep 0.02
    awk -v s="$start" -v n="$(date +%s.%N)" 'BEGIN { exit !(n - s > 120) }' && break
  done
  end=$(date +%s.%N)
  after=$(cpu_ticks "$agent")
  got=$(wc -l < "$work/out.jsonl")
  hz=$(getconf CLK_TCK)
  awk -v q="$qos" -v got="$got" -v c="$count" -v s="$start" -v e="$end" \
      -v b="$before" -v a="$after" -v hz="$hz" \
      'BEGIN { printf "%-6s %10s %12.0f %14.2f\n", q, got "/" c, got / (e - s), (a - b) / hz * 100000 / got }'
  kill -TERM "$agent"
  wait "$agent" || true
done
echo "(the publisher, mosquitto and the agent share this machine's $(nproc) cores)"
