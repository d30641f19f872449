/*
 * journal.c — the posting path: ledger_post() writes one LedgerEntry and
 * its postings in one statement, so that the statement trigger
 * (invariants.c) sees the entry whole and checks it against the request,
 * which it finds with ledger_posting_entry(); then the holdings modules
 * move what they hold along with the postings.
 *
 * The request is pushed for the statement and popped after it, whatever
 * happens (nested posts restore the outer one); at the end of every
 * transaction nothing is left.  Nobody sets globals for the trigger.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/memutils.h"

#include "journal.h"

/* The entry whose postings are being inserted (innermost first). */
static const LedgerEntry *posting_entry = NULL;

#define MAX_HOLDINGS 8
static const LedgerHoldings *holdings[MAX_HOLDINGS];
static int	nholdings = 0;

void
ledger_register_holdings(const LedgerHoldings *h)
{
	for (int i = 0; i < nholdings; i++)
		if (holdings[i] == h)
			return;
	if (nholdings == MAX_HOLDINGS)
		elog(ERROR, "too many holdings modules");
	holdings[nholdings++] = h;
}

static const LedgerHoldings *
holdings_of(int16 asset)
{
	for (int i = 0; i < nholdings; i++)
		if (holdings[i]->holds(asset))
			return holdings[i];
	return NULL;
}

const LedgerEntry *
ledger_posting_entry(void)
{
	return posting_entry;
}

/* At the end of a transaction (or a rolled-back subtransaction). */
void
ledger_journal_reset(void)
{
	posting_entry = NULL;
}

/* An entry ($1 kind, $2 memo, $3 reverses) as `e`; its id the one given (reserved by the caller), else the next */
#define ENTRY_CTE(id_param) \
	"WITH e AS (INSERT INTO carbon.entry (id, kind, memo, reverses) " \
	"           VALUES (coalesce(" id_param "::bigint, nextval('carbon.entry_id_seq')), $1, $2, $3) " \
	"           RETURNING id, created_at)"
/* the postings of entry `e`: the arrays of accounts, assets and amounts given */
#define POSTINGS_INSERT(accounts, assets, amounts) \
	"INSERT INTO carbon.posting (entry_id, seq, account, asset_id, amount, at) " \
	"SELECT e.id, u.seq, u.account, u.asset, u.amount, e.created_at " \
	"FROM e, unnest(" accounts ", " assets ", " amounts ") WITH ORDINALITY AS u(account, asset, amount, seq)"

/*
 * The module that may write this entry's holdings in the entry's own
 * statement: one module holds every participant posting of a held asset,
 * each of them a credit, and it offers fresh_cte.  NULL otherwise.
 */
static pg_noinline const LedgerHoldings *
fresh_module(const LedgerEntry *entry)
{
	const LedgerHoldings *only = NULL;

	if (entry->holdings_moved || entry->fresh_basis == 0)
		return NULL;
	for (int i = 0; i < entry->n; i++)
	{
		const LedgerHoldings *h;

		if (!entry->accounts[i]->participant || (h = holdings_of(entry->assets[i])) == NULL)
			continue;
		if (entry->amounts[i] < 0 || h->fresh_cte == NULL || (only != NULL && only != h))
			return NULL;
		only = h;
	}
	return only;
}

/* A cached plan per fresh module (few: one per module). */
typedef struct FreshPlan
{
	const LedgerHoldings *module;
	SPIPlanPtr	plan;
} FreshPlan;

static SPIPlanPtr
fresh_plan(const LedgerHoldings *h)
{
	static FreshPlan plans[MAX_HOLDINGS];
	static int	nplans = 0;
	Oid			types[9] = {TEXTOID, TEXTOID, INT8OID, INT8ARRAYOID, INT2ARRAYOID, INT8ARRAYOID,
		INT8ARRAYOID, InvalidOid, INT8OID};
	StringInfoData sql;
	int			i;

	for (i = 0; i < nplans; i++)
		if (plans[i].module == h)
			return plans[i].plan;
	types[7] = h->fresh_param_type;
	initStringInfo(&sql);
	appendStringInfo(&sql, ENTRY_CTE("$9") ", p AS (" POSTINGS_INSERT("$4", "$5", "$6") "), h AS (%s) SELECT id FROM e",
					 h->fresh_cte);
	plans[nplans].module = h;
	plans[nplans].plan = NULL;
	ledger_plan(&plans[nplans].plan, sql.data, 9, types);
	pfree(sql.data);
	return plans[nplans++].plan;
}

