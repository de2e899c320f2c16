#!/usr/bin/env bash
# The demo: installs what is missing, builds sluice, starts a private
# mosquitto on 127.0.0.1:18830, simulated sensors publishing to it, and the
# agent on config/examples/demo.yaml, whose records scroll by on stdout.
# Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash packaging/scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target sluice

mkdir -p .demo
cat > .demo/mosquitto.conf <<CONF
listener 18830 127.0.0.1
allow_anonymous true
persistence false
CONF

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

/usr/sbin/mosquitto -c .demo/mosquitto.conf 2>.demo/mosquitto.log &
pids+=($!)
for _ in $(seq 50); do
  (exec 3<>/dev/tcp/127.0.0.1/18830) 2>/dev/null && break
  sleep 0.1
done

build/agent/sluice run -c config/examples/demo.yaml &
pids+=($!)
build/agent/sluice simulate --url tcp://127.0.0.1:18830 --devices 20 --rate 20 \
  --anomaly-rate 0.02 2>.demo/simulate.log &
pids+=($!)
echo "demo running: readings scroll below; Ctrl-C stops it" >&2
wait "${pids[1]}"
