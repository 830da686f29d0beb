-- 015: the render stage in batches (issue 14).  The stage now writes a
-- chunk of rendered letters by one UPDATE … FROM unnest(…) (the columns
-- sent as binary arrays), and keeps outbox.doc, the document Bundle, only
-- for the printed copies (transport 'file'), whose PDF the delivery makes
-- from it: every other letter carries its document in its payload (as
-- sent: the same bytes in [routing] mode document, inside the message
-- bundle or the ITK3 message otherwise), and nothing reads outbox.doc for
-- them (docs/design/performance.md, "Documents").  Rows rendered before
-- this keep their copy.
--
-- The payloads (8-60 KB each) are compressed with lz4 where the server
-- has it: in scripts/bench --profile the UPDATE storing a batch of 100
-- letters took 10-13 ms with lz4 against 17-42 ms with pglz (the default),
-- for payloads ~5% larger on disk.  A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN payload SET COMPRESSION lz4,
                       ALTER COLUMN doc SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4: outbox payloads stay compressed with pglz';
END $$;
