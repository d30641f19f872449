/*
 * accounts.c — accounts in tiers, keyed hashes of external references,
 * status, balances, and assets.
 *
 * External references (ID-card numbers, credit codes) are stored only as
 * HMAC-SHA-256 under a per-database key (carbon.ref_secret), computed here
 * with PostgreSQL's own HMAC (common/hmac.h), so no pgcrypto is needed.
 */
#include "postgres.h"

#include <ctype.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "ledger.h"

static const char *const ledger_tiers[] = {
	"personal", "enterprise", "government", "merchant", "verifier", "platform"
};

#define TIERS_HINT "Tiers are personal, enterprise, government, merchant, verifier and platform."

static bool
valid_tier(const char *tier)
{
	for (size_t i = 0; i < lengthof(ledger_tiers); i++)
		if (strcmp(tier, ledger_tiers[i]) == 0)
			return true;
	return false;
}

/* _valid_tier(text) → boolean: the CHECK of every tier column (one list, here) */
PG_FUNCTION_INFO_V1(ledger_valid_tier);
Datum
ledger_valid_tier(PG_FUNCTION_ARGS)
{
	char	   *tier = text_to_cstring(PG_GETARG_TEXT_PP(0));

	PG_RETURN_BOOL(valid_tier(tier));
}

static void
require_tier(const char *tier)
{
	if (!valid_tier(tier))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown tier \"%s\"", tier),
				 errhint(TIERS_HINT)));
}

static void
require_region(const char *region)
{
	bool		ok = strlen(region) == 6;

	for (int i = 0; ok && i < 6; i++)
		ok = isdigit((unsigned char) region[i]);
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed region \"%s\"", region),
				 errdetail("A region is a 6-digit administrative division code, such as 620700 (Zhangye) or 320100 (Nanjing).")));
}

static void
copy_name(char *dst, const char *src)
{
	strlcpy(dst, src ? src : "", LEDGER_NAME_LEN);
}

/* Fill `acc` for account `id` from a row whose columns att[0..3] are its kind, tier, region and status. */
static void
account_fill(LedgerAccount *acc, int64 id, HeapTuple tup, TupleDesc desc, const AttrNumber *att)
{
	memset(acc, 0, sizeof(*acc));
	acc->id = id;
	copy_name(acc->kind, SPI_getvalue(tup, desc, att[0]));
	copy_name(acc->tier, SPI_getvalue(tup, desc, att[1]));
	strlcpy(acc->region, SPI_getvalue(tup, desc, att[2]), sizeof(acc->region));
	copy_name(acc->status, SPI_getvalue(tup, desc, att[3]));
	acc->participant = strcmp(acc->kind, "participant") == 0;
}

/*
 * Fill `acc` for account `id` from a result row whose columns first ..
 * first + 3 are its kind, tier, region and status.
 */
void
ledger_account_from_row(LedgerAccount *acc, int64 id, HeapTuple tup, TupleDesc desc, int first)
{
	account_fill(acc, id, tup, desc, (AttrNumber[]) {first, first + 1, first + 2, first + 3});
}

/* What ledger_get_account's direct read hands back: the row's columns by name. */
typedef struct AccountRead
{
	int64		id;
	LedgerAccount *acc;
	bool		found;
} AccountRead;

static void
account_row(int row pg_attribute_unused(), TupleTableSlot *slot, void *arg)
{
	static const char *const names[] = {"kind", "tier", "region", "status"};
	AccountRead *ar = (AccountRead *) arg;
	AttrNumber	att[4];

	ledger_attnums(slot->tts_tupleDescriptor, names, 4, att, "account");
	account_fill(ar->acc, ar->id, ExecFetchSlotHeapTuple(slot, false, NULL), slot->tts_tupleDescriptor, att);
	ar->found = true;
}

