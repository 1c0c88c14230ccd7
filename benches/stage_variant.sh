#!/usr/bin/env bash
# Stages one variant of main for a device A/B, from this (GPU-less) machine: main with the given
# patches applied in a worktree, its release build of the report and of the named GPU test
# binaries, and a compile cache filled here with the named units (tests/nvrtc_compile.rs's
# names), all in .gpu-NAME/ (git-ignored through .git/info/exclude), about 10-25 MB.
#
#   bash benches/stage_variant.sh NAME [PATCH ...] -- [TEST ...] -- UNIT ['UNIT' ...]
#   e.g. bash benches/stage_variant.sh ring trace-ring -- gpu_trace -- 'tests/common, traced' \
#            'grosr_lab::workloads' 'grosr_lab::workloads, traced'
#
# NAME `main` with no patch stages main itself (the A/B's baseline). Then `bash
# benches/device_pack.sh NAME ...` and, on the device (carry [".gpu-pack"]), `bash
# benches/device_ab.sh`; or carry [".gpu-NAME", ...] and run GROSR_CACHE_DIR=$PWD/.gpu-NAME/cache
# .gpu-NAME/report ..., and .gpu-NAME/TEST --ignored. A cache folder is signed with its own key: one per variant.
# Units beyond tests/nvrtc_compile.rs's: 'grosr_lab::workloads, traced' (trace(65536)) and
# 'grosr_lab::workloads, cancellable', the report's modules for --trace-events / --cancellable,
# and 'grosr_lab::workloads::mixed_dag, traced' and 'grosr_lab::workloads::contention, traced'
# (trace_summary's DAGs and threads; its ReLU+Softmax runs use 'grosr_lab::workloads, traced').
set -euo pipefail
name=$1; shift
patches=(); while [ $# -gt 0 ] && [ "$1" != -- ]; do patches+=("$1"); shift; done; shift || true
tests=(); while [ $# -gt 0 ] && [ "$1" != -- ]; do tests+=("$1"); shift; done; shift || true
units=("$@")
root=$(git rev-parse --show-toplevel)
lib=$(find "$root/target/ci-nvrtc" -name 'libnvrtc.so.1[0-9]' 2>/dev/null | head -n 1)
[ -n "$lib" ] || { echo "stage_variant: run .ci/run once first (it installs NVRTC)" >&2; exit 1; }
export LD_LIBRARY_PATH="$(realpath "$(dirname "$lib")"):${LD_LIBRARY_PATH:-}"
wt=$root/../wt-variant-$name
export CARGO_TARGET_DIR=${VARIANT_TARGET:-$root/../target-variant-$name}
git -C "$root" worktree remove --force "$wt" 2>/dev/null || true
git -C "$root" worktree add -q --detach "$wt" HEAD
cd "$wt"
for p in "${patches[@]}"; do git apply "$root/benches/patches/$p.patch"; done
# The report's traced and cancellable modules, as the cache fill's units.
python3 - <<'PY'
p = 'tests/nvrtc_compile.rs'; s = open(p).read()
extra = '''    u.push(("grosr_lab::workloads, traced", grosr_lab::workloads::builder().trace(65536).source(), Speed));
    u.push(("grosr_lab::workloads::mixed_dag, traced", grosr_lab::workloads::mixed_dag::builder().trace(65536).source(), Speed));
    u.push(("grosr_lab::workloads::contention, traced", grosr_lab::workloads::contention::builder().trace(65536).source(), Speed));
    u.push(("grosr_lab::workloads, cancellable", grosr_lab::workloads::builder().cancellable(true).source(), Speed));
'''
s = s.replace('    u.push(("tests/gpu_soak"', extra + '    u.push(("tests/gpu_soak"', 1)
open(p, 'w').write(s)
PY
args=(--example report --example trace_summary --test nvrtc_compile)
for t in "${tests[@]}"; do args+=(--test "$t"); done
cargo build -q --release "${args[@]}"
out=$root/.gpu-$name
rm -rf "$out"; mkdir -p "$out/cache"
exclude=$(cd "$root" && realpath "$(git rev-parse --git-common-dir)")/info/exclude
grep -qx "/.gpu-$name/" "$exclude" 2>/dev/null || echo "/.gpu-$name/" >> "$exclude"
newest() { ls -t "$CARGO_TARGET_DIR"/release/deps/"$1"-* | grep -v '\.d$' | head -n 1; }
cp "$CARGO_TARGET_DIR/release/examples/report" "$CARGO_TARGET_DIR/release/examples/trace_summary" "$out/"
for t in "${tests[@]}"; do cp "$(newest "$t")" "$out/$t"; done
only=$(IFS='|'; echo "${units[*]}")
GROSR_CACHE_DIR=$out/cache GROSR_FILL_ONLY="$only" "$(newest nvrtc_compile)" --ignored --nocapture fill_the_compile_cache 2>&1 | grep -E 'sm_|test result'
du -sh "$out"
