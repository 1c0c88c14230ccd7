#!/usr/bin/env bash
# Stages a device call of grosr's GPU suites from this (GPU-less) machine: builds the test
# binaries (and the examples, with `examples`) into .gpu/ (../shared/gpu/bundle) and fills
# .gpu/cache with their modules' compiled code (NVRTC here, every core), so the GPU machine,
# which has no Rust toolchain, spends its time running rather than compiling.
#
#   bash benches/stage_gpu.sh [examples]
#
# Then, on the device (carry [".gpu"]), one call for every suite, each binary bounded (a test
# that once hung first, alone, so that a hang costs one binary's verdicts, not gpu_graph's):
#   export GROSR_CACHE_DIR=$PWD/.gpu/cache GROSR_SOAK_SECS=20
#   timeout 60 .gpu/tests/gpu_graph --ignored --exact --nocapture \
#       a_lowered_graph_is_refused_once_the_scheduler_holds_every_sm_again 2>&1 | tail -12
#   RUN_TIMEOUT=120 bash .gpu/run tests 2>&1 | grep -E '^(===|test result|test binaries|---- |thread)'
# and for the sanitizers: bash benches/gpu_checks.sh (it reads .gpu/cache itself).
# The call's reply keeps only the last 12 000 characters of output: filter as above, so every
# binary's verdict comes back.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
cd "$root"
kinds=(tests)
[ "${1:-}" = examples ] && kinds+=(examples)
../shared/gpu/bundle "${kinds[@]}"
# NVRTC from PyPI, as CI installs it (.ci/run).
lib=$(find target/ci-nvrtc -name 'libnvrtc.so.1[0-9]' 2>/dev/null | head -n 1)
[ -n "$lib" ] || { echo "stage_gpu: run .ci/run once first (it installs NVRTC into target/ci-nvrtc)" >&2; exit 1; }
export LD_LIBRARY_PATH="$(realpath "$(dirname "$lib")"):${LD_LIBRARY_PATH:-}"
# The modules the GPU test binaries (and the report, with examples) build; unit names as in
# tests/nvrtc_compile.rs.
units='tests/common|tests/common, Optimize::Compile|tests/common, traced|tests/common, cancellable, Speed|tests/common, traced and cancellable, Speed|tests/gpu_graph|tests/gpu_alloc|tests/gpu_rust_bodies|grosr_lab::bfs'
[ "${1:-}" = examples ] && units+='|grosr_lab::workloads'
GROSR_CACHE_DIR="$root/.gpu/cache" GROSR_FILL_ONLY="$units" \
  .gpu/tests/nvrtc_compile --ignored fill_the_compile_cache
# Only the GPU suites travel: the others need no GPU (cargo test runs them), and
# nvrtc_compile's ignored test would fill every other module on the device, minutes of NVRTC.
find .gpu/tests -type f ! -name 'gpu_*' -delete
du -sh .gpu .gpu/cache
