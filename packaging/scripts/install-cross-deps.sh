#!/usr/bin/env bash
# Installs, from Debian's packages, what cross-building sluice for the given
# Debian architectures needs: the cross compilers, the target's -dev packages
# through multiarch, and qemu-user-static to run the target's binaries.
# Debian 12 on x86_64, as root (or with sudo).
#   usage: install-cross-deps.sh arm64 [armhf ...]
# Safe to run again: it installs only what is missing.
set -euo pipefail

[ $# -gt 0 ] || { echo "usage: $0 ARCH... (arm64, armhf)" >&2; exit 2; }
sudo_cmd=()
[ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
apt_get() {
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 "$@"
}
installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

# A mirror mid-sync makes `apt-get update` (or a download) fail now and then;
# the armhf index has been seen to. Retry with a growing pause.
retry() {
  local attempt tries=${RETRIES:-4}
  for ((attempt = 1; ; attempt++)); do
    if "$@"; then return 0; fi
    [ "$attempt" -ge "$tries" ] && { echo "failed $tries times: $*" >&2; return 1; }
    echo "failed (attempt $attempt of $tries), retrying in $((attempt * 10)) s: $*" >&2
    sleep $((attempt * 10))
  done
}

declare -A triplet=([arm64]=aarch64-linux-gnu [armhf]=arm-linux-gnueabihf)
missing=()
need_update=0
for arch in "$@"; do
  [ -n "${triplet[$arch]:-}" ] || { echo "unknown architecture: $arch (arm64, armhf)" >&2; exit 2; }
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    echo "adding the $arch architecture to dpkg" >&2
    "${sudo_cmd[@]}" dpkg --add-architecture "$arch"
    need_update=1
  fi
  # yaml-cpp's -dev package is not Multi-Arch (see below): only its runtime here.
  for p in crossbuild-essential-"$arch" pkg-config:"$arch" \
           libssl-dev:"$arch" \
           libsqlite3-dev:"$arch" librdkafka-dev:"$arch" \
           zlib1g-dev:"$arch" libyaml-cpp0.7:"$arch"; do
    installed "$p" || missing+=("$p")
  done
done
installed qemu-user-static || missing+=(qemu-user-static)

# apt keeps a suite's index files all or nothing: one broken index (armhf's
# has been seen broken for a while) keeps the other architectures' fresh
# indexes of that suite out too, and the target's -dev packages would then
# not match their newer amd64 twins. So fetch only the indexes of this
# machine's and the requested architectures (the others' are dropped until
# the next plain `apt-get update`).
arch_opts=(-o "APT::Architectures::=$(dpkg --print-architecture)")
for arch in "$@"; do arch_opts+=(-o "APT::Architectures::=$arch"); done
update() { apt_get "${arch_opts[@]}" update -qq && updated=1; }
updated=0
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  # Multi-Arch: same packages take the same version on every architecture:
  # apt upgrades an older amd64 twin along with them.
  install_missing() {
    update && apt_get install -y -qq --no-install-recommends "${missing[@]}"
  }
  retry install_missing
elif [ "$need_update" -eq 1 ]; then
  retry update
fi

# libyaml-cpp-dev has no Multi-Arch field: installing libyaml-cpp-dev:ARCH would
# remove the amd64 one. Its headers are the same for every architecture, so
# unpack only the target's library link, pkg-config file and CMake package
# into /usr/lib/TRIPLET (TOOLCHAIN.md).
for arch in "$@"; do
  t=${triplet[$arch]}
  [ -e "/usr/lib/$t/cmake/yaml-cpp/yaml-cpp-config.cmake" ] && continue
  echo "unpacking libyaml-cpp-dev:$arch's library files into /usr/lib/$t" >&2
  [ "$updated" -eq 1 ] || retry update
  work=$(mktemp -d)
  (cd "$work" && retry apt_get -o APT::Sandbox::User=root download "libyaml-cpp-dev:$arch" >/dev/null)
  dpkg-deb -x "$work"/libyaml-cpp-dev_*_"$arch".deb "$work/root"
  [ -d "$work/root/usr/lib/$t/cmake/yaml-cpp" ] || {
    echo "libyaml-cpp-dev:$arch holds no /usr/lib/$t/cmake/yaml-cpp" >&2; exit 1; }
  "${sudo_cmd[@]}" mkdir -p "/usr/lib/$t/cmake" "/usr/lib/$t/pkgconfig"
  "${sudo_cmd[@]}" cp -a "$work/root/usr/lib/$t/cmake/yaml-cpp" "/usr/lib/$t/cmake/"
  "${sudo_cmd[@]}" cp -a "$work/root/usr/lib/$t/pkgconfig/yaml-cpp.pc" "/usr/lib/$t/pkgconfig/"
  "${sudo_cmd[@]}" cp -a "$work/root/usr/lib/$t/libyaml-cpp.so" "/usr/lib/$t/"
  rm -rf "$work"
done
