/*
 * journal.h — the one way to post: a LedgerEntry handed to ledger_post(),
 * and the holdings interface through which value held in pieces (lots of
 * points and reductions today; serial blocks and escrow next) follows the
 * postings.  docs/ledger.md, "The journal API", has an example.
 */
#ifndef CARBON_JOURNAL_H
#define CARBON_JOURNAL_H

#include "ledger.h"

/* A transfer between participants: the allowed-flow matrix applies. */
typedef struct LedgerFlow
{
	const char *from_tier;
	const char *to_tier;
	const char *asset_code;
} LedgerFlow;

/*
 * The lot pieces a payer gave (expiry and amount, earliest first), when
 * the caller asks for them: a redemption keeps them so that a refund gives
 * back the same lots.  Filled by the holdings module.
 */
typedef struct LedgerLotTrace
{
	int			n;
	TimestampTz *expires_at;
	int64	   *amount;
} LedgerLotTrace;

/*
 * One entry and how it is to be checked.  Posting i moves amounts[i] of
 * assets[i] on accounts[i] (positive credits the account); the amounts sum
 * to zero per asset and per segment.
 */
typedef struct LedgerEntry
{
	const char *kind;			/* transfer, issuance, behavior, expiry, reversal, ... */
	const char *memo;
	int64		reverses;		/* the entry this one negates, or 0 */
	int64		reserved_id;	/* an id the caller took from carbon.entry_id_seq, or 0 */
	int			n;
	const LedgerAccount **accounts;
	const int16 *assets;
	const int64 *amounts;
	const LedgerFlow *flow;		/* non-NULL: a transfer, checked against the matrix */
	bool		correction;		/* a system correction: frozen accounts may be touched */
	bool		holdings_moved; /* the caller moved the holdings itself */
	bool		booked_by_caller;	/* the caller books the units itself (the market) */
	TimestampTz fresh_basis;	/* credits from system accounts open holdings dated
								 * from here (0: the transaction's start) */
	LedgerLotTrace *trace;		/* non-NULL: the payer's lot pieces, written here */
} LedgerEntry;

/*
 * A holdings module: the assets whose value it keeps in pieces, and what
 * follows an entry's postings once the trigger has accepted them.  A module
 * may also write fresh credits (every holding of the entry a credit from a
 * system account) inside the entry's own statement: `fresh_cte` is then a
 * CTE body reading the entry `e` and the arrays $4 (accounts), $5 (assets),
 * $7 (each posting's fresh credit, 0 if none) and $8 (fresh_param()).
 */
typedef struct LedgerHoldings
{
	const char *name;
	bool		(*holds) (int16 asset);
	void		(*follow) (const LedgerEntry *entry, int64 entry_id);
	const char *fresh_cte;
	Datum		(*fresh_param) (const LedgerEntry *entry);
	Oid			fresh_param_type;
} LedgerHoldings;

/* An entry of n postings, every other field zero: the caller sets what applies. */
static inline LedgerEntry
ledger_entry(const char *kind, const char *memo, int n, const LedgerAccount **accounts,
			 const int16 *assets, const int64 *amounts)
{
	LedgerEntry e = {0};

	e.kind = kind;
	e.memo = memo;
	e.n = n;
	e.accounts = accounts;
	e.assets = assets;
	e.amounts = amounts;
	return e;
}

extern void ledger_register_holdings(const LedgerHoldings *h);
extern int64 ledger_post(const LedgerEntry *entry);
extern const LedgerEntry *ledger_posting_entry(void);
extern void ledger_posting_check_entry(const LedgerEntry *entry, int64 entry_id);	/* invariants.c */
extern void ledger_journal_reset(void);
extern void ledger_check_flow(const LedgerFlow *flow);
extern int64 ledger_transfer_between(const char *kind, const char *memo, int64 from_id, int64 to_id,
									 const char *asset_code, int64 amount,
									 void (*check_recipient) (const LedgerAccount *to),
									 const char *request_id, const char *fingerprint, bool *replayed);
extern int64 ledger_move_traced(const char *kind, const char *memo, const LedgerAccount *from,
								const LedgerAccount *to, int16 asset, int64 amount, const LedgerFlow *flow,
								LedgerLotTrace *trace);

/* accounting.c: the books of certified units (财会〔2019〕22号) */
typedef enum LedgerBooking
{
	BOOK_FREE_IN,				/* obtained free: not booked, the tonnes join at no cost */
	BOOK_PURCHASE,				/* bought: amount is the cost, fees included */
	BOOK_SALE,					/* sold: amount is the proceeds, fees deducted */
	BOOK_OUT					/* retired, cancelled, recalled or given away */
} LedgerBooking;

/* Bookings gathered for one entry, then written at once. */
typedef struct LedgerBooks
{
	int			n;
	int			cap;
	void	   *items;
} LedgerBooks;

extern bool ledger_keeps_books(const LedgerAccount *acc);
extern void ledger_books_add(LedgerBooks *b, const LedgerAccount *acc, LedgerBooking kind, int64 tonnes,
							 int64 amount, const char *memo);
extern void ledger_books_write(LedgerBooks *b, int64 entry_id);
extern void ledger_book_entry(const LedgerEntry *entry, int64 entry_id);

#endif							/* CARBON_JOURNAL_H */
