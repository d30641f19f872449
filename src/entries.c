/*
 * entries.c — writing entries: system accounts, the posting path, request
 * ids, and the value-moving functions transfer, issue and reverse_entry.
 *
 * Every movement is one LedgerEntry posted through the journal API
 * (journal.c); the statement trigger in invariants.c checks and applies it.  Each entry
 * balances per asset and per segment (asset, tier, region): a move between
 * segments passes through each segment's clearing account, so every tier and
 * region is a sub-ledger that balances on its own (总量同体量保持平衡).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "behavior.h"
#include "catalog.h"
#include "journal.h"
#include "ledger.h"


/* ---- system accounts, cached per backend ---- */

typedef struct SystemKey
{
	char		kind[LEDGER_NAME_LEN];
	char		tier[LEDGER_NAME_LEN];
	char		region[8];
	int16		asset;
} SystemKey;

typedef struct SystemEntry
{
	SystemKey	key;
	LedgerAccount account;
} SystemEntry;

static HTAB *system_cache = NULL;
static bool system_cache_dirty = false;
static Oid	account_relid = InvalidOid;

/*
 * Tables dropped from use during this transaction: callers may still hold
 * pointers into them (an entry being assembled), so they are freed only at
 * the end of the transaction.
 */
static List *retired_caches = NIL;

static void
system_cache_reset(void)
{
	if (system_cache)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		retired_caches = lappend(retired_caches, system_cache);
		MemoryContextSwitchTo(old);
	}
	system_cache = NULL;
	system_cache_dirty = false;
}

/* At the end of a transaction: free the retired tables. */
void
ledger_release_retired_caches(void)
{
	for (int i = 0; i < list_length(retired_caches); i++)
		hash_destroy((HTAB *) list_nth(retired_caches, i));
	list_free(retired_caches);
	retired_caches = NIL;
}

/* DROP EXTENSION and the like invalidate carbon.account: start over. */
static void
account_relcache_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	if (relid == InvalidOid || relid == account_relid)
	{
		system_cache_reset();
		account_relid = InvalidOid;
	}
}

/* On abort: forget accounts created by the aborted (sub)transaction. */
void
ledger_forget_xact_cache(void)
{
	if (system_cache_dirty)
		system_cache_reset();
}

/* On commit: what we created is now there for good. */
void
ledger_keep_xact_cache(void)
{
	system_cache_dirty = false;
}

