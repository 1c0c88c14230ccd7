#!/usr/bin/env bash
# compute-sanitizer's memcheck, racecheck and synccheck over grosr's GPU tests, on the GPU machine
# (issue 18). Runs the test binaries that ../shared/gpu/bundle gathered into .gpu/tests/ (no Rust
# toolchain needed there): one tool × binary at a time, each binary's ignored tests one by one
# (--ignored --test-threads=1), every run under a time limit carved from one budget.
#
#   bash benches/gpu_checks.sh [TOOL ...]        TOOL: memcheck, racecheck, synccheck (default: all)
#
# Which tests:
#   default         SET below: the tests whose every buffer the running scheduler touches exists
#                   before it launches. memcheck only knows allocations made before a kernel starts
#                   (it reports a running kernel's accesses to later ones), and the scheduler runs
#                   for the whole test, so other tests would report false errors. Between them they
#                   run every task path: lane, warp and block tasks, spawns and held chains, the
#                   device heap, resident graphs (large and whole-in-a-descriptor), a traced graph (the trace's
#                   clock kernel and buffers), failing tasks,
#                   and the full-ring, timeout and stop paths. Fits one 600 s device call.
#   CHECK_FULL=1    every ignored test of every GPU binary but HEAVY below (millions of tasks or
#                   dozens of threads: under a sanitizer they only run out of time). memcheck then
#                   also reports the false errors above: read its log by hand. Longer than one
#                   device call: run one tool per call (CHECK_FULL=1 bash benches/gpu_checks.sh racecheck).
#   CHECK_TESTS="binary:test ..."   exactly these (a re-run of what a summary named).
# Never run: gpu_soak (a minute of full load by design: run it alone), gpu_fault (device faults are
# what it tests, and a sanitizer reports each as an error), gpu_while_direct (a module the driver
# loads but does not resolve faults, by design). Binaries not named gpu_* need no GPU.
#
# Environment: CHECK_BUDGET seconds for the whole run (default 540), shared among the runs left in
# proportion to their tests, so the run ends in time: a run cut off is reported as such, never as
# clean. CHECK_BIN_DIR (default .gpu/tests). GROSR_CACHE_DIR: the compile cache (default .gpu/cache
# if it exists); without a filled one each binary first compiles its module with NVRTC, minutes
# each (fill one anywhere: GROSR_CACHE_DIR=DIR .gpu/tests/nvrtc_compile --ignored fill_the_compile_cache).
# GROSR_TEST_WAIT_SCALE (default 10 here): how much longer the tests that read it wait.
# Output under $OUT (else /tmp/gpu-checks): TOOL.log per tool (every run's whole output, a run's
# cut to its first and last MiB past 2 MiB) and summary.txt (also printed).
# Exit: 0 no tool reported anything and every run passed; 1 a tool reported an error; 2 none did,
# but a run failed or was cut off (its checks are incomplete); 3 no usable compute-sanitizer.
set -uo pipefail
cd "$(dirname "$0")/.."

SET="
gpu_core:mixed_workload_with_buffers_allocated_before_launch
gpu_core:mixed_workload_optimized_for_compile_time_with_buffers_allocated_before_launch
gpu_core:held_lane_chains_of_two_types_run_every_hop_once_and_count_it
gpu_alloc:tasks_allocate_and_other_tasks_free_and_host_stats_agree
gpu_alloc:lanes_that_allocate_different_numbers_of_times_all_finish
gpu_graph:a_graph_prepared_while_stopped_runs_clean_under_the_sanitizer
gpu_trace:a_traced_graph_names_each_node_and_draws_it_from_a_predecessor
gpu_submit:a_submit_that_times_out_on_full_job_slots_leaves_other_threads_able_to_submit
gpu_submit:a_submit_that_times_out_on_a_full_arena_leaves_other_threads_able_to_submit
gpu_submit:stop_ends_submits_waiting_on_a_full_ring_and_start_runs_again
"
# Skipped by CHECK_FULL=1: sizes meant for full speed (1M+ tasks, 100k serial hops, the allocator
# benchmark's every shape on an 8 GiB heap, 40 or 64 threads at once).
HEAVY="
gpu_core:a_million_tasks_from_eight_host_threads_each_run_exactly_once
gpu_core:spawn_bursts_past_the_stack_run_every_task_exactly_once
gpu_core:a_chain_of_100k_dependent_spawns_runs_every_hop
gpu_core:a_module_optimized_for_compile_time_runs_every_path_exactly
gpu_core:copies_from_many_new_threads_finish_while_the_scheduler_runs
gpu_alloc:no_two_live_allocations_overlap_under_churn_mixes_and_remote_frees
gpu_graph:concurrent_large_launches_all_run_whole_with_the_board_full
"
NEVER="gpu_soak gpu_fault gpu_while_direct"

