#!/usr/bin/env bash
# Builds the Debian packages of sluice for amd64, arm64 and armhf into dist/,
# and runs the arm64 unit tests under qemu-user. On an x86_64 Debian 12, as
# root (or with sudo): installs what is missing first (Debian's cross
# compilers, the target's -dev packages through multiarch, qemu-user-static).
#
#   bash packaging/scripts/build-debs.sh                 # all three
#   bash packaging/scripts/build-debs.sh arm64           # some of them
#   bash packaging/scripts/build-debs.sh --amd64-from build   # package an
#       existing native build tree (any CMAKE_INSTALL_PREFIX) instead of
#       building build-deb-amd64; tests/run.sh does this with its build/
#
#   bash packaging/scripts/build-debs.sh --release arm64 armhf   # as CI does
#
# Build trees: build-deb-amd64, build-deb-arm64 (the package and the unit
# tests, run under qemu-aarch64-static), build-deb-armhf (the package only).
# They are RelWithDebInfo; --release builds them Release at Debian's -O2
# (-O2 -DNDEBUG: RelWithDebInfo's code without its -g, which GCC keeps from
# changing the code), roughly a quarter less compile time for the same stripped
# binary. JOBS sets the build's parallelism (default: nproc).
#
# armhf: Debian's armhf package index has been seen broken on the mirror for
# a while ("File has unexpected size ... Mirror sync in progress?"). Its
# -dev packages are then not installable, as their amd64 twins are newer.
# After retrying, the script says so, skips armhf and goes on, unless
# SLUICE_REQUIRE_ARMHF=1. Any build or test failure fails the script.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/../.."

amd64_from=""
build_type=RelWithDebInfo
archs=()
while [ $# -gt 0 ]; do
  case "$1" in
    --amd64-from) amd64_from=$2; shift 2 ;;
    --release) build_type=Release; shift ;;
    amd64|arm64|armhf) archs+=("$1"); shift ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1 (amd64, arm64, armhf, --amd64-from DIR, --release)" >&2; exit 2 ;;
  esac
done
[ ${#archs[@]} -gt 0 ] || archs=(amd64 arm64 armhf)
jobs=${JOBS:-$(nproc)}

if [ "$(dpkg --print-architecture)" != amd64 ]; then
  echo "build-debs.sh runs on an amd64 (x86_64) Debian machine" >&2
  exit 1
fi

note() { echo "== $*" >&2; }

note "installing what the native build and CPack need"
bash packaging/scripts/install-deps.sh

mkdir -p dist
for arch in "${archs[@]}"; do rm -f dist/sluice_*_"$arch".deb; done
declare -A result=()
start_all=$SECONDS

configure() {  # configure DIR [cmake args...]
  local dir=$1; shift
  local type=(-DCMAKE_BUILD_TYPE="$build_type")
  # Release at -O2, not CMake's -O3: the optimisation Debian builds with,
  # and the code (and warnings, -Werror) of RelWithDebInfo.
  [ "$build_type" != Release ] ||
    type+=("-DCMAKE_C_FLAGS_RELEASE=-O2 -DNDEBUG" "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG")
  cmake -S . -B "$dir" -G Ninja "${type[@]}" -DSLUICE_WERROR=ON "$@" >/dev/null
}

package() {  # package DIR ARCH: cpack, check the architecture, copy to dist/
  local dir=$1 arch=$2 deb
  rm -rf "$dir/packages"
  (cd "$dir" && cpack -G DEB >/dev/null)
  deb=$(ls "$dir"/packages/sluice_*_"$arch".deb)
  cp "$deb" dist/
  echo "dist/$(basename "$deb")"
}

for arch in "${archs[@]}"; do
  t0=$SECONDS
  case "$arch" in
    amd64)
      if [ -n "$amd64_from" ]; then
        note "amd64: packaging the existing build tree $amd64_from"
        cmake --build "$amd64_from" -j"$jobs" --target sluice
        deb=$(package "$amd64_from" amd64)
      else
        note "amd64: building the package in build-deb-amd64"
        configure build-deb-amd64 -DSLUICE_BUILD_TESTS=OFF
        cmake --build build-deb-amd64 -j"$jobs" --target sluice
        deb=$(package build-deb-amd64 amd64)
      fi
      ;;

    arm64)
      note "arm64: installing the cross compiler, arm64 libraries and qemu"
      bash packaging/scripts/install-cross-deps.sh arm64
      note "arm64: building the package and the unit tests in build-deb-arm64"
      # Unit tests only: the integration tests need their servers and
      # test-only libraries for arm64, and would run slowly under qemu.
      configure build-deb-arm64 --toolchain packaging/toolchains/aarch64-linux-gnu.cmake \
        -DSLUICE_BUILD_TESTS=ON -DSLUICE_BUILD_INTEGRATION_TESTS=OFF
      cmake --build build-deb-arm64 -j"$jobs"
      note "arm64: unit tests under qemu-aarch64-static"
      (cd build-deb-arm64 && ctest -L unit --output-on-failure -j"$jobs" --timeout 300)
      deb=$(package build-deb-arm64 arm64)
      ;;

    armhf)
      note "armhf: installing the cross compiler and armhf libraries"
      if ! bash packaging/scripts/install-cross-deps.sh armhf; then
        if [ "${SLUICE_REQUIRE_ARMHF:-0}" = 1 ]; then
          echo "armhf: the armhf packages could not be installed (see above)" >&2
          exit 1
        fi
        echo "WARNING: armhf SKIPPED: its -dev packages could not be installed from" \
             "Debian's mirror (see the apt errors above); SLUICE_REQUIRE_ARMHF=1 makes this fatal" >&2
        result[armhf]="SKIPPED (apt: armhf packages not installable, see the log)"
        continue
      fi
      note "armhf: building the package in build-deb-armhf"
      configure build-deb-armhf --toolchain packaging/toolchains/arm-linux-gnueabihf.cmake \
        -DSLUICE_BUILD_TESTS=OFF
      cmake --build build-deb-armhf -j"$jobs" --target sluice
      deb=$(package build-deb-armhf armhf)
      ;;
  esac
  result[$arch]="$deb ($((SECONDS - t0)) s)"
done

note "packages (in $((SECONDS - start_all)) s, cross builds $build_type)"
for arch in "${archs[@]}"; do
  printf '  %-6s %s\n' "$arch" "${result[$arch]}" >&2
done
