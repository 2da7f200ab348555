#!/usr/bin/env bash
# Load benchmark: annex with 5 extensions (hooks at every point, a middleware, a per-client rate
# limit at a quota the load never reaches, metrics) against bare axum serving the same handler.
#
#   bench/load.sh                      # defaults below; about 2 minutes after the build
#   DURATION=20 ROUNDS=3 bench/load.sh
#
# Builds both servers (release), starts them on loopback (annex against a private PostgreSQL in
# a temporary data directory), then per round drives each in turn with wrk:
#   throughput: THREADS threads, CONNECTIONS connections, DURATION seconds
#   latency:    1 thread, 1 connection, DURATION seconds (the per-request cost, without queueing)
# and prints requests/s, p50 and p99 per server and the ratios, for every round and the best
# round (highest annex/bare throughput ratio). Installs wrk with apt-get when it is missing.
set -euo pipefail

DURATION=${DURATION:-10}         # seconds per measurement
WARMUP=${WARMUP:-2}              # seconds of unmeasured load before each measurement
CONNECTIONS=${CONNECTIONS:-32}   # throughput phase
THREADS=${THREADS:-2}            # wrk threads, throughput phase
ROUNDS=${ROUNDS:-2}
ANNEX_PORT=${ANNEX_PORT:-18080}
BARE_PORT=${BARE_PORT:-18081}
PATH_=/ext/bench_target/ping

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v wrk >/dev/null; then
    echo "wrk is missing; installing it with apt-get" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
        || { echo "cannot install wrk: install it (Debian/Ubuntu: apt-get install wrk) and rerun" >&2; exit 1; }
fi

echo "building (release): annex --features ext-loadtest, example bare_axum" >&2
cargo build --release --quiet --features ext-loadtest --bin annex --example bare_axum
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
annex_bin=$target_dir/release/annex
bare_bin=$target_dir/release/examples/bare_axum

work=$(mktemp -d /tmp/annex-load.XXXXXX)
chmod 755 "$work"  # the private PostgreSQL runs as the postgres user when started as root
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/annex.toml" <<TOML
data_dir = "$work/data"

[server]
bind = "127.0.0.1:$ANNEX_PORT"

[log]
filter = "warn"

[extensions.bench_target]
rate_limit = { per_second = 1000000000, burst = 1000000000, per_client = true }

[extensions.bench_auth]
permissions = ["hooks:global", "hooks:auth"]

[extensions.bench_headers]
permissions = ["hooks:global"]

[extensions.bench_timing]
permissions = ["hooks:global"]

[extensions.bench_observer]
permissions = ["hooks:global"]
TOML

cat >"$work/report.lua" <<'LUA'
wrk.headers["x-user"] = "bench"
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %.0f %.1f %.1f %d %d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99), summary.requests,
        e.connect + e.read + e.write + e.status + e.timeout))
end
LUA

wait_for() {  # url, name, log
    for _ in $(seq 1 600); do
        if curl -fsS -o /dev/null -H 'x-user: bench' "$1"; then return 0; fi
        sleep 0.1
    done
    echo "$2 did not answer at $1; its log:" >&2
    cat "$3" >&2
    exit 1
}

ANNEX_LOADTEST=1 RUST_LOG=warn "$annex_bin" --config "$work/annex.toml" serve >"$work/annex.log" 2>&1 &
pids+=($!)
"$bare_bin" "127.0.0.1:$BARE_PORT" >"$work/bare.log" 2>&1 &
pids+=($!)
wait_for "http://127.0.0.1:$BARE_PORT$PATH_" "bare axum" "$work/bare.log"
wait_for "http://127.0.0.1:$ANNEX_PORT$PATH_" "annex" "$work/annex.log"
# Same body, and the annex request really went through the extensions.
headers=$(curl -fsS -D - -o /dev/null -H 'x-user: bench' "http://127.0.0.1:$ANNEX_PORT$PATH_")
for h in x-bench-seen x-handled-in-us x-ratelimit-remaining; do
    grep -qi "^$h:" <<<"$headers" || { echo "annex answered without $h: the extensions did not run" >&2; exit 1; }