/* Look an account up; false if there is none.  Needs an SPI connection. */
bool
ledger_get_account(int64 id, LedgerAccount *acc)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};

	/* by its key straight from the heap (append.c), by SQL where the table is not plain or in parallel mode */
	if (!ledger_lookup_read_only())
	{
		AccountRead ar = {id, acc, false};

		if (ledger_read_by_key("account", 1, (Datum *[]) {values}, 1, account_row, &ar) >= 0)
			return ar.found;
	}

	ledger_plan_generic(&plan, "SELECT kind, tier, region, status FROM carbon.account WHERE id = $1",
						1, types);
	if (ledger_run_keyed(plan, values, NULL, ledger_lookup_read_only()) != SPI_OK_SELECT)
		elog(ERROR, "account lookup failed");
	if (SPI_processed == 0)
		return false;
	ledger_account_from_row(acc, id, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	return true;
}

/*
 * Both accounts of a move in one query, and whether the payer holds expired
 * lots of `asset` still to sweep (the hot path of transfer).  22023 for an
 * unknown account, the payer's first.
 */
bool
ledger_require_pair(int64 from_id, int64 to_id, int16 asset, LedgerAccount *from, LedgerAccount *to)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[4] = {INT8OID, INT8OID, INT2OID, TIMESTAMPTZOID};
	Datum		values[4];
	bool		found_from = false,
				found_to = false,
				expired = false;

	if (from_id == to_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " cannot pay itself", from_id),
				 errdetail("The payer and the payee are the same account.")));
	values[0] = Int64GetDatum(from_id);
	values[1] = Int64GetDatum(to_id);
	values[2] = Int16GetDatum(ledger_lot_asset(asset) ? asset : -1);	/* only lot assets expire */
	values[3] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ledger_plan(&plan,
				"SELECT a.id, a.kind, a.tier, a.region, a.status, "
				"       a.id = $1 AND EXISTS (SELECT 1 FROM carbon.lot l WHERE l.account = a.id "
				"                            AND l.asset_id = $3 AND l.expires_at <= $4 AND l.remaining > 0) "
				"FROM carbon.account a WHERE a.id IN ($1, $2)",
				4, types);
	if (SPI_execute_plan(plan, values, NULL, ledger_lookup_read_only(), 2) != SPI_OK_SELECT)
		elog(ERROR, "account lookup failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));

		if (id == from_id)
		{
			ledger_account_from_row(from, id, tup, SPI_tuptable->tupdesc, 2);
			found_from = true;
			expired = DatumGetBool(SPI_getbinval(tup, SPI_tuptable->tupdesc, 6, &isnull));
		}
		else
		{
			ledger_account_from_row(to, id, tup, SPI_tuptable->tupdesc, 2);
			found_to = true;
		}
	}
	if (!found_from || !found_to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " does not exist", found_from ? to_id : from_id)));
	return expired;
}

void
ledger_require_account(int64 id, LedgerAccount *acc)
{
	if (!ledger_get_account(id, acc))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " does not exist", id)));
}

/* Only participant accounts take part (22023 for a system account). */
void
ledger_require_participant(const LedgerAccount *acc)
{
	if (!acc->participant)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " is a system account", acc->id),
				 errdetail("Only participant accounts take part in this operation.")));
}

void
ledger_require_active(const LedgerAccount *acc)
{
	if (strcmp(acc->status, "active") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_ACCOUNT_STATUS),
				 errmsg("account " INT64_FORMAT " is %s", acc->id, acc->status),
				 errhint("A frozen account can be reactivated with carbon.set_account_status(); a closed one cannot.")));
}

/* Asset code → id, or 22023.  Needs an SPI connection. */
int16
ledger_asset_id(const char *code)
{
	int16		id = ledger_asset_lookup(code);	/* cached: catalog.c */

	if (id < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown asset \"%s\"", code),
				 errhint("Built-in assets are POINT, RED, CER and CNY; others come from carbon.define_asset().")));
	return id;
}

/*
 * The per-database HMAC key; created on first use (not at CREATE EXTENSION),
 * so that restoring a dump brings back the original key.
 */
