/*
 * invariants.c — the triggers that keep the ledger honest.
 *
 * ledger_posting_check: AFTER INSERT ... FOR EACH STATEMENT on carbon.posting
 * with the new rows as a transition table.  Every statement must hold whole
 * entries: each entry balances per asset and per segment (asset, tier,
 * region), else CL009.  For entries written by carbon_ledger's functions it
 * then checks the allowed-flow matrix (CL003) and applies the postings to
 * carbon.balance in (account, asset) order, so concurrent entries lock rows
 * in one global order and cannot deadlock; a participant balance below zero
 * is CL001 and a posting on a frozen or closed account CL002, seen
 * atomically on the locked balance row.  Inserts from anywhere else are
 * refused, except a restore: a superuser's top-level COPY (what pg_restore
 * and psql send), whose balances come with the dump and are checked by
 * verify_integrity().  Being superuser is not enough: our own SECURITY
 * DEFINER functions run as a superuser owner, and one that inserted
 * postings with plain SQL must not skip the checks.
 *
 * ledger_unit_block_no_overlap: no serial in two blocks (below).
 *
 * ledger_append_only: entries, postings and seals are never updated,
 * deleted or truncated, whoever asks; corrections are reversing entries.
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/nbtree.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "storage/lmgr.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "common/int.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "tcop/pquery.h"
#include "utils/portal.h"
#include "utils/tuplestore.h"

#include "catalog.h"
#include "journal.h"
#include "ledger.h"

typedef struct PostingRow
{
	int64		entry;
	int32		seq;
	int64		account;
	int16		asset;
	int64		amount;
	const LedgerAccount *acc;	/* known for our own writes */
} PostingRow;

static int
cmp_entry_asset(const void *a, const void *b)
{
	const PostingRow *x = a,
			   *y = b;

	if (x->entry != y->entry)
		return x->entry < y->entry ? -1 : 1;
	if (x->asset != y->asset)
		return x->asset < y->asset ? -1 : 1;
	return 0;
}

static int
cmp_account_asset(const void *a, const void *b)
{
	const PostingRow *x = a,
			   *y = b;

	if (x->account != y->account)
		return x->account < y->account ? -1 : 1;
	if (x->asset != y->asset)
		return x->asset < y->asset ? -1 : 1;
	return 0;
}


static void
unbalanced(int64 entry, int16 asset, const char *what, int128 sum)
{
	ereport(ERROR,
			(errcode(ERRCODE_CL_INTEGRITY),
			 errmsg("entry " INT64_FORMAT " is unbalanced", entry),
			 errdetail("Its %s postings sum to " INT64_FORMAT "%s, not zero.",
					   ledger_asset_code(asset), (int64) sum, what),
			 errhint("Every entry must post whole: its postings sum to zero per asset.")));
}

/* Each entry balances per asset (rows sorted by entry, asset). */
static void
check_balanced(PostingRow *rows, int n)
{
	for (int i = 0; i < n;)
	{
		int128		sum = 0;
		int			j = i;

		while (j < n && rows[j].entry == rows[i].entry && rows[j].asset == rows[i].asset)
			sum += rows[j++].amount;
		if (sum != 0)
			unbalanced(rows[i].entry, rows[i].asset, "", sum);
		i = j;
	}
}

static int
cmp_segment(const void *a, const void *b)
{
	const PostingRow *x = *(PostingRow *const *) a;
	const PostingRow *y = *(PostingRow *const *) b;
	int			c = strcmp(x->acc->tier, y->acc->tier);

	return c != 0 ? c : strcmp(x->acc->region, y->acc->region);
}

/*
 * ... and per segment: within each (entry, asset) group, the postings of
 * each (tier, region) sum to zero.  The group is sorted by segment, so a
 * bulk entry of thousands of postings is checked in n log n.
 */