done
[ "$(curl -fsS "http://127.0.0.1:$BARE_PORT$PATH_")" = "$(curl -fsS -H 'x-user: bench' "http://127.0.0.1:$ANNEX_PORT$PATH_")" ] \
    || { echo "the two servers answer different bodies" >&2; exit 1; }

measure() {  # port threads connections → "rps p50 p99 requests errors"
    local url="http://127.0.0.1:$1$PATH_"
    wrk -t"$2" -c"$3" -d"${WARMUP}s" -s "$work/report.lua" "$url" >/dev/null
    wrk -t"$2" -c"$3" -d"${DURATION}s" -s "$work/report.lua" "$url" | sed -n 's/^RESULT //p'
}

row() {  # label "bare..." "annex..."
    read -r brps bp50 bp99 breq berr <<<"$2"
    read -r arps ap50 ap99 areq aerr <<<"$3"
    awk -v l="$1" -v brps="$brps" -v bp50="$bp50" -v bp99="$bp99" -v berr="$berr" \
        -v arps="$arps" -v ap50="$ap50" -v ap99="$ap99" -v aerr="$aerr" 'BEGIN {
        printf "%-28s %10.0f %9.0f %9.0f | %10.0f %9.0f %9.0f | %6.1f%% %+8.0f %+8.0f | %d/%d\n",
            l, brps, bp50, bp99, arps, ap50, ap99, 100 * arps / brps, ap50 - bp50, ap99 - bp99, berr, aerr }'
}

header() {
    printf "%-28s %10s %9s %9s | %10s %9s %9s | %7s %8s %8s | %s\n" "" "bare rps" "p50 µs" "p99 µs" \
        "annex rps" "p50 µs" "p99 µs" "annex/b" "+p50 µs" "+p99 µs" "errors b/a"
}

echo "$(date -u +%FT%TZ)  $(nproc) CPUs  wrk ${DURATION}s (+${WARMUP}s warm-up) per measurement, loopback" >&2
results=()
for round in $(seq 1 "$ROUNDS"); do
    # Alternate who goes first, so a neighbour's burst does not always hit the same server.
    if ((round % 2)); then
        bt=$(measure "$BARE_PORT" "$THREADS" "$CONNECTIONS"); at=$(measure "$ANNEX_PORT" "$THREADS" "$CONNECTIONS")
        bl=$(measure "$BARE_PORT" 1 1); al=$(measure "$ANNEX_PORT" 1 1)
    else
        at=$(measure "$ANNEX_PORT" "$THREADS" "$CONNECTIONS"); bt=$(measure "$BARE_PORT" "$THREADS" "$CONNECTIONS")
        al=$(measure "$ANNEX_PORT" 1 1); bl=$(measure "$BARE_PORT" 1 1)
    fi
    results+=("$bt|$at|$bl|$al")
    echo "round $round done" >&2
done

header
best=0 best_ratio=0
for i in "${!results[@]}"; do
    IFS='|' read -r bt at bl al <<<"${results[$i]}"
    row "round $((i + 1)) throughput (${THREADS}t/${CONNECTIONS}c)" "$bt" "$at"
    row "round $((i + 1)) latency (1t/1c)" "$bl" "$al"
    ratio=$(awk -v b="${bt%% *}" -v a="${at%% *}" 'BEGIN { printf "%d", 100000 * a / b }')
    if ((ratio > best_ratio)); then best_ratio=$ratio best=$i; fi
done
IFS='|' read -r bt at bl al <<<"${results[$best]}"
echo "best round ($((best + 1)) of $ROUNDS):"
row "throughput (${THREADS}t/${CONNECTIONS}c)" "$bt" "$at"
row "latency (1t/1c)" "$bl" "$al"
echo "targets: annex ≥ 85% of bare throughput; ≤ 50 µs added p50"
