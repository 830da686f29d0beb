-- 019: the small text columns of inbox and referrals stay in their rows
-- (issue 14; docs/design/performance.md, "Round trips and the inbox's
-- compression").
--
-- 013 set toast_tuple_target = 128 on both tables, so that the payload
-- and the normalised document are kept out of line and an UPDATE of a
-- row's state copies a TOAST pointer instead of the document.  But the
-- rule applies to every column that can be stored out of line: while a
-- row was over 128 bytes, PostgreSQL moved its largest such values out
-- too, down to 24 bytes.  Every payload kept its SHA-256 (64 bytes) and
-- correlation id (36) as two TOAST values of their own (a TOAST row, an
-- index entry and WAL each, and a TOAST read whenever the claim read the
-- correlation id), every referral one more (scripts/bench: 4 TOAST rows
-- a payload, 2 a referral).  With storage MAIN they stay in the row
-- (compressed if need be); the payload and the document stay EXTENDED
-- and out of line as 013 meant.  Rows written before keep their layout
-- and are read as before.
ALTER TABLE inbox
    ALTER COLUMN sha256 SET STORAGE MAIN,
    ALTER COLUMN source SET STORAGE MAIN,
    ALTER COLUMN source_ref SET STORAGE MAIN,
    ALTER COLUMN content_type SET STORAGE MAIN,
    ALTER COLUMN state SET STORAGE MAIN,
    ALTER COLUMN kind SET STORAGE MAIN,
    ALTER COLUMN error SET STORAGE MAIN,
    ALTER COLUMN service_hint SET STORAGE MAIN,
    ALTER COLUMN ubrn_hint SET STORAGE MAIN,
    ALTER COLUMN correlation_id SET STORAGE MAIN;
ALTER TABLE referrals
    ALTER COLUMN referral_key SET STORAGE MAIN,
    ALTER COLUMN ubrn SET STORAGE MAIN,
    ALTER COLUMN source SET STORAGE MAIN,
    ALTER COLUMN service SET STORAGE MAIN,
    ALTER COLUMN ers_service_id SET STORAGE MAIN,
    ALTER COLUMN priority SET STORAGE MAIN,
    ALTER COLUMN registered_practice SET STORAGE MAIN,
    ALTER COLUMN referrer_ods SET STORAGE MAIN,
    ALTER COLUMN referrer_sds SET STORAGE MAIN,
    ALTER COLUMN referrer_name SET STORAGE MAIN,
    ALTER COLUMN form_questionnaire SET STORAGE MAIN,
    ALTER COLUMN form_version SET STORAGE MAIN,
    ALTER COLUMN ers_state SET STORAGE MAIN,
    ALTER COLUMN ers_referral_type SET STORAGE MAIN,
    ALTER COLUMN state SET STORAGE MAIN;
