#!/usr/bin/env bash
# A/B of the report on the GPU machine: a baseline build against this tree's, alternating per
# section group in one device call, each with its own compile cache filled beforehand (the
# design record's rule: compared figures come from one call).
#
#   benches/ab_report.sh LIMIT_S GROUP [GROUP ...]        GROUP: report sections, e.g. core,alloc
#
# Expects, under the repository root: .gpu/examples/report and .gpu-extra/cache-after (this
# tree), .gpu-extra/before/report and .gpu-extra/cache-before (the baseline). Fill a cache here
# with `GROSR_CACHE_DIR=DIR .gpu/tests/nvrtc_compile --ignored fill_the_compile_cache` (NVRTC
# from PyPI is enough). Each run stops after LIMIT_S seconds; tables and the JSON of each run go
# to $OUT (ab.log, before-GROUP.json, after-GROUP.json).
set -u
cd "$(dirname "$0")/.."
top=$PWD
for d in /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib64; do
  [ -e "$d/libnvrtc.so" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}" && break
done
limit=$1; shift
log=${OUT:-/tmp}/ab.log
for g in "$@"; do
  for who in before after; do
    if [ "$who" = before ]; then bin=.gpu-extra/before/report; cache=.gpu-extra/cache-before
    else bin=.gpu/examples/report; cache=.gpu-extra/cache-after; fi
    # The cache refuses a folder others may write and a key others may read: a copy that lost
    # its modes on the way gets them back.
    chmod -R go-rwx "$top/$cache"
    echo "=== $who --only $g" | tee -a "$log"
    s=$(date +%s)
    GROSR_CACHE_DIR=$top/$cache timeout -k 5 "$limit" "$bin" --quick --no-torch --only "$g" \
      --json "${OUT:-/tmp}/$who-${g//,/_}.json" --plots "/tmp/plots-$who" >>"$log" 2>&1
    echo "rc=$? $(( $(date +%s) - s )) s" | tee -a "$log"
  done
done
