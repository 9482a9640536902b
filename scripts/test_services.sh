#!/usr/bin/env bash
# Run a command (the test suite) with the services its tests need, and stop them afterwards.
#
# PostgreSQL: if DAGNOSTICS_TEST_PG_URL is already set, that server is used. Otherwise, when PostgreSQL's
# binaries are installed, a private throwaway cluster is started on a free loopback port (as the `postgres`
# user when running as root, since initdb refuses root) and its URL exported. Without binaries the PostgreSQL
# variants of the store tests skip locally and fail in CI (see tests/store/conftest.py).
set -euo pipefail

start_private_postgres() {
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    [[ -n "$bindir" && -x "$bindir/initdb" ]] || { echo "test_services: PostgreSQL not installed, skipping it" >&2; return 0; }
    PG_DIR=$(mktemp -d /tmp/dagnostics-test-pg.XXXXXX)
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    local run=()
    if [[ $(id -u) == 0 ]]; then
        chown postgres "$PG_DIR"
        run=(runuser -u postgres --)
    fi
    "${run[@]}" "$bindir/initdb" -D "$PG_DIR/data" -A trust -U postgres --no-sync >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    "${run[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $port -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null \
        || { cat "$PG_DIR/server.log" >&2; return 1; }
    PG_CTL=("${run[@]}" "$bindir/pg_ctl" -D "$PG_DIR/data" -m fast stop)
    export DAGNOSTICS_TEST_PG_URL="postgresql+psycopg2://postgres@127.0.0.1:$port/postgres"
    echo "test_services: PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
}

stop_services() {
    if [[ -n "${PG_CTL+x}" ]]; then
        "${PG_CTL[@]}" >/dev/null 2>&1 || true
        rm -rf "$PG_DIR"
    fi
}
trap stop_services EXIT

if [[ -z "${DAGNOSTICS_TEST_PG_URL:-}" ]]; then
    start_private_postgres
fi

"$@"
