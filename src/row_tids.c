/*
 * row_tids.c — where a row found by its primary key was, kept per backend,
 * so that the next lookup of the same key reads its heap page straight
 * instead of descending the index again (append.c's keyed lookups).
 *
 * A balance, a books' pool, a resting order or an account is found by its
 * key again and again: a B5 order looks up about ten such rows, and the
 * btree's descent was about 7,000 of a lookup's 11,000 instructions.  What
 * is kept is the TID the index entry holds: the root of the row's HOT
 * chain, which stays put through every heap-only update of the row.
 *
 * A kept TID is a hint and is never trusted:
 * - its page is read only if it is in shared buffers already (a page past
 *   the end of a relation VACUUM truncated is in none, and nothing is read
 *   from disk on a guess);
 * - its HOT chain is walked with the caller's MVCC snapshot, as an index
 *   scan walks it, and the version found must carry the key.  Under a
 *   unique key an MVCC snapshot sees at most one version of a key, so a
 *   visible version with the key is the one the index would have led to;
 * - anything else (the row moved by an update that was not heap-only, the
 *   line pointer pruned or reused, a new relfilenode) is a miss: the caller
 *   descends the index, and that refreshes the hint.
 * So nothing needs invalidating; the table is emptied when it grows past
 * ROW_TIDS_MAX keys.  SERIALIZABLE transactions always descend the index,
 * whose scan takes the predicate locks SSI needs.
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "storage/buf_internals.h"
#include "storage/bufmgr.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "ledger.h"

#define ROW_TIDS_MAX_KEYS 3
#define ROW_TIDS_MAX 32768

typedef struct RowTidKey
{
	Oid			relid;
	int32		nkeys;
	Datum		keys[ROW_TIDS_MAX_KEYS];
} RowTidKey;

typedef struct RowTidEntry
{
	RowTidKey	key;			/* first: the hash key */
	ItemPointerData root;		/* the TID the primary key's entry holds */
} RowTidEntry;

static HTAB *row_tids = NULL;

/*
 * The hash key of a lookup, or false when it is not kept: more key columns
 * than kept, a key passed by reference (its Datum is a pointer), a
 * temporary table, or a SERIALIZABLE transaction.
 */
static bool
row_tid_key(RowTidKey *key, Relation rel, Relation index, const ScanKeyData *skeys, int nkeys)
{
	if (nkeys > ROW_TIDS_MAX_KEYS || IsolationIsSerializable() || RelationUsesLocalBuffers(rel))
		return false;
	memset(key, 0, sizeof(*key));	/* hashed as bytes: no padding left unset */
	key->relid = RelationGetRelid(rel);
	key->nkeys = nkeys;
	for (int k = 0; k < nkeys; k++)
	{
		if (!TupleDescAttr(RelationGetDescr(index), k)->attbyval)
			return false;
		key->keys[k] = skeys[k].sk_argument;
	}
	return true;
}

/* The block pinned if it is in shared buffers, else InvalidBuffer (nothing read). */
static Buffer
row_tid_buffer(Relation rel, BlockNumber block)
{
	BufferTag	tag;
	uint32		hash;
	LWLock	   *partition;
	int			id;

	INIT_BUFFERTAG(tag, rel->rd_node, MAIN_FORKNUM, block);
	hash = BufTableHashCode(&tag);
	partition = BufMappingPartitionLock(hash);
	LWLockAcquire(partition, LW_SHARED);
	id = BufTableLookup(&tag, hash);
	LWLockRelease(partition);
	/* ReadRecentBuffer pins it and checks that it still holds that block */
	if (id < 0 || !ReadRecentBuffer(rel->rd_node, MAIN_FORKNUM, block, id + 1))
		return InvalidBuffer;
	return id + 1;
}

/*
 * The version of the row with the key skeys[0..nkeys-1] (the primary key
 * `index`'s equality keys, arguments set) that `snapshot` sees, into
 * `slot` (a buffer heap slot of rel, empty), found where it was last time;
 * false (slot empty) when there is no hint or the hint is stale.
 */
bool
ledger_row_tid_fetch(Relation rel, Relation index, Snapshot snapshot, const ScanKeyData *skeys, int nkeys,
					 TupleTableSlot *slot)
{
	RowTidKey	key;
	RowTidEntry *e;
	Buffer		buffer;
	ItemPointerData tid;
	HeapTuple	tuple;
	bool		found;

	if (row_tids == NULL || !TTS_IS_BUFFERTUPLE(slot) || !IsMVCCSnapshot(snapshot) ||
		!row_tid_key(&key, rel, index, skeys, nkeys))
		return false;
	e = hash_search(row_tids, &key, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	buffer = row_tid_buffer(rel, ItemPointerGetBlockNumber(&e->root));
	if (!BufferIsValid(buffer))
		return false;

	/*
	 * An index scan prunes the page it reads (heapam_index_fetch_tuple) as
	 * soon as its free space is below the share fillfactor leaves.  A page
	 * of rows updated again and again (balances, pools) filled to its
	 * fillfactor is that short after every heap-only update, and each
	 * prune walks every row of the page: here it is pruned once its free
	 * space is below a tenth, which still leaves room for the next
	 * heap-only versions, and the dead ones of twenty updates go at once.
	 */
	if (PageIsFull(BufferGetPage(buffer)) || PageGetHeapFreeSpace(BufferGetPage(buffer)) < BLCKSZ / 10)
		heap_page_prune_opt(rel, buffer);
	tuple = &((BufferHeapTupleTableSlot *) slot)->base.tupdata;
	tid = e->root;
	LockBuffer(buffer, BUFFER_LOCK_SHARE);
	found = heap_hot_search_buffer(&tid, rel, buffer, snapshot, tuple, NULL, true);
	LockBuffer(buffer, BUFFER_LOCK_UNLOCK);
	if (!found)
	{
		ReleaseBuffer(buffer);
		return false;
	}
	ExecStorePinnedBufferHeapTuple(tuple, slot, buffer);

	/* the version must carry the key (a line pointer may have been reused) */
	for (int k = 0; k < nkeys; k++)
	{
		bool		isnull;
		Datum		value = slot_getattr(slot, index->rd_index->indkey.values[k], &isnull);

		if (isnull || !DatumGetBool(FunctionCall2Coll((FmgrInfo *) &skeys[k].sk_func, skeys[k].sk_collation,
													  value, skeys[k].sk_argument)))
		{
			ExecClearTuple(slot);
			return false;
		}
	}
	return true;
}

/* Where the index led a lookup of that key (root: the entry's TID), or that it led nowhere (NULL). */
void
ledger_row_tid_remember(Relation rel, Relation index, const ScanKeyData *skeys, int nkeys, ItemPointer root)
{
	RowTidKey	key;

	if (!row_tid_key(&key, rel, index, skeys, nkeys))
		return;
	if (root == NULL)
	{
		if (row_tids != NULL)
			(void) hash_search(row_tids, &key, HASH_REMOVE, NULL);
		return;
	}
	if (row_tids != NULL && hash_get_num_entries(row_tids) >= ROW_TIDS_MAX)
	{
		hash_destroy(row_tids);
		row_tids = NULL;
	}
	if (row_tids == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(RowTidKey);
		ctl.entrysize = sizeof(RowTidEntry);
		ctl.hcxt = TopMemoryContext;
		row_tids = hash_create("carbon_ledger row TIDs", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	((RowTidEntry *) hash_search(row_tids, &key, HASH_ENTER, NULL))->root = *root;
}