static void
system_cache_init(void)
{
	static bool callback_registered = false;
	HASHCTL		ctl;

	if (!callback_registered)
	{
		CacheRegisterRelcacheCallback(account_relcache_callback, (Datum) 0);
		callback_registered = true;
	}
	if (!OidIsValid(account_relid))
		account_relid = get_relname_relid("account", get_namespace_oid("carbon", false));
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(SystemKey);
	ctl.entrysize = sizeof(SystemEntry);
	ctl.hcxt = TopMemoryContext;
	system_cache = hash_create("carbon_ledger system accounts", 256, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * The system account `kind` of segment (asset, tier, region), created on
 * first use.  Needs an SPI connection.
 */
static const LedgerAccount *
system_account(const char *kind, int16 asset, const char *tier, const char *region)
{
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr create_plan = NULL;
	Oid			types[4] = {TEXTOID, INT2OID, TEXTOID, TEXTOID};
	Datum		values[4];
	SystemKey	key;
	SystemEntry *entry;
	bool		found;
	bool		isnull;
	bool		created = false;

	if (system_cache == NULL)
		system_cache_init();
	memset(&key, 0, sizeof(key));
	strlcpy(key.kind, kind, sizeof(key.kind));
	strlcpy(key.tier, tier, sizeof(key.tier));
	strlcpy(key.region, region, sizeof(key.region));
	key.asset = asset;
	entry = hash_search(system_cache, &key, HASH_FIND, NULL);
	if (entry)
		return &entry->account;

	values[0] = CStringGetTextDatum(kind);
	values[1] = Int16GetDatum(asset);
	values[2] = CStringGetTextDatum(tier);
	values[3] = CStringGetTextDatum(region);
	ledger_plan(&find_plan,
				"SELECT id FROM carbon.account WHERE kind = $1 AND asset_id = $2 AND tier = $3 AND region = $4",
				4, types);
	if (SPI_execute_plan(find_plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "system account lookup failed");
	if (SPI_processed == 0)
	{
		/* first use of this segment: create it (a concurrent creator makes us wait) */
		ledger_plan(&create_plan,
					"INSERT INTO carbon.account (kind, asset_id, tier, region) VALUES ($1, $2, $3, $4) "
					"ON CONFLICT (kind, asset_id, tier, region) DO NOTHING RETURNING id",
					4, types);
		if (SPI_execute_plan(create_plan, values, NULL, false, 1) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "system account creation failed");
		created = SPI_processed == 1;
		if (!created &&
			(SPI_execute_plan(find_plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1))
			elog(ERROR, "system account lookup failed");
	}

	/*
	 * The queries above take locks, and a lock takes in the invalidations
	 * that arrived meanwhile: one of carbon.account (an ANALYZE committing)
	 * drops the cache.  Start a new one (the isolation spec
	 * system_account_inval: this crashed the backend).
	 */
	if (system_cache == NULL)
		system_cache_init();
	entry = hash_search(system_cache, &key, HASH_ENTER, &found);
	entry->account.id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	entry->account.participant = false;
	strlcpy(entry->account.kind, kind, LEDGER_NAME_LEN);
	strlcpy(entry->account.tier, tier, LEDGER_NAME_LEN);
	strlcpy(entry->account.region, region, sizeof(entry->account.region));
	strlcpy(entry->account.status, "active", LEDGER_NAME_LEN);
	if (created)
		system_cache_dirty = true;	/* forget it if this transaction aborts */
	return &entry->account;
}

/*
 * The system account `kind` of a segment.  The pointer stays valid to the
 * end of the transaction, even if the cache is dropped meanwhile (an
 * invalidation of carbon.account, a rolled-back savepoint).
 */
const LedgerAccount *
ledger_system_account_info(const char *kind, int16 asset, const char *tier, const char *region)
{
	return system_account(kind, asset, tier, region);
}

/* ---- issuance caps (碳积分总量控制) ---- */

/*
 * Take room for amounts[i] of assets[i] under the caps of (tier, region,
 * local year of `at`).  False, with nothing taken, when a cap would be
 * exceeded.  A concurrent taker of the last room waits on the cap row and
 * then re-checks against what it left.
 */
bool
ledger_cap_take(const char *tier, const char *region, TimestampTz at,
				const char **assets, const int64 *amounts, int n)
{
	static SPIPlanPtr take_plan = NULL;
	static SPIPlanPtr undo_plan = NULL;
	Oid			types[6] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTARRAYOID, INT8ARRAYOID, TEXTOID};
	Datum		values[6];
	Datum	   *a = palloc(sizeof(Datum) * n);
	Datum	   *m = palloc(sizeof(Datum) * n);
	bool		isnull;
	int64		taken,
				capped;

	for (int i = 0; i < n; i++)
	{
		a[i] = CStringGetTextDatum(assets[i]);
		m[i] = Int64GetDatum(amounts[i]);
	}
	values[0] = CStringGetTextDatum(tier);
	values[1] = CStringGetTextDatum(region);
	values[2] = TimestampTzGetDatum(at);
	values[3] = ledger_array(a, NULL, n, TEXTOID);
	values[4] = ledger_int8_array(m, n);
	values[5] = CStringGetTextDatum(ledger_settings()->timezone);	/* the cap's year is local */
	ledger_plan(&take_plan,
				"WITH want AS (SELECT * FROM unnest($4, $5) AS w(asset, amount) WHERE amount > 0), "
				"k AS (SELECT extract(year FROM $3 AT TIME ZONE $6)::int AS year), "
				"took AS (UPDATE carbon.issuance_cap c SET issued = c.issued + w.amount FROM want w, k "
				"         WHERE c.asset = w.asset AND c.tier = $1 AND c.region = $2 AND c.year = k.year "
				"           AND c.issued + w.amount <= c.cap RETURNING c.asset) "
				"SELECT (SELECT count(*) FROM took), (SELECT array_agg(asset) FROM took), "
				"       (SELECT count(*) FROM carbon.issuance_cap c, want w, k "
				"        WHERE c.asset = w.asset AND c.tier = $1 AND c.region = $2 AND c.year = k.year)",
				6, types);
	if (SPI_execute_plan(take_plan, values, NULL, false, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "issuance cap check failed");
	taken = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	capped = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	if (taken == capped)
		return true;
	/* one asset fit and another did not: give back what was taken */
	if (taken > 0)
	{
		Oid			undo_types[7] = {TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTARRAYOID, INT8ARRAYOID, TEXTOID,
		TEXTARRAYOID};
		Datum		undo_values[7];

		memcpy(undo_values, values, sizeof(Datum) * 6);
		undo_values[6] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		ledger_plan(&undo_plan,
					"WITH want AS (SELECT * FROM unnest($4, $5) AS w(asset, amount) "
					"              WHERE amount > 0 AND asset = ANY ($7)), "
					"k AS (SELECT extract(year FROM $3 AT TIME ZONE $6)::int AS year) "
					"UPDATE carbon.issuance_cap c SET issued = c.issued - w.amount FROM want w, k "
					"WHERE c.asset = w.asset AND c.tier = $1 AND c.region = $2 AND c.year = k.year",
					7, undo_types);
		if (SPI_execute_plan(undo_plan, undo_values, NULL, false, 0) != SPI_OK_UPDATE)
			elog(ERROR, "issuance cap release failed");
	}
	return false;
}

/* ledger_cap_take() for one asset, or CL004 (issue(), issue_units). */
void
ledger_cap_require(const char *tier, const char *region, const char *asset_code, int64 amount)
{
	if (amount > 0 && !ledger_cap_take(tier, region, GetCurrentTransactionStartTimestamp(), &asset_code, &amount, 1))
		ereport(ERROR,
				(errcode(ERRCODE_CL_CAP),
				 errmsg("issuing " INT64_FORMAT " %s would exceed this year's cap for %s accounts in %s",
						amount, asset_code, tier, region),
				 errhint("See carbon.issuance_cap; carbon.set_issuance_cap() raises a cap.")));
}

/* ---- request ids: retries move nothing twice ---- */

/*
 * Claim (account, request_id) for this call.  Returns true, with the first
 * call's result, when the id was used before with the same arguments; raises
 * 23505 when it was used with different ones.  A concurrent first call makes
 * us wait on the unique index until it ends.
 */
bool
ledger_request_begin(int64 account, const char *request_id, const char *fn,
					 const char *args, int64 *result)
{
	static SPIPlanPtr claim_plan = NULL;
	static SPIPlanPtr find_plan = NULL;
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, TEXTOID};
	Datum		values[4];
	bool		isnull;

	if (request_id == NULL)
		return false;
	if (request_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("request_id must not be empty"),
				 errhint("Pass NULL for a call that is not retried, or a unique id per request.")));
	if (strlen(request_id) > LEDGER_MAX_REQUEST_ID)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("request_id is at most %d bytes", LEDGER_MAX_REQUEST_ID)));
	values[0] = Int64GetDatum(account);
	values[1] = CStringGetTextDatum(request_id);
	values[2] = CStringGetTextDatum(fn);
	values[3] = CStringGetTextDatum(args);
	ledger_plan(&claim_plan,
				"INSERT INTO carbon.request (account, request_id, fn, args) VALUES ($1, $2, $3, $4) "
				"ON CONFLICT DO NOTHING",
				4, types);
	if (SPI_execute_plan(claim_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "request claim failed");
	if (SPI_processed == 1)
		return false;

	ledger_plan(&find_plan,
				"SELECT fn = $3 AND args = $4, result FROM carbon.request "
				"WHERE account = $1 AND request_id = $2",
				4, types);
	if (SPI_execute_plan(find_plan, values, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "request lookup failed");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("request id \"%s\" was already used by account " INT64_FORMAT " with different arguments",
						request_id, account),
				 errhint("Use a new request id for a new request.")));
	*result = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	return true;
}

