/*
 * catalog.c — what the ledger reads on every call, held in backend memory:
 * the settings (carbon.setting over the defaults of carbon.settings), the
 * assets, the allowed-flow matrix, whether any issuance cap exists, the
 * methodologies (every version, parsed) and the sources.
 *
 * Each is loaded with one query on first use and kept until its table
 * changes: a statement trigger on carbon.setting, carbon.asset,
 * carbon.allowed_flow, carbon.issuance_cap, carbon.methodology and
 * carbon.source (carbon._catalog_changed)
 * queues a relcache invalidation of that table, which every backend
 * receives when the change commits (and this backend at once); our relcache
 * callback then drops all it held and looks the tables up again.
 *
 * The rules that use them live here once: the expiry of a fresh credit
 * (ledger_fresh_expiry), the acceptance window, the flow matrix, the
 * methodology version in force at a time (ledger_methodology_in_force).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "catalog.h"
#include "ledger.h"

/* The tables behind the caches (looked up on first use, forgotten on DROP). */
static Oid	setting_relid = InvalidOid;
static Oid	asset_relid = InvalidOid;
static Oid	flow_relid = InvalidOid;
static Oid	cap_relid = InvalidOid;
static Oid	methodology_relid = InvalidOid;
static Oid	source_relid = InvalidOid;

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
static int16 point_id = -1;
static int16 red_id = -1;

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

/* Methodologies by code: every version, parsed, newest in force first. */
typedef struct MethodologyEntry
{
	char		code[64];
	int			nversions;
	MethodologyVersion *versions;
} MethodologyEntry;
static HTAB *methodologies = NULL;
static MemoryContext methodology_cxt = NULL;

/* Sources by name: the scenarios each may report and its operator role. */
typedef struct SourceEntry
{
	char		source[LEDGER_SOURCE_KEY];
	LedgerSource info;
} SourceEntry;
static HTAB *sources = NULL;
static MemoryContext source_cxt = NULL;

/* a cache of codes and sources met in input is bounded */
#define MAX_LOOKUP_ENTRIES 4096

/* Cache memory dropped by an invalidation, kept to the end of the transaction. */
static MemoryContext retired_cxt = NULL;

/* Bumped by every invalidation: a loader that sees it move discards what it loaded. */
static uint64 catalog_generation = 0;

/* Retire a cache's context (its memory stays valid to the end of the transaction) and start a new one. */
static void
retire(MemoryContext *cxt, const char *name)
{
	if (*cxt == NULL)
		return;
	if (retired_cxt == NULL)
		retired_cxt = AllocSetContextCreate(TopMemoryContext, "carbon_ledger retired caches",
											ALLOCSET_SMALL_SIZES);
	MemoryContextSetParent(*cxt, retired_cxt);
	/* name: one of our string literals, which live forever */
	*cxt = AllocSetContextCreateInternal(TopMemoryContext, name, ALLOCSET_SMALL_MINSIZE,
										 ALLOCSET_SMALL_INITSIZE, ALLOCSET_SMALL_MAXSIZE);
}

/*
 * The extension's relations by name (ledger_relid): the direct paths of
 * append.c look a table and its index up on every write and read, two
 * catalog cache lookups each, about 2 % of a market order's instructions
 * (callgrind).  A name is forgotten when its relation is invalidated
 * (dropped, renamed, altered) or when everything is.
 */
typedef struct RelidByName
{
	char		name[NAMEDATALEN];
	Oid			relid;
} RelidByName;

static RelidByName relids[64];
static int	nrelids = 0;

/*
 * Of n kept entries of `size` bytes each, drop those of the relation a
 * relcache invalidation names (the Oid at `offset`), or all of them for
 * InvalidOid; returns how many are left.  For the small lists of catalog
 * facts the write paths keep (here and in append.c).
 */
