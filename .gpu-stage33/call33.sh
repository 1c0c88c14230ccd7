#!/usr/bin/env bash
# Session 33's device calls (staged in session 32): carry [".gpu-pack"];
# `export OUT; bash .gpu-pack/call33.sh MODE`. Packs: main35 (main after session 32: the
# CUDA-graph refusal beside a running scheduler, the context's stream bound, the host spans'
# shared thread names; its cache is main34's, the generated code being the same), tws / twscs
# (main35 + trace-ws.patch / trace-ws-cs.patch), split (main35 + fast-split.patch), burst
# (main35 + poll-burst.patch).
set -u
cd "$(dirname "$0")/.."
for d in /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib64; do
  [ -e "$d/libnvrtc.so" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}" && break
done
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
for f in .gpu-pack/*.tgz; do
  v=$(basename "$f" .tgz)
  if [ ! -d "/tmp/v/$v" ]; then
    mkdir -p "/tmp/v/$v" && tar xzf "$f" -C "/tmp/v/$v" --strip-components=1 && chmod 700 "/tmp/v/$v/cache"
  fi
done
t() { # VARIANT BINARY SECONDS [ARGS...]
  local v=$1 b=$2 s=$3; shift 3
  GROSR_CACHE_DIR=/tmp/v/$v/cache timeout -k 5 "$s" "/tmp/v/$v/$b" --ignored --test-threads=1 "$@" \
    >"$OUT/t-$v-$b.log" 2>&1 </dev/null
  echo "== $v $b rc=$?"; grep -E "FAILED|test result|panicked|hangs|many:" "$OUT/t-$v-$b.log" | cut -c1-220 | tail -6
}
case "${1:-}" in
  suites) # every GPU suite on main35 (one log per binary: 7 files)
    for b in gpu_graph gpu_core gpu_trace gpu_jobs gpu_submit gpu_alloc gpu_fault; do
      t main35 $b ${ST:-90} --nocapture
    done ;;
  checks) # the sanitizer set on main35
    CHECK_BIN_DIR=/tmp/v/main35 GROSR_CACHE_DIR=/tmp/v/main35/cache CHECK_BUDGET=${CB:-450} \
      bash benches/gpu_checks.sh ${TOOLS:-memcheck racecheck} | tail -30 ;;
  traceab) # issue 22: the trace-ws patches' tests, then off / main's trace / tws / twscs
    t tws gpu_trace 120; t twscs gpu_trace 120
    AB_OUT=/tmp/ab/tr timeout -k 3 ${ABT:-400} bash benches/device_ab.sh ${ROUNDS:-2} \
      "main35 main35:--trace-events,65536 tws:--trace-events,65536 twscs:--trace-events,65536" \
      "core" "relu_softmax|--shapes 5000x256 --strategies Resident" | tail -4
    python3 benches/ab_medians.py /tmp/ab/tr main35,main35-traceevents,tws-traceevents,twscs-traceevents
    tar czf "$OUT/ab-trace.tgz" -C /tmp/ab tr ;;
  split) # issue 19: the fast tier with --split-compile=0: its tests, whole-process cold starts
    # (a fresh folder each, Tiered, not waiting for Speed), then its Compile code's core A/B
    t split gpu_core 120 a_module_optimized_for_compile_time a_tiered_build
    for v in main35 split; do for i in 0 2; do for k in 1 2 3; do
      d=$(mktemp -d /tmp/cold.XXXX); chmod 700 "$d"
      s=$(date +%s%N)
      timeout -k 5 120 /tmp/v/$v/report --tiered-child $i "$d" "c$v$i$k$RANDOM" false >/dev/null 2>&1 </dev/null
      rc=$?; echo "cold $v module $i run $k: rc=$rc $(( ($(date +%s%N) - s) / 1000000 )) ms"
    done; done; done | tee "$OUT/cold.log"
    AB_OUT=/tmp/ab/sp timeout -k 3 ${ABT:-200} bash benches/device_ab.sh 2 \
      "main35:--optimize-compile split:--optimize-compile" "core" | tail -2
    python3 benches/ab_medians.py /tmp/ab/sp main35-optimizecompile,split-optimizecompile ;;
  burst) # issue 20: the poll burst (poll-burst.patch: one descriptor while idle, four after a
    # find) against main on core / host_threads / head_of_line, then its suites
    AB_OUT=/tmp/ab/bu timeout -k 3 ${ABT:-300} bash benches/device_ab.sh 2 "main35 burst" \
      "core" "host_threads" "head_of_line" | tail -4
    python3 benches/ab_medians.py /tmp/ab/bu main35,burst
    tar czf "$OUT/ab-burst.tgz" -C /tmp/ab bu
    for b in gpu_jobs gpu_submit gpu_core; do t burst $b 150; done ;;
  *) echo "modes: suites checks traceab split burst" ;;
esac