void
ledger_request_finish(int64 account, const char *request_id, int64 result)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3];

	if (request_id == NULL)
		return;
	values[0] = Int64GetDatum(account);
	values[1] = CStringGetTextDatum(request_id);
	values[2] = Int64GetDatum(result);
	ledger_plan(&plan,
				"UPDATE carbon.request SET result = $3 WHERE account = $1 AND request_id = $2",
				3, types);
	if (SPI_execute_plan(plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "request update failed");
}

/* ---- moving value between two accounts ---- */

static bool
same_segment(const LedgerAccount *a, const LedgerAccount *b)
{
	return strcmp(a->tier, b->tier) == 0 && strcmp(a->region, b->region) == 0;
}

/*
 * Move `amount` of `asset` from `from` to `to`: two postings within a
 * segment, four across segments (through both segments' clearing accounts).
 */
int64
ledger_move(const char *kind, const char *memo, const LedgerAccount *from,
			const LedgerAccount *to, int16 asset, int64 amount, const LedgerFlow *flow)
{
	return ledger_move_traced(kind, memo, from, to, asset, amount, flow, NULL);
}

/* ledger_move(), keeping the lot pieces the payer gave in *trace (a redemption). */
int64
ledger_move_traced(const char *kind, const char *memo, const LedgerAccount *from,
				   const LedgerAccount *to, int16 asset, int64 amount, const LedgerFlow *flow,
				   LedgerLotTrace *trace)
{
	const LedgerAccount *accounts[4];
	int16		assets[4] = {asset, asset, asset, asset};
	int64		amounts[4];
	int			n;
	LedgerEntry entry;

	accounts[0] = from;
	amounts[0] = -amount;
	if (same_segment(from, to))
	{
		accounts[1] = to;
		amounts[1] = amount;
		n = 2;
	}
	else
	{
		accounts[1] = system_account("clearing", asset, from->tier, from->region);
		amounts[1] = amount;
		accounts[2] = system_account("clearing", asset, to->tier, to->region);
		amounts[2] = -amount;
		accounts[3] = to;
		amounts[3] = amount;
		n = 4;
	}
	entry = ledger_entry(kind, memo, n, accounts, assets, amounts);
	entry.flow = flow;
	entry.trace = trace;
	return ledger_post(&entry);
}

