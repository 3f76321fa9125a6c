#!/bin/sh
# Runs after the package's files are removed (deb: $1 is remove, purge,
# upgrade, ...; rpm: $1 is 0 on erase, 1 on upgrade).
#
# A removal keeps the state in /var/lib/drover, the configs and the drover
# user, so that reinstalling picks up where it was. A deb purge deletes the
# state and the user (dpkg itself deletes the config files); files an
# operator added, such as TLS keys in /etc/drover or /etc/default/drover-*,
# are left alone. rpm has no purge: after `rpm -e`, delete /var/lib/drover
# and the user by hand if wanted.
set -e

case "$1" in
remove | purge | 0)
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload >/dev/null 2>&1 || true
	fi
	;;
esac

if [ "$1" = purge ]; then
	rm -rf /var/lib/drover
	rmdir /etc/drover 2>/dev/null || true
	if getent passwd drover >/dev/null 2>&1; then
		userdel drover >/dev/null 2>&1 || true
	fi
	if getent group drover >/dev/null 2>&1; then
		groupdel drover >/dev/null 2>&1 || true
	fi
fi
exit 0
