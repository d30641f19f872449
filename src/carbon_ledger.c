/*
 * carbon_ledger.c — module entry: cached SPI plans, transaction callbacks,
 * and acting for a citizen (act_as), which RLS policies read.
 */
#include "postgres.h"

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "nodes/parsenodes.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/plancache.h"
#include "utils/resowner.h"

#include "journal.h"
#include "catalog.h"
#include "ledger.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/*
 * The account an app acts for.  A backend-local variable, not a GUC: a GUC
 * could be SET for the whole session by the app itself, while this is
 * cleared at the end of every transaction, so nothing carries over to the
 * next transaction on a pooled connection.
 */
static int64 acting_account = 0;
static bool acting_set = false;

/*
 * act_as() behaves like SET LOCAL: each call remembers what it replaced and
 * in which subtransaction, so that ROLLBACK TO SAVEPOINT undoes it.  The
 * stack lives in TopTransactionContext and is forgotten at transaction end.
 */
typedef struct ActingUndo
{
	SubTransactionId subid;
	int64		account;
	bool		set;
	struct ActingUndo *prev;
} ActingUndo;

static ActingUndo *acting_undo = NULL;

static void
ledger_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	bool		committed;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			/* safety nets: a statement's orders and bulk deltas are written by their callers already */
			ledger_market_pre_commit();
			ledger_flush_deferred();
			return;
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			committed = true;
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			committed = false;
			break;
		default:
			return;
	}
	acting_set = false;
	acting_account = 0;
	acting_undo = NULL;
	ledger_journal_reset();
	ledger_forget_deferred();
	ledger_market_xact_end();
	if (committed)
		ledger_keep_xact_cache();
	else
		ledger_forget_xact_cache();
	ledger_release_retired_caches();
	ledger_catalog_release_retired();
}

/*
 * A rolled-back subtransaction (a savepoint, a PL/pgSQL exception block)
 * may have created system accounts that no longer exist.
 */
static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg pg_attribute_unused())
{
	if (event == SUBXACT_EVENT_COMMIT_SUB)
	{
		/* a released savepoint's act_as() now belongs to its parent */
		for (ActingUndo *u = acting_undo; u != NULL && u->subid == mySubid; u = u->prev)
			u->subid = parentSubid;
	}
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		/* undo the act_as() calls made inside the rolled-back subtransaction */
		while (acting_undo != NULL && acting_undo->subid == mySubid)
		{
			acting_account = acting_undo->account;
			acting_set = acting_undo->set;
			acting_undo = acting_undo->prev;
		}
		ledger_journal_reset();
		ledger_forget_xact_cache();
		ledger_forget_deferred();	/* their postings are rolled back too */
	}
	ledger_market_subxact(event, mySubid, parentSubid);	/* a statement's orders, their ends */
}

void
_PG_init(void)
{
	RegisterXactCallback(ledger_xact_callback, NULL);
	RegisterSubXactCallback(ledger_subxact_callback, NULL);
	ledger_lots_register();		/* the holdings module of POINT and RED */
	ledger_units_register();	/* ... and of CER: serial blocks */
	ledger_market_register();	/* a statement's orders are written when it ends */
	ledger_early_release_register();	/* the book's lock let go before the commit's flush */
#ifdef __GLIBC__
	/*
	 * Keep freed memory in the heap instead of giving it back to the kernel
	 * at once.  Every statement's executor memory is freed when it ends; the
	 * next statement would fault the same pages in again (perf: brk and page
	 * faults, a tenth of one place_order's CPU).  Both limits are set:
	 * setting the trim threshold turns off glibc's sliding mmap threshold,
	 * which would leave every block over 128 kB (a large context's blocks
	 * double up to 8 MB) mmapped and unmapped per statement, each page
	 * faulted in anew: B4's 1,000-order statement peaks at about 10 MB, and
	 * its page faults were 12 % of its CPU.  A backend so keeps at most
	 * 16 MB of freed heap.
	 */
	mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
	mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
	mallopt(M_TOP_PAD, 1024 * 1024);
#endif
}

