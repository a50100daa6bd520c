#!/bin/sh
# Refuse to start, with the fix in the message, when the Docker socket is
# missing or this (non-root) user cannot use it; otherwise run HAProxy in the
# foreground as PID 1 (SIGTERM stops it). Writes nothing: no pid file, no
# stats socket, logs to stdout.
set -eu

SOCKET=/var/run/docker.sock

if [ ! -S "$SOCKET" ]; then
    echo "socket-proxy: $SOCKET is not a socket: mount it, e.g. -v /var/run/docker.sock:/var/run/docker.sock:ro" >&2
    exit 1
fi
if [ ! -r "$SOCKET" ] || [ ! -w "$SOCKET" ]; then
    gid=$(stat -c %g "$SOCKET")
    echo "socket-proxy: user $(id -u) (groups: $(id -G)) cannot use $SOCKET (owner $(stat -c %u:%g "$SOCKET"), mode $(stat -c %a "$SOCKET"))." >&2
    echo "socket-proxy: add the socket's group: compose 'group_add: [\"$gid\"]' or 'docker run --group-add $gid'." >&2
    exit 1
fi

exec haproxy -db -f /etc/haproxy/socket-proxy.cfg "$@"