int
ledger_kept_forget(void *entries, int n, size_t size, size_t offset, Oid relid)
{
	char	   *e = entries;
	int			kept = 0;

	if (!OidIsValid(relid))
		return 0;
	for (int i = 0; i < n; i++)
		if (*(Oid *) (e + i * size + offset) != relid)
		{
			if (kept != i)
				memmove(e + kept * size, e + i * size, size);
			kept++;
		}
	return kept;
}

static void
catalog_relcache_callback(Datum arg pg_attribute_unused(), Oid relid)
{
	nrelids = ledger_kept_forget(relids, nrelids, sizeof(RelidByName), offsetof(RelidByName, relid), relid);
	/*
	 * A change to any of our tables drops every cache and forgets the
	 * tables' OIDs, looked up again on next use: a table that is dropped
	 * (DROP EXTENSION, then CREATE EXTENSION in the same session) comes back
	 * under another OID, whose changes the old OIDs would never match.  The
	 * tables change rarely (an admin's step), so dropping all is cheap.
	 */
	if (OidIsValid(relid) && relid != setting_relid && relid != cap_relid && relid != asset_relid &&
		relid != flow_relid && relid != methodology_relid && relid != source_relid)
		return;
	settings_valid = false;
	caps_valid = false;
	assets_valid = false;
	flows = NULL;
	methodologies = NULL;
	sources = NULL;
	/*
	 * An invalidation arrives whenever a lock is taken, in the middle of a
	 * call that holds pointers into these caches, or while a loader fills
	 * one: the memory is retired, not freed, and freed at the end of the
	 * transaction (catalog_release_retired).
	 */
	retire(&catalog_cxt, "carbon_ledger catalog");
	retire(&methodology_cxt, "carbon_ledger methodologies");
	retire(&source_cxt, "carbon_ledger sources");
	catalog_generation++;
	setting_relid = asset_relid = flow_relid = cap_relid = methodology_relid = source_relid = InvalidOid;
}

/* At the end of a transaction: free what invalidations retired. */
void
ledger_catalog_release_retired(void)
{
	if (retired_cxt)
		MemoryContextReset(retired_cxt);
}

static Oid
carbon_relid(const char *name)
{
	return get_relname_relid(name, get_namespace_oid("carbon", false));
}

static void catalog_init(void);

/* carbon.<name>'s OID, or InvalidOid if there is none (not kept). */
Oid
ledger_relid(const char *name)
{
	Oid			relid;

	for (int i = 0; i < nrelids; i++)
		if (strcmp(relids[i].name, name) == 0)
			return relids[i].relid;
	catalog_init();				/* the callback that forgets them */
	relid = carbon_relid(name);
	if (OidIsValid(relid) && nrelids < (int) lengthof(relids) && strlen(name) < NAMEDATALEN)
	{
		strlcpy(relids[nrelids].name, name, NAMEDATALEN);
		relids[nrelids++].relid = relid;
	}
	return relid;
}

static void
catalog_init(void)
{
	static bool registered = false;

	if (!registered)
	{
		CacheRegisterRelcacheCallback(catalog_relcache_callback, (Datum) 0);
		catalog_cxt = AllocSetContextCreate(TopMemoryContext, "carbon_ledger catalog", ALLOCSET_SMALL_SIZES);
		methodology_cxt = AllocSetContextCreate(TopMemoryContext, "carbon_ledger methodologies",
												ALLOCSET_SMALL_SIZES);
		source_cxt = AllocSetContextCreate(TopMemoryContext, "carbon_ledger sources", ALLOCSET_SMALL_SIZES);
		registered = true;
	}
	if (!OidIsValid(setting_relid))
	{
		setting_relid = carbon_relid("setting");
		asset_relid = carbon_relid("asset");
		flow_relid = carbon_relid("allowed_flow");
		cap_relid = carbon_relid("issuance_cap");
		methodology_relid = carbon_relid("methodology");
		source_relid = carbon_relid("source");
	}
}

/*
 * A query that fills a cache reads the latest committed state (plus this
 * transaction's own changes), as PostgreSQL's catalog caches do, not the
 * transaction's snapshot: in REPEATABLE READ a reload after an
 * invalidation must not keep an older picture for later transactions.
 */
