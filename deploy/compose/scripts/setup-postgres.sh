#!/bin/sh
# Create or upgrade Temporal's two PostgreSQL databases (history and visibility) with the
# schema tool shipped in temporalio/admin-tools, which must match the server's version.
# Idempotent: `create` of an existing database fails and is ignored, `setup-schema -v 0.0` is a
# no-op on an initialised database, and `update-schema` applies only the missing versions.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
DB_PORT="${DB_PORT:-5432}"
SCHEMA_DIR=/etc/temporal/schema/postgresql/v12

sql() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "$DB_PORT" "$@"
}

for pair in "temporal:temporal" "temporal_visibility:visibility"; do
  db="${pair%%:*}"
  schema="${pair#*:}"
  echo "schema setup: database $db"
  sql --db "$db" create || echo "database $db exists"
  sql --db "$db" setup-schema -v 0.0
  sql --db "$db" update-schema -d "$SCHEMA_DIR/$schema/versioned"
done
echo "schema setup: done"