static void
check_segments(PostingRow *rows, int n)
{
	PostingRow **group = palloc(sizeof(PostingRow *) * n);

	for (int i = 0; i < n;)
	{
		int			j = i;
		int			g = 0;

		while (j < n && rows[j].entry == rows[i].entry && rows[j].asset == rows[i].asset)
			group[g++] = &rows[j++];
		if (g > 2)
			qsort(group, g, sizeof(PostingRow *), cmp_segment);
		for (int k = 0; k < g;)
		{
			int128		sum = 0;
			int			m = k;

			while (m < g && cmp_segment(&group[m], &group[k]) == 0)
				sum += group[m++]->amount;
			if (sum != 0)
				unbalanced(group[k]->entry, group[k]->asset,
						   psprintf(" in segment %s/%s", group[k]->acc->tier, group[k]->acc->region), sum);
			k = m;
		}
		i = j;
	}
	pfree(group);
}

void
ledger_check_flow(const LedgerFlow *flow)
{
	/* the matrix is cached per backend (catalog.c) */
	if (!ledger_flow_allowed(flow->from_tier, flow->to_tier, flow->asset_code))
		ereport(ERROR,
				(errcode(ERRCODE_CL_FLOW),
				 errmsg("%s may not flow from a %s account to a %s account",
						flow->asset_code, flow->from_tier, flow->to_tier),
				 strcmp(flow->from_tier, "personal") == 0 &&
				 strcmp(flow->to_tier, "personal") == 0 &&
				 strcmp(flow->asset_code, "POINT") == 0 ?
				 errdetail("Points are an incentive, not a currency between citizens.") : 0,
				 errhint("The allowed flows are in carbon.allowed_flow.")));
}

/* expire_lots() writes system balances in a stripe of its own (lots.c). */
static bool job_stripe = false;

void
ledger_set_job_stripe(bool on)
{
	job_stripe = on;
}

/* The stripe of system balances this backend writes to. */
static int16
system_stripe(void)
{
	return job_stripe ? LEDGER_JOB_STRIPE : (int16) (MyProcPid % LEDGER_STRIPES);
}

/* One (account, asset) group of postings, summed. */
typedef struct BalanceDelta
{
	int64		account;
	int16		asset;
	int64		delta;
	const LedgerAccount *acc;
} BalanceDelta;

/*
 * An amount in an asset's minor unit, as a clerk reads it: cash in yuan
 * (api.md: money is yuan), reductions in grams, points and units as counted.
 */
static char *
amount_text(int16 asset, int64 amount)
{
	const char *code = ledger_asset_code(asset);

	if (strcmp(code, "CNY") == 0)
		return psprintf("%s%lld.%02lld yuan", amount < 0 ? "-" : "",
						(long long) (amount < 0 ? -(amount / 100) : amount / 100),
						(long long) (amount < 0 ? -(amount % 100) : amount % 100));
	if (strcmp(code, "RED") == 0)
		return psprintf(INT64_FORMAT " g CO2e (RED)", amount);
	return psprintf(INT64_FORMAT " %s", amount, code);
}

static void
refuse_balance(const BalanceDelta *d, int64 after, const char *status)
{
	const LedgerEntry *entry = ledger_posting_entry();

	/* system corrections may touch a frozen account; nothing touches a closed one */
	if (strcmp(status, "closed") == 0 ||
		(strcmp(status, "active") != 0 && !(entry != NULL && entry->correction)))
		ereport(ERROR,
				(errcode(ERRCODE_CL_ACCOUNT_STATUS),
				 errmsg("account " INT64_FORMAT " is %s", d->account, status)));
	if (after < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_INSUFFICIENT),
				 errmsg("insufficient balance in account " INT64_FORMAT, d->account),
				 errdetail("The account holds %s; this needs %s.",
						   amount_text(d->asset, after - d->delta), amount_text(d->asset, -d->delta))));
}

/* The status and amount of a participant's balance after its delta: refused (CL001, CL002…) or not. */
static void
check_participant(const BalanceDelta *d, int16 stripe, int64 after, const char *status)
{
	if (stripe == 0 && d->acc->participant)
		refuse_balance(d, after, status);
}