static int
catalog_query(SPIPlanPtr *cache, const char *sql, int nargs, Oid *types, Datum *values, long limit)
{
	ledger_plan(cache, sql, nargs, types);
	return SPI_execute_snapshot(*cache, values, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, limit);
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
	static SPIPlanPtr settings_plan = NULL;
	static SPIPlanPtr caps_plan = NULL;

	catalog_init();
	if (!settings_valid)
	{
		LedgerSettings s;

		memset(&s, 0, sizeof(s));
		ledger_spi_connect();
		if (catalog_query(&settings_plan, "SELECT name, value FROM carbon.settings", 0, NULL, NULL, 0) != SPI_OK_SELECT)
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
			else if (strcmp(name, "exchange_daily_limit") == 0)
				s.exchange_daily_limit = strtoll(value, NULL, 10);
			else if (strcmp(name, "trade_fee_bps") == 0)
				s.trade_fee_bps = strtoll(value, NULL, 10);
			else if (strcmp(name, "gtc_max_days") == 0)
				s.gtc_max_days = strtoll(value, NULL, 10);
		}
		SPI_finish();
		settings = s;
		settings_valid = true;
	}
	if (!caps_valid)
	{
		bool		isnull;

		ledger_spi_connect();
		if (catalog_query(&caps_plan, "SELECT EXISTS (SELECT 1 FROM carbon.issuance_cap)", 0, NULL, NULL, 1) !=
			SPI_OK_SELECT)
			elog(ERROR, "cap lookup failed");
		settings.any_caps = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		SPI_finish();
		caps_valid = true;
	}
	return &settings;
}

/*
 * The local day of `t` in time zone `tz` (text; the ledger's is the setting
 * timezone), as SQL's (t AT TIME ZONE tz)::date: the day of a behaviour's
 * daily cap, of an exchange's daily limit.
 */