static bytea *
ref_key(bool create)
{
	static SPIPlanPtr select_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	bool		isnull;

	ledger_plan(&select_plan, "SELECT hmac_key FROM carbon.ref_secret", 0, NULL);
	if (SPI_execute_plan(select_plan, NULL, NULL, !create, 1) != SPI_OK_SELECT)
		elog(ERROR, "key lookup failed");
	if (SPI_processed == 0)
	{
		Oid			types[1] = {BYTEAOID};
		Datum		values[1];
		bytea	   *key;

		if (!create)
			return NULL;
		key = palloc(VARHDRSZ + 32);
		SET_VARSIZE(key, VARHDRSZ + 32);
		if (!pg_strong_random(VARDATA(key), 32))
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random key")));
		values[0] = PointerGetDatum(key);
		ledger_plan(&insert_plan,
					"INSERT INTO carbon.ref_secret (hmac_key) VALUES ($1) ON CONFLICT DO NOTHING",
					1, types);
		if (SPI_execute_plan(insert_plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "key creation failed");
		if (SPI_execute_plan(select_plan, NULL, NULL, false, 1) != SPI_OK_SELECT ||
			SPI_processed == 0)
			elog(ERROR, "key lookup failed");
	}
	return DatumGetByteaPCopy(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* HMAC-SHA-256(key, tier || 0x00 || reference) */
static bytea *
ref_hash(bytea *key, const char *reference)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);

	if (ctx == NULL ||
		pg_hmac_init(ctx, (uint8 *) VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) reference, strlen(reference)) < 0 ||
		pg_hmac_final(ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not compute HMAC: %s", ctx ? pg_hmac_error(ctx) : "out of memory")));
	pg_hmac_free(ctx);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	return result;
}

/*
 * An identifier as its holder is known by, whatever the spelling: blanks
 * trimmed (ASCII and the ideographic space), full-width forms (U+FF01 to
 * U+FF5E) as their ASCII, letters in upper case.  '11010519491231002x',
 * ' 11010519491231002X ' and its full-width spelling are one citizen (red
 * team, twenty-first session: one ID number in several spellings opened
 * several accounts, multiplying the daily caps, and passed the verifier's
 * same-legal-person check).
 */
static char *
normalized_reference(const char *reference)
{
	StringInfoData out;
	const unsigned char *p = (const unsigned char *) reference;
	bool		utf8 = GetDatabaseEncoding() == PG_UTF8;
	int			end;

	initStringInfo(&out);
	while (*p)
	{
		int			c = *p++;

		if (utf8 && c == 0xE3 && p[0] == 0x80 && p[1] == 0x80)
		{
			c = ' ';			/* U+3000 ideographic space */
			p += 2;
		}
		else if (utf8 && c == 0xEF && (p[0] == 0xBC || p[0] == 0xBD) && (p[1] & 0xC0) == 0x80)
		{
			int			cp = ((c & 0x0F) << 12) | ((p[0] & 0x3F) << 6) | (p[1] & 0x3F);

			if (cp >= 0xFF01 && cp <= 0xFF5E)
			{
				c = cp - 0xFEE0;
				p += 2;
			}
		}
		if (c >= 'a' && c <= 'z')
			c -= 'a' - 'A';
		if (out.len == 0 && (c == ' ' || c == '\t' || c == '\n' || c == '\r'))
			continue;
		appendStringInfoChar(&out, (char) c);
	}
	end = out.len;
	while (end > 0 && (out.data[end - 1] == ' ' || out.data[end - 1] == '\t' || out.data[end - 1] == '\n' ||
					   out.data[end - 1] == '\r'))
		end--;
	out.data[end] = '\0';
	return out.data;
}

static void
require_reference(const char *reference)
{
	if (reference[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("external_ref must not be empty")));
}

/* The id of the participant account (tier, hash), or 0. */
static int64
find_participant(const char *tier, bytea *hash)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {TEXTOID, BYTEAOID};
	Datum		values[2] = {CStringGetTextDatum(tier), PointerGetDatum(hash)};
	bool		isnull;

	ledger_plan(&plan, "SELECT id FROM carbon.account WHERE tier = $1 AND ref_hash = $2",
				2, types);
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "account lookup failed");
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * The participant account (tier, reference), or 0: by `hash`, the hash of
 * the reference's normalized spelling, else (an account opened before
 * spellings were one) by the spelling given.
 */
