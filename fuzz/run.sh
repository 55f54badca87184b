#!/bin/sh
# Runs libFuzzer targets built in BUILD (default build-fuzz, see `make fuzz`) for SECONDS each,
# one after the other: fuzz/run.sh SECONDS [TARGET...] (default: every target).
# Working corpora grow in BUILD/fuzz-work/TARGET (seeded from fuzz/corpus/TARGET and, so that
# every run first replays them under clang's sanitizers, fuzz/regressions/TARGET); anything the
# fuzzer finds (crash, leak, timeout, out-of-memory) lands in BUILD/fuzz-artifacts/TARGET and
# makes the script fail. Limits: an input taking more than FUZZ_TIMEOUT s (default 10) is a
# hang, more than 1 s is reported as slow; a single allocation above FUZZ_MALLOC_MB (default
# 256) or a resident size above 2 GB is an out-of-memory finding.
set -eu
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:?usage: fuzz/run.sh SECONDS [TARGET...]}
shift
BUILD=${BUILD:-build-fuzz}
TARGETS=${*:-"safetensors pth png jpeg npy bank metrics_csv visa_csv manifest_csv dataset_walk mask serve_request"}
TIMEOUT=${FUZZ_TIMEOUT:-10}
MALLOC_MB=${FUZZ_MALLOC_MB:-256}
fail=0
for t in $TARGETS; do
  bin=$BUILD/fuzz/fuzz_$t
  [ -x "$bin" ] || { echo "fuzz: $bin missing (make fuzz builds it)" >&2; exit 2; }
  work=$BUILD/fuzz-work/$t
  art=$BUILD/fuzz-artifacts/$t
  mkdir -p "$work" "$art"
  dict=""
  [ -f fuzz/$t.dict ] && dict="-dict=fuzz/$t.dict"
  seeds=fuzz/corpus/$t
  [ -d fuzz/regressions/$t ] && seeds="$seeds fuzz/regressions/$t"
  log=$BUILD/fuzz-$t.log
  echo "fuzz: $t for ${SECONDS_EACH}s (log $log)"
  # a finding makes libFuzzer exit non-zero; the loop goes on with the next target
  if ! nice -n "${FUZZ_NICE:-10}" "$bin" -max_total_time="$SECONDS_EACH" -timeout="$TIMEOUT" \
      -report_slow_units=1 -rss_limit_mb=2048 -malloc_limit_mb="$MALLOC_MB" -close_fd_mask=3 \
      -print_final_stats=1 $dict -artifact_prefix="$art/" "$work" $seeds >"$log" 2>&1; then
    echo "fuzz: $t FOUND SOMETHING:" >&2
    grep -E "ERROR|SUMMARY|runtime error|Test unit written" "$log" | head -5 >&2
    fail=1
  fi
  grep -E "^#[0-9]+.*(DONE|pulse|NEW|REDUCE)" "$log" | tail -1 | sed "s/^/fuzz: $t: /"
  grep -E "stat::number_of_executed_units|Slowest unit" "$log" | sed "s/^/fuzz: $t: /" || true
done
exit $fail
