#!/bin/sh
# Docker's health check of a Dagster service that has a watchdog (platform_services.watchdog, DAGSTER_WATCHDOG):
# the watchdog checks the service in its own long-lived process and writes its verdict, one
# line, to DAGSTER_HEALTH_FILE; this only reads it. Shell builtins and one `find`: a probe
# starts no Python (docs/decisions.md#health-check-intervals).
#
# Exit 0 when the verdict is "ok" and has not expired; else say what is wrong (Docker keeps it
# in the container's health log: docker inspect) and exit 1. The watchdog sets the file's mtime
# to when the verdict expires, a few of its intervals ahead: a watchdog that died or hangs
# stops renewing it, and the container turns unhealthy.
file=${DAGSTER_HEALTH_FILE:-/tmp/dagster-health}

if ! IFS= read -r verdict 2>/dev/null <"$file"; then
  echo "unhealthy: no verdict in $file yet (the watchdog writes one after each check)"
  exit 1
fi
if [ -z "$(find "$file" -newermt now 2>/dev/null)" ]; then
  echo "unhealthy: the watchdog's verdict has expired (is the watchdog running?); it said: $verdict"
  exit 1
fi
if [ "$verdict" = ok ]; then
  echo healthy
  exit 0
fi
echo "unhealthy: $verdict"
exit 1