/*
 * A move of `amount` of `asset` between two participants, with transfer()'s
 * checks in the order of api.md: arguments (both participants; the
 * recipient as `check_recipient` wants it), a request id used before (its
 * entry id back, *replayed, nothing moves), account status, expired lots
 * swept, then the flow matrix and the balance (in the posting trigger).
 * transfer() and donate() are this.  Needs an SPI connection.
 */
int64
ledger_transfer_between(const char *kind, const char *memo, int64 from_id, int64 to_id, const char *asset_code,
						int64 amount, void (*check_recipient) (const LedgerAccount *to),
						const char *request_id, const char *fingerprint, bool *replayed)
{
	LedgerAccount from,
				to;
	int16		asset = ledger_asset_id(asset_code);
	int64		entry_id;
	bool		expired;
	LedgerFlow	flow;

	expired = ledger_require_pair(from_id, to_id, asset, &from, &to);
	ledger_require_participant(&from);
	ledger_require_participant(&to);
	if (check_recipient)
		check_recipient(&to);
	*replayed = ledger_request_begin(from_id, request_id, kind, fingerprint, &entry_id);
	if (*replayed)
		return entry_id;

	ledger_require_active(&from);
	ledger_require_active(&to);
	if (expired)
		ledger_sweep_expired(from_id);

	flow.from_tier = from.tier;
	flow.to_tier = to.tier;
	flow.asset_code = asset_code;
	entry_id = ledger_move(kind, memo, &from, &to, asset, amount, &flow);
	ledger_request_finish(from_id, request_id, entry_id);
	return entry_id;
}