static int64
find_by_reference(const char *tier, bytea *key, bytea *hash, const char *normalized, const char *reference)
{
	int64		id = find_participant(tier, hash);

	if (id == 0 && strcmp(normalized, reference) != 0)
		id = find_participant(tier, ref_hash(key, reference));
	return id;
}

/*
 * open_account(tier, region, external_ref, display_name) → bigint
 * Idempotent on (tier, external_ref): returns the existing id.
 */
PG_FUNCTION_INFO_V1(ledger_open_account);
Datum
ledger_open_account(PG_FUNCTION_ARGS)
{
	char	   *tier = ledger_arg_text(fcinfo, 0, "tier");
	char	   *region = ledger_arg_text(fcinfo, 1, "region");
	char	   *reference = ledger_arg_text(fcinfo, 2, "external_ref");
	char	   *display_name = ledger_arg_text_or_null(fcinfo, 3);
	static SPIPlanPtr insert_plan = NULL;
	Oid			types[4] = {TEXTOID, TEXTOID, BYTEAOID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = {' ', ' ', ' ', ' '};
	bytea	   *key;
	bytea	   *hash;
	char	   *normalized;
	int64		id;

	require_tier(tier);
	require_region(region);
	require_reference(reference);
	normalized = normalized_reference(reference);
	require_reference(normalized);
	ledger_check_may_open(tier);

	ledger_spi_connect();
	key = ref_key(true);
	hash = ref_hash(key, normalized);
	id = find_by_reference(tier, key, hash, normalized, reference);
	if (id == 0)
	{
		values[0] = CStringGetTextDatum(tier);
		values[1] = CStringGetTextDatum(region);
		values[2] = PointerGetDatum(hash);
		values[3] = display_name ? CStringGetTextDatum(display_name) : (Datum) 0;
		nulls[3] = display_name ? ' ' : 'n';
		ledger_plan(&insert_plan,
					"INSERT INTO carbon.account (tier, region, ref_hash, display_name) "
					"VALUES ($1, $2, $3, $4) ON CONFLICT (tier, ref_hash) DO NOTHING RETURNING id",
					4, types);
		if (SPI_execute_plan(insert_plan, values, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "account insert failed");
		if (SPI_processed == 1)
		{
			bool		isnull;

			id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		}
		else
			id = find_participant(tier, hash);	/* a concurrent open won */
	}
	SPI_finish();
	PG_RETURN_INT64(id);
}

/* account_id(tier, external_ref) → bigint, NULL if there is none */
PG_FUNCTION_INFO_V1(ledger_account_id);
Datum
ledger_account_id(PG_FUNCTION_ARGS)
{
	char	   *tier = ledger_arg_text(fcinfo, 0, "tier");
	char	   *reference = ledger_arg_text(fcinfo, 1, "external_ref");
	bytea	   *key;
	int64		id = 0;

	require_tier(tier);
	ledger_spi_connect();
	key = ref_key(false);
	if (key != NULL)
	{
		char	   *normalized = normalized_reference(reference);

		id = find_by_reference(tier, key, ref_hash(key, normalized), normalized, reference);
	}
	SPI_finish();
	if (id == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT64(id);
}

/*
 * set_account_status(account, status, reason): active | frozen | closed.
 * Closing needs zero balances and is final.  The status is copied into the
 * account's balance rows, where the posting trigger sees it atomically.
 */
PG_FUNCTION_INFO_V1(ledger_set_account_status);
Datum
ledger_set_account_status(PG_FUNCTION_ARGS)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	char	   *status = ledger_arg_text(fcinfo, 1, "status");
	char	   *reason = ledger_arg_text(fcinfo, 2, "reason");
	static SPIPlanPtr lock_plan = NULL;
	static SPIPlanPtr balance_plan = NULL;
	static SPIPlanPtr update_plan = NULL;
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	Datum		values[3];
	char	   *current;

	if (strcmp(status, "active") != 0 && strcmp(status, "frozen") != 0 &&
		strcmp(status, "closed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown account status \"%s\"", status),
				 errhint("An account status is active, frozen or closed.")));
	if (reason[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("a reason is required to change an account's status")));

	ledger_spi_connect();
	values[0] = Int64GetDatum(account);
	ledger_plan(&lock_plan,
				"SELECT status FROM carbon.account WHERE id = $1 AND kind = 'participant' FOR UPDATE",
				1, types);
	if (SPI_execute_plan(lock_plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "account lock failed");
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " does not exist or is a system account", account)));
	current = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	if (strcmp(current, status) == 0)
	{
		SPI_finish();
		PG_RETURN_VOID();
	}
	if (strcmp(current, "closed") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("account " INT64_FORMAT " is closed", account),
				 errdetail("Closing an account is final.")));
	/*
	 * The status goes into a balance row of every asset, made now if the
	 * account never held that asset: a transfer whose snapshot predates this
	 * change then meets the row (and waits for us, or fails to serialize)
	 * instead of creating it with the status it read earlier.  Rows are
	 * locked in (account, asset) order, as the posting trigger does.
	 */
	values[1] = CStringGetTextDatum(status);
	values[2] = CStringGetTextDatum(reason);
	ledger_plan(&balance_plan,
				"INSERT INTO carbon.balance AS b (account, asset_id, stripe, amount, status) "
				"SELECT $1, s.id, 0, 0, $2 FROM carbon.asset s ORDER BY s.id "
				"ON CONFLICT (account, asset_id, stripe) DO UPDATE SET status = excluded.status "
				"RETURNING (SELECT code FROM carbon.asset s WHERE s.id = b.asset_id), b.amount",
				2, types);
	if (SPI_execute_plan(balance_plan, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "balance status update failed");
	if (strcmp(status, "closed") == 0)
	{
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;

			if (DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)) != 0)
				ereport(ERROR,
						(errcode(ERRCODE_CL_LIFECYCLE),
						 errmsg("account " INT64_FORMAT " still holds value and cannot be closed", account),
						 errdetail("It holds %s %s.",
								   SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2),
								   SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1)),
						 errhint("Transfer or redeem the balance first.")));
		}
	}
	if (strcmp(status, "closed") == 0)
	{
		/*
		 * Escrow is not in the balance: an account with resting orders
		 * would be owed their escrow back.  Checked after the balance rows
		 * are locked, so that an order placed meanwhile is seen.
		 */
		static SPIPlanPtr orders_plan = NULL;

		ledger_plan(&orders_plan,
					"SELECT count(*) FROM carbon.market_order WHERE account = $1 "
					"AND status IN ('open', 'partially_filled')",
					1, types);
		if (SPI_execute_plan(orders_plan, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "order lookup failed");
		{
			bool		isnull;
			int64		open = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
														   &isnull));

			if (open > 0)
				ereport(ERROR,
						(errcode(ERRCODE_CL_LIFECYCLE),
						 errmsg("account " INT64_FORMAT " has " INT64_FORMAT " open orders and cannot be closed",
								account, open),
						 errhint("Cancel its orders first (carbon.cancel_order).")));
		}
	}
	ledger_plan(&update_plan,
				"WITH a AS (UPDATE carbon.account SET status = $2 WHERE id = $1 RETURNING id) "
				"INSERT INTO carbon.account_status_log (account, old_status, new_status, reason) "
				"SELECT id, (SELECT status FROM carbon.account WHERE id = $1), $2, $3 FROM a",
				3, types);
	if (SPI_execute_plan(update_plan, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "status update failed");
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * balance(account, asset) → bigint: what the account can spend now.
 * System accounts are striped, so their balance is the sum of the stripes.
 */
PG_FUNCTION_INFO_V1(ledger_balance);
Datum
ledger_balance(PG_FUNCTION_ARGS)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	char	   *asset = ledger_arg_text(fcinfo, 1, "asset");
	static SPIPlanPtr plan = NULL;
	Oid			types[2] = {INT8OID, INT2OID};
	Datum		values[2];
	bool		isnull;
	int64		amount;

	ledger_check_acting(account, true);
	ledger_spi_connect();
	values[0] = Int64GetDatum(account);
	values[1] = Int16GetDatum(ledger_asset_id(asset));
	/* lots past their expiry are not spendable, even before expire_lots() runs */
	ledger_plan(&plan,
				"SELECT (SELECT sum(amount) FROM carbon.balance WHERE account = $1 AND asset_id = $2)::bigint "
				"     - (SELECT coalesce(sum(remaining), 0) FROM carbon.lot "
				"        WHERE account = $1 AND asset_id = $2 AND remaining > 0 AND expires_at <= now())::bigint",
				2, types);
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "balance lookup failed");
	amount = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (isnull)
	{
		LedgerAccount acc;

		ledger_require_account(account, &acc);
		amount = 0;
	}
	SPI_finish();
	PG_RETURN_INT64(amount);
}