bins=${CHECK_BIN_DIR:-.gpu/tests}
out=${OUT:-/tmp/gpu-checks}
budget=${CHECK_BUDGET:-540}
mkdir -p "$out"
summary=$out/summary.txt
: >"$summary"
say() { echo "$*" | tee -a "$summary"; }

tools=("$@")
[ ${#tools[@]} -gt 0 ] || tools=(memcheck racecheck synccheck)
for t in "${tools[@]}"; do
  case $t in memcheck | racecheck | synccheck) ;; *) echo "gpu_checks: unknown tool '$t'" >&2; exit 2 ;; esac
done
for d in /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib64; do
  [ -e "$d/libnvrtc.so" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}" && break
done
# Tests whose waits are sized for full speed stretch them (tests/gpu_submit.rs: 4095 jobs queued
# behind a held task take minutes under racecheck).
export GROSR_TEST_WAIT_SCALE=${GROSR_TEST_WAIT_SCALE:-10}
if [ -z "${GROSR_CACHE_DIR+x}" ] && [ -d .gpu/cache ]; then export GROSR_CACHE_DIR=$PWD/.gpu/cache; fi
san=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer \
  /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -n 1)
if [ -z "$san" ]; then say "gpu_checks: no compute-sanitizer on PATH or under /usr/local/cuda"; exit 3; fi
[ -d "$bins" ] || { say "gpu_checks: no $bins (build it with ../shared/gpu/bundle tests)"; exit 2; }

