-- ---------------------------------------------------------------------------
-- Column comments of the views, in Chinese and English (issue 21): the views
-- are BI's contract (test/pgtap/views.sql).  Runs after every view exists;
-- the accounting views (80) and v_projects.issued_tonnes (70) carry theirs.
-- ---------------------------------------------------------------------------

-- carbon.settings
COMMENT ON COLUMN carbon.settings.name IS '设置名 the setting''s name (for carbon.set_setting)';
COMMENT ON COLUMN carbon.settings.value IS '当前值 the value in force: the operator''s, else the default';
COMMENT ON COLUMN carbon.settings.default_value IS '默认值 the built-in default';
COMMENT ON COLUMN carbon.settings.is_default IS '是否默认 true when nobody changed the setting';
COMMENT ON COLUMN carbon.settings.description IS '说明 what the setting does';

-- carbon.v_account_statement
COMMENT ON COLUMN carbon.v_account_statement.account IS '账户 the account posted to';
COMMENT ON COLUMN carbon.v_account_statement.entry_id IS '分录号 the ledger entry (carbon.entry) of the posting';
COMMENT ON COLUMN carbon.v_account_statement.at IS '记账时间 when the entry was posted';
COMMENT ON COLUMN carbon.v_account_statement.asset IS '资产 asset code: POINT, RED, CER, CNY or a partner currency';
COMMENT ON COLUMN carbon.v_account_statement.amount IS
  '金额 signed amount in the asset''s unit (points, grams CO2e, tonnes; money in yuan with 2 decimals); positive credits the account';
COMMENT ON COLUMN carbon.v_account_statement.balance_after IS
  '变动后余额 the account''s balance of the asset after this posting, in the asset''s unit (money in yuan)';
COMMENT ON COLUMN carbon.v_account_statement.kind IS
  '业务类型 kind of entry: behavior, transfer, redemption, exchange, expiry, trade, reversal, …';
COMMENT ON COLUMN carbon.v_account_statement.memo IS '摘要 the entry''s memo';

-- carbon.v_points_expiring
COMMENT ON COLUMN carbon.v_points_expiring.month IS
  '到期月份 first day of the local month in which the points expire (midnight of 1 January counts for December)';
COMMENT ON COLUMN carbon.v_points_expiring.region IS '行政区划 region: 6-digit administrative division code of the holders';
COMMENT ON COLUMN carbon.v_points_expiring.tier IS '体系层级 tier of the holders: personal, enterprise, government, …';
COMMENT ON COLUMN carbon.v_points_expiring.points IS '积分 points still held that expire that month';

-- carbon.v_reduction_monthly
COMMENT ON COLUMN carbon.v_reduction_monthly.month IS '月份 first day of the local month of the behaviours';
COMMENT ON COLUMN carbon.v_reduction_monthly.region IS '行政区划 region: 6-digit administrative division code of the participants';
COMMENT ON COLUMN carbon.v_reduction_monthly.scenario IS '应用场景 scenario (metro, bike, recycling, …)';
COMMENT ON COLUMN carbon.v_reduction_monthly.methodology IS '方法学 methodology code';
COMMENT ON COLUMN carbon.v_reduction_monthly.events IS '行为数 behaviours credited (accepted or capped)';
COMMENT ON COLUMN carbon.v_reduction_monthly.participants IS '参与人数 distinct accounts credited';
COMMENT ON COLUMN carbon.v_reduction_monthly.reduction IS '减排量 reduction credited, exact co2e (grams CO2e)';

