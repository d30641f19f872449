/*
 * behavior.h — the rules a low-carbon event is judged by (behavior.c) and
 * the one engine that applies them to a batch of events (engine.c):
 * record_behavior is a batch of one, process_inbox batches of up to 50,000,
 * so that a row gives the same result either way.
 */
#ifndef CARBON_BEHAVIOR_H
#define CARBON_BEHAVIOR_H

#include "postgres.h"
#include "datatype/timestamp.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "catalog.h"
#include "ledger.h"
#include "methodology.h"

/* Longest identifiers (bytes): they make the unique key of a behaviour. */
#define BEHAVIOR_MAX_SOURCE		128
#define BEHAVIOR_MAX_EVENT_ID	256

/* the assets a behaviour credits, by code (catalog.c) */
#define ASSET_POINT ledger_asset_point()
#define ASSET_RED	ledger_asset_red()

/* Settings and caller, read once per call (or per inbox batch). */
typedef struct BehaviorContext
{
	int64		points_per_kg;
	TimestampTz earliest;		/* now − acceptance_window */
	TimestampTz latest;			/* now + tolerated clock skew */
	char		timezone[64];
	bool		any_caps;		/* skip the cap check when no cap is set */
	Oid			caller;
	bool		caller_is_admin;
	bool		per_row_reporter;	/* the inbox: each row is judged as the role that inserted it */
} BehaviorContext;

typedef struct BehaviorInput
{
	char	   *source;
	char	   *event_id;
	bool		has_account;
	int64		account;
	char	   *methodology;
	Numeric		activity;
	bool		has_occurred_at;
	TimestampTz occurred_at;
	Jsonb	   *attrs;
	Oid			reporter;		/* per_row_reporter: the inserting role (InvalidOid: gone) */
	bool		reporter_is_admin;
} BehaviorInput;

typedef struct BehaviorResult
{
	int64		behavior_id;
	const char *status;			/* accepted, capped, rejected, duplicate */
	int64		grams;
	int64		points;
	char	   *reason;
	int64		entry_id;		/* the entry reserved for its credit, or 0 */
} BehaviorResult;

/* What an event is checked against. */
typedef struct BehaviorFacts
{
	Methodology m;				/* the version in force at occurred_at ... */
	bool		has_m;			/* ... if there is one */
	bool		methodology_known;	/* any version of the code exists */
	bool		source_found;
	bool		scenario_ok;	/* the source may report m's scenario */
	const char *role;			/* the source's operator role, or NULL */
	LedgerAccount acc;
	bool		account_found;
} BehaviorFacts;

/* What a granted event changes besides its behaviour row. */
typedef struct ClaimStore
{
	bool		has_cap;
	int64		grant;
	int64		milli;			/* the new remainder */
} ClaimStore;

extern void behavior_context(BehaviorContext *ctx);
extern bool behavior_role_is_admin(Oid role);
extern bool behavior_may_report(Oid reporter, bool reporter_is_admin, const char *role);
extern const char *behavior_reporter_problem(Oid reporter, bool reporter_is_admin, const char *source);
extern void behavior_read_settings(BehaviorContext *ctx);
extern const char *behavior_check(const BehaviorContext *ctx, const BehaviorInput *in,
								  const BehaviorFacts *f, int64 *er);
extern bool behavior_grant(const BehaviorContext *ctx, const Methodology *m, int64 er, int64 cap_left,
						   int64 milli, BehaviorResult *out, ClaimStore *st);
extern void behavior_reject(BehaviorResult *out, const char *reason);
/* inbox.c */
extern void inbox_keep_refused(const BehaviorInput *in, Oid reporter, const char *reason);
/* engine.c */
typedef struct BehaviorCall BehaviorCall;
extern BehaviorCall *behavior_call_begin(BehaviorContext *ctx, bool own_entries, bool link_entries);
extern bool behavior_summary_kept(void);
extern void behavior_call_batch(BehaviorCall *call, BehaviorInput *in, int n, BehaviorResult *results,
								int64 *counts);
extern void behavior_call_end(BehaviorCall *call);
extern void behavior_entry_reversed(int64 entry_id);

#endif							/* CARBON_BEHAVIOR_H */
