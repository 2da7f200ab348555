#!/usr/bin/env bash
# Load benchmark: annex against bare axum serving the same handler, plus the cost of extensions
# at scale (idle RSS with 1 and 50 generated extensions, start to /ready with 50).
#
#   bench/load.sh                          # both profiles, 3 rounds, scale rows; ~6 min after the build
#   PROFILE=plain bench/load.sh            # one profile only
#   DURATION=20 ROUNDS=5 SCALE=0 bench/load.sh
#
# Profiles (the annex side; bare axum is the same in both):
#   plain  the load-test extensions inert: the request crosses what annex does for every extension
#          route (request id, gate, metrics, quotas) and bench_target's per-client rate limit
#   full   every hook point, a middleware, the rate limit (ANNEX_LOADTEST=1 arms the extensions)
#
# Builds the servers (release) and serves them on loopback (annex against a private PostgreSQL in
# a temporary data directory). The server under test runs on CPU SERVER_CPU and wrk on
# LOADGEN_CPU (taskset), so the load generator does not steal the server's core. Per round, both
# servers are measured side by side (the order alternates between rounds), each phase after an
# unmeasured warm-up:
#   throughput: THREADS threads, CONNECTIONS connections, DURATION seconds
#   latency:    1 thread, 1 connection, DURATION seconds (the per-request cost, without queueing)
# For every phase: requests/s, p50, p99 and the server's CPU time per request (utime + stime from
# /proc/<pid>/stat before and after the phase, divided by the requests wrk completed). Reports
# every round, the median round (by annex/bare throughput) and the spread, then a summary table.
# Installs wrk with apt-get when it is missing.
set -euo pipefail

PROFILE=${PROFILE:-both}         # plain | full | both | none (only the scale rows)
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}         # seconds per measurement
WARMUP=${WARMUP:-2}              # seconds of unmeasured load before each measurement
CONNECTIONS=${CONNECTIONS:-32}   # throughput phase
THREADS=${THREADS:-2}            # wrk threads, throughput phase
SCALE=${SCALE:-1}                # 1: also the RSS and start-up rows (1 and 50 generated extensions)
STARTS=${STARTS:-3}              # initialised starts measured per scale binary (median reported)
SERVER_CPU=${SERVER_CPU:-0}      # taskset CPU of the server under test
LOADGEN_CPU=${LOADGEN_CPU:-1}    # taskset CPU of wrk
ANNEX_PORT=${ANNEX_PORT:-18080}
BARE_PORT=${BARE_PORT:-18081}
SCALE_PORT=${SCALE_PORT:-18082}
PATH_=/ext/bench_target/ping

case $PROFILE in
    plain | full) profiles=("$PROFILE") ;;
    both) profiles=(plain full) ;;
    none) profiles=() ;;  # only the scale rows (SCALE=1)
    *) echo "PROFILE must be plain, full, both or none (got '$PROFILE')" >&2; exit 2 ;;
esac
for v in ROUNDS DURATION WARMUP CONNECTIONS THREADS STARTS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer (got '${!v}')" >&2; exit 2; }
done

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if ! command -v wrk >/dev/null; then
    echo "wrk is missing; installing it with apt-get" >&2
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } \
        || { echo "cannot install wrk: install it (Debian/Ubuntu: apt-get install wrk) and rerun" >&2; exit 1; }
fi

pin_server=() pin_load=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then
    pin_server=(taskset -c "$SERVER_CPU") pin_load=(taskset -c "$LOADGEN_CPU")
    pinning="server on CPU $SERVER_CPU, wrk on CPU $LOADGEN_CPU"
else
    echo "warning: no taskset or fewer than 2 CPUs: server and wrk are not pinned" >&2
    pinning="not pinned"
fi

echo "building (release): annex --features ext-loadtest, example bare_axum" >&2
cargo build --release --locked --quiet --features ext-loadtest --bin annex --example bare_axum
if ((SCALE)); then
    echo "building (release): examples bench_ext_1, bench_ext_50 (no default extensions)" >&2
    cargo build --release --locked --quiet --no-default-features --example bench_ext_1 --example bench_ext_50
fi
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
annex_bin=$target_dir/release/annex
bare_bin=$target_dir/release/examples/bare_axum
clk_tck=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/annex-load.XXXXXX)
chmod 755 "$work"  # the private PostgreSQL runs as the postgres user when started as root
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

