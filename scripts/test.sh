#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test on SQLite and PostgreSQL.
# Starts the local PostgreSQL if it is installed but not running. With CI=true a missing
# service fails the run instead of skipping its tests.
set -euo pipefail
cd "$(dirname "$0")/.."

export POOL_TEST_POSTGRES_URL="${POOL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

if ! postgres_up && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do postgres_up && break; sleep 1; done
fi
if ! postgres_up; then
    if [ "${CI:-}" = "true" ]; then
        echo "PostgreSQL is not reachable on 127.0.0.1:5432, and CI needs it" >&2
        exit 1
    fi
    echo "PostgreSQL is not reachable: its tests will be skipped (set CI=true to make that an error)"
    unset POOL_TEST_POSTGRES_URL
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
    cargo install cargo-nextest --locked
fi

# Drops the databases the black-box suite created on PostgreSQL (one per test).
drop_test_databases() {
    command -v psql >/dev/null 2>&1 || return 0
    psql "$POOL_TEST_POSTGRES_URL" -Atqc "SELECT datname FROM pg_database WHERE datname LIKE 'pool_e2e_%'" 2>/dev/null |
        while read -r db; do psql "$POOL_TEST_POSTGRES_URL" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null; done
}

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
cargo test --workspace --doc --locked
if [ -n "${POOL_TEST_POSTGRES_URL:-}" ]; then
    # The whole black-box suite once more, every gateway on its own PostgreSQL database.
    drop_test_databases
    POOL_TEST_API_DATABASE=postgres cargo nextest run -p ollama-pool --test api --locked --no-fail-fast
    drop_test_databases
fi

# The web console in a real browser: Debian's Chromium driven by playwright-core (tests/browser).
# The tests start the debug binaries built here (the gateway, and pool-bench for its fake
# upstream); screenshots land in target/screenshots/.
browser_tests() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    if [ "${#missing[@]}" -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing ${missing[*]} for the browser tests"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"; } >/dev/null || true
    fi
    if [ ! -x /usr/bin/chromium ] || ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        if [ "${CI:-}" = "true" ]; then
            echo "the browser tests need /usr/bin/chromium, node and npm, and CI needs them" >&2
            exit 1
        fi
        echo "Chromium or node is missing: the browser tests are skipped (set CI=true to make that an error)"
        return 0
    fi
    # Chinese glyphs, so that the zh-CN screenshots can be read (not needed to pass).
    if command -v fc-list >/dev/null 2>&1 && ! fc-list :lang=zh | grep -q . && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null 2>&1 || true
    fi
    cargo build -p ollama-pool --bins --locked
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error && npm test)
}
browser_tests