/* Prepare a statement once per backend and keep it (pg_cron's way). */
SPIPlanPtr
ledger_plan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(sql, nargs, (Oid *) argtypes);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed (%s) for: %s",
				 SPI_result_code_string(SPI_result), sql);
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}

/*
 * A statement over arrays of keys, prepared twice: for a few rows a generic
 * plan, always (a custom plan would be planned again on every call, the
 * plan cache finding the generic one dearer for its guess of the arrays'
 * length); for many, the plan cache's choice, planned for the arrays given.
 */
/*
 * ledger_plan(), always with the generic plan: for statements over a few
 * keys (arrays of a handful of elements) that the plan cache would
 * otherwise plan again at every call, finding a generic plan over arrays
 * dearer than it is.  The market and the serial blocks run on these.
 */
SPIPlanPtr
ledger_plan_generic(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes)
{
	if (*cache == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes, CURSOR_OPT_GENERIC_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed (%s) for: %s",
				 SPI_result_code_string(SPI_result), sql);
		SPI_keepplan(plan);
		*cache = plan;
	}
	return *cache;
}

/*
 * Run a saved generic plan that looks rows up by key.  A generic plan is
 * built at its first run and again after an invalidation; built while its
 * table was small (a new market's book, a day's first usage rows), it
 * would keep a sequential scan or a hash join over the whole table for as
 * long as the session lives, the table growing under it: one pgbench
 * connection placed B4's orders at 2,500 a second instead of 8,000.  So
 * whenever the plan is to be built, it is built with sequential and bitmap
 * scans and hash and merge joins off: the index, in its order, whatever
 * the table's size then (a bitmap scan reads every row that matches before
 * a LIMIT stops it).  A plan already built runs as it is, at no cost; so
 * does a plan that is not kept generic (planned at every run for its
 * actual rows, as a large batch's are).  docs/ledger.md.
 */
int
ledger_run_keyed(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only)
{
	bool		build = false;
	ListCell   *lc;
	int			nest;
	int			rc;

	foreach(lc, SPI_plan_get_plan_sources(plan))
	{
		CachedPlanSource *ps = (CachedPlanSource *) lfirst(lc);

		/* only a plan kept generic (ledger_plan_generic, few rows) is ever kept */
		if ((ps->cursor_options & CURSOR_OPT_GENERIC_PLAN) &&
			(!ps->is_valid || ps->gplan == NULL || !ps->gplan->is_valid))
			build = true;
	}
	if (!build)
		return SPI_execute_plan(plan, values, nulls, read_only, 0);
	nest = NewGUCNestLevel();
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_bitmapscan", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_hashjoin", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_mergejoin", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	rc = SPI_execute_plan(plan, values, nulls, read_only, 0);
	AtEOXact_GUC(true, nest);
	return rc;
}

SPIPlanPtr
ledger_plan_sized(SPIPlanPtr cache[2], int64 rows, const char *sql, int nargs, const Oid *argtypes)
{
	bool		few = rows <= LEDGER_FEW_ROWS;

	if (cache[few] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, (Oid *) argtypes, few ? CURSOR_OPT_GENERIC_PLAN : 0);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed (%s) for: %s",
				 SPI_result_code_string(SPI_result), sql);
		SPI_keepplan(plan);
		cache[few] = plan;
	}
	return cache[few];
}

/* Run a prepared statement that must end as `expect` (SPI_OK_…). */
void
ledger_run(SPIPlanPtr plan, Datum *values, int expect)
{
	if (SPI_execute_plan(plan, values, NULL, false, 0) != expect)
		elog(ERROR, "carbon_ledger statement failed: %s", SPI_result_code_string(SPI_result));
}

