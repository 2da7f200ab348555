#!/usr/bin/env bash
# CI: the admin API's OpenAPI document against a live server, with schemathesis (every phase,
# stateful included, every check). Builds annex with the example extension, serves it on a
# private PostgreSQL in a temporary data dir with an admin token from the environment, waits
# for /ready, runs schemathesis with the bounds in .ci/schemathesis.toml, stops the server, and
# fails on any failure. Extra arguments go to `st run` (`--max-examples 300` digs deeper).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# schemathesis itself: the pinned version on PATH, else a virtualenv of its own (pip), made once.
version=4.32.5
if command -v st >/dev/null 2>&1 && [ "$(st --version 2>/dev/null)" = "st, version $version" ]; then
  st=st
else
  venv="${XDG_CACHE_HOME:-$HOME/.cache}/annex/schemathesis-$version"
  if [ ! -x "$venv/bin/st" ]; then
    echo "ci: installing schemathesis $version into $venv"
    if ! python3 -m venv "$venv" >/dev/null 2>&1; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3-venv >/dev/null
      fi
      rm -rf "$venv"
      python3 -m venv "$venv"
    fi
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==$version"
  fi
  st="$venv/bin/st"
fi

echo "ci: building annex --features ext-hello"
cargo build --locked --features ext-hello
work=$(mktemp -d /tmp/annex-schemathesis-XXXXXX)
# The private PostgreSQL may run as the `postgres` user, who must reach the data dir.
chmod 755 "$work"
# A copy: a later cargo command may replace target/debug/annex with another feature set.
cp target/debug/annex "$work/annex"
# The default extensions run only with the permissions they declare granted.
cat >"$work/annex.toml" <<'TOML'
[extensions.webhooks]
permissions = ["database", "events:subscribe", "http:outbound"]

[extensions.analytics]
permissions = ["database", "hooks:global"]
TOML

token="schemathesis-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
# GET a URL; prints the body, fails unless the answer is 200.
get() {
  python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode())' "$1" 2>/dev/null
}

pid=
stop() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    wait "$pid" || true
  fi
  rm -rf "$work"
}
trap stop EXIT

(cd "$work" && exec env ANNEX_DATA_DIR="$work/data" ANNEX_ADMIN_TOKEN="$token" ANNEX_LOG=warn \
  ./annex serve --bind "127.0.0.1:$port") >"$work/serve.log" 2>&1 &
pid=$!

ready=
for _ in $(seq 1 300); do
  if ready=$(get "$base/ready"); then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "ci: annex serve exited before it was ready:" >&2
    cat "$work/serve.log" >&2
    exit 1
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "ci: annex serve was not ready within 60 s:" >&2
  cat "$work/serve.log" >&2
  exit 1
fi
echo "ci: schemathesis against $base: $ready"

status=0
# One worker: with two, hypothesis may parse its own source in both threads at once, which
# CPython 3.11 can fail with "SystemError: AST constructor recursion depth mismatch"
# (python/cpython#106905) and schemathesis reports as a runtime error; one worker is as fast here.
(cd "$work" && "$st" --no-color \
  --config-file "$root/.ci/schemathesis.toml" run "$base/api/v1/openapi.json" \
  --url "$base" --header "Authorization: Bearer $token" --workers 1 \
  --seed "${SCHEMATHESIS_SEED:-20261201}" --request-timeout 10 "$@") || status=$?
if [ "$status" -ne 0 ]; then
  echo "ci: schemathesis found problems; the server's log ends:" >&2
  tail -n 50 "$work/serve.log" >&2
fi
exit "$status"
