#!/usr/bin/env bash
# Soak: `annex serve` (release, every Cargo feature, the loadtest extensions armed) under a mixed
# load at half its measured throughput for MINUTES minutes, reporting every INTERVAL seconds its
# RSS, open file descriptors, database connections and p99 latency. A resource that grew more
# than LIMIT % from the end of the warm-up to the end is a failure (exit 1).
#
#   bench/soak.sh                        # 10 minutes (2 of warm-up), ~12 min after the build
#   MINUTES=3 WARMUP_MIN=1 bench/soak.sh # a short run
#   ANNEX_BIN=target/release/annex …     # skip the build (the binary must have every feature)
#
# The mix (wrk, one Lua script, weighted): the load-test route through every hook point and a
# middleware (60 %), hello's database read (15 %) and ping (10 %), a guardrails pipeline run
# (normalize → PII guard → mock provider → mask, 10 %), the admin API's extension list (5 %).
# Besides: a config change every 10 s, each an `extension.config_changed` event delivered by
# the webhooks extension to a local receiver (so the outbox, the relay and the delivery worker
# run all along).
#
# Growth is judged per resource: RSS, open fds and database connections compare the last sample
# with the first after warm-up (counts get a slack of 1, so 12 → 13 connections is not a 5 %
# failure); p99 compares the median of the last three samples with the median of the first three
# after warm-up (a single noisy minute on a shared machine decides nothing). Loopback only.
set -euo pipefail

MINUTES=${MINUTES:-10}
WARMUP_MIN=${WARMUP_MIN:-2}
INTERVAL=${INTERVAL:-60}          # seconds per sample
LIMIT=${LIMIT:-5}                 # % growth allowed after warm-up
CONNECTIONS=${CONNECTIONS:-16}
PORT=${PORT:-18090}
RECEIVER_PORT=${RECEIVER_PORT:-18091}
for v in MINUTES WARMUP_MIN INTERVAL LIMIT CONNECTIONS; do
    [[ ${!v} =~ ^[0-9]+$ ]] || { echo "$v must be a non-negative integer (got '${!v}')" >&2; exit 2; }
done
((MINUTES > WARMUP_MIN)) || { echo "MINUTES ($MINUTES) must exceed WARMUP_MIN ($WARMUP_MIN)" >&2; exit 2; }
((MINUTES - WARMUP_MIN >= 2)) || { echo "need at least 2 samples after warm-up" >&2; exit 2; }

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
if ! command -v wrk >/dev/null; then
    echo "wrk is missing; installing it with apt-get" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
        || { echo "cannot install wrk (Debian/Ubuntu: apt-get install wrk)" >&2; exit 1; }
fi
command -v psql >/dev/null || { echo "psql is needed to count database connections (apt-get install postgresql-client)" >&2; exit 1; }

if [ -n "${ANNEX_BIN:-}" ]; then
    bin=$ANNEX_BIN  # a binary built with --all-features already
else
    echo "building (release, --all-features)" >&2
    cargo build --release --locked --quiet --all-features --bin annex
    target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    bin=$target_dir/release/annex
fi

work=$(mktemp -d /tmp/annex-soak.XXXXXX)
chmod 755 "$work"  # the private PostgreSQL runs as the postgres user when started as root
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
token=soak-admin-token-$$

cat >"$work/annex.toml" <<TOML
data_dir = "$work/data"

[server]
bind = "127.0.0.1:$PORT"
admin_token = "$token"

[log]
filter = "warn"

[extensions.webhooks]
permissions = ["database", "events:subscribe", "http:outbound"]
config = { allow_private_targets = true, poll_interval_ms = 200 }

[extensions.analytics]
permissions = ["database", "hooks:global"]

[extensions.hello]
permissions = ["database"]

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

# The webhook receiver: answers 200 to every POST and counts them.
cat >"$work/receiver.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    count = 0
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        H.count += 1
        self.send_response(200); self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):
        body = str(H.count).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$work/receiver.py" "$RECEIVER_PORT" &
pids+=($!)

(cd "$work" && ANNEX_LOADTEST=1 exec "$bin" serve --config "$work/annex.toml") >"$work/annex.log" 2>&1 &
annex_pid=$!
pids+=("$annex_pid")
base=http://127.0.0.1:$PORT
for _ in $(seq 1 1500); do
    curl -fsS -o /dev/null "$base/ready" 2>/dev/null && break
    kill -0 "$annex_pid" 2>/dev/null || { echo "annex exited; its log:" >&2; cat "$work/annex.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS -o /dev/null "$base/ready" || { echo "annex is not ready; its log:" >&2; cat "$work/annex.log" >&2; exit 1; }

api() {  # method path [json]
    curl -fsS -X "$1" -H 'x-user: soak' -H "authorization: Bearer $token" -H 'content-type: application/json' \
        ${3:+--data "$3"} "$base$2" >/dev/null
}
api PUT /api/v1/pipelines/soak '{"pre": ["guardrails.normalize_text"], "validators": [{"stage": "guardrails.pii_guard"}],
    "providers": [{"stage": "guardrails.mock"}], "post": ["guardrails.mask_pii"]}'
curl -fsS -X POST -H "authorization: Bearer $token" -H 'content-type: application/json' \
    --data "{\"url\": \"http://127.0.0.1:$RECEIVER_PORT/hook\", \"events\": [\"extension.*\"], \"secret\": \"a-long-enough-soak-secret\"}" \
    "$base/ext/webhooks/subscriptions" >/dev/null
curl -fsS -X POST -H 'x-user: soak' -H 'content-type: application/json' --data '{"name": "soak"}' "$base/ext/hello/greetings" >/dev/null || true

