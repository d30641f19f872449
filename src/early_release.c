/*
 * early_release.c — the book's lock let go before the commit's WAL flush
 * (early lock release).
 *
 * Orders on one instrument are serial: the instrument's row is locked by
 * the first order of a transaction and held to its end.  PostgreSQL's
 * commit writes the commit record, waits for it to reach disk, makes the
 * transaction visible, then releases its locks; so with fsync on, every
 * order waited for the flush of the one before (B5: 779 orders a second
 * against 1,343 with synchronous_commit = off).
 *
 * A transaction that takes the book's lock therefore commits in two
 * steps: its commit record is written and it becomes visible and lets go
 * of its locks at once (synchronous_commit = off for this transaction
 * only), and then, before its client hears of the commit, it waits for
 * that record to reach disk itself (a resource-release callback after the
 * locks, which runs inside the COMMIT).  What each party sees:
 * - the client that placed the order is told of the commit only once it
 *   is durable, as with synchronous_commit = on;
 * - a transaction that builds on it (fills the resting order, reads the
 *   book under the lock and writes) writes its own commit record after
 *   this one in the WAL, so it cannot be durable unless this one is: a
 *   crash never keeps a trade against an order it loses;
 * - a reader of another session may see the order up to one flush before
 *   it is durable; after a crash in that window, the order is gone, and
 *   its client was never told it committed.  That is the one difference,
 *   and carbon_ledger.early_lock_release = off (superuser) removes it.
 *
 * Not used where it would weaken more than that: a transaction whose
 * synchronous_commit is already off has nothing to gain, and with
 * synchronous standbys (synchronous_standby_names) the commit keeps its
 * wait for them.  Standbys named by a reload while an armed transaction
 * runs are waited for after the flush, at the level the transaction had
 * before it was armed, as its commit would have waited for them.
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "replication/syncrep.h"
#include "storage/proc.h"
#include "utils/guc.h"
#include "utils/resowner.h"

#include "ledger.h"

static bool early_lock_release = true;

/* the transaction that must flush after its locks are released */
static LocalTransactionId armed_lxid = InvalidLocalTransactionId;

/* its synchronous_commit before it was armed: the level and its name */
static int	armed_level = SYNCHRONOUS_COMMIT_OFF;
static char armed_name[32];

static void
early_release_callback(ResourceReleasePhase phase, bool isCommit, bool isTopLevel,
					   void *arg pg_attribute_unused())
{
	if (phase != RESOURCE_RELEASE_AFTER_LOCKS || !isTopLevel ||
		armed_lxid == InvalidLocalTransactionId)
		return;
	armed_lxid = InvalidLocalTransactionId;
	/* the locks are gone; the client hears of the commit only after this */
	if (!isCommit || XLogRecPtrIsInvalid(XactLastCommitEnd))
		return;
	XLogFlush(XactLastCommitEnd);

	/*
	 * Synchronous standbys named since the transaction was armed (a
	 * reload): its commit waits for them as it would have without early
	 * release, at its own level (which sets the wait's mode), still before
	 * the client hears of it.
	 */
	if (armed_level > SYNCHRONOUS_COMMIT_LOCAL_FLUSH &&
		SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0')
	{
		(void) set_config_option("synchronous_commit", armed_name, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_LOCAL, true, 0, false);
		SyncRepWaitForLSN(XactLastCommitEnd, true);
	}
}

void
ledger_early_release_register(void)
{
	DefineCustomBoolVariable("carbon_ledger.early_lock_release",
							 "Lets a transaction holding a market's book lock release it before its commit reaches disk.",
							 "Its client is told of the commit only once it is durable; other sessions may see it up to one WAL flush earlier.",
							 &early_lock_release,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("carbon_ledger");	/* a misspelt carbon_ledger.* setting is refused */
	RegisterResourceReleaseCallback(early_release_callback, NULL);
}

/*
 * Called by whoever takes a lock held to the end of the transaction that
 * others queue on (the book's): the transaction's commit will release it
 * before its WAL flush, and flush after.
 */
void
ledger_early_release_arm(void)
{
	if (!early_lock_release)
		return;
	if (synchronous_commit <= SYNCHRONOUS_COMMIT_OFF)
		return;					/* armed already, or nothing waits for the flush */
	if (SyncRepStandbyNames != NULL && SyncRepStandbyNames[0] != '\0')
		return;					/* the commit waits for standbys too: left as it is */
	armed_level = synchronous_commit;
	strlcpy(armed_name, GetConfigOption("synchronous_commit", false, false), sizeof(armed_name));
	(void) set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_LOCAL, true, 0, false);
	armed_lxid = MyProc->lxid;
}