/*
 * The entry row and its postings straight into their tables (append.c), as
 * the statement of ENTRY_CTE and POSTINGS_INSERT would write them: an id
 * from carbon.entry_id_seq unless the caller reserved one, created_at and
 * every posting's `at` the transaction's now().  The posting trigger's
 * check then runs by hand on the entry.  When the postings cannot go
 * straight in (a DBA's trigger on carbon.posting, say), one INSERT writes
 * them all and the trigger checks them.
 */
static int64
entry_write(const LedgerEntry *entry)
{
	static const char *const entry_columns[] = {"id", "kind", "memo", "reverses", "created_at"};
	static const char *const posting_columns[] = {"entry_id", "seq", "account", "asset_id", "amount", "at"};
	int			n = entry->n;
	int64		id = entry->reserved_id ? entry->reserved_id : ledger_next_id("entry_id_seq");
	Datum		at = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	Datum		ev[5],
				ids = Int64GetDatum(id);
	bool		en[5] = {false, false, entry->memo == NULL, entry->reverses == 0, false};
	Datum	   *evp[5] = {&ev[0], &ev[1], &ev[2], &ev[3], &ev[4]};
	bool	   *enp[5] = {&en[0], &en[1], &en[2], &en[3], &en[4]};
	Datum	   *pv[6],
			   *pvp[6];
	bool	   *pn;
	bool	   *pnp[6];

	ev[0] = ids;
	ev[1] = CStringGetTextDatum(entry->kind);
	ev[2] = entry->memo ? CStringGetTextDatum(entry->memo) : (Datum) 0;
	ev[3] = Int64GetDatum(entry->reverses);
	ev[4] = at;
	ledger_append("entry", 5, entry_columns, evp, enp, 1);

	pn = palloc0(sizeof(bool) * Max(n, 1));	/* no posting column is null */
	for (int c = 0; c < 6; c++)
	{
		pv[c] = palloc(sizeof(Datum) * Max(n, 1));
		pvp[c] = pv[c];
		pnp[c] = pn;
	}
	for (int i = 0; i < n; i++)
	{
		pv[0][i] = ids;
		pv[1][i] = Int16GetDatum(i + 1);
		pv[2][i] = Int64GetDatum(entry->accounts[i]->id);
		pv[3][i] = Int16GetDatum(entry->assets[i]);
		pv[4][i] = Int64GetDatum(entry->amounts[i]);
		pv[5][i] = at;
	}
	if (ledger_append_own("posting", 6, posting_columns, pvp, pnp, n, "ledger_posting_check"))
		ledger_posting_check_entry(entry, id);
	else
	{
		/* by SQL, all in one statement: the trigger checks them against `entry` */
		static SPIPlanPtr plan = NULL;
		Datum		values[4];

		values[0] = ids;
		values[1] = ledger_int8_array(pv[2], n);
		values[2] = ledger_int2_array(pv[3], n);
		values[3] = ledger_int8_array(pv[4], n);
		ledger_plan(&plan,
					"WITH e AS (SELECT id, created_at FROM carbon.entry WHERE id = $1) "
					POSTINGS_INSERT("$2", "$3", "$4"),
					4, (Oid[]) {INT8OID, INT8ARRAYOID, INT2ARRAYOID, INT8ARRAYOID});
		if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT || SPI_processed != (uint64) n)
			elog(ERROR, "posting insert failed");
	}
	return id;
}

/*
 * Fresh credits only (a behaviour's): the entry, its postings and the
 * module's holdings in one statement, one statement less on the hottest
 * path.  The trigger checks the entry at the end of that statement, so a
 * refused entry leaves no holding either.
 */
