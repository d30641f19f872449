# test/harness/lib.sh — shared by `make test`, `make demo` and `make bench`.
#
# ensure_deps     installs what a fresh Debian machine lacks (as root: apt-get)
# build_install   builds with PGXS and installs the extension
# start_cluster   initdb + start a throwaway server in a temporary directory,
#                 run as the `postgres` OS user when we are root (initdb
#                 refuses root); exports PGHOST/PGPORT/PGUSER; stopped and
#                 removed on exit, whatever happens.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
PG_MAJOR=15

log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs a server-side command as the cluster's owner.
as_pg() {
  if [ "$(id -u)" = 0 ]; then (cd /tmp && runuser -u postgres -- "$@"); else "$@"; fi
}

# The Debian packages every command needs: test/harness/packages, one per
# line.  Checked by package name with dpkg-query (never by probing for a
# file, which may be on this machine for another reason); the missing ones
# are installed together.
deps_packages() {
  sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' "$ROOT/test/harness/packages"
}

ensure_deps() {
  local need=() pkg
  while read -r pkg; do
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" = installed ] || need+=("$pkg")
  done < <(deps_packages)
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  PGBIN=$(pg_config --bindir)
  PGXS_DIR=$(pg_config --pkglibdir)/pgxs
  export PGBIN PGXS_DIR
}

build_install() {
  log "building carbon_ledger"
  make -C "$ROOT" -s -j2 >/dev/null
  as_root make -C "$ROOT" -s install >/dev/null
}

CL_TMP=""
stop_cluster() {
  if [ -n "$CL_TMP" ] && [ -d "$CL_TMP/data" ]; then
    as_pg "$PGBIN/pg_ctl" -D "$CL_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  [ -n "$CL_TMP" ] && rm -rf "$CL_TMP"
  CL_TMP=""
}

# start_cluster [fsync on|off] [extra postgresql.conf lines...]
start_cluster() {
  local fsync=${1:-off}
  shift || true
  CL_TMP=$(mktemp -d /tmp/carbon_ledger.XXXXXX)
  chmod 755 "$CL_TMP"
  [ "$(id -u)" = 0 ] && chown postgres: "$CL_TMP"
  trap stop_cluster EXIT
  as_pg "$PGBIN/initdb" -D "$CL_TMP/data" -U postgres --auth=trust -E UTF8 \
    --locale=C.UTF-8 >"$CL_TMP/initdb.log" 2>&1 || { cat "$CL_TMP/initdb.log"; return 1; }
  {
    echo "listen_addresses = ''"          # sockets only: no port clashes
    echo "unix_socket_directories = '$CL_TMP'"
    echo "port = 5432"
    echo "fsync = $fsync"
    echo "synchronous_commit = on"
    echo "shared_buffers = 512MB"
    echo "max_connections = 60"
    echo "max_worker_processes = 16"
    echo "max_parallel_workers = 8"
    echo "max_prepared_transactions = 10"
    echo "lc_messages = 'C'"
    for line in "$@"; do echo "$line"; done
  } | as_pg tee -a "$CL_TMP/data/postgresql.conf" >/dev/null
  # a backend that crashes leaves a core in the data directory (core_pattern
  # permitting), for run_tests.sh to print its stack before the cluster goes
  ulimit -c unlimited 2>/dev/null || true
  as_pg "$PGBIN/pg_ctl" -D "$CL_TMP/data" -l "$CL_TMP/server.log" -w start >/dev/null
  export PGHOST=$CL_TMP PGPORT=5432 PGUSER=postgres PGDATABASE=postgres
}
