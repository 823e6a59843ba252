#!/usr/bin/env bash
# Builds and runs the fuzz targets with libFuzzer on stable Rust (see README.md here).
#   fuzz/fuzz.sh build                      build every target (release, instrumented)
#   fuzz/fuzz.sh list                       the target names
#   fuzz/fuzz.sh run TARGET SECONDS [ARG..] fuzz TARGET for SECONDS on its corpus; new inputs
#                                           go to fuzz/work/TARGET, crashes to fuzz/artifacts/TARGET
#   fuzz/fuzz.sh check SECONDS              each target for SECONDS on its committed corpus,
#                                           writing nothing into the repository (CI)
# CARGO_TARGET_DIR may point elsewhere (CI points it at the original checkout's fuzz/target).
set -euo pipefail
fuzz="$(cd "$(dirname "$0")" && pwd)"
target_dir="${CARGO_TARGET_DIR:-$fuzz/target}"

# What `cargo fuzz build --sanitizer none` passes, all of it stable rustc: libFuzzer's
# coverage feedback (8-bit edge counters, the PC table, comparison operands). No sanitizer:
# the crate forbids unsafe code, so what there is to find is a panic, an abort or a hang.
# Debug assertions and overflow checks come from the release profile in Cargo.toml.
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares"

# An explicit --target keeps RUSTFLAGS off the build scripts and proc macros, which run
# on the host without libFuzzer's runtime (cargo-fuzz does the same).
host="$(rustc -vV | sed -n 's/^host: //p')"

targets() { sed -n 's/^name = "\(.*\)"$/\1/p' "$fuzz/Cargo.toml" | grep -v '^bars-receiver-fuzz$'; }

binary() { echo "$target_dir/$host/release/$1"; }

build() {
  cargo build --manifest-path "$fuzz/Cargo.toml" --locked --release --bins --target "$host"
}

# libFuzzer flags for every run: a slow input (10 s) or 2 GiB of memory is a finding too.
common=(-timeout=10 -rss_limit_mb=2048 -print_final_stats=1)

case "${1:-}" in
  build) build ;;
  list) targets ;;
  run)
    t="${2:?target}" secs="${3:?seconds}"
    shift 3
    mkdir -p "$fuzz/work/$t" "$fuzz/artifacts/$t"
    exec "$(binary "$t")" "${common[@]}" -max_total_time="$secs" \
      -artifact_prefix="$fuzz/artifacts/$t/" "$@" "$fuzz/work/$t" "$fuzz/corpus/$t"
    ;;
  check)
    secs="${2:?seconds}"
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    for t in $(targets); do
      echo "== fuzz $t: ${secs}s on $(find "$fuzz/corpus/$t" -type f | wc -l) committed inputs"
      mkdir -p "$scratch/$t"
      # New inputs go to the scratch folder (the first one named), so the committed corpus
      # is left as it is; a crash stops the run with a non-zero status.
      if ! "$(binary "$t")" "${common[@]}" -max_total_time="$secs" \
        -artifact_prefix="$scratch/$t-" "$scratch/$t" "$fuzz/corpus/$t" >"$scratch/$t.log" 2>&1; then
        tail -n 60 "$scratch/$t.log" >&2
        echo "error: fuzz target $t crashed: the panic and the input (bytes, Base64) are above" >&2
        exit 1
      fi
      awk '/^stat::number_of_executed_units/ { runs = $2 } /^stat::peak_rss_mb/ { rss = $2 }
        END { printf "%s executions, no crash, peak RSS %s MB\n", runs, rss }' "$scratch/$t.log"
    done
    ;;
  *) sed -n '2,9p' "$0" >&2; exit 64 ;;
esac
