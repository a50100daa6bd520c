#!/bin/sh
# Renders the nginx config (nginx.conf.template) for the configured path prefix,
# upstreams and TLS, then runs nginx (as the unprivileged gateway user). Who may come
# in is the auth service's to decide: the gateway holds no credentials.
#   gateway-entrypoint render   only prints the rendered config (the tests use it)
set -eu
TLS_DIR="${GATEWAY_TLS_DIR:-/run/gateway-tls}"
TEMPLATE="${GATEWAY_TEMPLATE:-/etc/nginx/nginx.conf.template}"
RESOLV_CONF="${GATEWAY_RESOLV_CONF:-/etc/resolv.conf}"
prefix="${DAGSTER_WEBSERVER_PATH_PREFIX:-}"
prefix="${prefix%/}"
case "$prefix" in
  ""|/*) ;;
  *) echo "gateway: DAGSTER_WEBSERVER_PATH_PREFIX must start with '/', got '$prefix'" >&2; exit 1 ;;
esac
# With a prefix, / redirects to it; without one, / is the UI itself.
redirect=""
[ -n "$prefix" ] && redirect="    location = / { return 302 ${prefix}/; }"
# The upstreams: compose's service names by default; set empty, a part is left out
# (Kubernetes has no viewer, and its monitoring is the cluster's).
webserver="${GATEWAY_WEBSERVER-webserver:3000}"
viewer="${GATEWAY_VIEWER-webserver_viewer:3000}"
prometheus="${GATEWAY_PROMETHEUS-prometheus:9090}"
alertmanager="${GATEWAY_ALERTMANAGER-alertmanager:9093}"
auth="${GATEWAY_AUTH-auth:8081}"
drop=""
[ -n "$viewer" ] || drop="$drop -e />>>.viewer/,/<<<.viewer/d"
{ [ -n "$prometheus" ] && [ -n "$alertmanager" ]; } || drop="$drop -e />>>.monitoring/,/<<<.monitoring/d"
# TLS when a certificate and its key are mounted (compose mounts an empty file otherwise).
if [ -s "$TLS_DIR/cert.pem" ] && [ -s "$TLS_DIR/key.pem" ]; then
  drop="$drop -e />>>.plain/,/<<<.plain/d"
elif [ -s "$TLS_DIR/cert.pem" ] || [ -s "$TLS_DIR/key.pem" ]; then
  echo "gateway: GATEWAY_TLS_CERT and GATEWAY_TLS_KEY go together: set both (PEM files), or neither" >&2
  exit 1
else
  drop="$drop -e />>>.tls/,/<<<.tls/d"
fi
# nginx resolves upstreams per request with the container's own DNS server.
resolver=$(awk '$1 == "nameserver" { print $2; exit }' "$RESOLV_CONF")
case "$resolver" in
  "") echo "gateway: no nameserver in $RESOLV_CONF, so the upstreams cannot be resolved" >&2; exit 1 ;;
  *:*) resolver="[$resolver]" ;;
esac
render() {
  # shellcheck disable=SC2086 # $drop is a list of sed arguments
  sed $drop -e "s#__PREFIX__#${prefix}#g" -e "s#__ROOT_REDIRECT__#${redirect}#" \
    -e "s#__RESOLVER__#${resolver}#" -e "s#__WEBSERVER__#${webserver}#g" -e "s#__VIEWER__#${viewer}#g" \
    -e "s#__PROMETHEUS__#${prometheus}#g" -e "s#__ALERTMANAGER__#${alertmanager}#g" \
    -e "s#__AUTH__#${auth}#g" "$TEMPLATE"
}
if [ "${1:-}" = render ]; then
  render
  exit 0
fi
render > /tmp/nginx.conf
# Docker restarts on exits, not on failed health checks: when nginx stops answering
# 3 checks in a row (2 s apart, after it answered once), kill it so the container restarts.
main=$$
(
  up=0 failures=0
  while sleep 2 && kill -0 "$main" 2>/dev/null; do
    if timeout 3 /usr/local/bin/gateway-healthcheck >/dev/null 2>&1; then
      up=1 failures=0
    elif [ "$up" = 1 ]; then
      failures=$((failures + 1))
      if [ "$failures" -ge 3 ]; then
        echo "gateway: nginx failed $failures health checks in a row: killing it so that Docker restarts the container" >&2
        kill -KILL "$main"
        exit 0
      fi
    fi
  done
) &

exec "$@" -c /tmp/nginx.conf
