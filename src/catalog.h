/*
 * catalog.h — settings, assets, flows and caps, cached per backend
 * (catalog.c).
 */
#ifndef CARBON_CATALOG_H
#define CARBON_CATALOG_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/date.h"

#include "methodology.h"

/* a source's name is at most 128 bytes (BEHAVIOR_MAX_SOURCE) */
#define LEDGER_SOURCE_KEY 129

typedef struct LedgerSettings
{
	int64		points_per_kg;
	bool		validity_end_of_next_year;
	Interval	validity;		/* points_validity when an interval */
	Interval	acceptance_window;
	char		timezone[64];
	int64		exchange_daily_limit;	/* per account, source asset and local day; 0: none */
	int64		trade_fee_bps;	/* market fee on each side of a fill */
	int64		gtc_max_days;	/* how long a GTC order may rest */
	bool		any_caps;		/* some issuance cap exists */
} LedgerSettings;

extern const LedgerSettings *ledger_settings(void);
extern Oid	ledger_relid(const char *name);

/*
 * Transaction-level locks of the extension's own advisory class (field4),
 * which no pg_advisory_lock() call can name: anyone may call those, and a
 * lock they could take first would hold the extension's callers up.
 */
#define LEDGER_LOCK_INBOX		1	/* process_inbox: processors take turns */
#define LEDGER_LOCK_EXCHANGE	2	/* exchange: one per account at a time */
#define LEDGER_LOCK_SEAL		3	/* seal: one at a time */
extern void ledger_private_xact_lock(uint32 kind, int64 key);
extern int	ledger_kept_forget(void *entries, int n, size_t size, size_t offset, Oid relid);
extern void ledger_catalog_release_retired(void);
extern TimestampTz ledger_fresh_expiry(TimestampTz basis);
extern DateADT ledger_local_day(Datum tz, TimestampTz t);
extern TimestampTz ledger_acceptance_start(void);
extern int16 ledger_asset_lookup(const char *code);
extern const char *ledger_asset_code(int16 id);
extern int16 ledger_asset_point(void);
extern int16 ledger_asset_red(void);
extern bool ledger_flow_allowed(const char *from_tier, const char *to_tier, const char *asset);
extern bool ledger_methodology_in_force(const char *code, TimestampTz at, Methodology *m, bool *known);
extern const MethodologyVersion *ledger_methodology_versions(const char *code, int *n);

/* A registered source (carbon.source), as cached. */
typedef struct LedgerSource
{
	bool		found;
	int			nscenarios;
	char	  **scenarios;
	char	   *role;			/* operator role, or NULL */
} LedgerSource;

extern const LedgerSource *ledger_source_info(const char *source);
extern bool ledger_source_allows(const LedgerSource *s, const char *scenario);

#endif							/* CARBON_CATALOG_H */
