-- ---------------------------------------------------------------------------
-- Exchange into partner currencies and other cities' points (api.md §4
-- exchange; Zhangye §11 彩虹元), and donations of points (issue 18).
-- Dated rates; the exchange itself is C (exchange.c).
-- ---------------------------------------------------------------------------

CREATE TABLE carbon.exchange_rate (
  from_asset   text NOT NULL REFERENCES carbon.asset (code),
  to_asset     text NOT NULL REFERENCES carbon.asset (code),
  valid_from   timestamptz NOT NULL,
  numerator    bigint NOT NULL CHECK (numerator > 0),
  denominator  bigint NOT NULL CHECK (denominator > 0),
  set_by       name NOT NULL DEFAULT session_user,
  set_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (from_asset, to_asset, valid_from),
  CHECK (from_asset <> to_asset)
);
COMMENT ON TABLE carbon.exchange_rate IS
  '兑换比例 exchange rates, dated: amount × numerator / denominator, in force from valid_from until the next';

-- The sub-unit remainder of each account's exchanges, per pair: a fraction
-- of one unit of to_asset (0 ≤ carry_num < carry_den), so that nothing is
-- lost to rounding over many exchanges.
CREATE TABLE carbon.exchange_carry (
  account    bigint NOT NULL REFERENCES carbon.account (id),
  from_asset text NOT NULL,
  to_asset   text NOT NULL,
  carry_num  bigint NOT NULL CHECK (carry_num >= 0),
  carry_den  bigint NOT NULL CHECK (carry_den > 0 AND carry_num < carry_den),
  PRIMARY KEY (account, from_asset, to_asset)
);
COMMENT ON TABLE carbon.exchange_carry IS
  '兑换余数 the fraction of a unit each account is owed per exchange pair, carried to its next exchange';

CREATE TABLE carbon.exchange (
  entry_id     bigint PRIMARY KEY,
  account      bigint NOT NULL REFERENCES carbon.account (id),
  from_asset   text NOT NULL,
  amount       bigint NOT NULL CHECK (amount > 0),
  to_asset     text NOT NULL,
  received     bigint NOT NULL CHECK (received >= 0),
  numerator    bigint NOT NULL,
  denominator  bigint NOT NULL,
  local_day    date NOT NULL,
  at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exchange_account_day_idx ON carbon.exchange (account, from_asset, local_day);
COMMENT ON TABLE carbon.exchange IS '兑换记录 exchanges: what went out, what came in, at which rate';

CREATE TABLE carbon.donation (
  entry_id   bigint PRIMARY KEY,
  account    bigint NOT NULL REFERENCES carbon.account (id),
  recipient  bigint NOT NULL REFERENCES carbon.account (id),
  amount     bigint NOT NULL CHECK (amount > 0),
  receipt    text NOT NULL UNIQUE,
  at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX donation_account_idx ON carbon.donation (account);
COMMENT ON TABLE carbon.donation IS
  '积分捐赠 donations of points, each with its receipt number (捐赠证书) the donor can show';

SELECT pg_catalog.pg_extension_config_dump('carbon.exchange_rate', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.exchange_carry', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.exchange', '');
SELECT pg_catalog.pg_extension_config_dump('carbon.donation', '');

CREATE FUNCTION carbon.set_exchange_rate(from_asset text, to_asset text, numerator bigint, denominator bigint,
                                         valid_from timestamptz)
  RETURNS void
  LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp AS $$
BEGIN
  IF from_asset IS NULL OR to_asset IS NULL OR numerator IS NULL OR denominator IS NULL OR valid_from IS NULL THEN
    RAISE EXCEPTION 'no argument of set_exchange_rate may be null' USING ERRCODE = '22004';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.asset a WHERE a.code = set_exchange_rate.from_asset) THEN
    RAISE EXCEPTION 'unknown asset "%"', from_asset USING ERRCODE = '22023';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM carbon.asset a WHERE a.code = set_exchange_rate.to_asset) THEN
    RAISE EXCEPTION 'unknown asset "%"', to_asset USING ERRCODE = '22023';
  END IF;
  IF from_asset = to_asset THEN
    RAISE EXCEPTION 'an exchange rate is between two different assets' USING ERRCODE = '22023';
  END IF;
  IF numerator <= 0 OR denominator <= 0 THEN
    RAISE EXCEPTION 'a rate''s numerator and denominator are positive' USING ERRCODE = '22023';
  END IF;
  -- a rate applies from valid_from only: never to exchanges already made
  -- (a rate dated back is fine while no exchange of the pair came since)
  IF valid_from <= now() AND EXISTS (SELECT 1 FROM carbon.exchange x
                                     WHERE x.from_asset = set_exchange_rate.from_asset
                                       AND x.to_asset = set_exchange_rate.to_asset
                                       AND x.at >= set_exchange_rate.valid_from) THEN
    RAISE EXCEPTION 'exchanges of % into % were made since the new rate''s valid_from: it would apply to them',
      from_asset, to_asset USING ERRCODE = '22023',
      HINT = 'Exchanges already made keep the rate they were made at: date the new rate after the last of them.';
  END IF;
  INSERT INTO carbon.exchange_rate AS r (from_asset, to_asset, valid_from, numerator, denominator)
  VALUES (set_exchange_rate.from_asset, set_exchange_rate.to_asset, set_exchange_rate.valid_from,
          set_exchange_rate.numerator, set_exchange_rate.denominator)
  ON CONFLICT ON CONSTRAINT exchange_rate_pkey
  DO UPDATE SET numerator = excluded.numerator, denominator = excluded.denominator,
                set_by = session_user, set_at = now();
END $$;
COMMENT ON FUNCTION carbon.set_exchange_rate(text, text, bigint, bigint, timestamptz) IS
  '设置兑换比例 a rate from_asset → to_asset, amount × numerator / denominator, in force from valid_from';

CREATE FUNCTION carbon.exchange(account bigint, from_asset text, amount bigint, to_asset text,
                                request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_exchange'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.exchange(bigint, text, bigint, text, text) IS
  '兑换 exchange an amount of one asset for another at the rate in force, floor(amount × n / d) with the '
  'remainder carried; returns the entry id';

CREATE FUNCTION carbon.donate(account bigint, recipient bigint, amount bigint, request_id text DEFAULT NULL)
  RETURNS bigint AS 'MODULE_PATHNAME', 'ledger_donate'
  LANGUAGE C VOLATILE SECURITY DEFINER SET search_path = pg_catalog, carbon, pg_temp;
COMMENT ON FUNCTION carbon.donate(bigint, bigint, bigint, text) IS
  '积分捐赠 donate points to a government or public-welfare account where allowed_flow allows it; '
  'returns the entry id, which names the receipt in carbon.donation';
