#!/usr/bin/env bash
# End to end against the broker's own ceiling (issue 7). One private
# mosquitto on a random loopback port with its DEFAULT limits (only a
# listener, allow_anonymous and, as root, `user root`: max_queued_messages
# stays 1000, max_inflight_messages 20), our own libmosquitto publisher
# (tests/bench/e2e_load.cpp) sending the simulator's payloads plus a sequence
# number and a microsecond send time, and for QoS 0 and 1, 1,000 and 10,000
# devices:
#   ceiling      a plain subscriber that only counts, same broker, same load;
#   passthrough  `sluice run`, one passthrough pipeline into a file sink
#                (loss: distinct sequence numbers in the file);
#   demo/http    `sluice run`, 10 s tumbling windows per device (count, avg,
#                min, max, p95 of temp) and an alert rule (`temp > 80`,
#                for: 0s, clear below 75; 1 reading in --alert-every per
#                device is hot), into two HTTP sinks (aggregates, alerts)
#                posting to one loopback receiver (loss: the windows' counts;
#                latency: each alert's arrival minus its reading's send time).
# Each at full speed (--runs times, medians) and at a rate ladder of
# fractions of the measured ceiling (once each; the demo's 0.5 step, where
# the alert latency is taken, --runs times); the demo also at a fixed 5,000
# readings/s (--runs times: CPU over 10 s of sending after a 3 s warm-up).
# Also: start-up time to READY=1 (sd_notify), idle RSS on
# config/examples/demo.yaml, the stripped binary's size.
#
#   bash tests/bench/e2e.sh [--build DIR] [--quick] [--runs N] [--seconds S]
#                           [--qos "0 1"] [--devices "1000 10000"]
#                           [--ladder "0.5 0.75 0.9 1.0"] [--alert-every K]
#                           [--http-max-delay 0s] [--out FILE.csv]
#
# Defaults: --build build-rel, --runs 3, --seconds 4 (about 15 minutes in
# all); --quick: --runs 1 --seconds 2 --ladder "0.5 0.9" (about 3 minutes).
# Prints its figures and never fails on them. Needs mosquitto and the e2e_load
# helper: $BUILD/tests/bench/e2e_load if built there (CMake target e2e_load),
# else compiled here into build-bench/ (libmosquitto-dev, libcpp-httplib-dev,
# nlohmann-json3-dev: packaging/scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."

build=build-rel runs=3 seconds=4 qos_list="0 1" devices_list="1000 10000"
ladder="0.5 0.75 0.9 1.0" alert_every=100 max_delay=0s out="" quick=0
while [ $# -gt 0 ]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --quick) quick=1; shift ;;
    --runs) runs=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --qos) qos_list=$2; shift 2 ;;
    --devices) devices_list=$2; shift 2 ;;
    --ladder) ladder=$2; shift 2 ;;
    --alert-every) alert_every=$2; shift 2 ;;
    --http-max-delay) max_delay=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
if [ "$quick" = 1 ]; then
  runs=1 seconds=2 ladder="0.5 0.9"
fi
settle=$([ "$quick" = 1 ] && echo 2 || echo 5)   # idle RSS: seconds after READY
warmup=$([ "$quick" = 1 ] && echo 1 || echo 3) r5000_seconds=$([ "$quick" = 1 ] && echo 3 || echo 10)

# The agent: copied once, so that a rebuild under us cannot mix binaries.
sluice_src="$build/agent/sluice"
for _ in $(seq 120); do [ -x "$sluice_src" ] && break; sleep 1; done
[ -x "$sluice_src" ] || { echo "no $sluice_src: cmake --build $build --target sluice" >&2; exit 1; }

# The helper: the CMake build's if there and current, else compiled here.
load="$build/tests/bench/e2e_load"
if [ ! -x "$load" ] || [ "$load" -ot tests/bench/e2e_load.cpp ]; then
  load=build-bench/e2e_load
  if [ ! -x "$load" ] || [ "$load" -ot tests/bench/e2e_load.cpp ]; then
    mkdir -p build-bench
    echo "compiling $load" >&2
    # shellcheck disable=SC2046
    g++ -O2 -g -std=c++20 tests/bench/e2e_load.cpp \
      $(pkg-config --cflags --libs libmosquitto cpp-httplib) -lpthread -o "$load"
  fi
