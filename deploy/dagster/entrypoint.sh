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

# A code server reports its image to the runs it plans (they start from it). Its release's tag
# when the release env file (make deploy / make up) names this very image's content id: that tag
# exists and never moves. Otherwise the location's own tag, as compose builds it.
if [ -n "${DAGSTER_LOCATION_IMAGE:-}" ]; then
  release=$(cat "${DAGSTER_RELEASE_ID_FILE:-/opt/dagster/release-id}" 2>/dev/null || true)
  if [ -n "$release" ] && [ "${DAGSTER_RELEASE:-}" = "$release" ]; then
    export DAGSTER_CURRENT_IMAGE="${DAGSTER_LOCATION_IMAGE%:*}:$release"
  else
    export DAGSTER_CURRENT_IMAGE="$DAGSTER_LOCATION_IMAGE"
    if [ -n "${DAGSTER_RELEASE:-}" ]; then
      echo "dagster: this image (release ${release:-unknown}) is not the recorded release ${DAGSTER_RELEASE}: it was built without make; runs use ${DAGSTER_LOCATION_IMAGE}. make deploy LOCATION=${DAGSTER_LOCATION_NAME:-<name>} records it." >&2
    fi
  fi
fi

# A service that hangs is killed and restarted by Docker (platform_services.watchdog); runs have no watchdog.
if [ -n "${DAGSTER_WATCHDOG:-}" ]; then
  python -m platform_services.watchdog "$DAGSTER_WATCHDOG" "$$" &
fi

exec "$@"
