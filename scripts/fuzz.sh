#!/usr/bin/env bash
# Fuzzes every parser target for a while (default 600 s each), then minimises each corpus in
# fuzz/corpus/<target>/, which the test suite replays on every run (crates/pool-fuzz).
#   scripts/fuzz.sh [seconds per target] [target...]
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); runs on the stable toolchain through
# RUSTC_BOOTSTRAP=1. A crash stops the run and leaves its input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target: ${seconds}s"
    cargo fuzz run -O "$target" "corpus/$target" -- -max_total_time="$seconds" -print_final_stats=1 \
        2>&1 | grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)|ERROR|panicked" || true
    [ -z "$(ls -A "artifacts/$target" 2>/dev/null)" ] || { echo "$target: crash inputs in fuzz/artifacts/$target" >&2; exit 1; }
    cargo fuzz cmin -O "$target" "corpus/$target" >/dev/null 2>&1
    echo "$target: $(ls "corpus/$target" | wc -l) corpus inputs after minimising"
done
