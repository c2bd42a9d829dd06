#!/usr/bin/env bash
# Instructions per relayed request, per thread of Switchboard, counted by valgrind's callgrind.
# Unlike a timing, the count repeats to within a few hundred instructions on a busy machine, so two
# builds can be compared without sharing a run (docs/benchmarks.md, "the stack's own floor").
#
#   bench/instructions.sh [SWITCHBOARD_BIN [REQUESTS]]
#   bench/instructions.sh stack [REQUESTS]
#
# Starts mock-openrouter (from target/release) with the harness's fixture, then Switchboard under
# callgrind, warms it up, and counts REQUESTS (default 500) non-streamed proxy calls sent one after
# another over one keep-alive connection (curl). Switchboard is set up as the harness sets it up (no
# access code); with CODE=<code> in the environment it requires that code and the calls send it.
# With `stack` instead of a binary it counts the harness's `stack` reference relay (the least relay
# axum and reqwest make; `switchboard-bench --reference-relay stack`) the same way, for the count
# Switchboard's is compared with. Needs valgrind and curl. Under valgrind, sha2 uses its portable
# SHA-256 (~3.5k instructions per hash) where the machine may have SHA-NI.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
sb=${1:-$root/target/release/switchboard}
n=${2:-500}
mock=$root/target/release/mock-openrouter
mock_port=${MOCK_PORT:-18180}
sb_port=${SWITCHBOARD_PORT:-18199}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$mock" --port "$mock_port" --delta-ms 20 \
    --fixture "bench/fast=$root/crates/switchboard-bench/fixtures/fast.json" >/dev/null 2>&1 &
pids+=($!)
# Counting starts only when the calls are sent (callgrind_control below), one file per thread.
callgrind=(valgrind --tool=callgrind --instr-atstart=no --separate-threads=yes
    --callgrind-out-file="$work/cg.out")
# A relay that is not up would be counted doing nothing: stop, with valgrind's last lines.
not_started() {
    echo "$1 did not start:" >&2
    tail -5 "$work/valgrind.log" >&2
    exit 1
}
code=${CODE:-}
auth=()
path=/api/openrouter/v1/chat/completions
if [ "$sb" = stack ]; then
    # The relay passes the caller's key on, as it is: the mock's.
    auth=(-H "Authorization: Bearer sk-or-bench")
    path=/api/v1/chat/completions
    "${callgrind[@]}" "$root/target/release/switchboard-bench" \
        --reference-relay stack --reference-upstream "127.0.0.1:$mock_port" \
        >"$work/relay.out" 2>"$work/valgrind.log" &
    vg=$!
    pids+=($vg)
    for _ in $(seq 120); do
        grep -q '^listening on ' "$work/relay.out" 2>/dev/null && break
        sleep 0.5
    done
    base=$(sed -n 's/^listening on //p' "$work/relay.out")
    [ -n "$base" ] || not_started "the stack relay"
else
    [ -n "$code" ] && auth=(-H "Authorization: Bearer nk-$code")
    CODE=$code SWITCHBOARD_ADDR=127.0.0.1:$sb_port \
        OPENROUTER_URL=http://127.0.0.1:$mock_port/api OPENROUTER_API_KEY=sk-or-bench \
        DATABASE_URL=sqlite://$work/bench.db \
        "${callgrind[@]}" "$sb" >"$work/valgrind.log" 2>&1 &
    vg=$!
    pids+=($vg)
    base=http://127.0.0.1:$sb_port
    # Up when /healthz answers (valgrind starts a binary slowly).
    for _ in $(seq 120); do
        curl -sf -o /dev/null "$base/healthz" && break
        sleep 0.5
    done
    curl -sf -o /dev/null "$base/healthz" || not_started "$sb"
fi

body='{"model":"bench/fast","messages":[{"role":"user","content":"Say hello in five words."}]}'
calls() {
    for _ in $(seq "$1"); do
        echo "url = \"$base$path\""
        echo 'output = "/dev/null"'
    done >"$work/urls"
    curl -s -K "$work/urls" "${auth[@]}" \
        -H 'Content-Type: application/json' -d "$body" -w '%{http_code}\n' | sort | uniq -c
}
calls 50 >/dev/null
callgrind_control -i on "$vg" >/dev/null 2>&1
answered=$(calls "$n")
callgrind_control -i off "$vg" >/dev/null 2>&1
callgrind_control -d "$vg" >/dev/null 2>&1
echo "answers: $answered"

total=0
for f in "$work"/cg.out.1-*; do
    ir=$(awk '/^totals:/ {print $2; exit}' "$f")
    [ "${ir:-0}" -gt 0 ] || continue
    total=$((total + ir))
    printf '%-12s %8d instructions per request\n' "thread ${f##*-}" $((ir / n))
done
printf '%-12s %8d instructions per request\n' "all" $((total / n))