write_config() {  # file data_dir port profile
    cat >"$1" <<TOML
data_dir = "$2"

[server]
bind = "127.0.0.1:$3"

[log]
filter = "warn"
TOML
    if [ "$4" = scale ]; then return; fi
    cat >>"$1" <<TOML

[extensions.bench_target]
rate_limit = { per_second = 1000000000, burst = 1000000000, per_client = true }
TOML
    if [ "$4" = full ]; then
        cat >>"$1" <<TOML

[extensions.bench_auth]
permissions = ["hooks:global", "hooks:auth"]

[extensions.bench_headers]
permissions = ["hooks:global"]

[extensions.bench_timing]
permissions = ["hooks:global"]

[extensions.bench_observer]
permissions = ["hooks:global"]
TOML
    fi
}

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

now_ms() { date +%s%3N; }

wait_for() {  # url, name, log [tries of 20 ms]
    for _ in $(seq 1 "${4:-3000}"); do
        if curl -fsS -o /dev/null -H 'x-user: bench' "$1" 2>/dev/null; then return 0; fi
        sleep 0.02
    done
    echo "$2 did not answer at $1; its log:" >&2
    cat "$3" >&2
    exit 1
}

stop() {  # pid: SIGTERM, then SIGKILL after 10 s
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 1 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

cpu_ticks() {  # pid → utime + stime (clock ticks); the command name may hold spaces
    sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

measure() {  # port pid threads connections → "rps p50 p99 requests errors cpu_us_per_request"
    local url="http://127.0.0.1:$1$PATH_" before after result
    "${pin_load[@]}" wrk -t"$3" -c"$4" -d"${WARMUP}s" -s "$work/report.lua" "$url" >/dev/null
    before=$(cpu_ticks "$2")
    result=$("${pin_load[@]}" wrk -t"$3" -c"$4" -d"${DURATION}s" -s "$work/report.lua" "$url" | sed -n 's/^RESULT //p')
    after=$(cpu_ticks "$2")
    [ -n "$result" ] || { echo "wrk reported nothing for $url" >&2; exit 1; }
    awk -v r="$result" -v b="$before" -v a="$after" -v hz="$clk_tck" 'BEGIN {
        split(r, f, " "); printf "%s %.1f\n", r, f[4] ? (a - b) * 1e6 / hz / f[4] : 0 }'
}

row() {  # label "bare..." "annex..."
    read -r brps bp50 bp99 _ berr bcpu <<<"$2"
    read -r arps ap50 ap99 _ aerr acpu <<<"$3"
    awk -v l="$1" -v brps="$brps" -v bp50="$bp50" -v bp99="$bp99" -v berr="$berr" -v bcpu="$bcpu" \
        -v arps="$arps" -v ap50="$ap50" -v ap99="$ap99" -v aerr="$aerr" -v acpu="$acpu" 'BEGIN {
        printf "%-24s %8.0f %6.0f %6.0f %6.1f | %8.0f %6.0f %6.0f %6.1f | %6.1f%% %+6.0f %+6.0f %5.2f | %d/%d\n",
            l, brps, bp50, bp99, bcpu, arps, ap50, ap99, acpu,
            100 * arps / brps, ap50 - bp50, ap99 - bp99, bcpu ? acpu / bcpu : 0, berr, aerr }'
}

header() {
    printf "%-24s %8s %6s %6s %6s | %8s %6s %6s %6s | %7s %6s %6s %5s | %s\n" "$1" "bare rps" "p50" "p99" "cpu" \
        "annex" "p50" "p99" "cpu" "a/b rps" "+p50" "+p99" "cpu/" "errors b/a"
}

