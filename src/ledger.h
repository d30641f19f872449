/*
 * ledger.h — what the ledger's C modules share: the CL SQLSTATEs, accounts,
 * the posting path and cached SPI plans.
 */
#ifndef CARBON_LEDGER_H
#define CARBON_LEDGER_H

#include "postgres.h"
#include "access/xact.h"
#include "access/skey.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "datatype/timestamp.h"
#include "utils/relcache.h"

/* Domain refusals of api.md, class CL. */
#define ERRCODE_CL_INSUFFICIENT		MAKE_SQLSTATE('C','L','0','0','1')
#define ERRCODE_CL_ACCOUNT_STATUS	MAKE_SQLSTATE('C','L','0','0','2')
#define ERRCODE_CL_FLOW				MAKE_SQLSTATE('C','L','0','0','3')
#define ERRCODE_CL_CAP				MAKE_SQLSTATE('C','L','0','0','4')
#define ERRCODE_CL_PRICE			MAKE_SQLSTATE('C','L','0','0','5')
#define ERRCODE_CL_METHODOLOGY		MAKE_SQLSTATE('C','L','0','0','6')
#define ERRCODE_CL_LIFECYCLE		MAKE_SQLSTATE('C','L','0','0','7')
#define ERRCODE_CL_CONFLICT			MAKE_SQLSTATE('C','L','0','0','8')
#define ERRCODE_CL_INTEGRITY		MAKE_SQLSTATE('C','L','0','0','9')

/*
 * System accounts are striped by backend so that no balance row is hot;
 * the expiry job writes to a stripe of its own (lots.c: lock order).
 */
#define LEDGER_STRIPES 16
#define LEDGER_JOB_STRIPE LEDGER_STRIPES

#define LEDGER_NAME_LEN 16

/* What the posting path needs to know of an account. */
typedef struct LedgerAccount
{
	int64		id;
	bool		participant;
	char		kind[LEDGER_NAME_LEN];	/* participant, issuance, clearing, ... */
	char		tier[LEDGER_NAME_LEN];
	char		region[8];
	char		status[LEDGER_NAME_LEN];
} LedgerAccount;


/* carbon_ledger.c */
extern SPIPlanPtr ledger_plan(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes);
extern SPIPlanPtr ledger_plan_generic(SPIPlanPtr *cache, const char *sql, int nargs, const Oid *argtypes);
extern int	ledger_run_keyed(SPIPlanPtr plan, Datum *values, const char *nulls, bool read_only);
#define LEDGER_FEW_ROWS 64
extern SPIPlanPtr ledger_plan_sized(SPIPlanPtr cache[2], int64 rows, const char *sql, int nargs,
									const Oid *argtypes);
extern void ledger_spi_connect(void);
extern bool ledger_lookup_read_only(void);

/*
 * Columns of Datums of the given element types, for statements that take
 * their rows as arrays (unnest): set a row's columns, n++, then turn each
 * column into an array with ledger_columns_arrays.
 */
typedef struct LedgerColumns
{
	int			n;
	int			cap;
	int			ncols;
	const Oid  *types;
	Datum	   *v[20];
	bool	   *null[20];
} LedgerColumns;

extern int	ledger_int64_cmp(const void *a, const void *b);
extern void ledger_columns_init(LedgerColumns *c, int ncols, const Oid *types, int cap);
extern void ledger_columns_room(LedgerColumns *c);
extern void ledger_columns_arrays(const LedgerColumns *c, Datum *values);

static inline void
ledger_col_set(LedgerColumns *c, int col, Datum v, bool isnull)
{
	c->v[col][c->n] = isnull ? (Datum) 0 : v;
	c->null[col][c->n] = isnull;
}
extern void ledger_run(SPIPlanPtr plan, Datum *values, int expect);
extern bool ledger_try_subxact(void (*fn) (void *), void *arg, int sqlerrcode);
extern void ledger_check_acting(int64 account, bool read_only);
extern void ledger_check_may_open(const char *tier);
extern void ledger_check_acting_owner(int64 account, bool read_only, const char *thing, int64 thing_id);
extern char *ledger_arg_text(FunctionCallInfo fcinfo, int argno, const char *name);
extern char *ledger_arg_text_or_null(FunctionCallInfo fcinfo, int argno);
extern int64 ledger_next_id(const char *sequence);

/* append.c */
extern void ledger_append(const char *table, int ncols, const char *const *columns, Datum *const *values,
						  bool *const *nulls, int nrows);