/* One set-based upsert of the groups d[0..n-1], rows in (account, asset) order. */
static void
upsert_setwise(BalanceDelta *d, int n, int16 stripe)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[5] = {INT8ARRAYOID, INT2ARRAYOID, INT2ARRAYOID, INT8ARRAYOID, TEXTARRAYOID};
	Datum		values[5];
	Datum	   *cols[5];

	for (int c = 0; c < 5; c++)
		cols[c] = palloc(sizeof(Datum) * n);
	for (int i = 0; i < n; i++)
	{
		cols[0][i] = Int64GetDatum(d[i].account);
		cols[1][i] = Int16GetDatum(d[i].asset);
		cols[2][i] = Int16GetDatum(d[i].acc->participant ? 0 : stripe);
		cols[3][i] = Int64GetDatum(d[i].delta);
		cols[4][i] = CStringGetTextDatum(d[i].acc->status);
	}
	values[0] = ledger_int8_array(cols[0], n);
	values[1] = ledger_int2_array(cols[1], n);
	values[2] = ledger_int2_array(cols[2], n);
	values[3] = ledger_int8_array(cols[3], n);
	values[4] = ledger_array(cols[4], NULL, n, TEXTOID);
	ledger_plan(&plan,
				"INSERT INTO carbon.balance AS b (account, asset_id, stripe, amount, status) "
				"SELECT * FROM unnest($1, $2, $3, $4, $5) "
				"ON CONFLICT (account, asset_id, stripe) DO UPDATE SET amount = b.amount + excluded.amount "
				"RETURNING b.account, b.asset_id, b.stripe, b.amount, b.status",
				5, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "balance update failed");
	for (uint64 r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int64		account = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		int16		asset = DatumGetInt16(SPI_getbinval(tup, desc, 2, &isnull));
		int			lo = 0,
					hi = n - 1;

		while (lo <= hi)		/* d[] is sorted by (account, asset) */
		{
			int			mid = (lo + hi) / 2;

			if (d[mid].account == account && d[mid].asset == asset)
			{
				check_participant(&d[mid], DatumGetInt16(SPI_getbinval(tup, desc, 3, &isnull)),
								  DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull)), SPI_getvalue(tup, desc, 5));
				break;
			}
			if (d[mid].account < account || (d[mid].account == account && d[mid].asset < asset))
				lo = mid + 1;
			else
				hi = mid - 1;
		}
	}
}

/*
 * The groups d[0..n-1] (sorted by account and asset) added to their
 * balances: the rows there are updated straight in the heap
 * (ledger_balances_add, append.c: no planner, no executor), the rows still
 * to create (a first posting of an asset, a backend's first stripe) are
 * inserted by SQL; all of them by SQL where the table is not plain.
 */
static void
apply_setwise(BalanceDelta *d, int n, int16 stripe)
{
	int64	   *account = palloc(sizeof(int64) * n);
	int16	   *asset = palloc(sizeof(int16) * n);
	int16	   *stripes = palloc(sizeof(int16) * n);
	int64	   *delta = palloc(sizeof(int64) * n);
	bool	   *found = palloc(sizeof(bool) * n);
	int64	   *after = palloc(sizeof(int64) * n);
	char	  **status = palloc(sizeof(char *) * n);
	int			nmissing = 0;
	int			overflow = -1;	/* the first balance the entry would overflow */

	for (int i = 0; i < n; i++)
	{
		account[i] = d[i].account;
		asset[i] = d[i].asset;
		stripes[i] = d[i].acc->participant ? 0 : stripe;
		delta[i] = d[i].delta;
	}
	if (!ledger_balances_add(account, asset, stripes, delta, n, found, after, status))
	{
		upsert_setwise(d, n, stripe);
		return;
	}
	for (int i = 0; i < n; i++)
	{
		if (found[i] && status[i] == NULL)
		{
			if (overflow < 0)
				overflow = i;
		}
		else if (found[i])
			check_participant(&d[i], stripes[i], after[i], status[i]);
		else
			d[nmissing++] = d[i];	/* still sorted */
	}
	/* a balance the entry would carry past the bigint range: after every refusal of a balance (api.md's order) */
	if (overflow >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount out of range"),
				 errdetail("The balance of account " INT64_FORMAT " in %s would pass the largest amount a balance holds.",
						   account[overflow], ledger_asset_code(asset[overflow]))));
	if (nmissing > 0)
		upsert_setwise(d, nmissing, stripe);
}

