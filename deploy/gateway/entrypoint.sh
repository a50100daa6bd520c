#!/bin/sh
# Renders the nginx config for the configured path prefix, checks that a
# credentials file is there, then runs nginx (as the unprivileged gateway user).
set -eu
HTPASSWD=/run/ui-secrets/htpasswd
if [ ! -s "$HTPASSWD" ]; then
  echo "gateway: no users in $HTPASSWD. The init service writes it on first start (docker compose up); see 'docker compose logs init' and README, 'UI users'." >&2
  exit 1
fi
prefix="${DAGSTER_WEBSERVER_PATH_PREFIX:-}"
prefix="${prefix%/}"
case "$prefix" in
  ""|/*) ;;
  *) echo "gateway: DAGSTER_WEBSERVER_PATH_PREFIX must start with '/', got '$prefix'" >&2; exit 1 ;;
esac
# With a prefix, / redirects to it; without one, / is the UI itself.
redirect=""
[ -n "$prefix" ] && redirect="    location = / { return 302 ${prefix}/; }"
sed -e "s#__PREFIX__#${prefix}#g" -e "s#__ROOT_REDIRECT__#${redirect}#" \
  /etc/nginx/nginx.conf.template > /tmp/nginx.conf
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
