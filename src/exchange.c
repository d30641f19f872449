/*
 * exchange.c — exchange into partner currencies and other cities' points
 * (api.md §4 exchange; Zhangye §11 彩虹元), and donations of points.
 *
 * An exchange of `amount` of A into B at the rate in force (n/d) gives
 * floor(amount × n / d + carry) of B, where carry is the fraction of a unit
 * of B the account was owed by its earlier exchanges of A into B; the new
 * fraction is carried (exactly, as a reduced fraction, in 128-bit
 * arithmetic), so nothing is lost to rounding over many exchanges.  The
 * entry is balanced per asset through the segment's clearing accounts:
 * A from the account to clearing, B from clearing to the account (points
 * that come in open a fresh lot; points that go out leave earliest-expiring
 * lots first).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "journal.h"
#include "ledger.h"

static int128
gcd128(int128 a, int128 b)
{
	while (b != 0)
	{
		int128		t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/*
 * exchange(account, from_asset, amount, to_asset, request_id) → entry id
 * Checks: arguments (22023), account status (CL002), a rate in force
 * (CL007), the daily limit and the balance (CL001).
 */
PG_FUNCTION_INFO_V1(ledger_exchange);
Datum
ledger_exchange(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr rate_plan = NULL;
	static SPIPlanPtr day_plan = NULL;
	static SPIPlanPtr carry_plan = NULL;
	static SPIPlanPtr record_plan = NULL;
	int64		account_id = ledger_arg_int64(fcinfo, 0, "account");
	char	   *from_code = ledger_arg_text(fcinfo, 1, "from_asset");
	int64		amount = ledger_arg_amount(fcinfo, 2, "amount");
	char	   *to_code = ledger_arg_text(fcinfo, 3, "to_asset");
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 4);
	int16		from_asset,
				to_asset;
	LedgerAccount acc;
	int64		entry_id,
				num,
				den,
				carry_num = 0,
				carry_den = 1,
				received;
	int128		total_num,
				total_den,
				rest,
				g;
	DateADT		today;
	int64		limit;
	bool		isnull;
	Datum		values[10];

	ledger_check_acting(account_id, false);
	ledger_spi_connect();
	from_asset = ledger_asset_id(from_code);
	to_asset = ledger_asset_id(to_code);
	if (from_asset == to_asset)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot exchange %s for itself", from_code)));
	ledger_require_account(account_id, &acc);
	if (!acc.participant)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " is a system account", account_id)));
	if (ledger_request_begin(account_id, request_id, "exchange",
							 psprintf("%s|" INT64_FORMAT "|%s", from_code, amount, to_code), &entry_id))
	{
		SPI_finish();
		PG_RETURN_INT64(entry_id);
	}
	ledger_require_active(&acc);

	/* the rate in force now: never one that starts later */
	values[0] = CStringGetTextDatum(from_code);
	values[1] = CStringGetTextDatum(to_code);
	values[2] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	ledger_plan(&rate_plan,
				"SELECT numerator, denominator FROM carbon.exchange_rate "
				"WHERE from_asset = $1 AND to_asset = $2 AND valid_from <= $3 ORDER BY valid_from DESC LIMIT 1",
				3, (Oid[]) {TEXTOID, TEXTOID, TIMESTAMPTZOID});
	ledger_run(rate_plan, values, SPI_OK_SELECT);
	if (SPI_processed != 1)
		ereport(ERROR,
				(errcode(ERRCODE_CL_LIFECYCLE),
				 errmsg("no exchange rate from %s to %s is in force", from_code, to_code),
				 errhint("carbon.set_exchange_rate() sets one, from a date.")));
	num = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	den = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));

	/* one exchange per account at a time: the day's total and the carry are ours */
	ledger_private_xact_lock(LEDGER_LOCK_EXCHANGE, account_id);
	/* the daily limit's day: the local day of the transaction's start */
	today = ledger_local_day(CStringGetTextDatum(ledger_settings()->timezone),
							 GetCurrentTransactionStartTimestamp());
	limit = ledger_settings()->exchange_daily_limit;
	if (limit > 0)
	{
		int64		done;

		values[0] = Int64GetDatum(account_id);
		values[1] = CStringGetTextDatum(from_code);
		values[2] = DateADTGetDatum(today);
		ledger_plan(&day_plan,
					"SELECT coalesce(sum(amount), 0)::bigint FROM carbon.exchange "
					"WHERE account = $1 AND from_asset = $2 AND local_day = $3",
					3, (Oid[]) {INT8OID, TEXTOID, DATEOID});
		ledger_run(day_plan, values, SPI_OK_SELECT);
		done = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (done > limit || amount > limit - done)
			ereport(ERROR,
					(errcode(ERRCODE_CL_INSUFFICIENT),
					 errmsg("account " INT64_FORMAT " may exchange " INT64_FORMAT " %s a day; " INT64_FORMAT
							" already today", account_id, limit, from_code, done),
					 errhint("The limit is the setting exchange_daily_limit.")));
	}

	/* what the account is owed from earlier exchanges of the pair */
	values[0] = Int64GetDatum(account_id);
	values[1] = CStringGetTextDatum(from_code);
	values[2] = CStringGetTextDatum(to_code);
	ledger_plan(&carry_plan,
				"SELECT carry_num, carry_den FROM carbon.exchange_carry "
				"WHERE account = $1 AND from_asset = $2 AND to_asset = $3",
				3, (Oid[]) {INT8OID, TEXTOID, TEXTOID});
	ledger_run(carry_plan, values, SPI_OK_SELECT);
	if (SPI_processed == 1)
	{
		carry_num = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		carry_den = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}

	/* amount × num / den + carry_num / carry_den, exactly */
	total_den = (int128) den * carry_den;
	total_num = (int128) amount * num * carry_den + (int128) carry_num * den;
	if (total_num / total_den > PG_INT64_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("the exchange would give more %s than can be counted", to_code)));
	received = (int64) (total_num / total_den);
	rest = total_num % total_den;
	g = rest == 0 ? total_den : gcd128(rest, total_den);
	rest /= g;
	total_den /= g;
	if (total_den > PG_INT64_MAX)
	{
		/* an unusual pair of rates: keep the carry to the precision of the current rate */
		rest = rest * den / total_den;
		total_den = den;
	}

	/* the entry: A to the segment's clearing, B from it */
	{
		const LedgerAccount *accounts[4];
		int16		assets[4];
		int64		amounts[4];
		int			n = 0;
		LedgerEntry entry;

		if (ledger_lot_asset(from_asset))
			ledger_sweep_expired(account_id);	/* expired lots are not spendable */
		accounts[n] = &acc;
		assets[n] = from_asset;
		amounts[n++] = -amount;
		accounts[n] = ledger_system_account_info("clearing", from_asset, acc.tier, acc.region);
		assets[n] = from_asset;
		amounts[n++] = amount;
		if (received > 0)
		{
			accounts[n] = ledger_system_account_info("clearing", to_asset, acc.tier, acc.region);
			assets[n] = to_asset;
			amounts[n++] = -received;
			accounts[n] = &acc;
			assets[n] = to_asset;
			amounts[n++] = received;
		}
		entry = ledger_entry("exchange", psprintf("兑换 " INT64_FORMAT " %s → " INT64_FORMAT " %s at " INT64_FORMAT
												  "/" INT64_FORMAT, amount, from_code, received, to_code, num, den),
							 n, accounts, assets, amounts);
		entry_id = ledger_post(&entry);
	}

	values[0] = Int64GetDatum(entry_id);
	values[1] = Int64GetDatum(account_id);
	values[2] = CStringGetTextDatum(from_code);
	values[3] = Int64GetDatum(amount);
	values[4] = CStringGetTextDatum(to_code);
	values[5] = Int64GetDatum(received);
	values[6] = Int64GetDatum(num);
	values[7] = Int64GetDatum(den);
	values[8] = DateADTGetDatum(today);
	values[9] = Int64GetDatum((int64) rest);
	ledger_plan(&record_plan,
				"WITH c AS (INSERT INTO carbon.exchange_carry AS c (account, from_asset, to_asset, carry_num, carry_den) "
				"           VALUES ($2, $3, $5, $10, $11) ON CONFLICT (account, from_asset, to_asset) "
				"           DO UPDATE SET carry_num = excluded.carry_num, carry_den = excluded.carry_den) "
				"INSERT INTO carbon.exchange (entry_id, account, from_asset, amount, to_asset, received, numerator, "
				"  denominator, local_day) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
				11, (Oid[]) {INT8OID, INT8OID, TEXTOID, INT8OID, TEXTOID, INT8OID, INT8OID, INT8OID, DATEOID,
					INT8OID, INT8OID});
	{
		Datum		args[11];

		memcpy(args, values, sizeof(Datum) * 10);
		args[10] = Int64GetDatum((int64) total_den);
		ledger_run(record_plan, args, SPI_OK_INSERT);
	}
	ledger_request_finish(account_id, request_id, entry_id);
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}

