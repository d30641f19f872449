#!/usr/bin/env bash
# `make bench`: a throwaway cluster with fsync on, every workload of
# ../shared/spec/quality.md beside its baseline, one table of ratios.
# BENCH_SCALE (default 1) scales data sizes; BENCH_REPEAT repetitions.
source "$(dirname "$0")/../test/harness/lib.sh"
source "$ROOT/bench/lib.sh"
for w in "$ROOT"/bench/b[0-9]*_*.sh; do source "$w"; done

ensure_deps
build_install
start_cluster on "max_wal_size = '4GB'" "checkpoint_timeout = '30min'"
"$PGBIN/createdb" bench
psql -X -q -d bench -c 'CREATE EXTENSION carbon_ledger'

for b in ${BENCH_ONLY:-b1 b2 b2m b3 b4 b5 b6 b7 b8 b9}; do log "$b"; bench_timed "$b"; done
# B1, B5 and B7 at 4 clients, then what one transaction of each costs:
# queued by their workloads, run together here
bench_timed vs_tpcb_run
bench_timed cost_rows_run

stop_cluster
bench_print