fi

stamp=$(date +%Y%m%d-%H%M%S)
[ -n "$out" ] || out="build-bench/e2e-$stamp.csv"
mkdir -p "$(dirname "$out")"
summary_csv="${out%.csv}-summary.csv"
footprint_csv="${out%.csv}-footprint.csv"

work=$(mktemp -d)
pids=()
agent_launcher=""
cleanup() {
  if [ -n "$agent_launcher" ]; then kill -TERM "$agent_launcher" 2>/dev/null || true; wait "$agent_launcher" 2>/dev/null || true; fi
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for _ in $(seq 30); do cp "$sluice_src" "$work/sluice" 2>/dev/null && break; sleep 1; done
sluice="$work/sluice"
version=$("$sluice" version 2>&1 | head -1 || true)

wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}

port=$("$load" freeport)
cat > "$work/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
$( [ "$(id -u)" -eq 0 ] && echo "user root" )
CONF
/usr/sbin/mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
broker=$!
pids+=("$broker")
wait_port "$port"

source_yaml() {  # source_yaml QOS
  cat <<YAML
sources:
  plant:
    url: tcp://127.0.0.1:$port
    topics: [ "sensors/+/+" ]
    qos: $1
    session: clean
    topic_fields: "sensors/{site}/{device}"
    format: json
    time: { field: ts, unit: ms }
YAML
}

write_config() {  # write_config MODE QOS [HTTP_PORT] > FILE
  echo "agent: { id: e2e, data_dir: $work/data, http: off }"
  source_yaml "$2"
  if [ "$1" = file ]; then
    cat <<YAML
pipelines:
  raw: { from: plant, to: [ out ] }
sinks:
  out: { type: file, path: $work/out.jsonl }
YAML
  else
    # `sent_us > 0` is always true: it makes the agent decode sent_us, so
    # that the alert's "value" carries the reading's send time.
    cat <<YAML
pipelines:
  device_10s:
    from: plant
    window: { type: tumbling, size: 10s, lateness: 1s }
    group_by: [ device ]
    aggregate:
      readings: count()
      temp_avg: avg(temp)
      temp_min: min(temp)
      temp_max: max(temp)
      temp_p95: p95(temp)
    to: [ aggregates ]
  overheat:
    from: plant
    alert: { when: "temp > 80 && sent_us > 0", clear: "temp < 75", for: 0s, severity: critical, key: [ device ] }
    to: [ alerts ]
# Two sinks to the same receiver, as an operator would route them: alerts
# must not queue behind the burst of aggregates that closes every 10 s.
# The aggregates' batch waits at most 100 ms (the default, 1 s, made every
# run's last batch arrive ~1 s after the last reading was taken: a wait by
# configuration, counted as the agent's drain and in its throughput's span).
sinks:
  aggregates:
    type: http
    url: http://127.0.0.1:$3/ingest
    batch: { max_delay: 100ms }
  alerts:
    type: http
    url: http://127.0.0.1:$3/ingest
    batch: { max_delay: $max_delay }
YAML
  fi
}

agent_pid="" ready_ms="" start_us="" ready_timeout=10 has_ready=1
# ms from the agent's start to its log line matching $1 (log time stamps, ms)
log_ms() {
  local stamp
  stamp=$(grep -m1 -i "$1" "$work/agent.log" | cut -d' ' -f1) || return 0
  [ -n "$stamp" ] || return 0
  awk -v t="$(date -d "$stamp" +%s%3N)" -v s="$start_us" 'BEGIN { printf "%.0f", t - s / 1000 }'
}
start_agent() {  # start_agent CONFIG: sets agent_launcher, agent_pid, ready_ms
  rm -rf "$work/data" "$work/out.jsonl" "$work/ready"
  "$load" launch --ready-file "$work/ready" --ready-timeout-s "$ready_timeout" -- \
    "$sluice" run -c "$1" >/dev/null 2>"$work/agent.log" &
  agent_launcher=$!
  for _ in $(seq 1000); do [ -s "$work/ready" ] && break; sleep 0.02; done
  read -r agent_pid ready_ms start_us < "$work/ready" || { cat "$work/agent.log" >&2; return 1; }
  [ "$ready_ms" != "-2.0" ] || { cat "$work/agent.log" >&2; echo "the agent exited before READY" >&2; return 1; }
  if [ "$ready_ms" = "-1.0" ] && [ "$has_ready" = 1 ]; then
    echo "  this sluice sent no READY=1 within $ready_timeout s (no sd_notify support?): start-up measured to its 'subscribed' log line" >&2
    has_ready=0 ready_timeout=0
  fi
  # READY means the sources are connecting: wait for the subscription (at
  # most 5 s, in case the log line changes).
  for _ in $(seq 250); do grep -qi "subscribed" "$work/agent.log" && break; sleep 0.02; done
  [ "$has_ready" = 1 ] || ready_ms=$(log_ms "subscribed")
}

