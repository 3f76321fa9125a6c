#!/bin/sh
# Runs after the package's files are in place, on install and upgrade
# (deb: $1 is configure; rpm: $1 is 1 on install, 2 on upgrade).
set -e

# State: the server's directory belongs to drover; the agent's, which holds
# the node secret, to root alone. Created here rather than shipped in the
# package, so that removing the package never trips over their contents.
install -d -m 0755 -o root -g root /var/lib/drover
install -d -m 0750 -o drover -g drover /var/lib/drover/server
install -d -m 0700 -o root -g root /var/lib/drover/agent

# The configs may hold tokens: the server's and the gateway's are readable
# by their group only, the agent's by root only.
chown root:drover /etc/drover/server.yaml /etc/drover/gateway.yaml
chmod 0640 /etc/drover/server.yaml /etc/drover/gateway.yaml
chown root:root /etc/drover/agent.yaml
chmod 0600 /etc/drover/agent.yaml

if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null 2>&1 || true
	# On upgrade, restart what was running so that it runs the new binary.
	# The agent's replicas keep running through its restart (KillMode=process).
	upgrade=false
	case "$1" in
	configure) [ -n "$2" ] && upgrade=true ;;
	2) upgrade=true ;;
	esac
	if $upgrade; then
		systemctl try-restart drover-server.service drover-agent.service drover-gateway.service >/dev/null 2>&1 || true
	fi
fi
exit 0
