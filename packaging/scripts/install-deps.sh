#!/usr/bin/env bash
# Installs, from Debian's packages, whatever sluice needs to build, test and
# run its demo that is not installed yet. Debian 12, as root (or with sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libssl-dev
  libpaho-mqttpp-dev libpaho-mqtt-dev   # the integration tests' own MQTT publisher
  libsqlite3-dev nlohmann-json3-dev libcli11-dev catch2 libyaml-cpp-dev
  libbenchmark-dev mosquitto mosquitto-clients openssl
  systemd
  librdkafka-dev
  zlib1g-dev libcpp-httplib-dev
  libmosquitto-dev   # tests/bench/e2e.sh: its own publisher and counting subscriber
  file dpkg-dev   # CPack's Debian package: file types, dpkg-shlibdeps
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}" >&2
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)

# A mirror mid-sync makes `apt-get update` fail now and then: retry it.
for attempt in 1 2 3 4 5; do
  if "${sudo_cmd[@]}" apt-get update -qq; then break; fi
  [ "$attempt" -eq 5 ] && { echo "apt-get update failed 5 times" >&2; exit 1; }
  sleep $((attempt * 5))
done
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
  "${missing[@]}"
