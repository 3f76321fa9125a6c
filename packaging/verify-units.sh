#!/usr/bin/env bash
# Checks the unit files in systemd/ with `systemd-analyze verify`, without
# installing anything: the units are verified inside a throwaway root that
# holds the system's own units and a stand-in /usr/bin/drover (verify insists
# that ExecStart's program exists). Any warning counts as a failure, since
# systemd-analyze exits 0 on most of them.
#
# Usage: bash packaging/verify-units.sh
set -euo pipefail

cd "$(dirname "$0")/.."

command -v systemd-analyze >/dev/null || { echo "verify-units.sh: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp /bin/true "$root/usr/bin/drover"
cp systemd/*.service "$root/etc/systemd/system/"

units=()
for f in systemd/*.service; do units+=("$(basename "$f")"); done
out=$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1) || {
	echo "$out" >&2
	echo "verify-units.sh: systemd-analyze verify failed" >&2
	exit 1
}
if [[ -n "$out" ]]; then
	echo "$out" >&2
	echo "verify-units.sh: systemd-analyze verify warned" >&2
	exit 1
fi
echo "verify-units.sh: ${units[*]} verified"
