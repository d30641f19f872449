/*
 * carbon_ledger.c — module entry: cached SPI plans, transaction callbacks,
 * and acting for a citizen (act_as), which RLS policies read.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "miscadmin.h"
#include "catalog/pg_type.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

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

static void
ledger_xact_callback(XactEvent event, void *arg pg_attribute_unused())
{
	bool		committed;

	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
			/* a safety net: bulk deltas are flushed by their caller already */
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
	ledger_write.active = false;
	ledger_forget_deferred();
	if (committed)
		ledger_keep_xact_cache();
	else
		ledger_forget_xact_cache();
	ledger_release_retired_caches();
}

/*
 * A rolled-back subtransaction (a savepoint, a PL/pgSQL exception block)
 * may have created system accounts that no longer exist.
 */
static void
ledger_subxact_callback(SubXactEvent event, SubTransactionId mySubid pg_attribute_unused(),
						SubTransactionId parentSubid pg_attribute_unused(),
						void *arg pg_attribute_unused())
{
	if (event == SUBXACT_EVENT_ABORT_SUB)
	{
		ledger_write.active = false;
		ledger_forget_xact_cache();
		ledger_forget_deferred();	/* their postings are rolled back too */
	}
}

void
_PG_init(void)
{
	RegisterXactCallback(ledger_xact_callback, NULL);
	RegisterSubXactCallback(ledger_subxact_callback, NULL);
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

void
ledger_spi_connect(void)
{
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
	if (acting_account != account)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("acting for account " INT64_FORMAT ", not for account " INT64_FORMAT,
						acting_account, account)));
}

/* act_as(account bigint) → void: act for this account until the transaction ends */
PG_FUNCTION_INFO_V1(ledger_act_as);
Datum
ledger_act_as(PG_FUNCTION_ARGS)
{
	int64		account;
	LedgerAccount acc;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("account must not be null")));
	account = PG_GETARG_INT64(0);
	ledger_spi_connect();
	ledger_require_account(account, &acc);
	SPI_finish();
	if (!acc.participant)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " is a system account", account),
				 errdetail("Apps act only for participant accounts.")));
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

/* SQL arrays of bigint and smallint datums, for unnest() in set-based statements. */
Datum
ledger_int8_array(Datum *elems, int n)
{
	return PointerGetDatum(construct_array(elems, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

Datum
ledger_int2_array(Datum *elems, int n)
{
	return PointerGetDatum(construct_array(elems, n, INT2OID, 2, true, TYPALIGN_SHORT));
}
