#!/usr/bin/env bash
# What CPU and memory attribution costs on the request path (issue 17): instructions per request
# of core/benches/request_profiles.rs built twice — with annex-alloc's accounting allocator (as
# `annex` runs) and with the system allocator (`--features bench-system-alloc`) — counted by
# callgrind, so the machine's load does not move them.
#
#   bench/alloc_cost.sh                      # plain and full: ~7 min of callgrind, ~5 of criterion
#   ROUNDS=3 TIMED_ROUNDS=0 PROFILES=plain bench/alloc_cost.sh
#   ROUNDS=0 bench/alloc_cost.sh             # criterion only
#
# Only the request's own work is counted (`--toggle-collect` on the bench's `measured_poll`:
# every poll of the request's future), not the runtime's timers or the pool's upkeep between
# requests. Per round and binary, two runs of n₁ and n₂ requests; per request = (count(n₂) −
# count(n₁)) ÷ (n₂ − n₁), so first-request warm-up cancels out. The rounds alternate the binaries.
#
# Two figures per binary:
# - `glibc default`: as `annex` runs. glibc malloc's own work (its bins and consolidation) moves
#   by ±1 000 instructions per request between runs of one binary, so the median of the rounds
#   is reported with the range;
# - `tcache 65535` (GLIBC_TUNABLES=glibc.malloc.tcache_count=65535): every free block is kept in
#   malloc's per-thread cache, so malloc's work is the same from run to run and the count repeats
#   to within a few per cent of the difference: the cost of the allocators' own code,
#   attribution included.
#
# Then (TIMED_ROUNDS, default 7) the same two binaries under criterion, alternating, 5 s per
# profile per round: the time per request on this machine, median of the rounds' estimates.
# Wall-clock figures move with the machine's load, so only their median and its spread count.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
TIMED_ROUNDS=${TIMED_ROUNDS:-7}
PROFILES=${PROFILES:-plain full}
N1=${N1:-1000}
N2=${N2:-3000}
OUT=${OUT:-target/alloc_cost}

cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "alloc_cost: valgrind is needed (apt-get install valgrind)" >&2; exit 2; }
mkdir -p "$OUT"

build() { # <features> <name>
    echo "building request_profiles ($2)…" >&2
    local bin
    bin=$(cargo bench --locked -p annex-core --features "$1" --bench request_profiles --no-run \
        --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "request_profiles":
        print(m["executable"])')
    [ -n "$bin" ] || { echo "alloc_cost: the build of $2 failed" >&2; exit 1; }
    cp "$bin" "$OUT/$2"
}
build bench accounting
build bench-system-alloc system

# per_request <callgrind file n₁> <callgrind file n₂> → instructions per request
per_request() {
    python3 - "$1" "$2" "$((N2 - N1))" <<'PY'
import re, sys
def total(path):
    with open(path) as f:
        for line in f:
            if line.startswith("summary:") or line.startswith("totals:"):
                return int(line.split()[1])
    raise SystemExit(f"no totals in {path}")
print(round((total(sys.argv[2]) - total(sys.argv[1])) / int(sys.argv[3])))
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

count() { # <profile> <binary> <tunables> <tag> → instructions per request
    for n in "$N1" "$N2"; do
        GLIBC_TUNABLES="$3" ANNEX_PROFILE_ONLY="$1:$n" valgrind --tool=callgrind \
            --toggle-collect='*measured_poll*' \
            --callgrind-out-file="$OUT/cg.$1.$2.$4.$n" "$OUT/$2" >/dev/null 2>&1
    done
    per_request "$OUT/cg.$1.$2.$4.$N1" "$OUT/cg.$1.$2.$4.$N2"
}

for profile in $PROFILES; do
    [ "$ROUNDS" -gt 0 ] || break
    : >"$OUT/$profile.rounds"
    for round in $(seq "$ROUNDS"); do
        for bin in accounting system; do
            default=$(count "$profile" "$bin" "" default)
            cached=$(count "$profile" "$bin" glibc.malloc.tcache_count=65535 tcache)
            echo "$bin $default $cached" >>"$OUT/$profile.rounds"
            echo "$profile round $round/$ROUNDS $bin: $default instructions per request (glibc default), $cached (tcache 65535)" >&2
        done
    done
done

stat() { # <rounds file> <binary> <column> → "median min–max"
    local values
    values=$(awk -v b="$2" -v c="$3" '$1 == b {print $c}' "$1")
    echo "$(median <<<"$values") $(sort -n <<<"$values" | head -1)–$(sort -n <<<"$values" | tail -1)"
}

[ "$ROUNDS" -gt 0 ] && printf '\n%-7s %-11s %14s %13s %8s %14s %13s %8s\n' \
    profile allocator "glibc default" "min–max" "" "tcache 65535" "min–max" ""
for profile in $PROFILES; do
    [ "$ROUNDS" -gt 0 ] || break
    read -r sd sdr < <(stat "$OUT/$profile.rounds" system 2)
    read -r sc scr < <(stat "$OUT/$profile.rounds" system 3)
    read -r ad adr < <(stat "$OUT/$profile.rounds" accounting 2)
    read -r ac acr < <(stat "$OUT/$profile.rounds" accounting 3)
    pd=$(awk -v a="$ad" -v s="$sd" 'BEGIN {printf "%+.1f %%", (a - s) * 100 / s}')
    pc=$(awk -v a="$ac" -v s="$sc" 'BEGIN {printf "%+.1f %%", (a - s) * 100 / s}')
    printf '%-7s %-11s %14s %13s %8s %14s %13s %8s\n' "$profile" system "$sd" "$sdr" "" "$sc" "$scr" ""
    printf '%-7s %-11s %14s %13s %8s %14s %13s %8s\n' "$profile" accounting "$ad" "$adr" "$pd" "$ac" "$acr" "$pc"
done

[ "$TIMED_ROUNDS" -gt 0 ] || exit 0
pattern="request_profile/($(tr ' ' '|' <<<"$PROFILES"))\$"
: >"$OUT/timed.rounds"
for round in $(seq "$TIMED_ROUNDS"); do
    for bin in accounting system; do
        "$OUT/$bin" --bench "$pattern" --warm-up-time 1 --measurement-time 5 --noplot 2>/dev/null \
            | python3 -c '
import re, sys
scale = {"ns": 1, "µs": 1e3, "us": 1e3, "ms": 1e6}
for line in sys.stdin:
    m = re.match(r"request_profile/(\S+)\s+time:\s+\[\S+ \S+ (\S+) (\S+)", line)
    if m:
        print(sys.argv[1], m.group(1), round(float(m.group(2)) * scale[m.group(3)]))' "$bin" \
            | tee -a "$OUT/timed.rounds" | sed "s/^/timed round $round\/$TIMED_ROUNDS: /" >&2
    done
done
printf '\n%-7s %-11s %14s %17s %8s\n' profile allocator "ns/request" "min–max" ""
for profile in $PROFILES; do
    for bin in system accounting; do
        values=$(awk -v b="$bin" -v p="$profile" '$1 == b && $2 == p {print $3}' "$OUT/timed.rounds")
        m=$(median <<<"$values")
        range="$(sort -n <<<"$values" | head -1)–$(sort -n <<<"$values" | tail -1)"
        pct=""
        if [ "$bin" = system ]; then base=$m; else
            pct=$(awk -v a="$m" -v s="$base" 'BEGIN {printf "%+.1f %%", (a - s) * 100 / s}')
        fi
        printf '%-7s %-11s %14s %17s %8s\n' "$profile" "$bin" "$m" "$range" "$pct"
    done
done
