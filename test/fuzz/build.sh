#!/usr/bin/env bash
# test/fuzz/build.sh [OUTDIR] — builds the libFuzzer targets fuzz_co2e and
# fuzz_dec into OUTDIR (default test/fuzz/build/), with clang and
# -fsanitize=fuzzer,address,undefined (undefined behaviour aborts).
#
# The parsers are compiled straight from src/co2e.c and src/methodology.c
# against the server headers, each function in its own section; the link
# drops every function the targets do not reach (--gc-sections, and
# -z start-stop-gc so that the coverage tables do not keep them), so only the
# parsers and what they call are left: pg_shim.c provides ereport/palloc,
# libpgport provides pg_snprintf and pg_strncasecmp as in the server.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${1:-$HERE/build}
CC=${FUZZ_CC:-clang}
PG_CONFIG=${PG_CONFIG:-pg_config}

INC=$("$PG_CONFIG" --includedir-server)
PGPORT=""
for dir in "$("$PG_CONFIG" --pkglibdir)" "$("$PG_CONFIG" --libdir)"; do
  if [ -f "$dir/libpgport.a" ]; then PGPORT=$dir/libpgport.a; break; fi
done
[ -n "$PGPORT" ] || { echo "build.sh: libpgport.a not found (postgresql-server-dev-15)" >&2; exit 1; }

SAN="-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined"
# -Wno-ignored-attributes: the server headers ask for gnu_printf, which clang lacks
CFLAGS="-g -O1 -fno-omit-frame-pointer -ffunction-sections -fdata-sections -Wall -Wextra \
  -Wno-ignored-attributes -I$ROOT/src -I$HERE -isystem $INC $SAN"

mkdir -p "$OUT/obj"
# The extension's sources: warnings shown but not fatal here (the PGXS build
# holds them to -Werror with the server's compiler); the harness: -Werror.
$CC $CFLAGS -c "$ROOT/src/co2e.c" -o "$OUT/obj/co2e.o"
$CC $CFLAGS -c "$ROOT/src/methodology.c" -o "$OUT/obj/methodology.o"
for f in pg_shim fuzz_co2e fuzz_dec; do
  $CC $CFLAGS -Werror -c "$HERE/$f.c" -o "$OUT/obj/$f.o"
done

LDFLAGS="$SAN -Wl,--gc-sections -Wl,-z,start-stop-gc"
$CC $LDFLAGS "$OUT/obj/fuzz_co2e.o" "$OUT/obj/co2e.o" "$OUT/obj/pg_shim.o" "$PGPORT" -o "$OUT/fuzz_co2e"
$CC $LDFLAGS "$OUT/obj/fuzz_dec.o" "$OUT/obj/methodology.o" "$OUT/obj/pg_shim.o" "$PGPORT" -o "$OUT/fuzz_dec"
echo "built $OUT/fuzz_co2e $OUT/fuzz_dec"
