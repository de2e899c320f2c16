#!/usr/bin/env bash
# Footprint of the packaged agent, per architecture: the stripped binary's
# size and the package's installed size (from the .deb files that
# packaging/scripts/build-debs.sh put in dist/), and the resident memory of
# `sluice run` on the demo config (config/examples/demo.yaml) against a
# private mosquitto, as packaging/scripts/demo.sh runs it: idle (connected,
# nothing published) and under the demo's load (20 devices at 20 readings/s
# in all). amd64 runs natively; arm64 and armhf, where their packages are
# there, under qemu-user, whose RSS is the emulator's (translated code and
# its own heap included), not a real board's.
#
#   bash tests/bench/footprint.sh [DIST_DIR]      # default: dist
#
# Prints its figures and never fails on their size. Needs mosquitto, and
# qemu-user-static for the foreign architectures.
set -euo pipefail
cd "$(dirname "$0")/../.."
dist=${1:-dist}
settle=${SETTLE_SECONDS:-10}

shopt -s nullglob
debs=("$dist"/sluice_*.deb)
[ ${#debs[@]} -gt 0 ] || { echo "no sluice_*.deb in $dist: run packaging/scripts/build-debs.sh" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() {
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
kib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }

# -L /: the multiarch glibc (see packaging/toolchains/aarch64-linux-gnu.cmake).
declare -A qemu=([arm64]="qemu-aarch64-static -L /" [armhf]="qemu-arm-static -L /")
native_bin=""
rows=()
rss_rows=()
for deb in "${debs[@]}"; do
  name=$(basename "$deb")
  arch=${name##*_}; arch=${arch%.deb}
  root="$work/$arch"
  dpkg-deb -x "$deb" "$root"
  bin="$root/usr/bin/sluice"
  size=$(stat -c %s "$bin")
  installed=$(dpkg-deb -f "$deb" Installed-Size)
  rows+=("$(printf '| %-6s | %s | %s (%s KiB) |' "$arch" \
            "$(kib $((size / 1024))) ($size B)" "$(kib "$installed")" "$installed")")
  [ "$arch" = amd64 ] && native_bin=$bin
done

measure() {  # measure ARCH COMMAND...: RSS of `sluice run` idle and under load
  local arch=$1; shift
  local port data pid
  port=$(free_port)
  data="$work/data-$arch"
  mkdir -p "$data"
  cat > "$work/mosquitto-$arch.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
CONF
  /usr/sbin/mosquitto -c "$work/mosquitto-$arch.conf" 2>"$work/mosquitto-$arch.log" &
  local broker=$!
  pids+=("$broker")
  wait_port "$port"
  sed -e "s#tcp://127.0.0.1:18830#tcp://127.0.0.1:$port#" -e "s#data_dir: .demo/data#data_dir: $data#" \
    config/examples/demo.yaml > "$work/demo-$arch.yaml"
  "$@" run -c "$work/demo-$arch.yaml" >/dev/null 2>"$work/agent-$arch.log" &
  pid=$!
  pids+=("$pid")
  # Ready: the agent logs "running" once its store is open and its sinks run.
  local waited=0
  until grep -q "running:" "$work/agent-$arch.log" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/agent-$arch.log" >&2; echo "$arch: the agent exited" >&2; return 1; }
    if [ "$waited" -ge $((settle * 6)) ]; then
      rss_rows+=("$(printf '| %-6s | did not start within %s s (log: %s) | | |' "$arch (qemu-user)" \
                    "$waited" "$(tail -1 "$work/agent-$arch.log" | cut -c1-60)")")
      stop "$pid" "$broker"
      return 0
    fi
    sleep 1; waited=$((waited + 1))
  done
  sleep "$settle"
  local idle
  idle=$(rss_kib "$pid")
  "$native_bin" simulate --url "tcp://127.0.0.1:$port" --devices 20 --rate 20 \
    --count $((20 * settle)) >/dev/null 2>"$work/simulate-$arch.log"
  sleep 2
  local loaded peak
  loaded=$(rss_kib "$pid")
  peak=$(hwm_kib "$pid")
  rss_rows+=("$(printf '| %-6s | %s | %s | %s |' "$arch$([ "$arch" = amd64 ] || echo ' (qemu-user)')" \
                "$(kib "$idle")" "$(kib "$loaded")" "$(kib "$peak")")")
  stop "$pid" "$broker"
}

stop() {  # stop AGENT BROKER: SIGTERM, SIGKILL after 15 s
  kill -TERM "$1" "$2" 2>/dev/null || true
  for _ in $(seq 150); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  wait "$2" 2>/dev/null || true
}

if [ -z "$native_bin" ]; then
  echo "no amd64 package in $dist: the RSS figures need it (it publishes the load)" >&2
else
  measure amd64 "$native_bin"
  for arch in arm64 armhf; do
    [ -x "$work/$arch/usr/bin/sluice" ] || continue
    read -r -a emu <<<"${qemu[$arch]}"
    if ! command -v "${emu[0]}" >/dev/null; then
      echo "$arch: ${emu[0]} is not installed, no RSS figure" >&2
      continue
    fi
    measure "$arch" "${emu[@]}" "$work/$arch/usr/bin/sluice"
  done
fi

echo "stripped binary and installed size (from $dist):"
echo "| arch | /usr/bin/sluice (stripped) | installed size |"
echo "| --- | --- | --- |"
printf '%s\n' "${rows[@]}"
if [ ${#rss_rows[@]} -gt 0 ]; then
  echo
  echo "RSS of \`sluice run -c config/examples/demo.yaml\` ($settle s after start; load: 20 devices, 20 readings/s for ${settle} s):"
  echo "| arch | idle | under the demo load | peak (VmHWM) |"
  echo "| --- | --- | --- | --- |"
  printf '%s\n' "${rss_rows[@]}"
fi
