#!/bin/sh
# Entry point of every Dagster image (webserver, daemon, code servers, run
# containers). Supports the Docker-secrets convention: when NAME_FILE is set,
# NAME is read from that file. Then checks that the instance can be configured.
set -eu

# shellcheck disable=SC2043 # a list of one: the next secret read through NAME_FILE is one more name
for name in DAGSTER_PG_PASSWORD; do
  eval "file=\${${name}_FILE:-}"
  if [ -n "$file" ]; then
    if [ ! -r "$file" ]; then
      echo "dagster: ${name}_FILE=$file is not a readable file (is the secret mounted? did the init service run?)" >&2
      exit 78
    fi
    value=$(cat "$file")
    export "$name=$value"
    unset "${name}_FILE"
  fi
done

if [ -z "${DAGSTER_PG_PASSWORD:-}" ]; then
  echo "dagster: DAGSTER_PG_PASSWORD is empty. The init service writes it on first start (docker compose up runs it; see 'docker compose logs init'); or set POSTGRES_PASSWORD in .env, or POSTGRES_PASSWORD_FILE (see README, 'Secrets')." >&2
  exit 78
fi

# A service that hangs is killed and restarted by Docker (platform_services.watchdog); runs have no watchdog.
if [ -n "${DAGSTER_WATCHDOG:-}" ]; then
  python -m platform_services.watchdog "$DAGSTER_WATCHDOG" "$$" &
fi

exec "$@"
