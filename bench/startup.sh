#!/usr/bin/env bash
# Startup benchmark: time from process start to /ready (first run with initdb, then with the
# private PostgreSQL already initialised), and peak RSS of an idle `annex serve`.
# Usage: bench/startup.sh [runs]   (release build: default extensions + the hello example)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release --locked --features ext-hello -q
bin=$PWD/target/release/annex
work=$(mktemp -d /tmp/annex-startup-XXXXXX)
chmod 755 "$work"
# The repository's annex.toml grants the default extensions their permissions, so they all start.
cp annex.toml "$work/"
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
port=18931

now_ms() { date +%s%3N; }

ready_after() { # sets $ms to the time from launch to /ready 200; the server keeps running as $pid
  local t0; t0=$(now_ms)
  (cd "$work" && ANNEX_LOG=warn exec "$bin" serve --bind 127.0.0.1:$port) >/dev/null 2>&1 &
  pid=$!
  until curl -fs -o /dev/null "http://127.0.0.1:$port/ready"; do sleep 0.005; done
  ms=$(( $(now_ms) - t0 ))
}

stop() { kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; }

ready_after; stop
echo "first run (initdb included):     ${ms} ms"
total=0
for i in $(seq 1 "$runs"); do
  ready_after; stop
  echo "run $i (initialised):            ${ms} ms"
  total=$((total + ms))
done
echo "mean over $runs initialised runs: $((total / runs)) ms"

ready_after
sleep 2
for i in $(seq 1 100); do curl -fs -o /dev/null "http://127.0.0.1:$port/ext/hello/ping"; done
sleep 1
echo "idle annex serve: $(grep -E 'VmHWM|VmRSS' /proc/$pid/status | tr -s ' ' | tr '\n' ' ')"
stop