-- carbon.v_supply_detail (amounts in the asset's unit, money in yuan); v_supply's
-- columns take the same comments (below)
COMMENT ON COLUMN carbon.v_supply_detail.asset IS '资产 asset code: POINT, RED, CER, CNY or a partner currency';
COMMENT ON COLUMN carbon.v_supply_detail.tier IS '体系层级 tier: personal, enterprise, government, merchant, verifier, platform';
COMMENT ON COLUMN carbon.v_supply_detail.region IS '行政区划 region: 6-digit administrative division code';
COMMENT ON COLUMN carbon.v_supply_detail.issued IS
  '已发行 issued into the tier and region, net of what went back (reversals, cash withdrawals), cumulative, in the asset''s unit (points, grams CO2e, tonnes; money in yuan with 2 decimals)';
COMMENT ON COLUMN carbon.v_supply_detail.outstanding IS
  '流通量 held now by the participants (merchants'' unsettled points included), in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.redeemed IS '已兑换 left the tier by redemption once the merchant settled (carbon.settle_merchant), cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.expired IS '已过期 left the tier by expiry, cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.retired IS '已注销抵消 left the tier by retirement, cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.cancelled IS '已行政注销 left the tier by cancellation, cumulative, in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.escrow IS '冻结托管 held in escrow now (open market orders), in the asset''s unit';
COMMENT ON COLUMN carbon.v_supply_detail.moved_out IS
  '净转出 net amount moved to other tiers or regions through clearing, in the asset''s unit';

DO $$
DECLARE
  c record;
BEGIN
  FOR c IN SELECT attname, col_description('carbon.v_supply_detail'::regclass, attnum) AS comment
           FROM pg_attribute WHERE attrelid = 'carbon.v_supply'::regclass AND attnum > 0
  LOOP
    EXECUTE format('COMMENT ON COLUMN carbon.v_supply.%I IS %L', c.attname, c.comment);
  END LOOP;
END $$;

-- carbon.v_offers
COMMENT ON COLUMN carbon.v_offers.offer IS '权益 the offer''s id (for carbon.redeem)';
COMMENT ON COLUMN carbon.v_offers.merchant IS '商户 the merchant''s account';
COMMENT ON COLUMN carbon.v_offers.merchant_name IS '商户名称 the merchant''s display name';
COMMENT ON COLUMN carbon.v_offers.title IS '权益名称 what the citizen gets (parking discount, voucher, …)';
COMMENT ON COLUMN carbon.v_offers.points_cost IS '所需积分 price of one item, in points';
COMMENT ON COLUMN carbon.v_offers.stock IS '库存 items left';
COMMENT ON COLUMN carbon.v_offers.valid_from IS '开始时间 start of the validity (NULL: no start)';
COMMENT ON COLUMN carbon.v_offers.valid_until IS '结束时间 end of the validity (NULL: no end)';
COMMENT ON COLUMN carbon.v_offers.per_account_limit IS '每人限兑 most items one account may redeem (NULL: no limit)';

-- carbon.v_redemptions
COMMENT ON COLUMN carbon.v_redemptions.month IS '月份 first day of the local month of the redemptions';
COMMENT ON COLUMN carbon.v_redemptions.merchant IS '商户 the merchant''s account';
COMMENT ON COLUMN carbon.v_redemptions.offer IS '权益 the offer''s id';
COMMENT ON COLUMN carbon.v_redemptions.redemptions IS '兑换次数 number of redemptions (refunded ones included)';
COMMENT ON COLUMN carbon.v_redemptions.points IS '兑换积分 points spent, net of refunds';

-- carbon.v_merchant_statement
COMMENT ON COLUMN carbon.v_merchant_statement.month IS '月份 first day of the local month';
COMMENT ON COLUMN carbon.v_merchant_statement.merchant IS '商户 the merchant''s account';
COMMENT ON COLUMN carbon.v_merchant_statement.points_redeemed IS '兑换积分 points collected by redemptions';
COMMENT ON COLUMN carbon.v_merchant_statement.points_refunded IS '退还积分 points refunded (pieces expired meanwhile included)';
COMMENT ON COLUMN carbon.v_merchant_statement.points_settled IS '结算积分 points settled into the redeemed sink';

-- carbon.v_projects (issued_tonnes: 70_units.sql)
COMMENT ON COLUMN carbon.v_projects.project IS '项目 the project''s id';
COMMENT ON COLUMN carbon.v_projects.code IS '项目代码 the project''s code, part of its serials';
COMMENT ON COLUMN carbon.v_projects.status IS '状态 status: registered, publicized (公示) or approved (备案)';
COMMENT ON COLUMN carbon.v_projects.owner IS '业主 the owner''s account';
COMMENT ON COLUMN carbon.v_projects.region IS '行政区划 region: 6-digit administrative division code';

-- carbon.v_issuances
COMMENT ON COLUMN carbon.v_issuances.serial IS '序列号 the serial range REGION-VINTAGE-PROJECTCODE-FIRST-LAST';
COMMENT ON COLUMN carbon.v_issuances.project IS '项目 the project''s id';
COMMENT ON COLUMN carbon.v_issuances.vintage IS '年份 vintage: the year in which the monitoring period ended';
COMMENT ON COLUMN carbon.v_issuances.tonnes IS '吨数 tonnes CO2e in the range';
COMMENT ON COLUMN carbon.v_issuances.issued_at IS '签发时间 when the range was issued';

-- carbon.v_retirements
COMMENT ON COLUMN carbon.v_retirements.certificate IS '注销证明 certificate id: SHA-256 (hex) of its content (carbon.verify_certificate)';
COMMENT ON COLUMN carbon.v_retirements.account IS '账户 the account that retired the units';
COMMENT ON COLUMN carbon.v_retirements.tonnes IS '吨数 tonnes CO2e retired';
COMMENT ON COLUMN carbon.v_retirements.purpose IS
  '用途 purpose: event_neutrality, entity_neutrality, eco_damage_compensation, voluntary, compliance_offset';
COMMENT ON COLUMN carbon.v_retirements.beneficiary IS '受益方 on whose behalf the units were retired';
COMMENT ON COLUMN carbon.v_retirements.reference IS '参考编号 reference, e.g. the case number of an ecological damage compensation';
COMMENT ON COLUMN carbon.v_retirements.retired_at IS '注销时间 when the units were retired';

-- carbon.v_serial_history
COMMENT ON COLUMN carbon.v_serial_history.serial_block IS '序列号块 the serial range REGION-VINTAGE-PROJECTCODE-FIRST-LAST the event touched';
COMMENT ON COLUMN carbon.v_serial_history.event IS
  '事件 issuance, split, transfer, trade, escrow, release, retirement, cancellation or recall';
COMMENT ON COLUMN carbon.v_serial_history.from_account IS '转出账户 the account the block left (NULL: none)';
COMMENT ON COLUMN carbon.v_serial_history.to_account IS '转入账户 the account the block went to (NULL: none)';
COMMENT ON COLUMN carbon.v_serial_history.tonnes IS '吨数 tonnes CO2e in the block';
COMMENT ON COLUMN carbon.v_serial_history.at IS '时间 when it happened';
COMMENT ON COLUMN carbon.v_serial_history.reference IS '参考 reference or reason given with the event';

-- carbon.v_order_book
COMMENT ON COLUMN carbon.v_order_book.instrument IS '交易品种 instrument code (CER-I: class I certified units)';
COMMENT ON COLUMN carbon.v_order_book.side IS '买卖方向 side: buy or sell';
COMMENT ON COLUMN carbon.v_order_book.price IS '价格 limit price in yuan per tonne';
COMMENT ON COLUMN carbon.v_order_book.tonnes IS '挂单量 unfilled tonnes resting at that price';
COMMENT ON COLUMN carbon.v_order_book.orders IS '委托笔数 number of orders resting at that price';

-- carbon.v_market_daily
COMMENT ON COLUMN carbon.v_market_daily.day IS '交易日 the trading day (local)';
COMMENT ON COLUMN carbon.v_market_daily.instrument IS '交易品种 instrument code (CER-I: class I certified units)';
COMMENT ON COLUMN carbon.v_market_daily.open IS '开盘价 price of the day''s first trade, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.high IS '最高价 highest trade price, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.low IS '最低价 lowest trade price, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.close IS '收盘价 price of the day''s last trade, yuan per tonne';
COMMENT ON COLUMN carbon.v_market_daily.volume IS '成交量 tonnes traded';
COMMENT ON COLUMN carbon.v_market_daily.turnover IS '成交额 value traded, in yuan';
COMMENT ON COLUMN carbon.v_market_daily.vwap IS '成交均价 volume-weighted average price, yuan per tonne (4 decimals)';