# The runs: "tool binary test..." lines; each binary's tests as it lists them, so a renamed test
# shows up as missing instead of passing unseen.
runs=()
missing=()
for tool in "${tools[@]}"; do
  for bin in "$bins"/gpu_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    case " $NEVER " in *" $name "*) continue ;; esac
    listed=$("$bin" --list --ignored 2>/dev/null | sed -n 's/: test$//p')
    if [ -n "${CHECK_TESTS:-}" ]; then want=$(tr ' ' '\n' <<<"$CHECK_TESTS" | sed -n "s/^$name://p")
    elif [ "${CHECK_FULL:-0}" = 1 ]; then want=$(grep -vxF -f <(sed -n "s/^$name://p" <<<"$HEAVY") <<<"$listed")
    else want=$(sed -n "s/^$name://p" <<<"$SET"); fi
    tests=()
    for t in $want; do
      if grep -qxF "$t" <<<"$listed"; then tests+=("$t")
      elif [ "$tool" = "${tools[0]}" ]; then missing+=("$name:$t"); fi
    done
    [ ${#tests[@]} -eq 0 ] || runs+=("$tool $name ${tests[*]}")
  done
done
[ ${#runs[@]} -gt 0 ] || { say "gpu_checks: nothing to run in $bins"; exit 2; }

say "gpu_checks: $(basename "$san") $("$san" --version 2>/dev/null | grep -o 'Version [0-9.]*' | head -n 1)," \
  "${#runs[@]} runs, budget ${budget} s, cache ${GROSR_CACHE_DIR:-none (each binary compiles first)}"
printf '%-10s %-11s %5s  %-34s %6s %6s\n' tool binary tests result errors secs | tee -a "$summary"
start=$(date +%s)
tests_left=0
for r in "${runs[@]}"; do set -- $r; tests_left=$((tests_left + $# - 2)); done
worst=0  # 0 clean, 2 incomplete, 1 errors (1 outranks 2), 3 no sanitizer
note() { [ "$1" = 1 ] && worst=1; [ "$1" = 2 ] && [ $worst = 0 ] && worst=2; }
tmp=$(mktemp)
for r in "${runs[@]}"; do
  set -- $r
  tool=$1 name=$2; shift 2
  n=$#
  left=$((budget - ($(date +%s) - start)))
  limit=$((left * n / tests_left))
  [ $limit -ge 15 ] || limit=15
  tests_left=$((tests_left - n))
  t0=$(date +%s)
  timeout -k 10 "$limit" "$san" --tool "$tool" --error-exitcode 86 --print-limit 50 \
    "$bins/$name" --ignored --test-threads=1 --exact "$@" >"$tmp" 2>&1
  rc=$?
  secs=$(($(date +%s) - t0))
  log=$out/$tool.log
  { echo "=== $tool $name (limit ${limit} s, rc $rc, ${secs} s): $*"
    if [ "$(stat -c %s "$tmp")" -gt 2097152 ]; then
      head -c 1048576 "$tmp"; echo; echo "[... cut: $(stat -c %s "$tmp") bytes in all ...]"; tail -c 1048576 "$tmp"
    else cat "$tmp"; fi
    echo; } >>"$log"
  # racecheck counts its hazards on a line of its own; the other tools in ERROR SUMMARY.
  warnings=0
  if grep -q 'RACECHECK SUMMARY' "$tmp"; then
    races=$(grep -Eo 'RACECHECK SUMMARY: [0-9]+ hazards? displayed \([0-9]+ errors?, [0-9]+ warnings?' "$tmp" |
      sed -E 's/.*\(([0-9]+) errors?, ([0-9]+) warn.*/\1 \2/' | awk '{e += $1; w += $2} END {print e + 0, w + 0}')
    errors=${races% *} warnings=${races#* }
  else
    errors=$(grep -Eo 'ERROR SUMMARY: [0-9]+ error' "$tmp" | awk '{s += $3} END {print s + 0}')
  fi
  results=$(grep -E '^test result:' "$tmp" | tail -n 1 | sed -E 's/^test result: ([A-Za-z]+)\. ([0-9]+) passed; ([0-9]+) failed.*/\1 \2 passed \3 failed/')
  if grep -qE 'Device not supported|Unable to find injection library|Target application terminated before first instrumented' "$tmp"; then
    result="sanitizer refused the device"; worst=3
  elif [ "$errors" -gt 0 ] || [ $rc -eq 86 ]; then
    result="REPORTED ERRORS (${results:-no test result})"; note 1
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    at=$(grep -Eo '^test [A-Za-z0-9_:]+ \.\.\. *$' "$tmp" | tail -n 1 | awk '{print $2}')
    result="cut off${at:+ in $at}"; note 2
  elif [ $rc -ne 0 ]; then
    result="run failed, rc $rc (${results:-no test result})"; note 2
  else
    result="clean (${results:-?})"
  fi
  [ "$warnings" -gt 0 ] && result="$result, $warnings race warnings"
  printf '%-10s %-11s %5s  %-34s %6s %6s\n' "$tool" "$name" "$n" "$result" "$errors" "$secs" | tee -a "$summary"
  [ $worst -ne 3 ] || break
done
rm -f "$tmp"
[ ${#missing[@]} -eq 0 ] || say "not in their binaries (renamed?): ${missing[*]}"
say "not run: gpu_soak (a minute of full load: run it alone), gpu_fault (its device faults are meant," \
  "and a sanitizer reports each), gpu_while_direct (may fault by design)$([ "${CHECK_FULL:-0}" = 1 ] && echo "; HEAVY tests (see the script)")"
case $worst in
  0) say "gpu_checks: every run clean" ;;
  1) say "gpu_checks: a tool reported errors: see $out/<tool>.log" ;;
  2) say "gpu_checks: no tool reported errors, but some runs failed or were cut off: their checks are incomplete" ;;
  3) say "gpu_checks: compute-sanitizer cannot run on this machine (gVisor machines refuse it; Firecracker ones run it)" ;;
esac
exit $worst
