#!/bin/sh
# Backups of the deployment's state: the Dagster database and the exports volume.
#
#   backup.sh once DIR         one backup into DIR/<UTC time>/, whose path it prints
#   backup.sh daily DIR        one every DAGSTER_BACKUP_INTERVAL_SECONDS (86400), keeping the
#                              newest DAGSTER_BACKUP_KEEP (7); DAGSTER_BACKUP_KEEP=0 turns it off
#   backup.sh verify BACKUP [NAME]    check a backup, change nothing (messages call it NAME)
#   backup.sh restore BACKUP [NAME]   check it, then replace the database and the exports with it
#
# A backup is a folder: dagster.dump (pg_dump, custom format: one consistent snapshot),
# exports.tar.gz, manifest.json and SHA256SUMS. It is written as .<name>.partial and renamed
# when complete, so a folder with a name is whole. It runs in the postgres image and reaches
# the server through its Unix socket as the superuser (trusted there): no network, no password.
# Restore expects the Dagster services stopped (make restore does that).
set -eu

EXPORTS=/opt/dagster/exports
SOCKET=/var/run/postgresql
: "${POSTGRES_USER:?backup: POSTGRES_USER (the superuser) is not set}"
: "${POSTGRES_DB:?backup: POSTGRES_DB is not set}"
: "${DAGSTER_PG_USER:?backup: DAGSTER_PG_USER (the role that owns the database) is not set}"

fail() {
  echo "backup: $*" >&2
  exit 1
}

psql() {
  command psql -v ON_ERROR_STOP=1 --no-psqlrc -q -h "$SOCKET" -U "$POSTGRES_USER" "$@"
}

backup() {
  dir=$1
  name=$(date -u +%Y-%m-%dT%H%M%SZ)
  partial="$dir/.$name.partial"
  [ -e "$dir/$name" ] && fail "$dir/$name exists already"
  mkdir -p "$partial"
  trap 'rm -rf "$partial"' EXIT
  pg_dump -h "$SOCKET" -U "$POSTGRES_USER" -d "$POSTGRES_DB" --format=custom --file "$partial/dagster.dump"
  tar -C "$EXPORTS" -czf "$partial/exports.tar.gz" .
  runs=$(psql -d "$POSTGRES_DB" -At -c 'SELECT count(*) FROM runs')
  cat > "$partial/manifest.json" <<EOF
{
  "created": "$name",
  "database": "$POSTGRES_DB",
  "runs": $runs,
  "pg_dump": "$(pg_dump --version)",
  "bytes": {"dagster.dump": $(stat -c %s "$partial/dagster.dump"), "exports.tar.gz": $(stat -c %s "$partial/exports.tar.gz")}
}
EOF
  (cd "$partial" && sha256sum dagster.dump exports.tar.gz manifest.json > SHA256SUMS)
  mv "$partial" "$dir/$name"
  trap - EXIT
  echo "$dir/$name"
}

verify() {
  b=$1 shown=${2:-$1}
  [ -d "$b" ] || fail "no backup at $shown (make restore BACKUP=backups/<time>)"
  for file in SHA256SUMS manifest.json dagster.dump exports.tar.gz; do
    [ -f "$b/$file" ] || fail "$shown is incomplete: $file is missing. Nothing was changed."
  done
  (cd "$b" && sha256sum --check --quiet --strict SHA256SUMS >/dev/null 2>&1) ||
    fail "$shown is corrupt: a file does not match its checksum in SHA256SUMS. Nothing was changed; use another backup."
  pg_restore --list "$b/dagster.dump" >/dev/null 2>&1 ||
    fail "$shown/dagster.dump is not a pg_dump archive. Nothing was changed."
  tar -tzf "$b/exports.tar.gz" >/dev/null 2>&1 || fail "$shown/exports.tar.gz is not readable. Nothing was changed."
}

restore() {
  verify "$1" "${2:-$1}"
  # The database is recreated empty, owned by Dagster's role, and filled from the dump.
  psql -d postgres -v db="$POSTGRES_DB" -v owner="$DAGSTER_PG_USER" <<'SQL'
DROP DATABASE IF EXISTS :"db" WITH (FORCE);
CREATE DATABASE :"db" OWNER :"owner";
SQL
  pg_restore -h "$SOCKET" -U "$POSTGRES_USER" -d "$POSTGRES_DB" --no-owner --role="$DAGSTER_PG_USER" \
    --exit-on-error "$1/dagster.dump"
  find "$EXPORTS" -mindepth 1 -delete
  tar -C "$EXPORTS" -xzf "$1/exports.tar.gz"
  echo "backup: restored ${2:-$1} ($(psql -d "$POSTGRES_DB" -At -c 'SELECT count(*) FROM runs') runs)"
}

daily() {
  dir=$1
  keep=${DAGSTER_BACKUP_KEEP:-7}
  interval=${DAGSTER_BACKUP_INTERVAL_SECONDS:-86400}
  case "$keep$interval" in *[!0-9]*) fail "DAGSTER_BACKUP_KEEP and DAGSTER_BACKUP_INTERVAL_SECONDS must be whole numbers" ;; esac
  if [ "$keep" -eq 0 ]; then
    echo "backup: daily backups are off (DAGSTER_BACKUP_KEEP=0)"
    exec sleep infinity
  fi
  echo "backup: a backup into $dir every ${interval}s, keeping the newest $keep"
  while :; do
    # A failed backup (Postgres down) is logged and tried again at the next interval.
    if made=$(backup "$dir"); then
      echo "backup: wrote $made"
      # Names sort by time: delete all but the newest $keep.
      # shellcheck disable=SC2012 # the names are this script's own timestamps: nothing for ls to mangle
      ls -1d "$dir"/20* 2>/dev/null | sort | head -n "-$keep" | while read -r old; do rm -rf "$old"; done
    fi
    touch /tmp/backup.alive
    sleep "$interval"
  done
}

case "${1:-}" in
  once) backup "${2:?usage: backup.sh once DIR}" ;;
  daily) daily "${2:?usage: backup.sh daily DIR}" ;;
  verify) verify "${2:?usage: backup.sh verify BACKUP [NAME]}" "${3:-$2}" && echo "backup: ${3:-$2} is complete and intact" ;;
  restore) restore "${2:?usage: backup.sh restore BACKUP [NAME]}" "${3:-$2}" ;;
  *) fail "usage: backup.sh once DIR | daily DIR | verify BACKUP | restore BACKUP" ;;
esac