/* balance_at(account, asset, at) → bigint: the balance as it stood at `at` */
PG_FUNCTION_INFO_V1(ledger_balance_at);
Datum
ledger_balance_at(PG_FUNCTION_ARGS)
{
	int64		account = ledger_arg_int64(fcinfo, 0, "account");
	char	   *asset = ledger_arg_text(fcinfo, 1, "asset");
	static SPIPlanPtr plan = NULL;
	Oid			types[3] = {INT8OID, INT2OID, TIMESTAMPTZOID};
	Datum		values[3];
	bool		isnull;
	int64		amount;
	LedgerAccount acc;

	if (PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("at must not be null")));
	ledger_check_acting(account, true);
	ledger_spi_connect();
	ledger_require_account(account, &acc);
	values[0] = Int64GetDatum(account);
	values[1] = Int16GetDatum(ledger_asset_id(asset));
	values[2] = PG_GETARG_DATUM(2);
	ledger_plan(&plan,
				"SELECT coalesce(sum(amount), 0)::bigint FROM carbon.posting "
				"WHERE account = $1 AND asset_id = $2 AND at <= $3",
				3, types);
	if (SPI_execute_plan(plan, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "balance lookup failed");
	amount = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_INT64(amount);
}

/*
 * define_asset(code, kind, name): a partner currency or points of another
 * city.  Defining the same asset again is a no-op; a different definition
 * under an existing code is 23505.
 */
