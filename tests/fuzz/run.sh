#!/usr/bin/env bash
# Builds the libFuzzer targets with clang-14 (ASan + UBSan, in build/fuzz, apart
# from the g++ builds) and runs each one: first every input kept in
# tests/fuzz/regressions/<target>/ (inputs that once crashed), then fuzzing for
# the given time from a temporary copy of tests/fuzz/corpus/<target>/ (the
# repository's corpus is never written).
#
#   tests/fuzz/run.sh [seconds-per-target] [target...]    (default: 30, all five)
#
# Exits non-zero on any crash, sanitizer report, broken invariant, leak or
# timeout, printing the log's tail and the path of the input that did it
# (kept in build/fuzz/artifacts/). Logs: build/fuzz/logs/<target>.log.
# Environment: SELU_FUZZ_BUILD_DIR (build/fuzz), SELU_FUZZ_JOBS (2),
# SELU_FUZZ_ARGS (extra libFuzzer flags, e.g. -jobs or -max_len).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
seconds="${1:-30}"
[[ $# -gt 0 ]] && shift
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] &&
  targets=(fuzz_onnx_loader fuzz_model_config_text fuzz_model_config_json fuzz_infer_decode
    fuzz_rest_body)
build="${SELU_FUZZ_BUILD_DIR:-$root/build/fuzz}"
fuzz_dir="$root/tests/fuzz"

if ! command -v clang++-14 >/dev/null; then
  echo "fuzz: clang++-14 is missing (deploy/install-deps.sh test installs it)" >&2
  exit 2
fi
mkdir -p "$build"
echo "fuzz: building ${targets[*]} in $build"
# Warnings are the g++ build's to enforce (-Werror there); clang's own extra
# ones must not stop the fuzzing.
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSELU_WERROR=OFF -DSELU_BUILD_FUZZERS=ON \
  -DSELU_BUILD_TESTS=OFF -DSELU_BUILD_BENCH=OFF >"$build/configure.log" 2>&1 ||
  { tail -n 40 "$build/configure.log"; exit 1; }
cmake --build "$build" -j "${SELU_FUZZ_JOBS:-2}" --target "${targets[@]}" >"$build/build.log" 2>&1 ||
  { grep -E -A5 'error|FAILED' "$build/build.log" | head -n 80; exit 1; }

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export SELU_SOURCE_DIR="$root"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/logs" "$build/artifacts"
passed=0
failed=0

# fail TARGET LOG: prints what went wrong and counts it.
fail() {
  echo "fuzz: $1 FAILED; the log's end ($2):"
  tail -n 60 "$2"
  # A regression input names itself ("Running: FILE"); a new one is written out.
  { grep -h -E '^Running: ' "$2" | tail -n 1 | sed 's/^Running: /fuzz: crash input: /'
    grep -h -o -E 'Test unit written to [^ ]+' "$2" | sed 's/.*written to /fuzz: crash input: /'
  } || true
  failed=$((failed + 1))
}

for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  log="$build/logs/$t.log"
  : >"$log"
  dict=()
  [[ -f "$fuzz_dir/dict/$t.dict" ]] && dict=("-dict=$fuzz_dir/dict/$t.dict")
  common=(-timeout=10 -rss_limit_mb=2048 -artifact_prefix="$build/artifacts/$t-" "${dict[@]}")

  regressions=()
  if [[ -d "$fuzz_dir/regressions/$t" ]]; then
    mapfile -t regressions < <(find "$fuzz_dir/regressions/$t" -type f | sort)
  fi
  if [[ ${#regressions[@]} -gt 0 ]] &&
    ! "$bin" "${common[@]}" "${regressions[@]}" >>"$log" 2>&1; then
    fail "$t (regression inputs)" "$log"
    continue
  fi

  mkdir -p "$work/$t"
  cp -r "$fuzz_dir/corpus/$t/." "$work/$t/"
  # shellcheck disable=SC2086  # SELU_FUZZ_ARGS is a list of flags
  if ! "$bin" "${common[@]}" -max_total_time="$seconds" -print_final_stats=1 \
    ${SELU_FUZZ_ARGS:-} "$work/$t" >>"$log" 2>&1; then
    fail "$t" "$log"
    continue
  fi
  execs="$(grep -o -E 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -o -E '[0-9]+$' | tail -n 1)"
  last="$(grep -E '^#[0-9]+' "$log" | tail -n 1)"
  echo "fuzz: $t ok: ${#regressions[@]} regression inputs, ${execs:-?} runs in ${seconds} s; ${last}"
  passed=$((passed + 1))
done

echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
