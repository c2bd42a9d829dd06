#!/usr/bin/env bash
# Run every cargo-fuzz target for ${FUZZ_SECONDS:-60} seconds each; exit non-zero on a crash.
#
# The toolchain here is stable: cargo fuzz needs nightly-only flags (-Zsanitizer, …), so this
# sets RUSTC_BOOTSTRAP=1. It builds with AddressSanitizer (cargo fuzz's default) and falls back
# to `--sanitizer none` where ASan does not link; the targets are safe Rust, so libFuzzer's own
# checks (panics, timeouts, memory limit) find what matters either way. A crash leaves its input
# in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

CARGO_FUZZ_VERSION=0.13.1
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

export RUSTC_BOOTSTRAP=1
seconds="${FUZZ_SECONDS:-60}"
target_dir="../target/fuzz"
targets=(sse_decoder custom_models markdown)

sanitizer=address
if ! cargo fuzz build --target-dir "$target_dir"; then
  echo "ASan build failed; building without a sanitizer"
  sanitizer=none
  cargo fuzz build --sanitizer none --target-dir "$target_dir"
fi

failed=0
for t in "${targets[@]}"; do
  echo "== fuzz $t for ${seconds}s"
  mkdir -p "corpus/$t"
  if ! cargo fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" "$t" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
    echo "fuzz target $t failed: see fuzz/artifacts/$t/"
    failed=1
  fi
done
exit "$failed"