extern void ledger_append_checked(const char *table, int ncols, const char *const *columns, Datum *const *values,
								  bool *const *nulls, int nrows, bool serial_check, const int64 *floors);
extern bool ledger_append_own(const char *table, int ncols, const char *const *columns, Datum *const *values,
							  bool *const *nulls, int nrows, const char *own_trigger);
extern int64 ledger_remove_by_id(const char *table, const Datum *ids, int n);
typedef void (*LedgerRowChange) (int row, Datum *values, bool *isnull, void *arg);
typedef void (*LedgerRowRead) (int row, TupleTableSlot *slot, void *arg);
/* ledger_read_int8_column's argument: the column to read, and where (a row's: row-th element) */
typedef struct LedgerColumnRead
{
	const char *column;
	int64	   *into;
} LedgerColumnRead;
extern void ledger_read_int8_column(int row, TupleTableSlot *slot, void *arg);
extern void ledger_attnums(TupleDesc desc, const char *const *names, int n, AttrNumber *attnums, const char *table);
extern bool ledger_index_next(struct IndexScanDescData *scan, TupleTableSlot *slot, ItemPointer entry,
							  const ItemPointerData *skip);
typedef bool (*LedgerRowTake) (TupleTableSlot *slot, void *arg);
extern int	ledger_scan_index(const char *table, const char *index_name, int nkeys, const Datum *keys,
							  const uint16 *strategies, int limit, LedgerRowTake take, void *arg,
							  Snapshot snapshot, LOCKMODE lockmode);
extern int64 ledger_read_by_key(const char *table, int nkeys, Datum *const *keys, int nrows, LedgerRowRead row,
								void *arg);
extern int64 ledger_read_by_key_to_write(const char *table, int nkeys, Datum *const *keys, int nrows,
										 LedgerRowRead row, void *arg, bool lock);
extern int64 ledger_update_by_key_with(const char *table, int nkeys, Datum *const *keys, int ncols,
									   const char *const *columns, Datum *const *values, bool *const *nulls,
									   int nrows, bool *found, LedgerRowChange change, void *arg);
extern int64 ledger_update_by_key(const char *table, int nkeys, Datum *const *keys, int ncols,
								  const char *const *columns, Datum *const *values, bool *const *nulls, int nrows,
								  bool *found);
extern bool ledger_balances_add(const int64 *account, const int16 *asset, const int16 *stripe, const int64 *delta,
								int n, bool *found, int64 *after, char **status);

/* row_tids.c */
extern bool ledger_row_tid_fetch(Relation rel, Relation index, Snapshot snapshot, const ScanKeyData *skeys,
								 int nkeys, TupleTableSlot *slot);
extern void ledger_row_tid_remember(Relation rel, Relation index, const ScanKeyData *skeys, int nkeys,
									ItemPointer root);

/* early_release.c */
extern void ledger_early_release_register(void);
extern void ledger_early_release_arm(void);

/* market.c */
extern void ledger_market_forget(void);
extern void ledger_market_register(void);
extern void ledger_market_write_pending(void);
extern void ledger_market_xact_end(void);
extern void ledger_market_pre_commit(void);
extern void ledger_market_subxact(SubXactEvent event, SubTransactionId sub, SubTransactionId parent);
extern int64 ledger_arg_int64(FunctionCallInfo fcinfo, int argno, const char *name);
extern int64 ledger_arg_amount(FunctionCallInfo fcinfo, int argno, const char *name);
extern Datum ledger_array(Datum *elems, bool *nulls, int n, Oid elemtype);
extern Datum ledger_int8_array(Datum *elems, int n);
extern Datum ledger_int2_array(Datum *elems, int n);

/* accounts.c */
extern void ledger_account_from_row(LedgerAccount *acc, int64 id, HeapTuple tup, TupleDesc desc, int first);
extern bool ledger_get_account(int64 id, LedgerAccount *acc);
extern void ledger_require_account(int64 id, LedgerAccount *acc);
extern bool ledger_require_pair(int64 from_id, int64 to_id, int16 asset, LedgerAccount *from, LedgerAccount *to);
extern int16 ledger_asset_id(const char *code);
extern void ledger_require_active(const LedgerAccount *acc);
extern void ledger_require_participant(const LedgerAccount *acc);

/* entries.c */
extern const LedgerAccount *ledger_system_account_info(const char *kind, int16 asset,
														const char *tier, const char *region);
