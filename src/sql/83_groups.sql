-- ---- Groups and rankings (试点示范, 低碳社区; issue 21; docs/reports.md) ----
--
-- Communities, schools, parks and enterprises' staff are groups of
-- accounts.  Membership is dated: a behaviour counts for a group when its
-- local day falls within the member's time in it, so a citizen who moves
-- counts for the old community before and the new one after.  The views add
-- up reductions and points per group and month and rank the groups of a
-- kind; a citizen's app reads its own rank in its groups, and nobody else's
-- identity (v_my_group_rank).

CREATE SEQUENCE carbon.account_group_id_seq;
CREATE TABLE carbon.account_group (
  id          bigint PRIMARY KEY DEFAULT nextval('carbon.account_group_id_seq'),
  kind        text NOT NULL CHECK (kind IN ('community', 'school', 'park', 'enterprise_staff')),
  name        text NOT NULL CHECK (name <> '' AND length(name) <= 200),
  region      text NOT NULL CHECK (region ~ '^[0-9]{6}$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (kind, region, name)
);
ALTER SEQUENCE carbon.account_group_id_seq OWNED BY carbon.account_group.id;
COMMENT ON TABLE carbon.account_group IS
  '群体 groups of accounts: low-carbon communities, schools, parks, an enterprise''s staff';

CREATE TABLE carbon.group_member (
  group_id  bigint NOT NULL REFERENCES carbon.account_group (id),
  account   bigint NOT NULL REFERENCES carbon.account (id),
  since     date NOT NULL,
  until     date,                              -- last day in the group; NULL: still a member
  CHECK (until IS NULL OR until >= since),
  -- no account is twice in one group on the same day
  CONSTRAINT group_member_no_overlap EXCLUDE USING gist (int8range(group_id, group_id, '[]') WITH &&, int8range(account, account, '[]') WITH &&,
                      daterange(since, until, '[]') WITH &&)
);
CREATE INDEX group_member_account_idx ON carbon.group_member (account);
CREATE INDEX group_member_group_idx ON carbon.group_member (group_id, account) INCLUDE (since, until);
COMMENT ON TABLE carbon.group_member IS
  '群体成员 who belongs to which group, from which local day to which (inclusive)';

-- What each member earned while in each of its groups, per local month:
-- kept by the behaviour engine as it records (one statement per batch, the
-- account's rows under its remainder lock), by reversals, and by
-- join_group / leave_group for the days they add or take away.  The group
-- views read it; verify_integrity() checks it against the behaviours.
CREATE TABLE carbon.group_credit (
  group_id  bigint NOT NULL,
  month     date NOT NULL,
  account   bigint NOT NULL,
  events    bigint NOT NULL CHECK (events >= 0),
  grams     bigint NOT NULL,
  points    bigint NOT NULL,
  PRIMARY KEY (group_id, month, account) INCLUDE (events, grams, points)   -- index-only reads of a group's month
) WITH (fillfactor = 90);
COMMENT ON TABLE carbon.group_credit IS
  '成员月度贡献 credited behaviours (events, grams CO2e, points) of each member while in each of its groups, per local month';

-- Add (sign 1) or take away (sign -1) an account's credited behaviours of
-- days [first_day, last_day] (NULL: on) to what it earned in a group.  (An
-- upsert cannot take away: its candidate row is checked before the conflict.)
CREATE FUNCTION carbon._group_credit_add(group_id bigint, account bigint, first_day date, last_day date, sign int)
  RETURNS void LANGUAGE sql VOLATILE SET search_path = pg_catalog, carbon, pg_temp
BEGIN ATOMIC
  INSERT INTO carbon.group_credit AS c (group_id, month, account, events, grams, points)
  SELECT _group_credit_add.group_id, date_trunc('month', b.local_day::timestamp)::date, b.account,
         count(*), sum(carbon.grams(b.reduction))::bigint, sum(b.points)::bigint
  FROM carbon.behavior b
  WHERE sign = 1 AND b.account = _group_credit_add.account AND b.status IN ('accepted', 'capped')
    AND b.local_day >= first_day AND (last_day IS NULL OR b.local_day <= last_day)
  GROUP BY 1, 2, 3
  ON CONFLICT ON CONSTRAINT group_credit_pkey
  DO UPDATE SET events = c.events + excluded.events, grams = c.grams + excluded.grams,
                points = c.points + excluded.points;
  UPDATE carbon.group_credit c SET events = c.events - s.n, grams = c.grams - s.g, points = c.points - s.p
  FROM (SELECT date_trunc('month', b.local_day::timestamp)::date AS month, count(*) AS n,
               sum(carbon.grams(b.reduction))::bigint AS g, sum(b.points)::bigint AS p
        FROM carbon.behavior b
        WHERE sign = -1 AND b.account = _group_credit_add.account AND b.status IN ('accepted', 'capped')
          AND b.local_day >= first_day AND (last_day IS NULL OR b.local_day <= last_day)
        GROUP BY 1) s
  WHERE c.group_id = _group_credit_add.group_id AND c.account = _group_credit_add.account AND c.month = s.month;
END;

SELECT pg_catalog.pg_extension_config_dump('carbon.account_group', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.account_group_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.group_member', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.group_credit', '');

CREATE FUNCTION carbon.create_group(kind text, name text, region text) RETURNS bigint
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  new_id bigint;
BEGIN
  IF kind IS NULL OR name IS NULL OR region IS NULL THEN
    RAISE EXCEPTION 'kind, name and region must not be null' USING ERRCODE = '22004';
  END IF;
  IF kind NOT IN ('community', 'school', 'park', 'enterprise_staff') THEN
    RAISE EXCEPTION 'unknown group kind "%"', kind USING ERRCODE = '22023',
      HINT = 'Groups are community, school, park or enterprise_staff.';
  END IF;
  IF name = '' OR length(name) > 200 THEN
    RAISE EXCEPTION 'a group''s name is 1 to 200 characters' USING ERRCODE = '22023';
  END IF;
  IF region !~ '^[0-9]{6}$' THEN
    RAISE EXCEPTION 'region "%" is not a 6-digit region code', region USING ERRCODE = '22023';
  END IF;
  INSERT INTO carbon.account_group (kind, name, region) VALUES (kind, name, region) RETURNING id INTO new_id;
  RETURN new_id;
END $$;
COMMENT ON FUNCTION carbon.create_group(text, text, text) IS
  '创建群体 a community, school, park or enterprise''s staff; returns its id (23505 if that name exists in the region)';

CREATE FUNCTION carbon.join_group(group_id bigint, account bigint, since date DEFAULT NULL) RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF group_id IS NULL OR account IS NULL THEN
    RAISE EXCEPTION 'group and account must not be null' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.account_group g WHERE g.id = join_group.group_id) THEN
    RAISE EXCEPTION 'group % does not exist', group_id USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.account a WHERE a.id = join_group.account AND a.kind = 'participant') THEN
    RAISE EXCEPTION 'account % does not exist', account USING ERRCODE = '22023',
      DETAIL = 'Only participant accounts belong to groups.';
  END IF;
  IF EXISTS (SELECT 1 FROM carbon.group_member m
             WHERE m.group_id = join_group.group_id AND m.account = join_group.account
               AND (m.until IS NULL OR m.until >= coalesce(join_group.since, carbon._local_today()))) THEN
    RAISE EXCEPTION 'account % is already in group % on or after %', account, group_id,
      coalesce(join_group.since, carbon._local_today())
      USING ERRCODE = '23P01', HINT = 'End the membership with carbon.leave_group() first.';
  END IF;
  -- the account's remainder row first, as the behaviour engine takes it: a
  -- behaviour recorded meanwhile is counted once, here or by the engine
  PERFORM 1 FROM carbon.points_carry c WHERE c.account = join_group.account FOR UPDATE;
  -- (the exclusion constraint also refuses overlapping rows written any other way)
  INSERT INTO carbon.group_member (group_id, account, since)
  VALUES (join_group.group_id, join_group.account, coalesce(join_group.since, carbon._local_today()));
  PERFORM carbon._group_credit_add(join_group.group_id, join_group.account,
                                   coalesce(join_group.since, carbon._local_today()), NULL, 1);