stop_agent() {
  kill -TERM "$agent_launcher" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$agent_launcher" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$agent_pid" 2>/dev/null || true
  wait "$agent_launcher" 2>/dev/null || true
  agent_launcher=""
  if grep -qiE "error|fatal" "$work/agent.log"; then
    echo "  agent log: $(grep -iE "error|fatal" "$work/agent.log" | head -2 | cut -c1-160)" >&2
  fi
}

"$load" header > "$out"
step() {  # step MODE QOS DEVICES RATE LABEL [e2e_load options...]
  local mode=$1 qos=$2 devices=$3 rate=$4 label=$5 line
  shift 5
  local common=(--port "$port" --qos "$qos" --devices "$devices" --rate "$rate"
                --seconds "$seconds" --label "$label" --quiet-ms 1000 "$@")
  case $mode in
    ceiling)
      line=$("$load" run --mode ceiling "${common[@]}") ;;
    file)
      write_config file "$qos" > "$work/sluice.yaml"
      start_agent "$work/sluice.yaml"
      line=$("$load" run --mode file --file "$work/out.jsonl" --agent-pid "$agent_pid" "${common[@]}")
      stop_agent ;;
    http)
      local hport
      hport=$("$load" freeport)
      write_config http "$qos" "$hport" > "$work/sluice.yaml"
      start_agent "$work/sluice.yaml"
      line=$("$load" run --mode http --http-port "$hport" --agent-pid "$agent_pid" \
               --alert-every "$alert_every" "${common[@]}")
      stop_agent ;;
  esac
  echo "$line" >> "$out"
  # label mode qos devices rate sent accounted lost dups throughput pub_rate drain_ms
  echo "$line" | awk -F, '{ printf "  %-6s %-8s qos %s %5s dev  rate %7s  sent %8s  got %8s  lost %6s  %8s/s (pub %s/s)  drain %s ms  cpu %s s/100k  rss %s KiB  lat p50/p99 %s/%s us\n",
    $1, $2, $3, $4, ($5 == 0 ? "full" : $5), $7, $8, $9, $11, $12, $13, ($15 == "" ? "-" : $15), ($18 == "" ? "-" : $18), ($21 == "" ? "-" : $21), ($22 == "" ? "-" : $22) }' >&2
}

median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

began=$(date +%s)
echo "sluice: $sluice_src ($version), helper: $load, broker: mosquitto on 127.0.0.1:$port (defaults)" >&2
echo "runs $runs, $seconds s per step, ladder: $ladder × ceiling, $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

# --- Idle footprint and start-up -------------------------------------------
sed -e "s#tcp://127.0.0.1:18830#tcp://127.0.0.1:$port#" -e "s#data_dir: .demo/data#data_dir: $work/data#" \
  config/examples/demo.yaml > "$work/demo.yaml"
ready_list=() idle_list=()
for r in $(seq "$runs"); do
  start_agent "$work/demo.yaml"
  sleep "$settle"
  idle_list+=("$(awk '/^VmRSS:/ { print $2 }' "/proc/$agent_pid/status")")
  ready_list+=("$ready_ms")
  stop_agent