/*
 * Bulk mode (process_inbox): system accounts' deltas are summed in memory
 * and written once per batch.  Updating the same issuance row thousands of
 * times in one transaction would leave a HOT chain that every later update
 * walks; system balances have no sign to check on the way, so deferring
 * them inside the transaction changes nothing that anyone can see.
 */
typedef struct DeferredKey
{
	int64		account;
	int16		asset;
} DeferredKey;

typedef struct DeferredDelta
{
	DeferredKey key;
	int64		delta;
	LedgerAccount acc;
} DeferredDelta;

static HTAB *deferred = NULL;
bool		ledger_defer_system = false;

static void
defer_delta(const BalanceDelta *d)
{
	DeferredKey key;
	DeferredDelta *e;
	bool		found;

	if (deferred == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(DeferredKey);
		ctl.entrysize = sizeof(DeferredDelta);
		ctl.hcxt = TopTransactionContext;
		deferred = hash_create("carbon_ledger deferred balances", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.account = d->account;
	key.asset = d->asset;
	e = hash_search(deferred, &key, HASH_ENTER, &found);
	if (!found)
	{
		e->delta = 0;
		e->acc = *d->acc;
	}
	if (pg_add_s64_overflow(e->delta, d->delta, &e->delta))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("amount out of range")));
}

/* The table is in TopTransactionContext: at transaction end it is gone. */
void
ledger_forget_deferred(void)
{
	deferred = NULL;
	ledger_defer_system = false;
}

static int
cmp_delta(const void *a, const void *b)
{
	const BalanceDelta *x = a,
			   *y = b;

	if (x->account != y->account)
		return x->account < y->account ? -1 : 1;
	return x->asset < y->asset ? -1 : (x->asset > y->asset ? 1 : 0);
}

/* Write the deferred system deltas, in (account, asset) order. */
void
ledger_flush_deferred(void)
{
	HASH_SEQ_STATUS seq;
	DeferredDelta *e;
	BalanceDelta *d;
	int			n = 0;

	if (deferred == NULL || hash_get_num_entries(deferred) == 0)
		return;
	d = palloc(sizeof(BalanceDelta) * hash_get_num_entries(deferred));
	hash_seq_init(&seq, deferred);
	while ((e = hash_seq_search(&seq)) != NULL)
	{
		if (e->delta == 0)
			continue;
		d[n].account = e->key.account;
		d[n].asset = e->key.asset;
		d[n].delta = e->delta;
		d[n].acc = &e->acc;
		n++;
	}
	qsort(d, n, sizeof(BalanceDelta), cmp_delta);
	ledger_spi_connect();
	if (n > 0)
		apply_setwise(d, n, system_stripe());
	SPI_finish();
	hash_destroy(deferred);
	deferred = NULL;
}

/* Apply the postings to balances, summed per (account, asset), in that order. */
static void
apply_balances(PostingRow *rows, int n)
{
	BalanceDelta *d = palloc(sizeof(BalanceDelta) * n);
	int			ngroups = 0;
	int16		stripe = system_stripe();

	for (int i = 0; i < n;)
	{
		int64		delta = 0;
		int			j = i;

		while (j < n && rows[j].account == rows[i].account && rows[j].asset == rows[i].asset)
		{
			if (pg_add_s64_overflow(delta, rows[j].amount, &delta))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("amount out of range")));
			j++;
		}
		if (delta != 0)
		{
			d[ngroups].account = rows[i].account;
			d[ngroups].asset = rows[i].asset;
			d[ngroups].delta = delta;
			d[ngroups].acc = rows[i].acc;
			if (ledger_defer_system && !rows[i].acc->participant)
				defer_delta(&d[ngroups]);
			else
				ngroups++;
		}
		i = j;
	}
	if (ngroups > 0)
		apply_setwise(d, ngroups, stripe);
}

