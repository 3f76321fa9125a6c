#!/bin/sh
# Runs before the package's files are unpacked, on install and upgrade
# (deb: $1 is install|upgrade; rpm: $1 is 1 or 2). Creates the drover system
# user the server runs as.
set -e

if ! getent group drover >/dev/null 2>&1; then
	groupadd --system drover
fi
if ! getent passwd drover >/dev/null 2>&1; then
	nologin=/usr/sbin/nologin
	[ -x "$nologin" ] || nologin=/sbin/nologin
	[ -x "$nologin" ] || nologin=/bin/false
	useradd --system --gid drover --home-dir /var/lib/drover --no-create-home \
		--shell "$nologin" --comment "Drover server" drover
fi
exit 0