# The mix; `delay` paces each connection (set by DELAY_MS) to hold the target rate.
cat >"$work/mix.lua" <<LUA
local token = "$token"
local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
local n = 0
request = function()
    n = n + 1
    local r = n % 20
    if r < 12 then
        return wrk.format("GET", "/ext/bench_target/ping", { ["x-user"] = "soak" })
    elseif r < 15 then
        return wrk.format("GET", "/ext/hello/greetings", { ["x-user"] = "soak" })
    elseif r < 17 then
        return wrk.format("GET", "/ext/hello/ping", { ["x-user"] = "soak" })
    elseif r < 19 then
        return wrk.format("POST", "/pipelines/soak", { ["content-type"] = "application/json", ["x-user"] = "soak" },
            '{"text": "Call me at +1 555 0100, I am Ann"}')
    else
        return wrk.format("GET", "/api/v1/extensions", { ["authorization"] = "Bearer " .. token, ["x-user"] = "soak" })
    end
end
delay = function() return delay_ms end
done = function(summary, latency, requests)
    local e = summary.errors
    io.write(string.format("RESULT %.0f %.1f %.1f %d %d %d\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50), latency:percentile(99),
        summary.requests, e.connect + e.read + e.write + e.timeout, e.status))
end
LUA

run_wrk() {  # seconds delay_ms → "rps p50_us p99_us requests errors non2xx"
    DELAY_MS=$2 wrk -t2 -c"$CONNECTIONS" -d"$1s" -s "$work/mix.lua" "$base" | sed -n 's/^RESULT //p'
}

rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$annex_pid/status"; }
fds() { ls "/proc/$annex_pid/fd" | wc -l; }
db_conns() {
    PGPASSWORD=$(cat "$work/data/postgres.password") psql -h "$work/data/postgres" -U annex -d postgres -tAc \
        "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()"
}

echo "measuring the mix's throughput (10 s, $CONNECTIONS connections, no pacing)" >&2
read -r max_rps _ _ _ _ _ <<<"$(run_wrk 10 0)"
target=$((max_rps / 2))
((target > 0)) || { echo "the throughput run answered nothing; log:" >&2; tail -50 "$work/annex.log" >&2; exit 1; }
# Each connection sends one request then waits DELAY_MS: C / delay ≈ the target rate.
delay_ms=$(awk -v c="$CONNECTIONS" -v t="$target" 'BEGIN { d = 1000 * c / t; printf "%d", (d < 1 ? 1 : d) }')
echo "$(date -u +%FT%TZ)  max $max_rps req/s → soak at ~$target req/s ($CONNECTIONS connections, ${delay_ms} ms pacing), $MINUTES × ${INTERVAL}s, warm-up $WARMUP_MIN" >&2

# Config changes every 10 s, each one event for the webhooks.
(
    i=0
    while kill -0 "$annex_pid" 2>/dev/null; do
        i=$((i + 1))
        api PUT /api/v1/extensions/webhooks/config \
            "{\"allow_private_targets\": true, \"poll_interval_ms\": $((200 + i % 2))}" || true
        sleep 10
    done
) &
pids+=($!)

printf "%-6s %8s %8s %8s %6s %6s %8s %8s %s\n" minute "req/s" "p50 ms" "p99 ms" errors non2xx "RSS MiB" "fds" "db conns"
declare -a s_rss s_fds s_conns s_p99
for m in $(seq 1 "$MINUTES"); do
    read -r rps p50 p99 _ errors non2xx <<<"$(run_wrk "$INTERVAL" "$delay_ms")"
    kill -0 "$annex_pid" 2>/dev/null || { echo "annex died; log:" >&2; tail -50 "$work/annex.log" >&2; exit 1; }
    s_rss[m]=$(rss_kib) s_fds[m]=$(fds) s_conns[m]=$(db_conns) s_p99[m]=$p99
    printf "%-6s %8s %8.2f %8.2f %6s %6s %8.1f %8s %s\n" "$m$( ((m <= WARMUP_MIN)) && echo '*')" "$rps" \
        "$(awk -v v="$p50" 'BEGIN { print v / 1000 }')" "$(awk -v v="$p99" 'BEGIN { print v / 1000 }')" \
        "$errors" "$non2xx" "$(awk -v v="${s_rss[m]}" 'BEGIN { print v / 1024 }')" "${s_fds[m]}" "${s_conns[m]}"
done
echo "(* warm-up; webhook deliveries received: $(curl -fsS "http://127.0.0.1:$RECEIVER_PORT/" || echo '?'))"

median3() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
first=$((WARMUP_MIN + 1))
p99_first=$(median3 "${s_p99[@]:first:3}")
p99_last=$(median3 "${s_p99[@]: -3}")
failed=0
judge() {  # name before after slack
    awk -v n="$1" -v b="$2" -v a="$3" -v s="$4" -v lim="$LIMIT" 'BEGIN {
        g = b > 0 ? 100 * (a - b) / b : 0
        bad = (a > b * (1 + lim / 100) + s)
        printf "%-16s %10.1f → %10.1f  %+6.1f %%  %s\n", n, b, a, g, bad ? "GREW" : "ok"
        exit bad }' || failed=1
}
echo "growth after warm-up (limit $LIMIT %):"
judge "RSS KiB" "${s_rss[first]}" "${s_rss[MINUTES]}" 0
judge "open fds" "${s_fds[first]}" "${s_fds[MINUTES]}" 1
judge "db connections" "${s_conns[first]}" "${s_conns[MINUTES]}" 1
judge "p99 µs (median3)" "$p99_first" "$p99_last" 0
if ((failed)); then
    echo "soak: FAILED (a resource grew beyond $LIMIT %)"
    exit 1
fi
echo "soak: passed"