static int64
fresh_write(const LedgerEntry *entry, const LedgerHoldings *fresh)
{
	int			n = entry->n;
	Datum		values[9];
	char		nulls[9] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
	Datum	   *acc_datums = palloc(sizeof(Datum) * n);
	Datum	   *asset_datums = palloc(sizeof(Datum) * n);
	Datum	   *amount_datums = palloc(sizeof(Datum) * n);
	Datum	   *fresh_amounts = palloc(sizeof(Datum) * n);
	bool		isnull;
	int			rc;

	for (int i = 0; i < n; i++)
	{
		acc_datums[i] = Int64GetDatum(entry->accounts[i]->id);
		asset_datums[i] = Int16GetDatum(entry->assets[i]);
		amount_datums[i] = Int64GetDatum(entry->amounts[i]);
		fresh_amounts[i] = Int64GetDatum(entry->accounts[i]->participant && fresh->holds(entry->assets[i]) &&
										 entry->amounts[i] > 0 ? entry->amounts[i] : 0);
	}
	values[0] = CStringGetTextDatum(entry->kind);
	values[1] = entry->memo ? CStringGetTextDatum(entry->memo) : (Datum) 0;
	nulls[1] = entry->memo ? ' ' : 'n';
	values[2] = Int64GetDatum(entry->reverses);
	nulls[2] = entry->reverses ? ' ' : 'n';
	values[3] = ledger_int8_array(acc_datums, n);
	values[4] = ledger_int2_array(asset_datums, n);
	values[5] = ledger_int8_array(amount_datums, n);
	values[6] = ledger_int8_array(fresh_amounts, n);
	values[7] = fresh->fresh_param(entry);
	values[8] = Int64GetDatum(entry->reserved_id);
	nulls[8] = entry->reserved_id ? ' ' : 'n';
	rc = SPI_execute_plan(fresh_plan(fresh), values, nulls, false, 0);
	if (rc != SPI_OK_SELECT || SPI_processed < 1)
		elog(ERROR, "entry insert failed");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Post one entry: the entry row and all its postings straight into their
 * tables and checked as the posting trigger checks them (entry_write), or,
 * when a module writes the holdings with them, in one statement checked by
 * the trigger against `entry` (fresh_write); then every holdings module
 * follows the postings.
 * Returns the entry's id.  Needs an SPI connection.
 */
int64
ledger_post(const LedgerEntry *entry)
{
	int64		entry_id = 0;
	MemoryContext caller_context = CurrentMemoryContext;
	const LedgerEntry *outer = posting_entry;
	const LedgerHoldings *fresh = fresh_module(entry);

	posting_entry = entry;
	PG_TRY();
	{
		entry_id = fresh != NULL ? fresh_write(entry, fresh) : entry_write(entry);
	}
	PG_CATCH();
	{
		/*
		 * A refusal from the posting trigger: drop the CONTEXT line that
		 * quotes our internal INSERT, which tells a clerk nothing.
		 */
		MemoryContext ecxt = MemoryContextSwitchTo(caller_context);
		ErrorData  *edata = CopyErrorData();

		FlushErrorState();
		MemoryContextSwitchTo(ecxt);
		posting_entry = outer;
		edata->context = NULL;
		ReThrowError(edata);
	}
	PG_END_TRY();
	posting_entry = outer;

	/* balances are checked: now the holdings follow the postings */
	if (!entry->holdings_moved)
		for (int m = 0; m < nholdings; m++)
		{
			bool		touched = false;

			if (holdings[m] == fresh)
				continue;		/* written in the entry's statement */
			for (int i = 0; i < entry->n && !touched; i++)
				touched = entry->accounts[i]->participant && holdings[m]->holds(entry->assets[i]);
			if (touched)
				holdings[m]->follow(entry, entry_id);
		}
	/* and the books of the accounts that keep them */
	if (!entry->booked_by_caller)
		ledger_book_entry(entry, entry_id);
	return entry_id;
}