/*
 * A restore: the statement the client sent is a COPY (pg_restore's and
 * psql's data loads), run by a superuser.  Anything else that inserts
 * postings without going through ledger_post() is refused.
 */
static bool
restoring(void)
{
	return superuser() && ActivePortal != NULL && ActivePortal->commandTag == CMDTAG_COPY;
}

/*
 * Whole, balanced entries (CL009); for an entry of ours (not a restore's
 * rows), its segments, its flow (CL003) and the balances, applied in
 * (account, asset) order.
 */
static void
posting_rows_check(PostingRow *rows, int n, const LedgerEntry *entry)
{
	qsort(rows, n, sizeof(PostingRow), cmp_entry_asset);
	check_balanced(rows, n);
	if (entry == NULL)
		return;					/* a restore: balances come with the dump */

	check_segments(rows, n);
	ledger_spi_connect();
	if (entry->flow != NULL)
		ledger_check_flow(entry->flow);
	qsort(rows, n, sizeof(PostingRow), cmp_account_asset);
	apply_balances(rows, n);
	SPI_finish();
}

PG_FUNCTION_INFO_V1(ledger_posting_check);
Datum
ledger_posting_check(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	TupleTableSlot *slot;
	PostingRow *rows;
	int			n = 0,
				cap = 16;
	const LedgerEntry *entry = ledger_posting_entry();	/* the request being posted (journal.c) */
	bool		ours = entry != NULL;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || trigdata->tg_newtable == NULL)
		elog(ERROR, "ledger_posting_check must be an AFTER INSERT statement trigger with a new table");
	if (!ours && !restoring())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("postings are written only by carbon_ledger's functions"),
				 errdetail("A superuser may load postings only with COPY, as pg_restore does."),
				 errhint("Use carbon.transfer() and the other functions of the API.")));

	rows = palloc(sizeof(PostingRow) * cap);
	slot = MakeSingleTupleTableSlot(RelationGetDescr(trigdata->tg_relation), &TTSOpsMinimalTuple);
	tuplestore_rescan(trigdata->tg_newtable);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, slot))
	{
		bool		isnull;

		CHECK_FOR_INTERRUPTS();

		if (n == cap)
		{
			cap *= 2;
			rows = repalloc_huge(rows, sizeof(PostingRow) * cap);
		}
		/* columns: entry_id, seq, account, asset_id, amount, at */
		rows[n].entry = DatumGetInt64(slot_getattr(slot, 1, &isnull));
		rows[n].seq = DatumGetInt16(slot_getattr(slot, 2, &isnull));
		rows[n].account = DatumGetInt64(slot_getattr(slot, 3, &isnull));
		rows[n].asset = DatumGetInt16(slot_getattr(slot, 4, &isnull));
		rows[n].amount = DatumGetInt64(slot_getattr(slot, 5, &isnull));
		rows[n].acc = NULL;
		if (ours)
		{
			if (rows[n].seq < 1 || rows[n].seq > entry->n ||
				entry->accounts[rows[n].seq - 1]->id != rows[n].account)
				elog(ERROR, "posting %d does not match the entry being written", rows[n].seq);
			rows[n].acc = entry->accounts[rows[n].seq - 1];
		}
		n++;
	}
	ExecDropSingleTupleTableSlot(slot);
	if (ours && n != entry->n)
		elog(ERROR, "%d postings inserted for an entry of %d", n, entry->n);

	posting_rows_check(rows, n, ours ? entry : NULL);
	return PointerGetDatum(NULL);
}

/*
 * The trigger's check of an entry journal.c wrote straight into the table
 * (ledger_append_own), the trigger not fired: the same check, on the rows
 * the entry is.
 */
