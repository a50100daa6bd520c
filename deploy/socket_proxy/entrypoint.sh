#!/bin/sh
# Refuse to start, with the fix in the message, when the Docker socket is
# missing or cannot be used; otherwise run HAProxy in the foreground as PID 1
# (SIGTERM stops it). Writes nothing: no pid file, no stats socket, logs to stdout.
#
# Started as root (compose: user "0", cap_add SETUID and SETGID only), it looks up
# the group owning the socket and drops to the haproxy user with that group and no
# capabilities before HAProxy starts, so no host-specific group id is configured.
# Started as another user (e.g. haproxy with --group-add), it runs as that user.
set -eu

SOCKET=/var/run/docker.sock

if [ ! -S "$SOCKET" ]; then
    echo "socket-proxy: $SOCKET is not a socket: mount it, e.g. -v /var/run/docker.sock:/var/run/docker.sock:ro" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ]; then
    gid=$(stat -c %g "$SOCKET")
    exec setpriv --reuid=haproxy --regid=haproxy --groups="$gid" --inh-caps=-all --no-new-privs \
        "$0" "$@"
fi
if [ ! -r "$SOCKET" ] || [ ! -w "$SOCKET" ]; then
    gid=$(stat -c %g "$SOCKET")
    echo "socket-proxy: user $(id -u) (groups: $(id -G)) cannot use $SOCKET (owner $(stat -c %u:%g "$SOCKET"), mode $(stat -c %a "$SOCKET"))." >&2
    echo "socket-proxy: start it as root with cap_add SETUID and SETGID (it then drops to haproxy with the socket's group), or add the group: 'docker run --group-add $gid'." >&2
    exit 1
fi

exec haproxy -db -f /etc/haproxy/socket-proxy.cfg "$@"
