#!/usr/bin/env bash
# Regenerates crates/switchboard/link-order.txt: the functions the release binary runs, in the
# order the linker should lay them out (see the "Link order" section of bench/README.md).
#
# It runs the release build under callgrind against mock-openrouter, dumps once when start-up is
# over and once after a workload that touches every route people use (proxy and gateway, streamed
# and not, the model lists, the chat engine with its event stream, the web UI pages and assets), then
# writes: the functions only start-up ran, those both phases ran, those only serving ran. So the
# code an idle process has run is one contiguous stretch, and the serving path the next one.
#
# Needs valgrind, curl and python3. Takes about a minute. Run it after a dependency upgrade or a
# large change (stale names are harmless: the linker skips names it does not find).
set -euo pipefail
cd "$(dirname "$0")/.."
out=crates/switchboard/link-order.txt

cargo build --release --locked -p switchboard -p mock-openrouter >&2
work=$(mktemp -d)
cleanup() {
  pkill -P $$ 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

mock_port=18655
sb_port=18656
target/release/mock-openrouter --port "$mock_port" --delta-ms 2 \
  --fixture bench/fast=crates/switchboard-bench/fixtures/fast.json >"$work/mock.log" 2>&1 &
for _ in $(seq 100); do grep -q 'listening on' "$work/mock.log" && break; sleep 0.05; done

SWITCHBOARD_ADDR="127.0.0.1:$sb_port" OPENROUTER_URL="http://127.0.0.1:$mock_port/api" \
  OPENROUTER_API_KEY=sk-or-link-order DATABASE_URL="sqlite://$work/link-order.db" RUST_LOG=warn \
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/callgrind.out" \
  target/release/switchboard serve >"$work/switchboard.log" 2>&1 &
sb=$!
base="http://127.0.0.1:$sb_port"
for _ in $(seq 600); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
# Start-up ends once the background fetch has loaded the catalog (it then writes its disk cache):
# seconds under callgrind. Then a little idle time, as an idle process has had.
for _ in $(seq 1200); do [ -e "$work/openrouter-models.json" ] && break; sleep 0.1; done
[ -e "$work/openrouter-models.json" ] || { echo "the catalog never loaded" >&2; exit 1; }
sleep 2
callgrind_control --dump=startup "$sb" >/dev/null

json='content-type: application/json'
for _ in $(seq 20); do
  curl -sf "$base/api/openrouter/v1/chat/completions" -H "$json" \
    -d '{"model":"bench/fast","messages":[{"role":"user","content":"hi"}]}' >/dev/null
  curl -sf "$base/v1/chat/completions" -H "$json" -H 'authorization: Bearer sk-or-link-order' \
    -d '{"model":"bench/fast","messages":[{"role":"user","content":"hi"}]}' >/dev/null
  curl -sfN "$base/api/openrouter/v1/chat/completions" -H "$json" \
    -d '{"model":"mock/echo","stream":true,"messages":[{"role":"user","content":"one two three four"}]}' >/dev/null
  curl -sfN "$base/v1/chat/completions" -H "$json" -H 'authorization: Bearer sk-or-link-order' \
    -d '{"model":"mock/echo","stream":true,"messages":[{"role":"user","content":"one two three"}]}' >/dev/null
done
curl -sf "$base/api/models" >/dev/null
curl -sf "$base/v1/models" -H 'authorization: Bearer sk-or-link-order' >/dev/null
for _ in 1 2 3; do
  chat=$(curl -sf "$base/api/chats" -H "$json" -d '{}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -sf "$base/api/chats/$chat/messages" -H "$json" \
    -d '{"model":"mock/echo","content":"Some **markdown**, a list:\n\n- one\n- two\n\n```rust\nfn main() {}\n```"}' >/dev/null
  curl -sN --max-time 5 "$base/api/chats/$chat/events" >/dev/null || true
  curl -sf "$base/api/chats/$chat" >/dev/null
  curl -sf "$base/chats/$chat" >/dev/null
done
curl -sf "$base/api/chats" >/dev/null
for asset in $(curl -sf "$base/" | grep -o '/assets/[^"]*' | sort -u); do
  curl -sf "$base$asset" >/dev/null
done
curl -sf "$base/metrics" >/dev/null
kill -TERM "$sb"
wait "$sb" || true

python3 - "$work" "$out" <<'EOF'
import collections, glob, re, sys

work, out = sys.argv[1], sys.argv[2]

def functions(path):
    """Cost (instructions) per function of the switchboard binary in one callgrind dump."""
    objects, names, cost = {}, {}, collections.Counter()
    ob = fn = None
    for line in open(path, errors="replace"):
        m = re.match(r"(c?ob|c?fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if m:
            kind, ident, name = m.groups()
            table = objects if kind.endswith("ob") else names
            if name:
                table[ident] = name
            if kind == "ob":
                ob = objects[ident]
            elif kind == "fn":
                fn = names[ident]
                if ob.endswith("/switchboard"):
                    cost[re.sub(r"'\d+$", "", fn)] += 0
            continue
        if fn and ob and ob.endswith("/switchboard") and line[:1].isdigit():
            parts = line.split()
            if len(parts) > 1 and parts[1].isdigit():
                cost[re.sub(r"'\d+$", "", fn)] += int(parts[1])
    # Callgrind's names for code without a symbol: nothing the linker could place.
    return {f: c for f, c in cost.items() if f != "(below main)" and not f.startswith("0x")}

dumps = sorted(glob.glob(f"{work}/callgrind.out.*"), key=lambda p: int(p.rsplit(".", 1)[1]))
startup = functions(dumps[0])
serving = collections.Counter(functions(f"{work}/callgrind.out"))
for late in dumps[1:]:
    serving.update(functions(late))
by_cost = lambda costs: sorted(costs, key=lambda f: (-costs[f], f))
both = {f: startup[f] + serving[f] for f in startup.keys() & serving.keys()}
order = (
    by_cost({f: c for f, c in startup.items() if f not in serving})
    + by_cost(both)
    + by_cost({f: c for f, c in serving.items() if f not in startup})
)
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
print(f"{out}: {len(order)} functions ({len(startup)} at start-up, {len(serving)} serving)", file=sys.stderr)
EOF