void
ledger_posting_check_entry(const LedgerEntry *entry, int64 entry_id)
{
	PostingRow *rows = palloc(sizeof(PostingRow) * Max(entry->n, 1));

	for (int i = 0; i < entry->n; i++)
	{
		rows[i].entry = entry_id;
		rows[i].seq = i + 1;
		rows[i].account = entry->accounts[i]->id;
		rows[i].asset = entry->assets[i];
		rows[i].amount = entry->amounts[i];
		rows[i].acc = entry->accounts[i];
	}
	posting_rows_check(rows, entry->n, entry);
}

PG_FUNCTION_INFO_V1(ledger_append_only);
Datum
ledger_append_only(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const char *op;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "ledger_append_only must be called as a trigger");
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event))
		op = "UPDATE";
	else if (TRIGGER_FIRED_BY_DELETE(trigdata->tg_event))
		op = "DELETE";
	else
		op = "TRUNCATE";
	ereport(ERROR,
			(errcode(ERRCODE_CL_INTEGRITY),
			 errmsg("%s of %s is not allowed: the ledger is append-only", op,
					RelationGetRelationName(trigdata->tg_relation)),
			 errhint("Correct an entry with carbon.reverse_entry(), which posts its negation.")));
	PG_RETURN_NULL();
}

/*
 * ledger_unit_block_no_overlap: AFTER INSERT ... FOR EACH STATEMENT on
 * carbon.unit_block with the new rows as a transition table.  No serial is
 * in two blocks: each block is keyed by its first serial (unique index
 * unit_block_serial_key on project × 2^32 + first), so a new block overlaps
 * another exactly when its nearest neighbour by that key does: the next
 * one begins inside it, or the one before ends inside it.  Two probes of
 * the index per new block, with a dirty snapshot as an exclusion constraint
 * reads: a neighbour that another transaction is writing or deleting is
 * waited for and read again, so two transactions can never both keep
 * overlapping blocks.  23P01 on an overlap.
 */
#define SERIAL_KEY(project, serial) LEDGER_SERIAL_KEY(project, serial)

typedef struct BlockColumns
{
	AttrNumber	project;
	AttrNumber	first;
	AttrNumber	last;
} BlockColumns;

static int64
block_column(TupleTableSlot *slot, AttrNumber att)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* One direction's probe of the index: a scan kept open for every new block. */
typedef struct NeighbourScan
{
	SnapshotData dirty;
	Relation	index;
	IndexScanDesc scan;			/* NULL until the first probe */
	bool		after;
} NeighbourScan;

static void
neighbour_rescan(NeighbourScan *ns, Relation rel, ScanKey key)
{
	if (ns->scan == NULL)
		ns->scan = index_beginscan(rel, ns->index, &ns->dirty, 2, 0);
	index_rescan(ns->scan, key, 2, NULL, 0);
}

/*
 * A probe found in `slot` a block that overlaps serial keys [from, upto]
 * (first and last its serials): 23P01 when it is there for good;
 * otherwise another transaction is writing it, its outcome decides, and it
 * is waited for before the caller probes again.
 */
static void
overlap_found(NeighbourScan *ns, Relation rel, TupleTableSlot *slot, int64 from, int64 upto, int64 first,
			  int64 last)
{
	TransactionId wait = TransactionIdIsValid(ns->dirty.xmin) ? ns->dirty.xmin : ns->dirty.xmax;

	if (!TransactionIdIsValid(wait))
		ereport(ERROR,
				(errcode(ERRCODE_EXCLUSION_VIOLATION),
				 errmsg("serials of project " INT64_FORMAT " are in two blocks",
						from / INT64CONST(4294967296)),
				 errdetail("A new block of serials " INT64_FORMAT " to " INT64_FORMAT " overlaps block " INT64_FORMAT
						   " to " INT64_FORMAT ".", from % INT64CONST(4294967296), upto % INT64CONST(4294967296),
						   first, last),
				 errhint("Run carbon.verify_integrity() and report this to the ledger's administrator.")));
	XactLockTableWait(wait, rel, &slot->tts_tid, XLTW_RecheckExclusionConstr);
}