median_of() {  # numbers… → the median (lower middle for an even count)
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

range_of() {  # numbers… → "min–max"
    printf '%s\n' "$@" | sort -g | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'
}

"${pin_server[@]}" "$bare_bin" "127.0.0.1:$BARE_PORT" >"$work/bare.log" 2>&1 &
bare_pid=$!
pids+=("$bare_pid")
wait_for "http://127.0.0.1:$BARE_PORT$PATH_" "bare axum" "$work/bare.log"

echo "$(date -u +%FT%TZ)  $(nproc) CPUs  $pinning  wrk ${DURATION}s (+${WARMUP}s warm-up) per measurement, $ROUNDS rounds, loopback" >&2
declare -A summary
for profile in "${profiles[@]}"; do
    write_config "$work/annex-$profile.toml" "$work/data" "$ANNEX_PORT" "$profile"
    armed=0
    if [ "$profile" = full ]; then armed=1; fi
    ANNEX_LOADTEST=$armed RUST_LOG=warn "${pin_server[@]}" "$annex_bin" --config "$work/annex-$profile.toml" serve \
        >"$work/annex-$profile.log" 2>&1 &
    annex_pid=$!
    pids+=("$annex_pid")
    wait_for "http://127.0.0.1:$ANNEX_PORT$PATH_" "annex ($profile)" "$work/annex-$profile.log"
    # Same body; the rate limit always ran; the hooking extensions ran exactly when armed.
    headers=$(curl -fsS -D - -o /dev/null -H 'x-user: bench' "http://127.0.0.1:$ANNEX_PORT$PATH_")
    grep -qi '^x-ratelimit-remaining:' <<<"$headers" \
        || { echo "annex ($profile) answered without x-ratelimit-remaining: the rate limit did not run" >&2; exit 1; }
    for h in x-bench-seen x-handled-in-us; do
        if grep -qi "^$h:" <<<"$headers"; then seen=1; else seen=0; fi
        ((seen == armed)) || { echo "annex ($profile): header $h present=$seen, expected $armed" >&2; exit 1; }
    done
    [ "$(curl -fsS "http://127.0.0.1:$BARE_PORT$PATH_")" = "$(curl -fsS -H 'x-user: bench' "http://127.0.0.1:$ANNEX_PORT$PATH_")" ] \
        || { echo "the two servers answer different bodies" >&2; exit 1; }

    results=()
    for round in $(seq 1 "$ROUNDS"); do
        # Alternate who goes first, so a neighbour's burst does not always hit the same server.
        if ((round % 2)); then
            bt=$(measure "$BARE_PORT" "$bare_pid" "$THREADS" "$CONNECTIONS")
            at=$(measure "$ANNEX_PORT" "$annex_pid" "$THREADS" "$CONNECTIONS")
            bl=$(measure "$BARE_PORT" "$bare_pid" 1 1); al=$(measure "$ANNEX_PORT" "$annex_pid" 1 1)
        else
            at=$(measure "$ANNEX_PORT" "$annex_pid" "$THREADS" "$CONNECTIONS")
            bt=$(measure "$BARE_PORT" "$bare_pid" "$THREADS" "$CONNECTIONS")
            al=$(measure "$ANNEX_PORT" "$annex_pid" 1 1); bl=$(measure "$BARE_PORT" "$bare_pid" 1 1)
        fi
        results+=("$bt|$at|$bl|$al")
        echo "$profile: round $round of $ROUNDS done" >&2
    done
    stop "$annex_pid"

    echo
    echo "== profile $profile (µs; cpu = server CPU µs per request; a/b and cpu/ = annex ÷ bare) =="
    header ""
    ratios=() p50s=() cpus=() lcpus=()
    for i in "${!results[@]}"; do
        IFS='|' read -r bt at bl al <<<"${results[$i]}"
        row "round $((i + 1)) ${THREADS}t/${CONNECTIONS}c" "$bt" "$at"
        row "round $((i + 1)) 1t/1c" "$bl" "$al"
        read -r brps _ _ _ _ bcpu <<<"$bt"; read -r arps _ _ _ _ acpu <<<"$at"
        read -r _ blp50 _ _ _ blcpu <<<"$bl"; read -r _ alp50 _ _ _ alcpu <<<"$al"
        ratios+=("$(awk -v a="$arps" -v b="$brps" 'BEGIN { printf "%.1f", 100 * a / b }')")
        p50s+=("$(awk -v a="$alp50" -v b="$blp50" 'BEGIN { printf "%.0f", a - b }')")
        cpus+=("$(awk -v a="$acpu" -v b="$bcpu" 'BEGIN { printf "%.2f", b ? a / b : 0 }')")
        lcpus+=("$(awk -v a="$alcpu" -v b="$blcpu" 'BEGIN { printf "%.2f", b ? a / b : 0 }')")
    done
    median_ratio=$(median_of "${ratios[@]}")
    for i in "${!ratios[@]}"; do
        if [ "${ratios[$i]}" = "$median_ratio" ]; then med=$i; break; fi
    done
    IFS='|' read -r bt at bl al <<<"${results[$med]}"
    echo "median round ($((med + 1)) of $ROUNDS, by annex/bare throughput):"
    row "${THREADS}t/${CONNECTIONS}c" "$bt" "$at"
    row "1t/1c" "$bl" "$al"
    echo "spread over $ROUNDS rounds: a/b rps $(range_of "${ratios[@]}") %; +p50 at 1c $(range_of "${p50s[@]}") µs;" \
        "cpu annex÷bare $(range_of "${cpus[@]}") (${THREADS}t/${CONNECTIONS}c), $(range_of "${lcpus[@]}") (1t/1c)"
    summary[$profile.ratio]="${ratios[$med]} %|$(range_of "${ratios[@]}") %"
    summary[$profile.p50]="$(awk -v v="${p50s[$med]}" 'BEGIN { printf "%+d", v }') µs|$(range_of "${p50s[@]}") µs"
    summary[$profile.cpu]="${cpus[$med]}|$(range_of "${cpus[@]}")"
    read -r _ _ _ _ _ bcpu <<<"$bt"; read -r _ _ _ _ _ acpu <<<"$at"
    summary[$profile.cpuabs]="$acpu / $bcpu µs"
done

if ((SCALE)); then
    # Idle RSS of the annex process (its PostgreSQL is separate processes) after /ready and a few
    # requests; start to /ready: first start (initdb + migrations), then STARTS initialised ones.
    scale_run() {  # n → sets first_ms, start_ms (median), rss_kib
        local bin=$target_dir/release/examples/bench_ext_$1 dir=$work/scale-$1 t0 pid times=()
        mkdir -p "$dir"
        write_config "$dir/annex.toml" "$dir/data" "$SCALE_PORT" scale
        for i in $(seq 0 "$STARTS"); do
            t0=$(now_ms)
            RUST_LOG=warn "$bin" --config "$dir/annex.toml" serve >"$dir/annex.log" 2>&1 &
            pid=$!
            pids+=("$pid")
            wait_for "http://127.0.0.1:$SCALE_PORT/ready" "bench_ext_$1" "$dir/annex.log"
            times+=($(($(now_ms) - t0)))
            if ((i == STARTS)); then
                for _ in $(seq 1 20); do curl -fsS -o /dev/null "http://127.0.0.1:$SCALE_PORT/ext/gen_00/ping"; done
                sleep 2
                rss_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
            fi
            stop "$pid"
        done
        first_ms=${times[0]}
        start_ms=$(median_of "${times[@]:1}")
        echo "bench_ext_$1: start to /ready: first ${first_ms} ms (initdb + migrations), initialised ${times[*]:1} ms; idle RSS $rss_kib KiB" >&2
    }
    echo "scale: 1 and 50 generated extensions" >&2
    scale_run 1; rss1=$rss_kib start1=$start_ms
    scale_run 50; rss50=$rss_kib start50=$start_ms first50=$first_ms
    echo
    echo "== scale (generated extensions: a route and a migration each; annex process only) =="
    echo "idle RSS: 1 extension $((rss1 / 1024)) MiB, 50 extensions $((rss50 / 1024)) MiB"
    echo "start to /ready, initialised (median of $STARTS): 1 extension $start1 ms, 50 extensions $start50 ms" \
        "(first start with 50, initdb + 50 migrations: $first50 ms)"
    summary[rss]="$(awk -v a="$rss50" -v b="$rss1" 'BEGIN { printf "%.0f KiB", (a - b) / 49 }')|$((rss1 / 1024)) → $((rss50 / 1024)) MiB"
    summary[start]="$start50 ms|first $first50 ms; 1 ext. $start1 ms"
fi

cell() { local v=${summary[$1]:-n/a|}; printf '%s' "${v%%|*}"; }
spread() { local v=${summary[$1]:-|}; printf '%s' "${v#*|}"; }
pad() {  # text width → the text padded to width characters (printf pads bytes, not UTF-8 characters)
    local n
    n=$(printf '%s' "$1" | LC_ALL=C awk '{ gsub(/[\200-\277]/, ""); print length($0) }')
    printf '%s%*s' "$1" $(($2 > n ? $2 - n : 0)) ''
}
line() { echo "| $(pad "$1" 40) | $(pad "$2" 12) | $(pad "$3" 30) | $(pad "$4" 8) |"; }
echo
echo "== summary (median round of $ROUNDS; $pinning) =="
line "measure" "median" "spread over rounds / detail" "target"
echo "|------------------------------------------|--------------|--------------------------------|----------|"
line "plain: annex/bare throughput (${THREADS}t/${CONNECTIONS}c)" "$(cell plain.ratio)" "$(spread plain.ratio)" "≥ 85 %"
line "full: annex/bare throughput (${THREADS}t/${CONNECTIONS}c)" "$(cell full.ratio)" "$(spread full.ratio)" "≥ 85 %"
line "plain: added p50, 1 connection" "$(cell plain.p50)" "$(spread plain.p50)" "≤ 50 µs"
line "full: added p50, 1 connection" "$(cell full.p50)" "$(spread full.p50)" "≤ 50 µs"
line "plain: CPU per request annex ÷ bare" "$(cell plain.cpu)" "$(spread plain.cpu)" "—"
line "full: CPU per request annex ÷ bare" "$(cell full.cpu)" "$(spread full.cpu)" "—"
line "RSS per extra extension (1 → 50)" "$(cell rss)" "$(spread rss)" "—"
line "start to /ready, 50 extensions" "$(cell start)" "$(spread start)" "—"
echo "CPU per request under the throughput load (annex / bare), median round: plain $(cell plain.cpuabs), full $(cell full.cpuabs)"
