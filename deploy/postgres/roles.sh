#!/bin/sh
# One-shot, before any Dagster service: make Postgres' roles least-privilege, on a
# fresh volume and on one created by an older stack alike (idempotent).
#
# It connects as the superuser over the server's Unix socket (a volume shared only
# with the postgres service; local connections are trusted there), so the superuser
# needs no password and gets none: it cannot log in over TCP at all. Dagster's
# services connect over TCP as DAGSTER_PG_USER, which owns the Dagster database and
# its objects and nothing more. Reading the data of an older volume, whose superuser
# owned every table, needs only the ownership moved: no row is copied or lost.
set -eu

if [ -n "${DAGSTER_PG_PASSWORD_FILE:-}" ]; then
  DAGSTER_PG_PASSWORD=$(cat "$DAGSTER_PG_PASSWORD_FILE")
fi
: "${DAGSTER_PG_PASSWORD:?postgres-roles: DAGSTER_PG_PASSWORD is empty. The init service writes it on first start (see docker compose logs init); or set POSTGRES_PASSWORD in .env, or POSTGRES_PASSWORD_FILE.}"
: "${POSTGRES_USER:?postgres-roles: POSTGRES_USER (the superuser) is not set}"
: "${POSTGRES_DB:?postgres-roles: POSTGRES_DB is not set}"
: "${DAGSTER_PG_USER:?postgres-roles: DAGSTER_PG_USER is not set}"
if [ "$DAGSTER_PG_USER" = "$POSTGRES_USER" ]; then
  echo "postgres-roles: DAGSTER_PG_USER and POSTGRES_USER are both '$POSTGRES_USER': Dagster must not connect as the superuser. Set POSTGRES_APP_USER in .env to another name (default dagster_app)." >&2
  exit 78
fi

psql() {
  command psql -v ON_ERROR_STOP=1 --no-psqlrc -q -h /var/run/postgresql -U "$POSTGRES_USER" "$@"
}

# Compose starts this with Postgres, not after its health check: wait for the server here.
# Not pg_isready: on a fresh volume the image's entrypoint first runs a temporary server on
# this socket only (listen_addresses=''), to create the database, and stops it again. The
# real server is the one that listens on TCP.
wait_seconds=${POSTGRES_ROLES_WAIT_SECONDS:-120}
tries=0
until [ "$(psql -d postgres -tA -c "SELECT current_setting('listen_addresses') <> ''" 2>/dev/null)" = t ]; do
  tries=$((tries + 1))
  if [ "$tries" -ge $((wait_seconds * 5)) ]; then
    echo "postgres-roles: Postgres did not accept connections as $POSTGRES_USER through /var/run/postgresql within ${wait_seconds} s (see: docker compose logs postgres)" >&2
    exit 1
  fi
  sleep 0.2
done

psql -d postgres -v app="$DAGSTER_PG_USER" -v password="$DAGSTER_PG_PASSWORD" -v db="$POSTGRES_DB" \
  -v superuser="$POSTGRES_USER" <<'SQL'
SELECT set_config('roles.app', :'app', false);
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = current_setting('roles.app')) THEN
    EXECUTE format('CREATE ROLE %I LOGIN', current_setting('roles.app'));
  END IF;
END $$;
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD :'password';
REVOKE pg_read_server_files, pg_write_server_files, pg_execute_server_program FROM :"app";
ALTER DATABASE :"db" OWNER TO :"app";
-- Only Dagster's database is the app's to connect to.
REVOKE CONNECT ON DATABASE postgres FROM PUBLIC;
-- The superuser logs in through the socket only (trusted there); no password, so no TCP login.
ALTER ROLE :"superuser" WITH PASSWORD NULL;
SQL

psql -d "$POSTGRES_DB" -v app="$DAGSTER_PG_USER" <<'SQL'
SELECT set_config('roles.app', :'app', false);
ALTER SCHEMA public OWNER TO :"app";
-- Tables, views and free-standing sequences an older stack's superuser created
-- (a table's own sequences and indexes move with it).
DO $$
DECLARE
  object record;
BEGIN
  FOR object IN
    SELECT c.oid::regclass AS name, c.relkind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND pg_get_userbyid(c.relowner) <> current_setting('roles.app')
    ORDER BY c.relkind = 'S'
  LOOP
    IF object.relkind = 'S' AND EXISTS (
      SELECT FROM pg_depend WHERE objid = object.name::oid AND deptype IN ('a', 'i')
    ) THEN
      CONTINUE;  -- owned by a table column: it moved with the table
    END IF;
    EXECUTE format('ALTER %s %s OWNER TO %I',
      CASE object.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW'
                          WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END,
      object.name, current_setting('roles.app'));
  END LOOP;
END $$;
SQL

echo "postgres-roles: $DAGSTER_PG_USER owns database $POSTGRES_DB (no superuser, no server-file or program access); $POSTGRES_USER logs in through the socket only"