done
strip -o "$work/sluice.stripped" "$sluice"
stripped=$(stat -c %s "$work/sluice.stripped")
ready_med=$(printf '%s\n' "${ready_list[@]}" | median)
idle_med=$(printf '%s\n' "${idle_list[@]}" | median)
{
  echo "figure,value,all_runs"
  echo "startup_to_$([ "$has_ready" = 1 ] && echo ready || echo subscribed_log)_ms,$ready_med,${ready_list[*]}"
  echo "idle_rss_kib,$idle_med,${idle_list[*]}"
  echo "stripped_binary_bytes,$stripped,"
} > "$footprint_csv"
echo "idle: $([ "$has_ready" = 1 ] && echo READY || echo "subscribed (log)") after ${ready_list[*]} ms, RSS ${idle_list[*]} KiB ($settle s after READY); stripped binary $stripped B" >&2

# --- Throughput --------------------------------------------------------------
for qos in $qos_list; do
  for devices in $devices_list; do
    echo "qos $qos, $devices devices:" >&2
    ceil_list=()
    for r in $(seq "$runs"); do
      step ceiling "$qos" "$devices" 0 "full#$r"
      ceil_list+=("$(tail -1 "$out" | cut -d, -f11)")
    done
    ceiling=$(printf '%s\n' "${ceil_list[@]}" | median)
    for f in $ladder; do
      step ceiling "$qos" "$devices" "$(awk -v c="$ceiling" -v f="$f" 'BEGIN { printf "%.0f", c * f }')" \
        "$(printf 'x%.2f' "$f")"
    done
    for mode in file http; do
      for r in $(seq "$runs"); do step "$mode" "$qos" "$devices" 0 "full#$r"; done
      for f in $ladder; do
        rate=$(awk -v c="$ceiling" -v f="$f" 'BEGIN { printf "%.0f", c * f }')
        label=$(printf 'x%.2f' "$f")
        # The alert latency target's step: --runs times like full speed.
        repeat=1
        [ "$mode" = http ] && [ "$label" = x0.50 ] && repeat=$runs
        for r in $(seq "$repeat"); do step "$mode" "$qos" "$devices" "$rate" "$label"; done
      done
    done
    # The sustained CPU at 5,000/s: measured over $r5000_seconds s after
    # $warmup s (every device has sent, the first keys exist), which
    # includes one close of the 10 s windows.
    for r in $(seq "$runs"); do
      seconds=$r5000_seconds step http "$qos" "$devices" 5000 r5000 --warmup "$warmup"
    done
  done
done

# --- Report ------------------------------------------------------------------
echo
echo "sluice end to end ($version), $(nproc) cores shared by publisher, broker and agent;"
echo "mosquitto with default limits; runs $runs × ${seconds} s at full speed (medians), ladder once per step:"
"$load" summarize --csv "$out" --out "$summary_csv"
echo
echo "sustained: highest zero-loss rate (ladder steps, fractions of the ceiling's median full-speed"
echo "rate, drained within 1 s; or the full-speed median if no full-speed run lost anything);"
echo "ratio: sustained / the ceiling's sustained. cpu and peak RSS: the agent process at full"
echo "speed; alert latency: publish → arrival at the receiver, at the 0.5 × ceiling step."
echo
printf 'idle (config/examples/demo.yaml, no traffic): %s in %s ms (median of %s), RSS %s MiB; stripped binary %s B (%s MiB)\n' \
  "$([ "$has_ready" = 1 ] && echo READY=1 || echo "subscribed (log line; this binary sent no READY=1)")" "$ready_med" "$runs" "$(awk -v k="$idle_med" 'BEGIN { printf "%.1f", k / 1024 }')" \
  "$stripped" "$(awk -v b="$stripped" 'BEGIN { printf "%.2f", b / 1048576 }')"
echo
echo "every step: $out"
echo "summary:    $summary_csv"
echo "footprint:  $footprint_csv"
echo "took $(( $(date +%s) - began )) s"
if grep -q "dropped\|Outgoing messages are being dropped" "$work/mosquitto.log"; then
  echo "mosquitto dropped messages: $(grep -c "being dropped" "$work/mosquitto.log") log line(s), e.g.:"
  grep "being dropped" "$work/mosquitto.log" | head -2
fi