END $$;
COMMENT ON FUNCTION carbon.join_group(bigint, bigint, date) IS
  '加入群体 the account belongs to the group from `since` (default: today, local); 23P01 if it already does then';

CREATE FUNCTION carbon.leave_group(group_id bigint, account bigint, until date DEFAULT NULL) RETURNS boolean
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
DECLARE
  last_day date := coalesce(leave_group.until, carbon._local_today());
BEGIN
  IF group_id IS NULL OR account IS NULL THEN
    RAISE EXCEPTION 'group and account must not be null' USING ERRCODE = '22004';
  END IF;
  PERFORM 1 FROM carbon.points_carry c WHERE c.account = leave_group.account FOR UPDATE;
  UPDATE carbon.group_member m SET until = last_day
   WHERE m.group_id = leave_group.group_id AND m.account = leave_group.account AND m.until IS NULL
     AND m.since <= last_day;
  IF FOUND THEN
    -- the days after it left no longer count for the group
    PERFORM carbon._group_credit_add(leave_group.group_id, leave_group.account, last_day + 1, NULL, -1);
    RETURN true;
  END IF;
  IF EXISTS (SELECT 1 FROM carbon.group_member m WHERE m.group_id = leave_group.group_id
               AND m.account = leave_group.account AND m.until IS NULL) THEN
    RAISE EXCEPTION 'account % joined group % after %', account, group_id, last_day USING ERRCODE = '22023';
  END IF;
  RETURN false;   -- not a member: nothing to end
