/*
 * catalog.c — what the ledger reads on every call, held in backend memory:
 * the settings (carbon.setting over the defaults of carbon.settings), the
 * assets, the allowed-flow matrix, and whether any issuance cap exists.
 *
 * Each is loaded with one query on first use and kept until its table
 * changes: a statement trigger on carbon.setting, carbon.asset,
 * carbon.allowed_flow and carbon.issuance_cap (carbon._catalog_changed)
 * queues a relcache invalidation of that table, which every backend
 * receives when the change commits (and this backend at once); our relcache
 * callback then drops what it held.  DROP EXTENSION invalidates everything.
 *
 * The rules that use them live here once: the expiry of a fresh credit
 * (ledger_fresh_expiry), the acceptance window, the flow matrix.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "ledger.h"

/* The tables behind the caches (looked up on first use, forgotten on DROP). */
static Oid	setting_relid = InvalidOid;
static Oid	asset_relid = InvalidOid;
static Oid	flow_relid = InvalidOid;
static Oid	cap_relid = InvalidOid;

static LedgerSettings settings;
static bool settings_valid = false;
static bool caps_valid = false;

#define MAX_ASSETS 256
typedef struct AssetEntry
{
	int16		id;
	char		code[LEDGER_NAME_LEN + 1];
	char		kind[LEDGER_NAME_LEN];
} AssetEntry;
static AssetEntry assets[MAX_ASSETS];
static int	nassets = 0;
static bool assets_valid = false;

/* The flow matrix: (from tier, to tier, asset code) → allowed. */
typedef struct FlowKey
{
	char		from_tier[LEDGER_NAME_LEN];
	char		to_tier[LEDGER_NAME_LEN];
	char		asset[LEDGER_NAME_LEN + 1];
} FlowKey;
typedef struct FlowEntry
{
	FlowKey		key;
	bool		allowed;
} FlowEntry;
static HTAB *flows = NULL;
static MemoryContext catalog_cxt = NULL;

static void
catalog_relcache_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	bool		all = !OidIsValid(relid);

	if (all || relid == setting_relid)
		settings_valid = false;
	if (all || relid == cap_relid)
		caps_valid = false;
	if (all || relid == asset_relid)
		assets_valid = false;
	if (all || relid == flow_relid)
	{
		flows = NULL;
		if (catalog_cxt)
			MemoryContextReset(catalog_cxt);
	}
	if (all)
		setting_relid = asset_relid = flow_relid = cap_relid = InvalidOid;
}

static Oid
carbon_relid(const char *name)
{
	return get_relname_relid(name, get_namespace_oid("carbon", false));
}

static void
catalog_init(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(catalog_relcache_callback, (Datum) 0);
		catalog_cxt = AllocSetContextCreate(TopMemoryContext, "carbon_ledger catalog", ALLOCSET_SMALL_SIZES);
		registered = true;
	}
	if (!OidIsValid(setting_relid))
	{
		setting_relid = carbon_relid("setting");
		asset_relid = carbon_relid("asset");
		flow_relid = carbon_relid("allowed_flow");
		cap_relid = carbon_relid("issuance_cap");
	}
}

static Interval
interval_from_text(const char *s)
{
	return *DatumGetIntervalP(DirectFunctionCall3(interval_in, CStringGetDatum(s),
												  ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
}

/* The settings, with their defaults (one query per change). */
const LedgerSettings *
ledger_settings(void)
{
	catalog_init();
	if (!settings_valid)
	{
		LedgerSettings s;

		memset(&s, 0, sizeof(s));
		ledger_spi_connect();
		if (SPI_execute("SELECT name, value FROM carbon.settings", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "settings lookup failed");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
			char	   *value = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);

			if (strcmp(name, "points_per_kg") == 0)
				s.points_per_kg = strtoll(value, NULL, 10);
			else if (strcmp(name, "points_validity") == 0)
			{
				s.validity_end_of_next_year = strcmp(value, "end_of_next_year") == 0;
				if (!s.validity_end_of_next_year)
					s.validity = interval_from_text(value);
			}
			else if (strcmp(name, "acceptance_window") == 0)
				s.acceptance_window = interval_from_text(value);
			else if (strcmp(name, "timezone") == 0)
				strlcpy(s.timezone, value, sizeof(s.timezone));
		}
		SPI_finish();
		settings = s;
		settings_valid = true;
	}
	if (!caps_valid)
	{
		bool		isnull;

		ledger_spi_connect();
		if (SPI_execute("SELECT EXISTS (SELECT 1 FROM carbon.issuance_cap)", true, 1) != SPI_OK_SELECT)
			elog(ERROR, "cap lookup failed");
		settings.any_caps = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		caps_valid = true;
	}
	return &settings;
}

/*
 * The expiry of a fresh credit made at `basis`: the end of the next local
 * year, or basis + points_validity rounded up to the next local midnight
 * (so that a day's credits share one lot).  The same functions SQL's
 * AT TIME ZONE, date_trunc and + interval call.
 */
TimestampTz
ledger_fresh_expiry(TimestampTz basis)
{
	const LedgerSettings *s = ledger_settings();
	Datum		tz = CStringGetTextDatum(s->timezone);
	Datum		local;

	if (s->validity_end_of_next_year)
	{
		Interval	two_years = {0, 0, 24};

		local = DirectFunctionCall2(timestamptz_zone, tz, TimestampTzGetDatum(basis));
		local = DirectFunctionCall2(timestamp_trunc, CStringGetTextDatum("year"), local);
		local = DirectFunctionCall2(timestamp_pl_interval, local, IntervalPGetDatum(&two_years));
	}
	else
	{
		Interval	one_day = {0, 1, 0};
		Datum		until = DirectFunctionCall2(timestamptz_pl_interval, TimestampTzGetDatum(basis),
												IntervalPGetDatum(&s->validity));

		local = DirectFunctionCall2(timestamptz_zone, tz, until);
		local = DirectFunctionCall2(timestamp_trunc, CStringGetTextDatum("day"), local);
		local = DirectFunctionCall2(timestamp_pl_interval, local, IntervalPGetDatum(&one_day));
	}
	return DatumGetTimestampTz(DirectFunctionCall2(timestamp_zone, tz, local));
}

/* now() − acceptance_window: the oldest event still accepted. */
TimestampTz
ledger_acceptance_start(void)
{
	const LedgerSettings *s = ledger_settings();

	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												   TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()),
												   IntervalPGetDatum(&s->acceptance_window)));
}