PG_FUNCTION_INFO_V1(ledger_define_asset);
Datum
ledger_define_asset(PG_FUNCTION_ARGS)
{
	char	   *code = ledger_arg_text(fcinfo, 0, "code");
	char	   *kind = ledger_arg_text(fcinfo, 1, "kind");
	char	   *name = ledger_arg_text(fcinfo, 2, "name");
	static SPIPlanPtr find_plan = NULL;
	static SPIPlanPtr insert_plan = NULL;
	Oid			types[3] = {TEXTOID, TEXTOID, TEXTOID};
	Datum		values[3];
	bool		ok = strlen(code) >= 2 && strlen(code) <= 16 && isupper((unsigned char) code[0]);

	for (const char *p = code; ok && *p; p++)
		ok = isupper((unsigned char) *p) || isdigit((unsigned char) *p) || *p == '_';
	if (!ok)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("malformed asset code \"%s\"", code),
				 errdetail("An asset code is 2 to 16 upper-case letters, digits or underscores, starting with a letter.")));
	if (strcmp(kind, "points") != 0 && strcmp(kind, "currency") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown asset kind \"%s\"", kind),
				 errhint("Partner assets are of kind points (another city's points) or currency (such as 彩虹元).")));
	if (name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("an asset needs a name")));

	ledger_spi_connect();
	values[0] = CStringGetTextDatum(code);
	values[1] = CStringGetTextDatum(kind);
	values[2] = CStringGetTextDatum(name);
	ledger_plan(&find_plan, "SELECT kind = $2 AND name = $3 FROM carbon.asset WHERE code = $1",
				3, types);
	if (SPI_execute_plan(find_plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "asset lookup failed");
	if (SPI_processed == 0)
	{
		ledger_plan(&insert_plan,
					"INSERT INTO carbon.asset (code, kind, name) VALUES ($1, $2, $3)", 3, types);
		if (SPI_execute_plan(insert_plan, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "asset insert failed");
	}
	else
	{
		bool		isnull;

		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_UNIQUE_VIOLATION),
					 errmsg("asset \"%s\" is already defined differently", code)));
	}
	SPI_finish();
	PG_RETURN_VOID();
}