END $$;
COMMENT ON FUNCTION carbon.leave_group(bigint, bigint, date) IS
  '退出群体 the account''s membership ends on `until` (default: today, local), inclusive; false if it was not a member';

-- What each member earned while in its groups, per month (the table, with
-- the events that count: a month whose behaviours were all reversed is gone).
CREATE VIEW carbon.v_group_credit WITH (security_invoker = true) AS
  SELECT c.group_id, c.month, c.account, c.events, c.grams, c.points
  FROM carbon.group_credit c
  WHERE c.events > 0;
COMMENT ON VIEW carbon.v_group_credit IS
  '成员月度贡献 what each member earned while in each of its groups, per local month: credited behaviours, grams CO2e, points';
COMMENT ON COLUMN carbon.v_group_credit.group_id IS '群体 the group';
COMMENT ON COLUMN carbon.v_group_credit.month IS '月份 first day of the month (local time zone)';
COMMENT ON COLUMN carbon.v_group_credit.account IS '账户 the member';
COMMENT ON COLUMN carbon.v_group_credit.events IS '行为数 its credited behaviours that month while in the group';
COMMENT ON COLUMN carbon.v_group_credit.grams IS '减排量 their reduction in grams CO2e';
COMMENT ON COLUMN carbon.v_group_credit.points IS '积分 the points they earned';

-- Reductions and points of each group per month, and the group's rank
-- among the groups of its kind in its region (Ganzhou's communities among
-- themselves), that month.
CREATE VIEW carbon.v_group_monthly WITH (security_invoker = true) AS
  -- per group (LATERAL): a filter on region and month reaches the index of
  -- group_credit as (group, month), whatever the planner thinks of the rest
  SELECT x.month, g.id AS group_id, g.kind, g.name, g.region,
         (SELECT count(DISTINCT m.account) FROM carbon.group_member m
          WHERE m.group_id = g.id AND m.since < (x.month + interval '1 month')::date
            AND (m.until IS NULL OR m.until >= x.month)) AS members,
         x.active_members, x.events, carbon.co2e_grams(x.grams) AS reduction, x.points,
         rank() OVER (PARTITION BY x.month, g.kind, g.region ORDER BY x.grams DESC) AS rank_in_kind
  FROM carbon.account_group g
  CROSS JOIN LATERAL (SELECT c.month, count(*) AS active_members, sum(c.events)::bigint AS events,
                             sum(c.grams)::bigint AS grams, sum(c.points)::bigint AS points
                      FROM carbon.group_credit c
                      WHERE c.group_id = g.id AND c.events > 0
                      GROUP BY c.month) x;
