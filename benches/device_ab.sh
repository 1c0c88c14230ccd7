#!/usr/bin/env bash
# Runs report sections for several staged builds in one device call, alternating, ROUNDS times
# (the design record's rule: compared figures come from one call). Each build is a tarball
# `.gpu-pack/NAME.tgz` of `.gpu-NAME/` (benches/stage_variant.sh, then benches/device_pack.sh),
# unpacked once per machine to /tmp/v/NAME; its compile cache travels filled, so the device
# spends its time running, not compiling.
#
#   bash benches/device_ab.sh ROUNDS "NAME[:FLAG,VALUE,...] ..." "SECTIONS[|REPORT ARGS]" ...
#   e.g. bash benches/device_ab.sh 3 "main main:--trace-events,65536 ring:--trace-events,65536" \
#            "core" "relu_softmax|--shapes 5000x256 --strategies Resident"
#
# A spec's flags (commas for spaces) go to that run's report and name its results (main-traceevents).
# JSON and log per run in $AB_OUT (default /tmp/ab) as TAG-rROUND-gGROUP.json; medians with
# `python3 benches/ab_medians.py $AB_OUT TAG,TAG,...`. Each run stops after 200 s. Give each
# invocation of one call its own AB_OUT: group numbers restart at 1, so a second invocation
# overwrites the first's files for the same builds. The builds' test binaries:
# benches/device_suites.sh.
set -u
cd "$(dirname "$0")/.."
. benches/device_env.sh
rounds=$1 variants=$2; shift 2
ab=${AB_OUT:-/tmp/ab}; mkdir -p /tmp/v "$ab"
for spec in $variants; do unpack_build "${spec%%:*}" || exit 1; done
for r in $(seq 1 "$rounds"); do
  gi=0
  for g in "$@"; do
    gi=$((gi+1)); group=${g%%|*}; extra=${g#*|}; [ "$extra" = "$g" ] && extra=
    for spec in $variants; do
      v=${spec%%:*} flags= tag=$v
      if [ "$spec" != "$v" ]; then flags=${spec#*:}; tag=$v-$(echo "$flags" | tr -cd 'a-z0-9'); flags=${flags//,/ }; fi
      s=$(date +%s) out=$ab/$tag-r$r-g$gi
      # shellcheck disable=SC2086 # extra and flags are word lists
      GROSR_CACHE_DIR=/tmp/v/$v/cache timeout -k 5 200 "/tmp/v/$v/report" --quick --no-torch \
        --only "$group" $extra $flags --json "$out.json" --plots /tmp/ab-plots >"$out.log" 2>&1 </dev/null
      echo "$tag r$r g$gi ($group): rc=$? $(( $(date +%s) - s )) s"
    done
  done
done
