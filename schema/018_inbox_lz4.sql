-- 018: payloads kept in the inbox are compressed with lz4 where the server
-- has it (issue 14; docs/design/performance.md, "Round trips and the
-- inbox's compression").
--
-- perf over the HTTP path of scripts/bench (sixth round): pglz_compress
-- was the backend's hottest function, ~5% of PostgreSQL's CPU, every bit
-- of it the inbox's payloads (~5 KB Bundles; 015 and 016 had moved the
-- letters, referrals and decisions to lz4 already).  lz4 keeps the same
-- bytes in a fraction of the time.  Rows stored before keep pglz, and are
-- read as before; a server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE inbox ALTER COLUMN body SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: payloads stay compressed with pglz';
END $$;
