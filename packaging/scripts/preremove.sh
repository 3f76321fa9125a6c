#!/bin/sh
# Runs before the package's files are removed (deb: $1 is remove, upgrade,
# ...; rpm: $1 is 0 on erase, 1 on upgrade). On a real removal, stops and
# disables the units; on an upgrade it leaves them running, and postinstall
# restarts them.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

if [ -d /run/systemd/system ]; then
	# Stopping the agent leaves its replicas running (KillMode=process):
	# drain the node before removing the package.
	systemctl --no-reload disable --now drover-server.service drover-agent.service drover-gateway.service >/dev/null 2>&1 || true
fi
exit 0
