#!/usr/bin/env bash
# Checks packaging/sluice.service the way systemd will read it:
#   systemd-analyze verify   must pass with nothing on stderr (unknown keys
#                            are only warnings there),
#   systemd-analyze security must rate the exposure at most 2.0 ("OK").
# Usage: check-unit.sh UNIT SLUICE_BINARY
# The unit names /usr/bin/sluice; verify wants the binary to exist, so a copy
# of the unit pointing at the build's binary is verified.
set -euo pipefail
unit=$1
binary=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

sed "s#/usr/bin/sluice#${binary}#g" "$unit" > "$work/sluice.service"
if ! systemd-analyze verify --man=no "$work/sluice.service" 2> "$work/verify.err"; then
  echo "systemd-analyze verify failed:"; cat "$work/verify.err"; exit 1
fi
if [ -s "$work/verify.err" ]; then
  echo "systemd-analyze verify warned:"; cat "$work/verify.err"; exit 1
fi
echo "verify: OK"

systemd-analyze security --offline=true --no-pager "$work/sluice.service" > "$work/security.txt" 2>&1 || true
exposure=$(sed -n 's/.*Overall exposure level for sluice.service: \([0-9.]*\).*/\1/p' "$work/security.txt")
if [ -z "$exposure" ]; then
  echo "systemd-analyze security gave no rating:"; cat "$work/security.txt"; exit 1
fi
echo "security: exposure $exposure (must be at most 2.0)"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || {
  grep -E '^ *✗' "$work/security.txt" || true
  exit 1
}