/*
 * Whether a lookup may read with the calling statement's snapshot.  A
 * lookup that a writer makes must see what earlier calls of the same
 * statement wrote (an account opened in deposit_cash's own argument list),
 * so it reads with a fresh snapshot, as PL/pgSQL's statements do; only in
 * parallel mode, where a new command may not start, does it keep the old one.
 */
bool
ledger_lookup_read_only(void)
{
	return IsInParallelMode();
}

/* qsort's and bsearch's order of int64s. */
int
ledger_int64_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

/*
 * The columns' arrays, cut from one allocation of values and one of nulls:
 * an order writes five tables of up to 19 columns, and an allocation each
 * was 1 % of its instructions.
 */
static void
columns_carve(LedgerColumns *c, Datum *v, bool *null)
{
	for (int i = 0; i < c->ncols; i++)
	{
		c->v[i] = v + i * c->cap;
		c->null[i] = null + i * c->cap;
	}
}

void
ledger_columns_init(LedgerColumns *c, int ncols, const Oid *types, int cap)
{
	Assert(ncols <= (int) lengthof(c->v));
	c->n = 0;
	c->cap = Max(cap, 1);
	c->ncols = ncols;
	c->types = types;
	columns_carve(c, palloc(sizeof(Datum) * c->cap * Max(ncols, 1)), palloc0(sizeof(bool) * c->cap * Max(ncols, 1)));
}

/* Room for one more row (when the count is not known beforehand). */
void
ledger_columns_room(LedgerColumns *c)
{
	Datum	   *v;
	bool	   *null;

	if (c->n < c->cap)
		return;
	v = palloc(sizeof(Datum) * c->cap * 2 * Max(c->ncols, 1));
	null = palloc0(sizeof(bool) * c->cap * 2 * Max(c->ncols, 1));
	for (int i = 0; i < c->ncols; i++)
	{
		memcpy(v + i * c->cap * 2, c->v[i], sizeof(Datum) * c->n);
		memcpy(null + i * c->cap * 2, c->null[i], sizeof(bool) * c->n);
	}
	if (c->ncols > 0)
		pfree(c->v[0]), pfree(c->null[0]);
	c->cap *= 2;
	columns_carve(c, v, null);
}

/* Each column as an array: values[0 .. ncols - 1]. */
void
ledger_columns_arrays(const LedgerColumns *c, Datum *values)
{
	for (int i = 0; i < c->ncols; i++)
		values[i] = ledger_array(c->v[i], c->null[i], c->n, c->types[i]);
}

void
ledger_spi_connect(void)
{
	ledger_market_write_pending();	/* what the orders of this statement did, first */
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

/*
 * Run fn(arg) in a subtransaction.  True when it ran through; false, with
 * all it did rolled back, when it raised `sqlerrcode`.  Any other error
 * rolls the subtransaction back and goes on up.
 */
bool
ledger_try_subxact(void (*fn) (void *), void *arg, int sqlerrcode)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;
	bool		defer = ledger_defer_system;

	/*
	 * A rolled-back subtransaction forgets the balance changes deferred to
	 * the end of the call (ledger_subxact_callback): apply the ones made
	 * before it first, which belong to the level above.  (process_inbox
	 * flushes after every batch anyway; this keeps the rule here, where
	 * the subtransaction is.  Isolation spec inbox_dup_batch.)
	 */
	ledger_flush_deferred();
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		ledger_defer_system = defer;	/* the call goes on deferring */
		if (edata->sqlerrcode != sqlerrcode)
			ReThrowError(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

static bool
role_has(Oid user, const char *rolename)
{
	Oid			role = get_role_oid(rolename, true);

	return OidIsValid(role) && has_privs_of_role(user, role);
}

/*
 * Who may read or move the value of `account`: superusers and carbon_admin
 * members always; anyone else (the app, merchants, traders) only for the
 * account named by act_as() in this transaction.  The caller is the outer
 * user: SECURITY DEFINER changes the current user, not the outer one.
 */
void
ledger_check_acting(int64 account, bool read_only)
{
	ledger_check_acting_owner(account, read_only, NULL, 0);
}

/*
 * The same for `account` found as the owner of `thing` `thing_id` (an
 * order, a redemption): a refusal names the thing, not its owner, whom
 * the caller did not name and may not learn (red-team: cancel_order told
 * any app acting for a citizen who owned any order id).
 */
void
ledger_check_acting_owner(int64 account, bool read_only, const char *thing, int64 thing_id)
{
	Oid			caller = GetOuterUserId();

	if (superuser_arg(caller) || role_has(caller, "carbon_admin"))
		return;
	if (read_only && role_has(caller, "carbon_auditor"))
		return;
	if (!acting_set)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("no account to act for in this transaction"),
				 errhint("Call carbon.act_as(account) in the same transaction first.")));
	if (acting_account != account && thing != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("%s " INT64_FORMAT " is not account " INT64_FORMAT "'s", thing, thing_id, acting_account),
				 errhint("Act for the account it belongs to.")));
	if (acting_account != account)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("acting for account " INT64_FORMAT ", not for account " INT64_FORMAT,
						acting_account, account)));
}