/*
 * Fail if the block beside (after, or before) serial keys [from, upto]
 * holds any of them.  Each probe is bounded on both sides, so that the
 * index reads a few items and not its whole leaf page: after, the keys in
 * (from, upto], any of which overlaps; before, the nearest block that begins
 * within 64 serials, else (a long block, rarely) anywhere in the project.
 */
#define NEAR_SERIALS 64

static void
block_neighbour(NeighbourScan *ns, Relation rel, TupleTableSlot *slot, const BlockColumns *col,
				int64 from, int64 upto)
{
	int64		project_start = from - from % INT64CONST(4294967296);
	bool		wide = false;

	for (;;)
	{
		ScanKeyData key[2];
		bool		overlap = false;
		bool		found;
		int64		first = 0,
					last = 0;

		InitDirtySnapshot(ns->dirty);
		if (ns->after)
		{
			ScanKeyInit(&key[0], 1, BTGreaterStrategyNumber, F_INT8GT, Int64GetDatum(from));
			ScanKeyInit(&key[1], 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(upto));
		}
		else
		{
			ScanKeyInit(&key[0], 1, BTGreaterEqualStrategyNumber, F_INT8GE,
						Int64GetDatum(wide ? project_start : Max(project_start, from - NEAR_SERIALS)));
			ScanKeyInit(&key[1], 1, BTLessStrategyNumber, F_INT8LT, Int64GetDatum(from));
		}
		neighbour_rescan(ns, rel, key);
		found = index_getnext_slot(ns->scan, ns->after ? ForwardScanDirection : BackwardScanDirection, slot);
		if (found)
		{
			int64		project = block_column(slot, col->project);

			first = block_column(slot, col->first);
			last = block_column(slot, col->last);
			overlap = ns->after || SERIAL_KEY(project, last) >= from;
		}
		else if (!ns->after && !wide && from - NEAR_SERIALS > project_start)
		{
			wide = true;		/* no block begins near: look further */
			continue;
		}
		if (!overlap)
			return;
		overlap_found(ns, rel, slot, from, upto, first, last);
	}
}

/*
 * The check of the trigger below, also run by hand on blocks written
 * straight into the table (units.c, through ledger_append_checked): begin
 * opens the index and its two probes, each new block is probed, end closes
 * them.
 */
struct LedgerOverlapCheck
{
	Relation	rel;
	Relation	index;
	BlockColumns col;
	TupleTableSlot *found;
	NeighbourScan near[2];		/* the next block, the one before */
};

LedgerOverlapCheck *
ledger_overlap_begin(Relation rel)
{
	LedgerOverlapCheck *oc = palloc0(sizeof(LedgerOverlapCheck));
	TupleDesc	desc = RelationGetDescr(rel);
	Oid			index_oid;

	oc->rel = rel;
	oc->col.project = SPI_fnumber(desc, "project");
	oc->col.first = SPI_fnumber(desc, "first");
	oc->col.last = SPI_fnumber(desc, "last");
	index_oid = get_relname_relid("unit_block_serial_key", RelationGetNamespace(rel));
	if (oc->col.project <= 0 || oc->col.first <= 0 || oc->col.last <= 0 || !OidIsValid(index_oid))
		elog(ERROR, "carbon.unit_block has lost its serial columns or its index unit_block_serial_key");
	oc->index = index_open(index_oid, AccessShareLock);
	oc->found = table_slot_create(rel, NULL);
	/* each probe's scan is begun at its first use (a btree scan's state is 27 kB, malloc'd) */
	for (int d = 0; d < 2; d++)
	{
		InitDirtySnapshot(oc->near[d].dirty);
		oc->near[d].after = d == 0;
		oc->near[d].index = oc->index;
	}
	return oc;
}

