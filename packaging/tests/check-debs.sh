#!/usr/bin/env bash
# Checks the Debian packages that packaging/scripts/build-debs.sh put in a
# folder (default dist/):
#   every package: its Architecture matches its file name, Depends names the
#     shared libraries sluice links (from dpkg-shlibdeps), the files are where
#     the unit expects them, /etc/sluice/sluice.yaml is a conffile, the binary
#     is stripped and built for that architecture, and it runs
#     (`sluice version`; foreign architectures under qemu-user);
#   with --install (root, amd64): the amd64 package installs with apt, the
#     service is neither enabled nor started, `sluice version` runs from
#     /usr/bin, `systemd-analyze verify` passes on the installed unit, the
#     packaged config validates, a changed conffile survives a reinstall,
#     remove keeps the config and the state, purge deletes both. The package
#     is purged again at the end, whatever happens.
# Usage: check-debs.sh [--install] [DIR]
set -euo pipefail

install=0
if [ "${1:-}" = --install ]; then install=1; shift; fi
dir=${1:-dist}
work=$(mktemp -d)
cleanup() {
  if [ "$install" -eq 1 ] && [ -n "${installed_here:-}" ]; then
    apt-get purge -y -qq sluice >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

declare -A machine=([amd64]="x86-64" [arm64]="ARM aarch64" [armhf]="ARM, EABI5")
# -L /: the multiarch glibc (see packaging/toolchains/aarch64-linux-gnu.cmake).
declare -A qemu=([arm64]="qemu-aarch64-static -L /" [armhf]="qemu-arm-static -L /")
# The shared libraries sluice links, as Debian names their packages.
expected_depends=(libc6 libstdc++6 libsqlite3-0
                  libyaml-cpp0.7 librdkafka1 zlib1g libssl3)

shopt -s nullglob
debs=("$dir"/sluice_*.deb)
[ ${#debs[@]} -gt 0 ] || fail "no sluice_*.deb in $dir"
for deb in "${debs[@]}"; do
  name=$(basename "$deb")
  arch=${name##*_}; arch=${arch%.deb}
  echo "== $name"
  [ -n "${machine[$arch]:-}" ] || fail "$name: unexpected architecture $arch"
  info=$(dpkg-deb -I "$deb")
  got_arch=$(dpkg-deb -f "$deb" Architecture)
  [ "$got_arch" = "$arch" ] || fail "$name: Architecture: $got_arch, expected $arch"
  depends=$(dpkg-deb -f "$deb" Depends)
  for lib in "${expected_depends[@]}"; do
    re=$(sed 's/[.+]/\\&/g' <<<"$lib")
    grep -Eq "(^|, )$re( |,|$)" <<<"$depends" || fail "$name: Depends lacks $lib: $depends"
  done
  ! grep -qi "paho" <<<"$depends" || fail "$name: Depends names Paho (the agent speaks MQTT itself): $depends"
  grep -q '^ Package: sluice$' <<<"$info" || fail "$name: Package is not sluice"
  echo "Architecture: $got_arch"
  echo "Depends: $depends"
  echo "Installed-Size: $(dpkg-deb -f "$deb" Installed-Size) KiB"

  contents=$(dpkg-deb -c "$deb" | awk '{print $6}')
  for f in ./usr/bin/sluice ./lib/systemd/system/sluice.service ./etc/sluice/sluice.yaml \
           ./usr/share/doc/sluice/copyright ./usr/share/doc/sluice/README.md; do
    grep -qx -- "$f" <<<"$contents" || fail "$name: $f missing"
  done
  # Nothing outside the layout: /usr/bin, /usr/share/doc/sluice, the unit, /etc/sluice.
  unexpected=$(grep -v -E '^\./($|usr/$|usr/bin/$|usr/bin/sluice$|usr/share/$|usr/share/doc/$|usr/share/doc/sluice/|lib/$|lib/systemd/$|lib/systemd/system/$|lib/systemd/system/sluice\.service$|etc/$|etc/sluice/)' <<<"$contents" || true)
  [ -z "$unexpected" ] || fail "$name: unexpected files: $unexpected"

  mkdir -p "$work/$arch/control"
  dpkg-deb -e "$deb" "$work/$arch/control"
  grep -qx /etc/sluice/sluice.yaml "$work/$arch/control/conffiles" ||
    fail "$name: /etc/sluice/sluice.yaml is not a conffile"
  for s in postinst prerm postrm; do
    [ -x "$work/$arch/control/$s" ] || fail "$name: no executable $s"
  done

  dpkg-deb -x "$deb" "$work/$arch/root"
  bin="$work/$arch/root/usr/bin/sluice"
  ftype=$(file -b "$bin")
  grep -q "${machine[$arch]}" <<<"$ftype" || fail "$name: /usr/bin/sluice is not ${machine[$arch]}: $ftype"
  grep -q ', stripped' <<<"$ftype" || fail "$name: /usr/bin/sluice is not stripped: $ftype"
  echo "/usr/bin/sluice: $(stat -c %s "$bin") bytes, stripped"
  if [ "$arch" = amd64 ]; then
    run=("$bin")
  else
    read -r -a run <<<"${qemu[$arch]}"
    command -v "${run[0]}" >/dev/null || fail "$name: ${run[0]} not installed"
    run+=("$bin")
  fi
  version=$("${run[@]}" version) || fail "$name: sluice version failed"
  grep -q '^sluice ' <<<"$version" || fail "$name: sluice version printed: $version"
  echo "sluice version: $(tr '\n' ' ' <<<"$version")"
done

[ "$install" -eq 1 ] || exit 0

echo "== installing the amd64 package"
[ "$(id -u)" -eq 0 ] || fail "--install needs root"
deb=$(ls "$dir"/sluice_*_amd64.deb 2>/dev/null) || fail "no amd64 package in $dir"
if dpkg-query -W -f='${Status}' sluice 2>/dev/null | grep -q 'ok installed'; then
  fail "sluice is installed already: this check installs and purges it, remove it first"
fi
# Purge deletes /var/lib/sluice: never run this where it holds data.
[ ! -e /var/lib/sluice ] || fail "/var/lib/sluice exists: purging the package would delete it"
installed_here=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$(realpath "$deb")" >/dev/null
[ -x /usr/bin/sluice ] || fail "/usr/bin/sluice not installed"
/usr/bin/sluice version
[ ! -e /etc/systemd/system/multi-user.target.wants/sluice.service ] ||
  fail "a fresh install enabled the service"
/usr/bin/sluice validate -c /etc/sluice/sluice.yaml
dpkg-query -W -f='${Conffiles}\n' sluice | grep -q '/etc/sluice/sluice.yaml' ||
  fail "dpkg does not list /etc/sluice/sluice.yaml as a conffile"

if ! systemd-analyze verify --man=no /lib/systemd/system/sluice.service 2>"$work/verify.err"; then
  cat "$work/verify.err" >&2; fail "systemd-analyze verify failed on the installed unit"
fi
if [ -s "$work/verify.err" ]; then
  cat "$work/verify.err" >&2; fail "systemd-analyze verify warned on the installed unit"
fi
echo "systemd-analyze verify /lib/systemd/system/sluice.service: OK"

echo "# changed by check-debs.sh" >> /etc/sluice/sluice.yaml
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --reinstall "$(realpath "$deb")" >/dev/null
grep -q 'changed by check-debs.sh' /etc/sluice/sluice.yaml ||
  fail "a reinstall overwrote the changed /etc/sluice/sluice.yaml"
echo "conffile: a changed /etc/sluice/sluice.yaml survives a reinstall"

mkdir -p /var/lib/sluice && touch /var/lib/sluice/sluice.db   # as if the service had run
apt-get remove -y -qq sluice >/dev/null
[ ! -e /usr/bin/sluice ] || fail "remove left /usr/bin/sluice"
[ -e /etc/sluice/sluice.yaml ] || fail "remove deleted the conffile"
[ -e /var/lib/sluice/sluice.db ] || fail "remove deleted /var/lib/sluice"
echo "remove: binary gone, /etc/sluice/sluice.yaml and /var/lib/sluice kept"
apt-get purge -y -qq sluice >/dev/null
installed_here=
[ ! -e /etc/sluice ] || fail "purge left /etc/sluice"
[ ! -e /var/lib/sluice ] || fail "purge left /var/lib/sluice"
echo "purge: /etc/sluice and /var/lib/sluice deleted"
[ ! -e /etc/systemd/system/sluice.service ] || fail "purge left a mask in /etc/systemd/system"
echo "package checks passed"
