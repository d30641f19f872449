-- The ledger core: accounts, double entry, transfers, seals (api.md §2, §4, §7).
SET search_path = carbon, public;
\set SHOW_CONTEXT never

-- Accounts in tiers; idempotent on (tier, external_ref), which is stored
-- only as a keyed hash.
SELECT open_account('personal', '620700', '620702199001011234', '李雷') AS li,
       open_account('personal', '620700', '620702199202025678', '韩梅梅') AS han,
       open_account('merchant', '620700', '91620700MA000001X', '甘州咖啡') AS cafe,
       open_account('government', '620700', '11620700000000001G', '张掖市生态环境局') AS bureau,
       open_account('personal', '320100', '320102198803033333', 'Nanjing citizen') AS nj,
       open_account('platform', '620700', 'PLATFORM-ZY', '张掖碳普惠平台') AS platform;
SELECT open_account('personal', '620700', '620702199001011234') AS li_again;
SELECT account_id('personal', '620702199001011234') AS li, account_id('merchant', '620702199001011234') AS other_tier,
       account_id('personal', 'nobody') AS nobody;
SELECT id, kind, tier, region, display_name, status, ref_hash IS NOT NULL AS hashed,
       position('1990' IN encode(ref_hash, 'escape')) = 0 AS not_in_clear
FROM account ORDER BY id;

-- Issuance comes from the segment's issuance account.
SELECT issue(1, 'POINT', 1000, '注册奖励 welcome points') AS entry;
SELECT issue(2, 'POINT', 500) AS entry, issue(5, 'POINT', 800) AS entry2, issue(1, 'RED', 2500) AS red;
SELECT balance(1) AS li, balance(1, 'RED') AS li_red, balance(2) AS han, balance(3) AS cafe;

-- A transfer within one segment is two postings; across segments (tier or
-- region) it passes through both segments' clearing accounts.
SELECT transfer(1, 3, 'POINT', 300, '兑换咖啡 coffee') AS entry;
SELECT p.seq, a.kind, a.tier, a.region, p.amount
FROM posting p JOIN account a ON a.id = p.account WHERE p.entry_id = 5 ORDER BY p.seq;
SELECT transfer(1, 4, 'POINT', 100, '捐赠 donation') AS entry;
SELECT transfer(5, 3, 'POINT', 50, 'Nanjing citizen in Zhangye') AS entry;
SELECT balance(1) AS li, balance(3) AS cafe, balance(4) AS bureau, balance(5) AS nj;
-- RED may be pooled to the platform.
SELECT transfer(1, 6, 'RED', 2000, '归集 pooling') AS entry;
SELECT balance(1, 'RED') AS li_red, balance(6, 'RED') AS platform_red;

-- Refusals, in the order of api.md: arguments, status, flow, balance.
SELECT transfer(1, 2, 'POINT', 10);            -- personal → personal points: CL003
SELECT transfer(1, 3, 'POINT', 1000000);       -- CL001
SELECT transfer(1, 3, 'POINT', 0);             -- 22023
SELECT transfer(1, 1, 'POINT', 1);             -- 22023
SELECT transfer(1, 3, 'GOLD', 1);              -- 22023
SELECT transfer(1, 999, 'POINT', 1);           -- 22023
SELECT transfer(1, 3, 'POINT', NULL);          -- 22004
SELECT open_account('citizen', '620700', 'x'); -- 22023
SELECT open_account('personal', '62070', 'x'); -- 22023
SELECT open_account('personal', '620700', ''); -- 22023

-- Retries with a request id move nothing twice.
SELECT transfer(2, 3, 'POINT', 20, 'retry me', 'req-1') AS first,
       transfer(2, 3, 'POINT', 20, 'retry me', 'req-1') AS retried;
SELECT transfer(2, 3, 'POINT', 21, 'retry me', 'req-1');   -- 23505
SELECT balance(2) AS han;

-- The flow matrix is data: carbon_admin may override a default.
INSERT INTO allowed_flow (from_tier, to_tier, asset, allowed, note)
VALUES ('personal', 'personal', 'POINT', true, 'pilot: family sharing');
SELECT transfer(1, 2, 'POINT', 10, 'family') AS entry;
DELETE FROM allowed_flow WHERE NOT seeded;
SELECT transfer(1, 2, 'POINT', 10, 'family');               -- CL003 again
-- carbon_admin edits a default as well: the edited default becomes the
-- admin's row (seeded = false, which a dump keeps); deleting a default
-- leaves the admin's refusal of the flow.  Only the extension seeds.
UPDATE allowed_flow SET allowed = false, note = 'pilot: no donations'
 WHERE from_tier = 'personal' AND to_tier = 'government' AND asset = 'POINT';
DELETE FROM allowed_flow WHERE from_tier = 'enterprise' AND to_tier = 'government' AND asset = 'POINT';
SELECT from_tier, to_tier, allowed, seeded, note FROM allowed_flow
 WHERE to_tier = 'government' AND asset = 'POINT' ORDER BY from_tier;
INSERT INTO allowed_flow (from_tier, to_tier, asset, seeded) VALUES ('personal', 'personal', 'POINT', true);  -- 42501
UPDATE allowed_flow SET allowed = true, note = NULL WHERE to_tier = 'government' AND asset = 'POINT';

-- Frozen accounts neither pay nor receive; closing needs zero balances.
SELECT set_account_status(2, 'frozen', '调查 investigation');
SELECT transfer(2, 3, 'POINT', 1);             -- CL002
SELECT transfer(1, 3, 'POINT', 1) AS still_fine;
SELECT set_account_status(2, 'active', '解除 cleared');
SELECT set_account_status(2, 'closed', 'moved away');        -- CL007: still holds points
SELECT transfer(2, 3, 'POINT', balance(2)) AS emptied;
SELECT set_account_status(2, 'closed', 'moved away');
SELECT set_account_status(2, 'active', 'back again');        -- CL007: closing is final
SELECT account, old_status, new_status, reason FROM account_status_log ORDER BY changed_at, new_status;

-- Partner assets.
SELECT define_asset('RAINBOW', 'currency', '彩虹元 Zhangye tourism currency');
SELECT define_asset('RAINBOW', 'currency', '彩虹元 Zhangye tourism currency');   -- same: no-op
SELECT define_asset('RAINBOW', 'points', 'something else');                       -- 23505
SELECT define_asset('rainbow', 'currency', 'x');                                   -- 22023
SELECT code, kind, builtin FROM asset ORDER BY id;

-- Corrections are reversing entries, once.
SELECT reverse_entry(6, '捐赠金额有误 wrong donation') AS reversal;
SELECT balance(1) AS li, balance(4) AS bureau;
SELECT reverse_entry(6, 'again');              -- 23505
SELECT id, kind, reverses, memo FROM entry WHERE id = 6 OR reverses = 6 ORDER BY id;

-- The journal is append-only, even for its owner.
UPDATE posting SET amount = amount + 1 WHERE entry_id = 5;
DELETE FROM entry WHERE id = 5;
TRUNCATE posting;

-- Seal, and every check holds.
SELECT seal() IS NOT NULL AS sealed, seal() IS NULL AS nothing_new;
SELECT * FROM verify_integrity();
SELECT transfer(1, 3, 'POINT', 5) AS entry;
SELECT seal() IS NOT NULL AS sealed_again;
SELECT check_name, ok FROM verify_integrity();
SELECT balance_at(1, 'POINT', now() - interval '1 day') AS li_yesterday, balance_at(1, 'POINT', now()) AS li_now;