/*
 * The check of a block carved from the top of a block this transaction
 * holds and keeps (units.c): that block begins at serial key `floor`, below
 * the new one's `from`, so the nearest block before the new one begins in
 * [floor, from), and one forward probe over [floor, upto] reads both
 * neighbours at once.  The two probes above would walk back from `from`
 * to the block's beginning, which in a large holding is far: past a whole
 * leaf page of other holders' blocks (three probes and 48,000 instructions
 * a B5 order, callgrind).  Every other block there is checked, not only
 * the nearest before (stricter, never looser).  False, having checked
 * nothing, when no block begins at `floor` after all: the caller then
 * probes as above.
 */
static bool
block_carved(NeighbourScan *ns, Relation rel, TupleTableSlot *slot, const BlockColumns *col, TupleTableSlot *row,
			 int64 floor, int64 from, int64 upto)
{
	for (;;)
	{
		ScanKeyData key[2];
		bool		floor_seen = false;
		bool		waited = false;

		InitDirtySnapshot(ns->dirty);
		ScanKeyInit(&key[0], 1, BTGreaterEqualStrategyNumber, F_INT8GE, Int64GetDatum(floor));
		ScanKeyInit(&key[1], 1, BTLessEqualStrategyNumber, F_INT8LE, Int64GetDatum(upto));
		neighbour_rescan(ns, rel, key);
		/* every block there but the new one itself (passed over by its TID) */
		while (ledger_index_next(ns->scan, slot, NULL, &row->tts_tid))
		{
			int64		project = block_column(slot, col->project);
			int64		first = block_column(slot, col->first);
			int64		last = block_column(slot, col->last);
			int64		start = SERIAL_KEY(project, first);

			if (start == floor)
				floor_seen = true;
			if (start >= from || SERIAL_KEY(project, last) >= from)
			{
				overlap_found(ns, rel, slot, from, upto, first, last);
				waited = true;
				break;
			}
		}
		if (!waited)
			return floor_seen;
	}
}

/*
 * Fail (23P01) if the new block in `row` shares a serial with another
 * block.  floor: 0, or the serial key where the block it was carved from
 * begins, which this transaction holds and keeps (block_carved).
 */
void
ledger_overlap_row(LedgerOverlapCheck *oc, TupleTableSlot *row, int64 floor)
{
	int64		project = block_column(row, oc->col.project);
	int64		from = SERIAL_KEY(project, block_column(row, oc->col.first));
	int64		upto = SERIAL_KEY(project, block_column(row, oc->col.last));

	if (floor > 0 && floor < from && ItemPointerIsValid(&row->tts_tid) &&
		block_carved(&oc->near[0], oc->rel, oc->found, &oc->col, row, floor, from, upto))
		return;
	block_neighbour(&oc->near[0], oc->rel, oc->found, &oc->col, from, upto);
	block_neighbour(&oc->near[1], oc->rel, oc->found, &oc->col, from, upto);
}

void
ledger_overlap_end(LedgerOverlapCheck *oc)
{
	for (int d = 0; d < 2; d++)
		if (oc->near[d].scan)
			index_endscan(oc->near[d].scan);
	ExecDropSingleTupleTableSlot(oc->found);
	index_close(oc->index, AccessShareLock);
	pfree(oc);
}

PG_FUNCTION_INFO_V1(ledger_unit_block_no_overlap);
Datum
ledger_unit_block_no_overlap(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	LedgerOverlapCheck *oc;
	TupleTableSlot *row;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_FOR_STATEMENT(trigdata->tg_event) ||
		!TRIGGER_FIRED_BY_INSERT(trigdata->tg_event) || trigdata->tg_newtable == NULL)
		elog(ERROR, "ledger_unit_block_no_overlap must be an AFTER INSERT statement trigger with a new table");
	oc = ledger_overlap_begin(trigdata->tg_relation);
	row = MakeSingleTupleTableSlot(RelationGetDescr(trigdata->tg_relation), &TTSOpsMinimalTuple);
	tuplestore_rescan(trigdata->tg_newtable);
	while (tuplestore_gettupleslot(trigdata->tg_newtable, true, false, row))
		ledger_overlap_row(oc, row, 0);
	ExecDropSingleTupleTableSlot(row);
	ledger_overlap_end(oc);
	return PointerGetDatum(NULL);
}