static void
assets_load(void)
{
	catalog_init();
	if (assets_valid)
		return;
	ledger_spi_connect();
	if (SPI_execute("SELECT id, code, kind FROM carbon.asset ORDER BY id", true, MAX_ASSETS) != SPI_OK_SELECT)
		elog(ERROR, "asset lookup failed");
	nassets = 0;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		AssetEntry *a = &assets[nassets++];

		a->id = DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		strlcpy(a->code, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2), sizeof(a->code));
		strlcpy(a->kind, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3), sizeof(a->kind));
	}
	SPI_finish();
	assets_valid = true;
}

/* The id of an asset code, or -1. */
int16
ledger_asset_lookup(const char *code)
{
	assets_load();
	for (int i = 0; i < nassets; i++)
		if (strcmp(assets[i].code, code) == 0)
			return assets[i].id;
	return -1;
}

/* The built-in assets by code (their ids are the install script's). */
int16
ledger_asset_point(void)
{
	static int16 id = -1;
	static bool known = false;

	if (!known || !assets_valid)
	{
		id = ledger_asset_lookup("POINT");
		known = true;
	}
	return id;
}

int16
ledger_asset_red(void)
{
	static int16 id = -1;
	static bool known = false;

	if (!known || !assets_valid)
	{
		id = ledger_asset_lookup("RED");
		known = true;
	}
	return id;
}

/* The code of an asset id (for messages); "#id" if unknown. */
const char *
ledger_asset_code(int16 id)
{
	assets_load();
	for (int i = 0; i < nassets; i++)
		if (assets[i].id == id)
			return assets[i].code;
	return psprintf("#%d", id);
}

/*
 * May `asset` flow by transfer from a `from_tier` account to a `to_tier`
 * one?  An admin's row (seeded = false) takes precedence over the seeded
 * default for the same (from, to, asset); no row means no.
 */
bool
ledger_flow_allowed(const char *from_tier, const char *to_tier, const char *asset)
{
	FlowKey		key;
	FlowEntry  *e;

	catalog_init();
	if (flows == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(FlowKey);
		ctl.entrysize = sizeof(FlowEntry);
		ctl.hcxt = catalog_cxt;
		flows = hash_create("carbon_ledger flows", 128, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ledger_spi_connect();
		/* seeded rows first: the admin's rows overwrite them */
		if (SPI_execute("SELECT from_tier, to_tier, asset, allowed FROM carbon.allowed_flow "
						"ORDER BY seeded DESC", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "allowed-flow lookup failed");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		isnull;

			memset(&key, 0, sizeof(key));
			strlcpy(key.from_tier, SPI_getvalue(tup, desc, 1), sizeof(key.from_tier));
			strlcpy(key.to_tier, SPI_getvalue(tup, desc, 2), sizeof(key.to_tier));
			strlcpy(key.asset, SPI_getvalue(tup, desc, 3), sizeof(key.asset));
			e = hash_search(flows, &key, HASH_ENTER, NULL);
			e->allowed = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		}
		SPI_finish();
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.from_tier, from_tier, sizeof(key.from_tier));
	strlcpy(key.to_tier, to_tier, sizeof(key.to_tier));
	strlcpy(key.asset, asset, sizeof(key.asset));
	e = hash_search(flows, &key, HASH_FIND, NULL);
	return e != NULL && e->allowed;
}

/*
 * _catalog_changed(): AFTER … FOR EACH STATEMENT on the cached tables.
 * Every backend drops its copy once the change commits.
 */
PG_FUNCTION_INFO_V1(ledger_catalog_changed);
Datum
ledger_catalog_changed(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		elog(ERROR, "ledger_catalog_changed must be called as a trigger");
	CacheInvalidateRelcacheByRelid(RelationGetRelid(trigdata->tg_relation));
	return PointerGetDatum(NULL);
}
