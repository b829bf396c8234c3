#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for a bounded time each, from its committed seeds:
#   bash fuzz/run.sh [SECONDS] [TARGET...]      (default 60 s each)
# Needs the nightly toolchain (rustup) and cargo-fuzz, which is installed when missing.
# New inputs go to fuzz/corpus/<target>/ and crashes to fuzz/artifacts/<target>/ (both ignored
# by git); the seeds in fuzz/seeds/<target>/ are never written to.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-60}"
shift || true

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

cargo +nightly fuzz build
failed=()
for target in "${targets[@]}"; do
  printf '\n--- fuzz target %s (%s s)\n' "$target" "$secs"
  mkdir -p "corpus/$target"
  if ! cargo +nightly fuzz run "$target" "corpus/$target" "seeds/$target" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 -print_final_stats=1; then
    failed+=("$target")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz targets that failed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "all ${#targets[@]} fuzz targets ran ${secs} s each without a finding"