/*
 * transfer(from_account, to_account, asset, amount, memo, request_id) → entry id
 */
PG_FUNCTION_INFO_V1(ledger_transfer);
Datum
ledger_transfer(PG_FUNCTION_ARGS)
{
	int64		from_id = ledger_arg_int64(fcinfo, 0, "from_account");
	int64		to_id = ledger_arg_int64(fcinfo, 1, "to_account");
	char	   *asset_code = ledger_arg_text(fcinfo, 2, "asset");
	int64		amount = ledger_arg_amount(fcinfo, 3, "amount");
	char	   *memo = ledger_arg_text_or_null(fcinfo, 4);
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 5);
	int64		entry_id;
	bool		replayed;

	if (from_id == to_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot transfer from account " INT64_FORMAT " to itself", from_id)));
	ledger_check_acting(from_id, false);

	ledger_spi_connect();
	entry_id = ledger_transfer_between("transfer", memo, from_id, to_id, asset_code, amount, NULL, request_id,
									   psprintf(INT64_FORMAT "|%s|" INT64_FORMAT "|%s", to_id, asset_code,
												amount, memo ? memo : ""),
									   &replayed);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/*
 * issue(account, asset, amount, memo, request_id) → entry id
 * Administrative issuance from the segment's issuance account (behaviour
 * credits, deposits and unit issuance use the same path).
 */
PG_FUNCTION_INFO_V1(ledger_issue);
Datum
ledger_issue(PG_FUNCTION_ARGS)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	char	   *asset_code = ledger_arg_text(fcinfo, 1, "asset");
	int64		amount = ledger_arg_amount(fcinfo, 2, "amount");
	char	   *memo = ledger_arg_text_or_null(fcinfo, 3);
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 4);
	LedgerAccount acc;
	const LedgerAccount *issuer;
	int16		asset;
	int64		entry_id;

	ledger_spi_connect();
	asset = ledger_asset_id(asset_code);
	if (strcmp(asset_code, "CER") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("certified units are not issued by carbon.issue()"),
				 errhint("Units are issued with their serials by carbon.issue_units() for a verified monitoring report.")));
	ledger_require_account(account, &acc);
	ledger_require_participant(&acc);
	if (ledger_request_begin(account, request_id, "issue",
							 psprintf("%s|" INT64_FORMAT "|%s", asset_code, amount, memo ? memo : ""),
							 &entry_id))
	{
		SPI_finish();
		PG_RETURN_INT64(entry_id);
	}
	ledger_require_active(&acc);
	ledger_cap_require(acc.tier, acc.region, asset_code, amount);
	issuer = system_account("issuance", asset, acc.tier, acc.region);
	entry_id = ledger_move("issuance", memo, issuer, &acc, asset, amount, NULL);
	ledger_request_finish(account, request_id, entry_id);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/*
 * reverse_entry(entry, memo) → entry id: the correction of an entry, posted
 * as its exact negation (ledger rows are never changed).  An entry is
 * reversed at most once, and a reversal is not itself reversed.
 */
