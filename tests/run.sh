#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what is missing, builds
# warning-free, runs every test (unit and integration, against real servers),
# then builds again with AddressSanitizer and UndefinedBehaviorSanitizer and
# runs everything once more, failing on any sanitizer report; then builds
# the amd64 Debian package, checks it, installs it with apt and purges it;
# last, cross-builds the arm64 and armhf packages (Release at -O2), runs the
# arm64 unit tests under qemu and checks the packages (armhf is skipped with
# a WARNING while Debian's mirror cannot install its -dev packages).
set -euo pipefail
cd "$(dirname "$0")/.."

bash packaging/scripts/install-deps.sh
jobs=$(nproc)

echo "== build and test (RelWithDebInfo)"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON >/dev/null
cmake --build build -j"$jobs"
(cd build && ctest --output-on-failure -j"$jobs" --timeout 600)

echo "== build and test with AddressSanitizer + UndefinedBehaviorSanitizer"
reports="$PWD/build-asan/sanitizer-reports"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSLUICE_WERROR=ON \
  -DSLUICE_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs"
rm -rf "$reports" && mkdir -p "$reports"
# log_path catches reports from every process, the agent binaries the
# integration tests start included.
export ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
export LSAN_OPTIONS="suppressions=$PWD/tests/lsan.supp"
(cd build-asan && ctest --output-on-failure -j"$jobs" --timeout 900)
if compgen -G "$reports/*" >/dev/null; then
  echo "sanitizer reports:" >&2
  cat "$reports"/* >&2
  exit 1
fi

echo "== Debian package (amd64): built from build/, checked, installed, purged"
packages_start=$SECONDS
env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS JOBS="$jobs" \
  bash packaging/scripts/build-debs.sh --amd64-from build amd64
bash packaging/tests/check-debs.sh --install dist
echo "package built and checked in $((SECONDS - packages_start)) s"

echo "== Debian packages (arm64, armhf): cross-built, arm64 unit tests under qemu, checked"
# Release at -O2 (build-debs.sh --release): the stripped binary of a
# RelWithDebInfo build without compiling its debug info. check-debs.sh
# checks every package in dist/ (amd64's again, quickly; no install).
cross_start=$SECONDS
env -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS JOBS="$jobs" \
  bash packaging/scripts/build-debs.sh --release arm64 armhf
bash packaging/tests/check-debs.sh dist
echo "cross packages built, tested and checked in $((SECONDS - cross_start)) s"
echo "all tests passed, with and without sanitizers"
