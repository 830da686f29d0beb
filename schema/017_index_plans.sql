-- 017: the store functions' plans use their indexes whatever the tables'
-- size when they were made (issue 14, item 3; docs/design/performance.md,
-- "Plans made on empty tables").
--
-- The functions below keep one generic plan per session
-- (plan_cache_mode = force_generic_plan, 014 and 016) and every lookup in
-- them is by an explicit list of ids or keys, which an index serves at any
-- size.  But the planner chooses by the statistics of the moment: a rasd
-- started on a new or quiet database planned them against tables of a few
-- pages, chose sequential scans (of referrals, five times a call, and of
-- outbox), and kept those plans until ANALYZE happened to invalidate them.
-- In scripts/bench, where the tables grow from empty in seconds and
-- autovacuum's first look comes a minute later, the HTTP rate fell by a
-- quarter between 2,000 and 8,000 referrals; on a new installation it is
-- the same until the first autoanalyze.  With sequential scans off the
-- plan is the index one from the first call.  (A table with no index that
-- serves a lookup is still scanned: the setting only makes the scan the
-- last resort.)
ALTER FUNCTION ras_store_decisions(jsonb) SET enable_seqscan = off;
ALTER FUNCTION ras_store_referrals(jsonb) SET enable_seqscan = off;
ALTER FUNCTION ras_outbox_on_decisions() SET enable_seqscan = off;
ALTER FUNCTION ras_outbox_enqueue_all(ras_outbox_letter[]) SET enable_seqscan = off;
ALTER FUNCTION ras_ers_decisions_intents() SET enable_seqscan = off;
ALTER FUNCTION ras_ers_make_intents(bigint[]) SET enable_seqscan = off;
