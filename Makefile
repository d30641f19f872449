# carbon_ledger — PGXS build.  `make demo`, `make test`, `make bench` set up
# everything they need themselves (see README.md).

EXTENSION    = carbon_ledger
EXTVERSION   = 0.2
MODULE_big   = carbon_ledger
OBJS         = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))

# The install script of this version is built from the parts in src/sql/,
# in name order.  Scripts of earlier versions and the upgrade steps between
# versions are kept in the repository as shipped (never edited): every change
# to src/sql/ comes with its step in carbon_ledger--<previous>--$(EXTVERSION).sql
# (test/suites/upgrade.sh compares an upgraded database with a fresh one).
SQL_PARTS    = $(sort $(wildcard src/sql/*.sql))
DATA_built   = $(EXTENSION)--$(EXTVERSION).sql
DATA         = $(filter-out $(DATA_built),$(wildcard $(EXTENSION)--*.sql))
EXTRA_CLEAN  = results regression.diffs regression.out test/isolation/output_iso

# `make installcheck` against an installed extension on a running server
# (PGHOST, PGPORT, PGUSER as for psql; a superuser): the pg_regress
# transcripts of sql/ and the isolation specs of test/isolation/specs/, as in
# PostgreSQL's contrib.  `make test` runs them too, with everything else.
REGRESS        = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS   = --load-extension=$(EXTENSION)
ISOLATION      = $(patsubst test/isolation/specs/%.spec,%,$(sort $(wildcard test/isolation/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test/isolation --outputdir=test/isolation/output_iso \
                 --load-extension=$(EXTENSION)

PG_CONFIG   ?= pg_config

# -Wall -Wextra -Werror on our code; the server headers are included as
# system headers so that their unused parameters do not count against us.
PG_CPPFLAGS  = -I$(srcdir)/src -isystem $(shell $(PG_CONFIG) --includedir-server 2>/dev/null)
PG_CFLAGS    = -Wall -Wextra -Werror
PGXS        := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)

ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all:
	@echo "PGXS not found: run 'make test' or 'make demo', which install postgresql-server-dev-15" >&2; exit 1
endif

$(EXTENSION)--$(EXTVERSION).sql: $(SQL_PARTS)
	cat $^ > $@

$(OBJS): $(wildcard src/*.h)

.PHONY: demo test bench lint
demo:
	bash test/harness/demo.sh
test:
	bash test/harness/run_tests.sh
bench:
	bash bench/run_bench.sh
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
	  --inline-suppr -I src src
