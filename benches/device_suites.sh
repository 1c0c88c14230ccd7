#!/usr/bin/env bash
# Runs the GPU test binaries of staged builds in one device call: each `.gpu-pack/NAME.tgz`
# (benches/stage_variant.sh with test names, then benches/device_pack.sh) is unpacked once per
# machine to /tmp/v/NAME (benches/device_env.sh), and each named binary runs its ignored
# tests one at a time with the build's filled compile cache, under a time limit each.
#
#   bash benches/device_suites.sh NAME BINARY ...     e.g. main gpu_jobs gpu_core gpu_graph
#
# Prints a line per binary (its `test result`, or its failures); every binary's whole output goes
# to $OUT/suites-NAME.log (or /tmp). SUITE_LIMIT: seconds per binary (default 150). Exit 1 if
# any binary failed or ran out of time.
set -u
cd "$(dirname "$0")/.."
. benches/device_env.sh
v=$1; shift
unpack_build "$v" || exit 1
log=${OUT:-/tmp}/suites-$v.log
failed=0
for t in "$@"; do
  s=$(date +%s)
  GROSR_CACHE_DIR=/tmp/v/$v/cache timeout -k 5 "${SUITE_LIMIT:-150}" "/tmp/v/$v/$t" --ignored --test-threads=1 \
    >/tmp/suite.out 2>&1
  rc=$?
  echo "$v $t rc=$rc $(( $(date +%s) - s )) s: $(grep '^test result' /tmp/suite.out)"
  [ $rc -eq 0 ] || { failed=1; grep -E 'FAILED|panicked' /tmp/suite.out | head -20; }
  { echo "=== $v $t rc=$rc"; cat /tmp/suite.out; } >>"$log"
done
exit $failed