DateADT
ledger_local_day(Datum tz, TimestampTz t)
{
	/*
	 * The last answer, by whole second and zone: a zone's days begin on a
	 * whole second, and a batch of orders or events asks for the same
	 * second again and again (the zone is looked up by name on every call).
	 */
	static int64 last_second = PG_INT64_MIN;
	static text *last_tz = NULL;
	static DateADT last_day;
	int64		second = t >= 0 ? t / USECS_PER_SEC : -((-(t + 1)) / USECS_PER_SEC) - 1;
	text	   *zone = DatumGetTextPP(tz);

	if (second != last_second || last_tz == NULL || VARSIZE_ANY_EXHDR(zone) != VARSIZE_ANY_EXHDR(last_tz) ||
		memcmp(VARDATA_ANY(zone), VARDATA_ANY(last_tz), VARSIZE_ANY_EXHDR(zone)) != 0)
	{
		last_day = DatumGetDateADT(DirectFunctionCall1(timestamp_date,
													   DirectFunctionCall2(timestamptz_zone, tz, TimestampTzGetDatum(t))));
		if (last_tz != NULL)
			pfree(last_tz);
		last_tz = (text *) MemoryContextAlloc(TopMemoryContext, VARSIZE_ANY(zone));
		memcpy(last_tz, zone, VARSIZE_ANY(zone));
		last_second = second;
	}
	return last_day;
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
	static SPIPlanPtr plan = NULL;

	catalog_init();
	if (assets_valid)
		return;
	ledger_spi_connect();
	if (catalog_query(&plan, "SELECT id, code, kind FROM carbon.asset ORDER BY id", 0, NULL, NULL, MAX_ASSETS) !=
		SPI_OK_SELECT)
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
	point_id = ledger_asset_lookup("POINT");
	red_id = ledger_asset_lookup("RED");
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

/* The built-in assets a behaviour credits, by code (looked up with the assets). */
int16
ledger_asset_point(void)
{
	assets_load();
	return point_id;
}

int16
ledger_asset_red(void)
{
	assets_load();
	return red_id;
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
	static SPIPlanPtr flows_plan = NULL;
	FlowKey		key;
	FlowEntry  *e;

	HTAB	   *table = flows;

	catalog_init();
	if (table == NULL)
	{
		HASHCTL		ctl;
		uint64		generation = catalog_generation;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(FlowKey);
		ctl.entrysize = sizeof(FlowEntry);
		ctl.hcxt = catalog_cxt;
		table = hash_create("carbon_ledger flows", 128, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		ledger_spi_connect();
		/* seeded rows first: the admin's rows overwrite them */
		if (catalog_query(&flows_plan, "SELECT from_tier, to_tier, asset, allowed FROM carbon.allowed_flow "
						  "ORDER BY seeded DESC", 0, NULL, NULL, 0) != SPI_OK_SELECT)
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
			e = hash_search(table, &key, HASH_ENTER, NULL);
			e->allowed = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
		}
		SPI_finish();
		if (generation == catalog_generation)
			flows = table;		/* else used for this call only (retired memory), loaded again next time */
	}
	memset(&key, 0, sizeof(key));
	strlcpy(key.from_tier, from_tier, sizeof(key.from_tier));
	strlcpy(key.to_tier, to_tier, sizeof(key.to_tier));
	strlcpy(key.asset, asset, sizeof(key.asset));
	e = hash_search(table, &key, HASH_FIND, NULL);
	return e != NULL && e->allowed;
}

static HTAB *
lookup_table(const char *name, Size keysize, Size entrysize, MemoryContext cxt)
{
	HASHCTL		ctl;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = keysize;
	ctl.entrysize = entrysize;
	ctl.hcxt = cxt;
	return hash_create(name, 64, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

/* Every version of a methodology code, parsed (cached). */
static MethodologyEntry *
methodology_versions(const char *code)
{
	static SPIPlanPtr plan = NULL;
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	MethodologyEntry *e;
	bool		found;
	HTAB	   *table;
	MemoryContext cxt;

	catalog_init();
	if (strlen(code) >= sizeof(e->code))
		return NULL;			/* no code is that long */
	if (methodologies == NULL || hash_get_num_entries(methodologies) >= MAX_LOOKUP_ENTRIES)
	{
		retire(&methodology_cxt, "carbon_ledger methodologies");	/* callers may hold pointers */
		methodologies = lookup_table("carbon_ledger methodologies", sizeof(e->code), sizeof(MethodologyEntry),
									 methodology_cxt);
	}
	e = hash_search(methodologies, code, HASH_FIND, NULL);
	if (e != NULL)
		return e;
	/* an invalidation during the query retires these: still valid to the end of the transaction */
	table = methodologies;
	cxt = methodology_cxt;

	values[0] = CStringGetTextDatum(code);
	ledger_spi_connect();
	if (catalog_query(&plan,
					  "SELECT " METHODOLOGY_COLUMNS ", status = 'published' AND effective_from IS NOT NULL, "
					  "       effective_from "
					  "FROM carbon.methodology WHERE code = $1 "
					  "ORDER BY effective_from DESC NULLS LAST, version DESC",
					  1, types, values, 0) != SPI_OK_SELECT)
		elog(ERROR, "methodology lookup failed");
	e = hash_search(table, code, HASH_ENTER, &found);
	e->nversions = 0;
	e->versions = MemoryContextAlloc(cxt, sizeof(MethodologyVersion) * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		MethodologyVersion *v = &e->versions[e->nversions];
		bool		isnull;

		if (!methodology_from_row(tup, desc, 1, code, &v->m))
			continue;
		v->published = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
		v->effective_from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 13, &isnull));
		e->nversions++;
	}
	SPI_finish();
	return e;
}

/*
 * Every version of `code`, in the order methodology_version_in_force()
 * reads them (*n = 0 for an unknown code).  Good until the next lookup of
 * a code (the cache is bounded).
 */
const MethodologyVersion *
ledger_methodology_versions(const char *code, int *n)
{
	MethodologyEntry *e = methodology_versions(code);

	*n = e ? e->nversions : 0;
	return e ? e->versions : NULL;
}

/*
 * The version of `code` in force at `at` (methodology_version_in_force),
 * copied to *m.  False when there is none; *known says whether the code has
 * any version at all.
 */
bool
ledger_methodology_in_force(const char *code, TimestampTz at, Methodology *m, bool *known)
{
	MethodologyEntry *e = methodology_versions(code);
	const Methodology *in_force;

	*known = e != NULL && e->nversions > 0;
	in_force = *known ? methodology_version_in_force(e->versions, e->nversions, at) : NULL;
	if (in_force == NULL)
		return false;
	*m = *in_force;
	return true;
}

/*
 * A source: whether it is registered, the scenarios it may report and its
 * operator role (cached).  The pointer is good until the next lookup of a
 * source (the cache is bounded).
 */
const LedgerSource *
ledger_source_info(const char *source)
{
	static SPIPlanPtr plan = NULL;
	static const LedgerSource unknown = {false, 0, NULL, NULL};
	Oid			types[1] = {TEXTOID};
	Datum		values[1];
	SourceEntry *e;
	bool		found;
	HTAB	   *table;
	MemoryContext cxt;

	catalog_init();
	if (strlen(source) >= LEDGER_SOURCE_KEY)
		return &unknown;
	if (sources == NULL || hash_get_num_entries(sources) >= MAX_LOOKUP_ENTRIES)
	{
		retire(&source_cxt, "carbon_ledger sources");	/* callers may hold pointers */
		sources = lookup_table("carbon_ledger sources", LEDGER_SOURCE_KEY, sizeof(SourceEntry), source_cxt);
	}
	e = hash_search(sources, source, HASH_FIND, NULL);
	if (e != NULL)
		return &e->info;
	/* an invalidation during the query retires these: still valid to the end of the transaction */
	table = sources;
	cxt = source_cxt;

	values[0] = CStringGetTextDatum(source);
	ledger_spi_connect();
	if (catalog_query(&plan, "SELECT scenarios, operator_role FROM carbon.source WHERE source = $1",
					  1, types, values, 1) != SPI_OK_SELECT)
		elog(ERROR, "source lookup failed");
	e = hash_search(table, source, HASH_ENTER, &found);
	memset(&e->info, 0, sizeof(e->info));
	e->info.found = SPI_processed == 1;
	if (e->info.found)
	{
		bool		isnull;
		Datum		arr = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		char	   *r = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		Datum	   *elems;
		bool	   *nulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT, &elems, &nulls, &n);
		e->info.scenarios = MemoryContextAlloc(cxt, sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			if (!nulls[i])
				e->info.scenarios[e->info.nscenarios++] = MemoryContextStrdup(cxt, TextDatumGetCString(elems[i]));
		e->info.role = r ? MemoryContextStrdup(cxt, r) : NULL;
	}
	SPI_finish();
	return &e->info;
}

/* May the source report the scenario?  (The one place this rule is written.) */
bool
ledger_source_allows(const LedgerSource *s, const char *scenario)
{
	for (int i = 0; s->found && scenario != NULL && i < s->nscenarios; i++)
		if (strcmp(s->scenarios[i], scenario) == 0)
			return true;
	return false;
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

/* The class no SQL-level advisory lock uses (those are 1 and 2; the market's book is 0x434C). */
#define LEDGER_PRIVATE_LOCK_CLASS 0x434D

void
ledger_private_xact_lock(uint32 kind, int64 key)
{
	LOCKTAG		tag;

	/* the key folded to 32 bits: two keys that meet only take turns */
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, kind, (uint32) (key ^ (key >> 32)), LEDGER_PRIVATE_LOCK_CLASS);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

/* seal()'s turn (a SQL function: called from it alone, not granted to anyone). */
PG_FUNCTION_INFO_V1(ledger_seal_lock);
Datum
ledger_seal_lock(PG_FUNCTION_ARGS)
{
	ledger_private_xact_lock(LEDGER_LOCK_SEAL, 0);
	PG_RETURN_VOID();
}
