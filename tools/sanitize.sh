#!/usr/bin/env bash
# Builds seqkern._core with AddressSanitizer + UndefinedBehaviorSanitizer and runs the test suite
# under it (every available ISA level, through the tests' `isa` fixture). Usage: tools/sanitize.sh [pytest args...]
# Leaves the instrumented build in build/sanitize; the regular build is untouched.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build="$root/build/sanitize"
stage="$build/stage"

mkdir -p "$build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSEQKERN_SANITIZE=ON \
  -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" > "$build/cmake.log" 2>&1 || {
  cat "$build/cmake.log"; exit 1; }
cmake --build "$build" -j 2
rm -rf "$stage" && mkdir -p "$stage"
cp -r python/seqkern "$stage/"
find "$stage/seqkern" -name '_core*.so' -delete
cp "$build"/_core*.so "$stage/seqkern/"

# Python itself is not instrumented: preload the runtimes, ignore CPython's own allocations at exit.
asan=$(g++ -print-file-name=libasan.so)
ubsan=$(g++ -print-file-name=libubsan.so)
export LD_PRELOAD="$asan:$ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$stage"
# ASan keeps freed memory in quarantine, so resident memory grows by design: the leak test
# (10,000 calls, flat RSS) skips itself under the sanitizer and runs in the plain suite.
export SEQKERN_SANITIZED=1

# The tests' `isa` fixture runs every accuracy test at every available level in one pass.
python3 -m pytest tests -q -p no:cacheprovider "$@"