COMMENT ON VIEW carbon.v_group_monthly IS
  '群体月度减排排名 per group and month (local): members, active members, credited behaviours, reduction, points, and the rank by reduction among the groups of its kind in its region';
COMMENT ON COLUMN carbon.v_group_monthly.month IS '月份 first day of the month (local time zone)';
COMMENT ON COLUMN carbon.v_group_monthly.group_id IS '群体 the group';
COMMENT ON COLUMN carbon.v_group_monthly.kind IS '类别 community, school, park or enterprise_staff';
COMMENT ON COLUMN carbon.v_group_monthly.name IS '名称 the group''s name';
COMMENT ON COLUMN carbon.v_group_monthly.region IS '行政区划 the group''s region code';
COMMENT ON COLUMN carbon.v_group_monthly.members IS '成员数 accounts that were members on some day of the month';
COMMENT ON COLUMN carbon.v_group_monthly.active_members IS '活跃成员 members with a credited behaviour in the month while in the group';
COMMENT ON COLUMN carbon.v_group_monthly.events IS '行为数 credited behaviours (accepted or capped) of members while in the group';
COMMENT ON COLUMN carbon.v_group_monthly.reduction IS '减排量 their reduction (co2e)';
COMMENT ON COLUMN carbon.v_group_monthly.points IS '积分 the points they earned';
COMMENT ON COLUMN carbon.v_group_monthly.rank_in_kind IS '排名 rank by reduction among the groups of the same kind and region that month (1: the most)';

-- A citizen's rank in each of its groups, per month: the acting account's
-- rows only, and no other member's identity.  Owner's rights (it ranks
-- members the reader may not see), filtered by carbon.acting_account().
CREATE VIEW carbon.v_my_group_rank WITH (security_barrier = true) AS
  WITH ranked AS (
    SELECT c.group_id, c.month, c.account, c.grams, c.points,
           rank() OVER (PARTITION BY c.group_id, c.month ORDER BY c.grams DESC) AS my_rank,
           count(*) OVER (PARTITION BY c.group_id, c.month) AS ranked_members
    FROM carbon.group_credit c
    WHERE c.events > 0
      AND c.group_id IN (SELECT mine.group_id FROM carbon.group_member mine
                         WHERE mine.account = carbon.acting_account()))
  SELECT r.month, r.group_id, g.kind, g.name AS group_name, carbon.co2e_grams(r.grams) AS reduction, r.points,
         r.my_rank, r.ranked_members
  FROM ranked r
  JOIN carbon.account_group g ON g.id = r.group_id
  WHERE r.account = carbon.acting_account();
COMMENT ON VIEW carbon.v_my_group_rank IS
  '我的群体排名 the acting account''s reduction, points and rank in each of its groups per month (local), among the members with credited behaviours; no other member is named';
COMMENT ON COLUMN carbon.v_my_group_rank.month IS '月份 first day of the month (local time zone)';
COMMENT ON COLUMN carbon.v_my_group_rank.group_id IS '群体 the group';
COMMENT ON COLUMN carbon.v_my_group_rank.kind IS '类别 community, school, park or enterprise_staff';
COMMENT ON COLUMN carbon.v_my_group_rank.group_name IS '名称 the group''s name';
COMMENT ON COLUMN carbon.v_my_group_rank.reduction IS '减排量 the acting account''s reduction in the month while in the group (co2e)';
COMMENT ON COLUMN carbon.v_my_group_rank.points IS '积分 the points it earned then';
COMMENT ON COLUMN carbon.v_my_group_rank.my_rank IS '我的排名 its rank by reduction among the group''s members with credited behaviours that month (1: the most)';
COMMENT ON COLUMN carbon.v_my_group_rank.ranked_members IS '参与排名人数 how many members were ranked';
