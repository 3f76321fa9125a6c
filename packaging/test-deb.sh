#!/usr/bin/env bash
# Installs the .deb built by packaging/build.sh on this machine, checks what
# it put in place, reinstalls it over a local config change, then removes and
# purges it and checks that nothing is left. Exits non-zero on the first
# failure. It changes the system (a package, a user, /etc/drover,
# /var/lib/drover), so it runs as root, on CI or a throwaway machine, and
# refuses to touch a drover package that was installed before it ran unless
# CI=true.
#
# Usage: bash packaging/test-deb.sh [path/to/drover_VERSION_amd64.deb]
set -euo pipefail

cd "$(dirname "$0")/.."

fail() {
	echo "test-deb.sh: FAIL: $*" >&2
	exit 1
}
ok() { echo "test-deb.sh: ok: $*"; }

[[ $(id -u) == 0 ]] || fail "must run as root"
command -v dpkg >/dev/null || fail "dpkg not found"
command -v systemd-analyze >/dev/null || fail "systemd-analyze not found (apt-get install systemd)"

version=$(cat dist/VERSION 2>/dev/null || true)
deb=${1:-dist/drover_${version}_amd64.deb}
[[ -f "$deb" ]] || fail "no package $deb: run packaging/build.sh first"

installed() { dpkg-query -W -f='${Status}' drover 2>/dev/null | grep -q ' installed$'; }
known() { dpkg-query -W drover >/dev/null 2>&1; }

if known; then
	[[ "${CI:-}" == true ]] || fail "a drover package is already on this machine; purge it first (dpkg -P drover)"
	dpkg -P drover >/dev/null
fi
trap 'dpkg -P drover >/dev/null 2>&1 || true' EXIT

check_mode() { # path owner:group mode
	local got
	got=$(stat -c '%U:%G %a' "$1") || fail "$1 missing"
	[[ "$got" == "$2 $3" ]] || fail "$1 is $got, want $2 $3"
}

# Install.
dpkg -i "$deb" || fail "dpkg -i $deb"
installed || fail "drover not installed after dpkg -i"
ok "installed $deb"

[[ -x /usr/bin/drover ]] || fail "/usr/bin/drover missing"
if [[ -n "$version" ]]; then
	/usr/bin/drover version | grep -qF -- "$version" || fail "drover version does not print $version: $(/usr/bin/drover version 2>&1)"
fi
for u in drover-server drover-agent drover-gateway; do
	check_mode "/lib/systemd/system/$u.service" root:root 644
done
check_mode /etc/drover root:root 755
check_mode /etc/drover/server.yaml root:drover 640
check_mode /etc/drover/agent.yaml root:root 600
check_mode /etc/drover/gateway.yaml root:drover 640
grep -q '^data_dir: /var/lib/drover/server$' /etc/drover/server.yaml || fail "server.yaml lacks data_dir"
grep -q '^data_dir: /var/lib/drover/agent$' /etc/drover/agent.yaml || fail "agent.yaml lacks data_dir"

IFS=: read -r _ _ uid _ _ home shell < <(getent passwd drover) || fail "no drover user"
((uid < 1000)) || fail "drover user has uid $uid, want a system user"
[[ "$home" == /var/lib/drover ]] || fail "drover user's home is $home"
[[ "$shell" == */nologin || "$shell" == /bin/false ]] || fail "drover user's shell is $shell"
check_mode /var/lib/drover root:root 755
check_mode /var/lib/drover/server drover:drover 750
check_mode /var/lib/drover/agent root:root 700
ok "binary, units, configs, user and state directories in place"

out=$(systemd-analyze verify --man=no drover-server.service drover-agent.service drover-gateway.service 2>&1) ||
	fail "systemd-analyze verify of the installed units: $out"
[[ -z "$out" ]] || fail "systemd-analyze verify of the installed units warned: $out"
ok "systemd-analyze verify of the installed units"

# Reinstall over a local change: the changed config is kept (noreplace).
echo "# local change" >>/etc/drover/server.yaml
echo "state" >/var/lib/drover/server/marker
dpkg -i "$deb" || fail "dpkg -i $deb over an installed drover"
grep -q '^# local change$' /etc/drover/server.yaml || fail "reinstall replaced a changed /etc/drover/server.yaml"
[[ -f /var/lib/drover/server/marker ]] || fail "reinstall lost /var/lib/drover/server"
check_mode /etc/drover/server.yaml root:drover 640
ok "reinstall keeps the changed config and the state"

# Remove: the program goes, the configs, the state and the user stay.
dpkg -r drover || fail "dpkg -r drover"
installed && fail "drover still installed after dpkg -r"
for f in /usr/bin/drover /lib/systemd/system/drover-server.service /lib/systemd/system/drover-agent.service /lib/systemd/system/drover-gateway.service; do
	[[ ! -e "$f" ]] || fail "$f left after dpkg -r"
done
[[ -f /etc/drover/server.yaml && -f /var/lib/drover/server/marker ]] || fail "dpkg -r removed the configs or the state"
getent passwd drover >/dev/null || fail "dpkg -r removed the drover user"
ok "dpkg -r removes the program and keeps configs, state and user"

# Purge: nothing of drover is left.
dpkg -P drover || fail "dpkg -P drover"
known && fail "dpkg still knows drover after dpkg -P"
for f in /etc/drover /var/lib/drover; do
	[[ ! -e "$f" ]] || fail "$f left after dpkg -P"
done
getent passwd drover >/dev/null && fail "drover user left after dpkg -P"
getent group drover >/dev/null && fail "drover group left after dpkg -P"
ok "dpkg -P leaves nothing behind"

# The rpm, where rpm is at hand: its files and scripts.
rpm_file="${deb%.deb}.rpm"
if command -v rpm >/dev/null && [[ -f "$rpm_file" ]]; then
	files=$(rpm -qpl "$rpm_file" 2>/dev/null) || fail "rpm -qpl $rpm_file"
	for f in /usr/bin/drover /usr/lib/systemd/system/drover-server.service /usr/lib/systemd/system/drover-agent.service \
		/usr/lib/systemd/system/drover-gateway.service /etc/drover/server.yaml /etc/drover/agent.yaml /etc/drover/gateway.yaml; do
		grep -qx "$f" <<<"$files" || fail "$rpm_file lacks $f"
	done
	rpm -qp --configfiles "$rpm_file" 2>/dev/null | grep -qx /etc/drover/server.yaml || fail "$rpm_file: server.yaml is not a config file"
	rpm -qp --scripts "$rpm_file" 2>/dev/null | grep -q useradd || fail "$rpm_file lacks the preinstall script"
	ok "$rpm_file holds the files and scripts"
fi

echo "test-deb.sh: all checks passed"