/* Donations go to the government tier (public-welfare bodies are opened there). */
static void
require_welfare(const LedgerAccount *to)
{
	if (strcmp(to->tier, "government") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("account " INT64_FORMAT " is not a government or public-welfare account", to->id),
				 errhint("Donations go to accounts of the government tier (public-welfare bodies are opened there).")));
}

/*
 * donate(account, recipient, amount, request_id) → entry id
 * Points to a government or public-welfare account, where the allowed-flow
 * matrix allows it (by default personal → government): a transfer, with
 * its checks (ledger_transfer_between), and a receipt row (捐赠证书 number)
 * the donor can see.
 */
PG_FUNCTION_INFO_V1(ledger_donate);
Datum
ledger_donate(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr receipt_plan = NULL;
	int64		from_id = ledger_arg_int64(fcinfo, 0, "account");
	int64		to_id = ledger_arg_int64(fcinfo, 1, "recipient");
	int64		amount = ledger_arg_amount(fcinfo, 2, "amount");
	char	   *request_id = ledger_arg_text_or_null(fcinfo, 3);
	int64		entry_id;
	bool		replayed;
	Datum		values[5];

	if (from_id == to_id)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot donate to the donating account")));
	ledger_check_acting(from_id, false);
	ledger_spi_connect();
	entry_id = ledger_transfer_between("donation", psprintf("捐赠 donation to account " INT64_FORMAT, to_id),
									   from_id, to_id, "POINT", amount, require_welfare, request_id,
									   psprintf(INT64_FORMAT "|" INT64_FORMAT, to_id, amount), &replayed);
	if (!replayed)
	{
		values[0] = Int64GetDatum(entry_id);
		values[1] = Int64GetDatum(from_id);
		values[2] = Int64GetDatum(to_id);
		values[3] = Int64GetDatum(amount);
		values[4] = CStringGetTextDatum(ledger_settings()->timezone);
		ledger_plan(&receipt_plan,
					"INSERT INTO carbon.donation (entry_id, account, recipient, amount, receipt) "
					"VALUES ($1, $2, $3, $4, 'JZ' || to_char(now() AT TIME ZONE $5, 'YYYYMMDD') || '-' || $1)",
					5, (Oid[]) {INT8OID, INT8OID, INT8OID, INT8OID, TEXTOID});
		ledger_run(receipt_plan, values, SPI_OK_INSERT);
	}
	SPI_finish();
	PG_RETURN_INT64(entry_id);
}
