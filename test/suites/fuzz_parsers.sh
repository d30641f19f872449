#!/usr/bin/env bash
# libFuzzer over the extension's C text parsers, outside the server (no
# cluster needed): co2e_from_cstring/co2e_to_cstring (src/co2e.c) and
# dec_parse (src/methodology.c), each checked against a reference model of
# its documented grammar, with AddressSanitizer and UBSan (test/fuzz/).
# FUZZ_SECONDS per target (default 30; both targets run side by side when
# there are two cores); FUZZ_SECONDS=3600 for a long run (docs/testing.md).
# clang and the libFuzzer runtime come from test/harness/packages (ensure_deps).
source "$(dirname "$0")/../harness/lib.sh"
set +e
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30}
FUZZ=$ROOT/test/fuzz
BUILD=${FUZZ_BUILD_DIR:-$FUZZ/build}
TARGETS=(co2e dec)
pass=0; fail=0
check() { local name=$1; shift; if "$@"; then pass=$((pass + 1)); echo "ok - $name"; else fail=$((fail + 1)); echo "not ok - $name"; fi; }
finish() { echo "fuzz_parsers: $pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

# clang with the libFuzzer runtime: a fresh Debian machine has neither.
fuzzer_works() {
  command -v clang >/dev/null 2>&1 || return 1
  local probe
  probe=$(mktemp -d /tmp/carbon_fuzz_probe.XXXXXX)
  printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void) d; (void) n; return 0; }\n' \
    >"$probe/p.c"
  clang -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" >/dev/null 2>&1
  local rc=$?
  rm -rf "$probe"
  return $rc
}
ensure_deps   # clang and libclang-rt-14-dev are in test/harness/packages
check "clang with the libFuzzer runtime and the server headers" fuzzer_works
[ "$fail" -eq 0 ] || finish

t0=$(date +%s)
rm -rf "$BUILD/obj" "$BUILD/artifacts" "$BUILD/corpus" "$BUILD/fuzz_co2e" "$BUILD/fuzz_dec"
mkdir -p "$BUILD/artifacts"
bash "$FUZZ/build.sh" "$BUILD" >"$BUILD/build.log" 2>&1
build_rc=$?
cat "$BUILD/build.log"
echo "# built in $(( $(date +%s) - t0 )) s"

# run_target NAME — fuzzes one target for SECONDS_PER_TARGET seconds from
# the seed corpus (new inputs go to $BUILD/corpus/NAME, crashes to
# $BUILD/artifacts/); exit status is libFuzzer's.
run_target() {
  local t=$1
  rm -rf "$BUILD/corpus/$t"
  mkdir -p "$BUILD/corpus/$t"
  "$BUILD/fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" -max_len=256 -timeout=10 \
    -dict="$FUZZ/$t.dict" -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$t-" \
    "$BUILD/corpus/$t" "$FUZZ/corpus/$t" >"$BUILD/$t.log" 2>&1
}

declare -A rc
if [ "$build_rc" -eq 0 ]; then
  t1=$(date +%s)
  if [ "$(nproc 2>/dev/null || echo 1)" -ge 2 ]; then
    declare -A pid
    for t in "${TARGETS[@]}"; do run_target "$t" & pid[$t]=$!; done
    for t in "${TARGETS[@]}"; do wait "${pid[$t]}"; rc[$t]=$?; done
  else
    for t in "${TARGETS[@]}"; do run_target "$t"; rc[$t]=$?; done
  fi
  echo "# fuzzed for $(( $(date +%s) - t1 )) s (${SECONDS_PER_TARGET} s per target)"
fi

for t in "${TARGETS[@]}"; do
  log=$BUILD/$t.log
  if [ "$build_rc" -ne 0 ] || [ ! -x "$BUILD/fuzz_$t" ]; then
    check "fuzz_$t: built" false
    continue
  fi
  known=$(sed -nE "s/^fuzz_$t: ([0-9]+) known answers ok$/\1/p" "$log")
  check "fuzz_$t: ${known:-no} known answers agree with the parser and the reference model" test -n "$known"
  execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)$/\1/p' "$log")
  seeds=$(find "$FUZZ/corpus/$t" -type f | wc -l)
  grown=$(find "$BUILD/corpus/$t" -type f | wc -l)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
  echo "# fuzz_$t: ${execs:-0} executions (${SECONDS_PER_TARGET} s budget), $seeds seeds, $grown new corpus inputs, ${cov:-no coverage line}"
  crashes=$(find "$BUILD/artifacts" -name "$t-*" -type f | wc -l)
  check "fuzz_$t: ${execs:-0} executions, no crash, no sanitizer report, no model mismatch" \
    test "${rc[$t]}" -eq 0 -a "${execs:-0}" -gt 0 -a "$crashes" -eq 0
  if [ "${rc[$t]}" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    grep -E '^fuzz harness:|runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|SUMMARY' "$log" | head -n 20
    tail -n 15 "$log"
    for a in $(find "$BUILD/artifacts" -name "$t-*" -type f); do
      echo "# reproduce: $BUILD/fuzz_$t $a"
      od -c "$a" | head -n 10
    done
  fi
done
finish
