#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the tests on 127.0.0.1 (trust authentication, data in a
# temp dir) unless one answers already, and prints its URL for MONKEYCI_TEST_POSTGRES_URL.
# As root it runs the server as the `postgres` user. Usage:
#   export MONKEYCI_TEST_POSTGRES_URL=$(bash scripts/test-postgres.sh)
set -euo pipefail
port=${MONKEYCI_TEST_POSTGRES_PORT:-54329}
dir=${MONKEYCI_TEST_POSTGRES_DIR:-/tmp/monkeyci-test-postgres}
url="postgres://postgres@127.0.0.1:$port/postgres"
if psql "$url" -qAtc 'select 1' >/dev/null 2>&1; then
    echo "$url"
    exit 0
fi
as_pg=()
if [ "$(id -u)" = 0 ]; then
    as_pg=(runuser -u postgres --)
fi
if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    "${as_pg[@]}" initdb -D "$dir" -U postgres --auth=trust -E UTF8 >/dev/null
fi
"${as_pg[@]}" pg_ctl -D "$dir" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c max_connections=300" start >/dev/null
psql "$url" -qAtc 'select 1' >/dev/null
echo "$url"
