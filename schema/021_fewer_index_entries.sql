-- 021: two indexes that every referral paid for and few queries use
-- (issue 14, "write less"; docs/design/performance.md, "Index entries a
-- referral pays for").
--
-- pg_waldump of scripts/bench's http path: a referral makes ~46 B-tree
-- leaf insertions.  Two of the indexes behind them serve almost nothing:
--
--   * events_ubrn (ubrn, id) got an entry for every event (~3.3 per
--     referral).  Its one reader is the audit trail of rasctl trail/show,
--     for the events that have a UBRN but no referral (a payload refused
--     before a referral existed); events of a referral are found by
--     events_referral.  It now holds those events only.
--   * deadlines_open_referral (referral_id) WHERE open got an entry for
--     every open clock (~2.3 per referral).  002 made it so that a plan
--     made while the table was small would not walk deadlines_open for
--     each decision; deadlines_open has since been kept out of those plans
--     by its "due_at IS NOT NULL" (002), and ras_store_decisions plans
--     with sequential scans off (017), so a referral's open clocks are
--     found by deadlines_referral (referral_id, kind), which every clock
--     has anyway.  scripts/bench --stored checks the rate stays flat as
--     the tables grow.
DROP INDEX deadlines_open_referral;
DROP INDEX events_ubrn;
CREATE INDEX events_ubrn ON events (ubrn, id) WHERE referral_id IS NULL;
