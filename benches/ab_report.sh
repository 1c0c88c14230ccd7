#!/usr/bin/env bash
# A/B of report sections on the GPU machine, several builds and settings in one device call (the
# design record's rule: compared figures come from one call). First every variant's compile cache
# is filled at once (NVRTC on all cores, only the named units), then the variants run the report
# interleaved, ROUNDS times; everything goes back as $OUT/results.tgz, one JSON and log per run.
#
#   bash benches/ab_report.sh VARIANTS ROUNDS LIMIT_S GROUP [GROUP ...]
#
# VARIANTS: a file of lines `name|dir|defines|units`: `dir` holds that build's `report` and
# `nvrtc_compile` (copied from .gpu/examples and .gpu/tests), `defines` go to GROSR_DEFINES (the
# lab's builders read it; empty for none), `units` to GROSR_FILL_ONLY (`|`-separated unit names
# of tests/nvrtc_compile.rs, e.g. grosr_lab::workloads|grosr_lab::workloads::contention).
# GROUP: report sections, e.g. core,head_of_line; each run stops after LIMIT_S seconds.
# Read the results here with `python3 benches/ab_table.py DIR` (DIR: where results.tgz unpacked).
set -u
cd "$(dirname "$0")/.."
for d in /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib64; do
  [ -e "$d/libnvrtc.so" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}" && break
done
variants=$1 rounds=$2 limit=$3; shift 3
res=/tmp/ab-results; rm -rf "$res"; mkdir -p "$res"
t0=$(date +%s)
finish() { tar czf "${OUT:-/tmp}/results.tgz" -C /tmp ab-results; echo "ab_report: done at $(( $(date +%s) - t0 )) s"; }
trap finish EXIT
# `read` leaves the rest of the line, separators included, in the last name: the units.
while IFS='|' read -r name dir defines units; do
  [ -n "$name" ] || continue
  # The cache refuses a folder others may write.
  mkdir -p "/tmp/ab-cache-$name" && chmod 700 "/tmp/ab-cache-$name"
  GROSR_DEFINES="$defines" GROSR_CACHE_DIR="/tmp/ab-cache-$name" GROSR_FILL_ONLY="$units" \
    timeout 300 "$dir/nvrtc_compile" --ignored fill_the_compile_cache >"$res/fill-$name.log" 2>&1 &
done <"$variants"
wait
echo "ab_report: caches filled at $(( $(date +%s) - t0 )) s"
grep -h panicked "$res"/fill-*.log | head
for r in $(seq 1 "$rounds"); do
  for g in "$@"; do
    while IFS='|' read -r name dir defines units; do
      [ -n "$name" ] || continue
      s=$(date +%s) out="$res/$name-r$r-${g//,/_}"
      GROSR_DEFINES="$defines" GROSR_CACHE_DIR="/tmp/ab-cache-$name" timeout -k 5 "$limit" \
        "$dir/report" --quick --no-torch --only "$g" --json "$out.json" --plots "/tmp/ab-plots-$name" \
        >"$out.log" 2>&1 </dev/null
      echo "$name round $r $g: rc=$? $(( $(date +%s) - s )) s"
    done <"$variants"
  done
done