/* Is `account` bound to the login `caller` by carbon.bind_account()? */
static bool
account_bound_to(int64 account, Oid caller)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, NAMEOID};
	Datum		values[2];
	NameData	login;

	namestrcpy(&login, GetUserNameFromId(caller, false));
	values[0] = Int64GetDatum(account);
	values[1] = NameGetDatum(&login);
	ledger_plan(&plan, "SELECT 1 FROM carbon.account_binding WHERE account = $1 AND login = $2", 2, types);
	if (SPI_execute_plan(plan, values, NULL, ledger_lookup_read_only(), 1) != SPI_OK_SELECT)
		elog(ERROR, "account binding lookup failed");
	return SPI_processed > 0;
}

/*
 * Who may act for whom (api.md §7): superusers and carbon_admin for anyone;
 * a carbon_app member for any personal account; everyone else, and members
 * of carbon_merchant and carbon_trader for any account at all, only for the
 * accounts bound to their login with carbon.bind_account().
 */
static void
check_may_act_for(const LedgerAccount *acc)
{
	Oid			caller = GetOuterUserId();
	bool		dealer;

	if (superuser_arg(caller) || role_has(caller, "carbon_admin"))
		return;
	dealer = role_has(caller, "carbon_merchant") || role_has(caller, "carbon_trader");
	if (!dealer && strcmp(acc->tier, "personal") == 0 && role_has(caller, "carbon_app"))
		return;
	if (account_bound_to(acc->id, caller))
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may not act for account " INT64_FORMAT,
					GetUserNameFromId(caller, false), acc->id),
			 errdetail(dealer ? "Merchants and traders act only for the accounts bound to their login."
					   : "Apps act for personal accounts; other accounts must be bound to the login."),
			 errhint("carbon_admin binds an account to a login with carbon.bind_account(account, login).")));
}

/*
 * Who may open an account of `tier`: superusers and carbon_admin any tier;
 * others (carbon_app, the citizen app) personal accounts only, the accounts
 * they may act for: an app opening platform or verifier accounts would
 * count in the tiers' reports, and a verifier account is the identity
 * verify_monitoring trusts (red-team, twenty-second session).
 */
void
ledger_check_may_open(const char *tier)
{
	Oid			caller = GetOuterUserId();

	if (superuser_arg(caller) || role_has(caller, "carbon_admin") || strcmp(tier, "personal") == 0)
		return;
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("role \"%s\" may open personal accounts only, not a %s account",
					GetUserNameFromId(caller, false), tier),
			 errhint("carbon_admin opens accounts of the other tiers.")));
}