struct LedgerFlow;
extern int64 ledger_move(const char *kind, const char *memo, const LedgerAccount *from,
						 const LedgerAccount *to, int16 asset, int64 amount, const struct LedgerFlow *flow);
extern bool ledger_cap_take(const char *tier, const char *region, TimestampTz at,
							const char **assets, const int64 *amounts, int n);
extern void ledger_cap_require(const char *tier, const char *region, const char *asset_code, int64 amount);
/* The longest request id (bytes): it is part of a unique key. */
#define LEDGER_MAX_REQUEST_ID 200

extern bool ledger_request_begin(int64 account, const char *request_id, const char *fn,
								 const char *args, int64 *result);
extern void ledger_request_finish(int64 account, const char *request_id, int64 result);
extern void ledger_forget_xact_cache(void);
extern void ledger_keep_xact_cache(void);
extern void ledger_release_retired_caches(void);

/* A serial's key in unit_block_serial_key: project × 2^32 + serial. */
#define LEDGER_SERIAL_KEY(project, serial) ((project) * INT64CONST(4294967296) + (serial))

/*
 * SQL's join of blocks b to their issuance i: by the first serial, within
 * the issuance's range, through unit_block_serial_key (the expression must
 * be the index's), so that no index on unit_block.issuance is needed: one
 * index entry fewer for every block the market writes.
 */
#define LEDGER_BLOCK_OF_ISSUANCE \
	"b.project * 4294967296 + b.first BETWEEN i.project * 4294967296 + i.first " \
	"AND i.project * 4294967296 + i.last AND i.id = b.issuance"

/* invariants.c */
typedef struct LedgerOverlapCheck LedgerOverlapCheck;	/* no serial in two blocks */
extern LedgerOverlapCheck *ledger_overlap_begin(struct RelationData *rel);
extern void ledger_overlap_row(LedgerOverlapCheck *oc, struct TupleTableSlot *row, int64 floor);
extern void ledger_overlap_end(LedgerOverlapCheck *oc);
extern bool ledger_defer_system;
extern void ledger_set_job_stripe(bool on);
extern void ledger_flush_deferred(void);
extern void ledger_forget_deferred(void);

/* lots.c */
extern bool ledger_lot_asset(int16 asset);
extern void ledger_lots_register(void);
/* Credits into lots: one row per (account, asset, expiry), merged. */
#define LOT_INSERT \
	"INSERT INTO carbon.lot AS l (account, asset_id, expires_at, original, remaining, entry_id) "
#define LOT_MERGE \
	"ON CONFLICT (account, asset_id, expires_at) DO UPDATE " \
	"SET original = l.original + excluded.original, remaining = l.remaining + excluded.remaining"

extern void ledger_lots_credit_fresh(Datum accounts, Datum assets, Datum expiries, Datum amounts, Datum entries);

extern int64 ledger_lots_move_pieces(int64 payer, int64 payee, int16 asset, int n, const TimestampTz *expiries,
									 const int64 *amounts, int64 entry_id);
extern void ledger_sweep_expired(int64 account);
extern void ledger_expire(int64 account, TimestampTz as_of, int64 *lots, int64 *points, int64 *grams);

/* market.c */
extern int64 ledger_market_end_orders_of_report(int64 report_id, const char *reason);

/* units.c */
extern void ledger_units_register(void);
extern int64 ledger_units_tradable(int64 account);
extern int64 ledger_units_untradable(int64 account);
extern void ledger_platform_account(const char *ref, const char *name, LedgerAccount *acc, const char *region);
extern void ledger_check_retire_purpose(const char *purpose, const char *reference);
extern char *ledger_units_certify(int64 account, int64 tonnes, const char *purpose, const char *beneficiary,
								  const char *jurisdiction, const char *reference, Datum serials, int64 entry_id);
typedef enum LedgerUnitMoveKind
{
	UNITS_ESCROW, UNITS_RELEASE, UNITS_DELIVER
} LedgerUnitMoveKind;

/* One of the market's unit moves (units.c, ledger_units_market) */
typedef struct LedgerUnitMove
{
	LedgerUnitMoveKind kind;
	int64		seller;
	int64		order;			/* escrow of this sell order; 0: the seller's held units */
	int64		tonnes;
	int64		buyer;
	bool		retire;
	const char *reason;
} LedgerUnitMove;

extern void ledger_units_market(int n, const LedgerUnitMove *moves, int64 entry_id, Datum *serials);

#endif							/* CARBON_LEDGER_H */