PG_FUNCTION_INFO_V1(ledger_reverse_entry);
Datum
ledger_reverse_entry(PG_FUNCTION_ARGS)
{
	int64		entry = ledger_arg_int64(fcinfo, 0, "entry");
	char	   *memo = ledger_arg_text(fcinfo, 1, "memo");
	static SPIPlanPtr entry_plan = NULL;
	static SPIPlanPtr postings_plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(entry)};
	bool		isnull;
	int			n;
	const LedgerAccount **accounts;
	int16	   *assets;
	int64	   *amounts;
	int64		result;
	char	   *kind;
	LedgerEntry reversal;

	if (memo[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reversal needs a memo saying why")));
	ledger_spi_connect();
	ledger_plan(&entry_plan,
				"SELECT e.kind, EXISTS (SELECT 1 FROM carbon.entry r WHERE r.reverses = e.id) "
				"FROM carbon.entry e WHERE e.id = $1",
				1, types);
	if (SPI_execute_plan(entry_plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "entry lookup failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("entry " INT64_FORMAT " does not exist", entry)));
	kind = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(kind, "reversal") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("entry " INT64_FORMAT " is a reversal and cannot be reversed", entry),
				 errhint("Post the correction as a new entry.")));
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_UNIQUE_VIOLATION),
				 errmsg("entry " INT64_FORMAT " has already been reversed", entry)));
	/* units leave circulation for good: retired and cancelled are final states (api.md §5) */
	if (strcmp(kind, "unit_issuance") == 0 || strcmp(kind, "retirement") == 0 ||
		strcmp(kind, "cancellation") == 0 || strcmp(kind, "recall") == 0 || strcmp(kind, "pooling") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("entry " INT64_FORMAT " is a %s of certified units and cannot be reversed", entry, kind),
				 errhint("Issued units are recalled with carbon.recall_issuance(); retired and cancelled units are final.")));
	/* the market's entries follow orders and escrow, which a reversal would leave behind */
	if (strcmp(kind, "trade") == 0 || strcmp(kind, "order_cancel") == 0 || strcmp(kind, "market_close") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("entry " INT64_FORMAT " is a market %s and cannot be reversed", entry, kind),
				 errhint("A trade is undone by a new trade or a transfer; orders are cancelled with carbon.cancel_order().")));

	/*
	 * The mall's and the exchange's entries follow records a reversal would
	 * leave behind: a reversed redemption stayed refundable (its points came
	 * back twice: red-team, twenty-first session), a reversed exchange kept
	 * its day's total and carry, a reversed donation its receipt.
	 */
	if (strcmp(kind, "redemption") == 0 || strcmp(kind, "refund") == 0 || strcmp(kind, "settlement") == 0 ||
		strcmp(kind, "exchange") == 0 || strcmp(kind, "donation") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("entry " INT64_FORMAT " is a %s and cannot be reversed", entry, kind),
				 errdetail("Its %s record would no longer match the ledger.",
						   strcmp(kind, "exchange") == 0 ? "exchange" : strcmp(kind, "donation") == 0 ? "donation" : "redemption"),
				 errhint("A redemption is undone with carbon.refund_redemption(); refunds, settlements, exchanges and donations are final, corrected by a new transfer or exchange.")));

	ledger_plan(&postings_plan,
				"SELECT account, asset_id, amount FROM carbon.posting WHERE entry_id = $1 ORDER BY seq",
				1, types);
	if (SPI_execute_plan(postings_plan, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "posting lookup failed");
	n = (int) SPI_processed;
	accounts = palloc(sizeof(LedgerAccount *) * n);
	assets = palloc(sizeof(int16) * n);
	amounts = palloc(sizeof(int64) * n);
	{
		SPITupleTable *tuptable = SPI_tuptable;

		for (int i = 0; i < n; i++)
		{
			LedgerAccount *acc = palloc(sizeof(LedgerAccount));
			int64		id = DatumGetInt64(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 1, &isnull));

			assets[i] = DatumGetInt16(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 2, &isnull));
			amounts[i] = -DatumGetInt64(SPI_getbinval(tuptable->vals[i], tuptable->tupdesc, 3, &isnull));
			if (!ledger_get_account(id, acc))
				ereport(ERROR,
						(errcode(ERRCODE_CL_INTEGRITY),
						 errmsg("entry " INT64_FORMAT " posts to unknown account " INT64_FORMAT, entry, id)));
			accounts[i] = acc;
		}
	}
	reversal = ledger_entry("reversal", memo, n, accounts, assets, amounts);
	reversal.reverses = entry;
	reversal.correction = true;	/* a frozen account may be corrected (a closed one never) */
	result = ledger_post(&reversal);
	/* a behaviour's credit taken back: the behaviours leave the reports */
	if (strcmp(kind, "behavior") == 0)
		behavior_entry_reversed(entry);
	SPI_finish();
	PG_RETURN_INT64(result);
}