/* act_as(account bigint) → void: act for this account until the transaction ends */
PG_FUNCTION_INFO_V1(ledger_act_as);
Datum
ledger_act_as(PG_FUNCTION_ARGS)
{
	int64		account;
	LedgerAccount acc;
	ActingUndo *undo;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("account must not be null")));
	account = PG_GETARG_INT64(0);
	ledger_spi_connect();
	ledger_require_account(account, &acc);
	if (!acc.participant)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " is a system account", account),
				 errdetail("Apps act only for participant accounts.")));
	check_may_act_for(&acc);
	SPI_finish();

	undo = MemoryContextAlloc(TopTransactionContext, sizeof(ActingUndo));
	undo->subid = GetCurrentSubTransactionId();
	undo->account = acting_account;
	undo->set = acting_set;
	undo->prev = acting_undo;
	acting_undo = undo;
	acting_account = account;
	acting_set = true;
	PG_RETURN_VOID();
}

/* acting_account() → bigint: the account set by act_as() in this transaction, or NULL */
PG_FUNCTION_INFO_V1(ledger_acting_account_sql);
Datum
ledger_acting_account_sql(PG_FUNCTION_ARGS)
{
	if (!acting_set)
		PG_RETURN_NULL();
	PG_RETURN_INT64(acting_account);
}

/* A required argument: NULL is 22004, naming the parameter. */
static void
null_argument(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
			 errmsg("%s must not be null", name)));
}

char *
ledger_arg_text(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		null_argument(name);
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

char *
ledger_arg_text_or_null(FunctionCallInfo fcinfo, int argno)
{
	if (PG_NARGS() <= argno || PG_ARGISNULL(argno))
		return NULL;
	return text_to_cstring(PG_GETARG_TEXT_PP(argno));
}

int64
ledger_arg_int64(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		null_argument(name);
	return PG_GETARG_INT64(argno);
}

/* An amount of an asset's minor unit: positive, or 22023. */
int64
ledger_arg_amount(FunctionCallInfo fcinfo, int argno, const char *name)
{
	int64		amount = ledger_arg_int64(fcinfo, argno, name);

	if (amount <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be positive, not " INT64_FORMAT, name, amount)));
	return amount;
}

/*
 * A one-dimensional SQL array of `n` datums of a type (nulls may be NULL),
 * for unnest() in set-based statements.
 */
Datum
ledger_array(Datum *elems, bool *nulls, int n, Oid elemtype)
{
	int16		typlen;
	bool		typbyval;
	char		typalign;
	int			dims[1];
	int			lbs[1] = {1};

	/* the built-in types of our arrays, without a catalog lookup per array */
	switch (elemtype)
	{
		case INT8OID:
		case TIMESTAMPTZOID:
			typlen = 8, typbyval = FLOAT8PASSBYVAL, typalign = TYPALIGN_DOUBLE;
			break;
		case INT4OID:
		case DATEOID:
			typlen = 4, typbyval = true, typalign = TYPALIGN_INT;
			break;
		case INT2OID:
			typlen = 2, typbyval = true, typalign = TYPALIGN_SHORT;
			break;
		case TEXTOID:
		case NUMERICOID:
		case JSONBOID:
			typlen = -1, typbyval = false, typalign = TYPALIGN_INT;
			break;
		default:
			get_typlenbyvalalign(elemtype, &typlen, &typbyval, &typalign);
	}
	dims[0] = n;
	if (n == 0)
		return PointerGetDatum(construct_empty_array(elemtype));
	return PointerGetDatum(construct_md_array(elems, nulls, 1, dims, lbs, elemtype, typlen, typbyval, typalign));
}

Datum
ledger_int8_array(Datum *elems, int n)
{
	return ledger_array(elems, NULL, n, INT8OID);
}

Datum
ledger_int2_array(Datum *elems, int n)
{
	return ledger_array(elems, NULL, n, INT2OID);
}
