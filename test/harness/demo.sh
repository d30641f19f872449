#!/usr/bin/env bash
# `make demo`: set up, start a throwaway cluster, run examples/demo.sql, stop.
source "$(dirname "$0")/lib.sh"
ensure_deps
build_install
start_cluster off
"$PGBIN/createdb" carbon_demo
psql -X -q -d carbon_demo -c 'CREATE EXTENSION carbon_ledger'
psql -X -d carbon_demo -f "$ROOT/examples/demo.sql" 2>&1
stop_cluster
log "demo finished; the cluster is stopped and removed"
