-- 013 store in sets (issue 14; docs/design/performance.md, "Set-based
-- store").  Measured with scripts/bench --profile: per referral the store
-- ran ras_store_referral (1.2-3.4 ms), of which ~25 referral_answers rows,
-- each with a foreign-key check, took over a third, and ~5 KB of the ~21 KB
-- of WAL a referral cost end to end.

-- ---- write less: answers and conditions are read from the document -------
-- referral_answers and referral_conditions were a second copy of what
-- referrals.doc holds (form -> answers, conditions), kept in step by the
-- store functions and read by nothing in rasd (triage, the safety net,
-- documents, the UI and the reports read referrals.doc).  They become views
-- over referrals.doc with the same columns, so SQL written against them
-- (tests, an analyst's query) keeps working, and always agrees with the
-- document (the tables kept the previous answers when a merged e-RS view
-- carried a form without answers; the view shows the document's).
DROP TABLE referral_answers;
DROP TABLE referral_conditions;

CREATE VIEW referral_answers AS
SELECT r.id AS referral_id, a.ord::int AS seq, a.v ->> 'link_id' AS link_id,
       a.v ->> 'group' AS group_link_id, coalesce((a.v ->> 'group_index')::int, 0) AS group_index,
       a.v ->> 'type' AS value_type,
       CASE WHEN a.v ->> 'type' = 'boolean' THEN (a.v ->> 'value')::boolean END AS value_boolean,
       CASE WHEN a.v ->> 'type' = 'integer' THEN (a.v ->> 'value')::bigint END AS value_integer,
       CASE WHEN a.v ->> 'type' = 'decimal' THEN (a.v ->> 'value')::double precision END AS value_decimal,
       CASE WHEN a.v ->> 'type' IN ('string', 'date', 'other') THEN a.v ->> 'value'
            WHEN a.v ->> 'type' = 'coding' THEN a.v ->> 'display' END AS value_text,
       a.v ->> 'system' AS value_system, a.v ->> 'code' AS value_code
  FROM referrals r
 CROSS JOIN LATERAL jsonb_array_elements(
           CASE WHEN jsonb_typeof(r.doc -> 'form') = 'object'
                 AND jsonb_typeof(r.doc -> 'form' -> 'answers') = 'array'
                THEN r.doc -> 'form' -> 'answers' ELSE '[]'::jsonb END) WITH ORDINALITY AS a(v, ord);

CREATE VIEW referral_conditions AS
SELECT r.id AS referral_id, c.ord::int AS seq, c.v ->> 'system' AS system, c.v ->> 'code' AS code,
       c.v ->> 'display' AS display, c.v ->> 'clinical_status' AS clinical_status
  FROM referrals r
 CROSS JOIN LATERAL jsonb_array_elements(
           CASE WHEN jsonb_typeof(r.doc -> 'conditions') = 'array'
                THEN r.doc -> 'conditions' ELSE '[]'::jsonb END) WITH ORDINALITY AS c(v, ord);

-- The normalised document (referrals.doc, ~1.8 KB compressed) and the
-- payload (inbox.body) were kept compressed inside their rows, so every
-- later UPDATE of the row (a state, a mark) wrote them to the WAL again:
-- ~1.4 KB per update of a referral instead of ~0.4 KB.  Moved out of line
-- (compressed as before) once a row passes 128 bytes, an update copies only
-- the TOAST pointer.  Rows written before keep their layout.
ALTER TABLE referrals SET (toast_tuple_target = 128);
ALTER TABLE inbox SET (toast_tuple_target = 128);

-- As in 010, without the answers and conditions rows: the form columns
-- when they change, and the attachments' metadata.
CREATE OR REPLACE FUNCTION ras_store_referral_parts(p_id bigint, p_doc jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_doc -> 'form' IS NOT NULL AND jsonb_typeof(p_doc -> 'form') = 'object' THEN
        UPDATE referrals SET form_questionnaire = p_doc -> 'form' ->> 'questionnaire',
                             form_version = p_doc -> 'form' ->> 'version'
         WHERE id = p_id
           AND (form_questionnaire IS DISTINCT FROM p_doc -> 'form' ->> 'questionnaire'
                OR form_version IS DISTINCT FROM p_doc -> 'form' ->> 'version');
    END IF;
    INSERT INTO attachments AS t (referral_id, ubrn, url, title, content_type, declared_size,
                                  availability, type, attached_by, attached_by_org)
    SELECT p_id, p_doc ->> 'ubrn', x.v ->> 'url', x.v ->> 'title', x.v ->> 'content_type',
           (x.v ->> 'size')::bigint, x.v ->> 'availability', x.v ->> 'type',
           x.v ->> 'attached_by', x.v ->> 'attached_by_org'
      FROM jsonb_array_elements(coalesce(p_doc -> 'attachments', '[]')) AS x(v)
     WHERE p_doc ->> 'ubrn' IS NOT NULL
    ON CONFLICT (ubrn, url) WHERE ubrn IS NOT NULL DO UPDATE SET
        referral_id  = EXCLUDED.referral_id,
        availability = EXCLUDED.availability,
        title        = coalesce(EXCLUDED.title, t.title),
        content_type = coalesce(EXCLUDED.content_type, t.content_type),
        declared_size= coalesce(EXCLUDED.declared_size, t.declared_size);
END $$;

-- ---- one referral ----------------------------------------------------------
-- ras_store_referral (006) in two parts: the patient upsert, then the rest
-- given the patient's id (ras_store_referral_row), which the set-based
-- ras_store_referrals below calls for the rows it cannot store as a set.
-- The body is 006's, except that the answers are no longer deleted (they
-- are the document's).
CREATE FUNCTION ras_store_referral_row(p_payload bigint, p_doc jsonb, p_state text,
                                       p_service text, p_received timestamptz, p_patient bigint)
RETURNS TABLE (referral_id bigint, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_key   text := p_doc ->> 'key';
    v_ver   bigint := (p_doc ->> 'version')::bigint;
    v_pat   bigint := p_patient;
    v_id    bigint;
    v_old   referrals%ROWTYPE;
    v_p     jsonb := p_doc -> 'patient';
    v_src   text := p_doc ->> 'source';
BEGIN
    SELECT * INTO v_old FROM referrals r WHERE r.referral_key = v_key AND r.version = v_ver FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO referrals (referral_key, ubrn, version, source, payload_id, patient_id, service,
                               ers_service_id, priority, authored_at, received_at,
                               registered_practice, referrer_ods, referrer_sds, referrer_name,
                               form_questionnaire, form_version, ers_state, ers_referral_type,
                               state, doc)
        VALUES (v_key, p_doc ->> 'ubrn', v_ver, v_src, p_payload, v_pat, p_service,
                p_doc -> 'ers' ->> 'service_id', p_doc ->> 'priority',
                (p_doc ->> 'authored')::timestamptz, p_received,
                v_p ->> 'practice_ods', p_doc -> 'referrer' ->> 'org_ods',
                p_doc -> 'referrer' ->> 'sds_user_id', p_doc -> 'referrer' ->> 'name',
                p_doc -> 'form' ->> 'questionnaire', p_doc -> 'form' ->> 'version',
                p_doc -> 'ers' ->> 'state', p_doc -> 'ers' ->> 'referral_type',
                p_state, p_doc)
        ON CONFLICT (referral_key, version) DO NOTHING
        RETURNING id INTO v_id;
        IF v_id IS NULL THEN
            -- another transaction stored it first
            SELECT r.id INTO v_id FROM referrals r WHERE r.referral_key = v_key AND r.version = v_ver;
            RETURN QUERY SELECT v_id, 'duplicate'::text;
            RETURN;
        END IF;
        PERFORM ras_store_referral_parts(v_id, p_doc);
        INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
        VALUES (v_id, p_doc ->> 'ubrn', p_payload, 'referral-received', 'rasd',
                jsonb_build_object('source', v_src, 'version', v_ver, 'state', p_state,
                                   'service', p_service));
        RETURN QUERY SELECT v_id, 'created'::text;
        RETURN;
    END IF;

    -- The same version seen again.  Two e-RS views (worklist item and A005)
    -- complement each other; anything else is a duplicate.
    IF v_src IN ('ers-worklist', 'ers-referral') AND v_old.source IN ('ers-worklist', 'ers-referral')
       AND NOT (v_src = 'ers-worklist' AND v_old.source = 'ers-referral'
                AND v_old.doc @> jsonb_build_object('ers', p_doc -> 'ers')) THEN
        UPDATE referrals r SET
            doc              = ras_jsonb_merge(v_old.doc, p_doc),
            source           = CASE WHEN v_src = 'ers-referral' THEN v_src ELSE r.source END,
            patient_id       = coalesce(v_pat, r.patient_id),
            service          = coalesce(r.service, p_service),
            ers_service_id   = coalesce(p_doc -> 'ers' ->> 'service_id', r.ers_service_id),
            priority         = CASE WHEN p_doc ->> 'priority' = 'unknown' THEN r.priority
                                    ELSE p_doc ->> 'priority' END,
            authored_at      = coalesce(r.authored_at, (p_doc ->> 'authored')::timestamptz),
            referrer_ods     = coalesce(p_doc -> 'referrer' ->> 'org_ods', r.referrer_ods),
            referrer_sds     = coalesce(p_doc -> 'referrer' ->> 'sds_user_id', r.referrer_sds),
            ers_state        = coalesce(p_doc -> 'ers' ->> 'state', r.ers_state),
            ers_referral_type= coalesce(p_doc -> 'ers' ->> 'referral_type', r.ers_referral_type),
            -- a priority newly raised to urgent or two-week-wait is triaged
            -- again at once, whatever was decided (issue 12)
            state            = CASE WHEN r.state = 'awaiting-details' THEN p_state
                                    WHEN r.state IN ('review', 'decided')
                                         AND p_doc ->> 'priority' IN ('urgent', 'two-week-wait')
                                         AND p_doc ->> 'priority' IS DISTINCT FROM r.priority
                                    THEN 'new' ELSE r.state END,
            updated_at       = now()
        WHERE r.id = v_old.id;
        PERFORM ras_store_referral_parts(v_old.id, p_doc);
        INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
        VALUES (v_old.id, p_doc ->> 'ubrn', p_payload, 'referral-merged', 'rasd',
                jsonb_build_object('source', v_src, 'version', v_ver,
                                   'priority_raised', v_old.state IN ('review', 'decided')
                                       AND p_doc ->> 'priority' IN ('urgent', 'two-week-wait')
                                       AND p_doc ->> 'priority' IS DISTINCT FROM v_old.priority));
        RETURN QUERY SELECT v_old.id, 'merged'::text;
        RETURN;
    END IF;
    -- Identical content is a duplicate.  Different content under the same
    -- (key, version) is a correction the referrer sent again: the stored
    -- document becomes revision N in referral_revisions, the new one is
    -- the referral now, and it goes back to triage (a newly reported red
    -- flag must take the urgent path at once).  e-RS views were merged above.
    IF v_old.doc = p_doc OR v_old.state IN ('awaiting-details', 'related', 'superseded') THEN
        RETURN QUERY SELECT v_old.id, 'duplicate'::text;
        RETURN;
    END IF;
    INSERT INTO referral_revisions (referral_id, revision, payload_id, received_at, doc)
    VALUES (v_old.id, v_old.revision, v_old.payload_id, v_old.received_at, v_old.doc);
    UPDATE referrals r SET
        doc                 = p_doc,
        revision            = v_old.revision + 1,
        payload_id          = p_payload,
        patient_id          = coalesce(v_pat, r.patient_id),
        priority            = p_doc ->> 'priority',
        authored_at         = (p_doc ->> 'authored')::timestamptz,
        registered_practice = v_p ->> 'practice_ods',
        referrer_ods        = p_doc -> 'referrer' ->> 'org_ods',
        referrer_sds        = p_doc -> 'referrer' ->> 'sds_user_id',
        referrer_name       = p_doc -> 'referrer' ->> 'name',
        form_questionnaire  = p_doc -> 'form' ->> 'questionnaire',
        form_version        = p_doc -> 'form' ->> 'version',
        state               = 'new',
        updated_at          = now()
    WHERE r.id = v_old.id;
    PERFORM ras_store_referral_parts(v_old.id, p_doc);
    INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
    VALUES (v_old.id, p_doc ->> 'ubrn', p_payload, 'referral-revised', 'rasd',
            jsonb_build_object('source', v_src, 'version', v_ver, 'revision', v_old.revision + 1,
                               'previous_payload_id', v_old.payload_id,
                               'previous_state', v_old.state,
                               'reason', 'the same referral version arrived with different content'));
    RETURN QUERY SELECT v_old.id, 'revised'::text;
END $$;

-- One referral, as in 006: its patient upserted, then stored.  store.c
-- calls it for a run of one referral, and when it retries a batch that
-- failed one payload at a time.
CREATE OR REPLACE FUNCTION ras_store_referral(p_payload bigint, p_doc jsonb, p_state text,
                                   p_service text, p_received timestamptz)
RETURNS TABLE (referral_id bigint, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_pat   bigint;
    v_p     jsonb := p_doc -> 'patient';
BEGIN
    IF v_p ->> 'nhs_number_status' = 'valid' THEN
        INSERT INTO patients AS p (nhs_number, birth_date, family, given, gender, postcode, practice_ods)
        VALUES (v_p ->> 'nhs_number', (v_p ->> 'birth_date')::date, v_p ->> 'family',
                v_p ->> 'given', v_p ->> 'gender', v_p ->> 'postcode', v_p ->> 'practice_ods')
        ON CONFLICT (nhs_number) DO UPDATE SET
            birth_date   = coalesce(EXCLUDED.birth_date, p.birth_date),
            family       = coalesce(EXCLUDED.family, p.family),
            given        = coalesce(EXCLUDED.given, p.given),
            gender       = coalesce(EXCLUDED.gender, p.gender),
            -- a restricted record (PDS S-flag) keeps no address, not even an old one
            postcode     = CASE WHEN coalesce((v_p ->> 'restricted')::boolean, false) THEN NULL
                                ELSE coalesce(EXCLUDED.postcode, p.postcode) END,
            practice_ods = coalesce(EXCLUDED.practice_ods, p.practice_ods),
            updated_at   = now()
        RETURNING id INTO v_pat;
    END IF;
    RETURN QUERY SELECT * FROM ras_store_referral_row(p_payload, p_doc, p_state, p_service,
                                                      p_received, v_pat);
END $$;

-- ---- a batch of referrals as a set ---------------------------------------
-- ras_store_referrals(items): the referrals of a chunk of the normalise
-- stage in one call, with exactly the outcome of ras_store_referral applied
-- to each item in turn.  items is a JSON array of
--   {"payload": inbox id, "doc": the normalised referral, "state": "new" or
--    "awaiting-details", "service": the route's service hint or null}
-- and the result has one row per item: its ordinal (1-based), the referral
-- id and the outcome (created, merged, revised, duplicate).
--
-- 1. Patients: every item's patient upsert, folded per NHS number in batch
--    order (one row cannot be upserted twice by one statement): each field
--    is the last value the batch gives, else the stored one; the postcode
--    is the last item's that says anything about it, where a restricted
--    record says "none" (it keeps no address, not even an old one).
-- 2. The fast path: items whose (key, version) is not stored yet and whose
--    key and UBRN no other item of the batch has (nothing in the batch can
--    see or change them but the item itself) are inserted as one set, with
--    their attachments and referral-received events.
-- 3. The rest (a version seen before: merged, revised, duplicate; a key
--    twice in the batch) go through ras_store_referral_row one at a time,
--    in batch order, after the set.
-- Referral and event ids are therefore assigned set first, then the rest
-- (the order of ids across different referrals is not an outcome).
CREATE FUNCTION ras_store_referrals(p_items jsonb)
RETURNS TABLE (ordinal int, referral_id bigint, outcome text)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
DECLARE
    v_pats  jsonb;
    v_fast  int[];
    v_ords  int[];
    v_ids   bigint[];
    v_row   record;
BEGIN
    WITH x AS (
        SELECT i.ord, i.v -> 'doc' -> 'patient' AS p,
               coalesce((i.v -> 'doc' -> 'patient' ->> 'restricted')::boolean, false) AS restricted
          FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i(v, ord)
         WHERE i.v -> 'doc' -> 'patient' ->> 'nhs_number_status' = 'valid'),
    f AS (
        SELECT x.p ->> 'nhs_number' AS nhs_number,
               (array_agg((x.p ->> 'birth_date')::date ORDER BY x.ord DESC)
                    FILTER (WHERE x.p ->> 'birth_date' IS NOT NULL))[1] AS birth_date,
               (array_agg(x.p ->> 'family' ORDER BY x.ord DESC)
                    FILTER (WHERE x.p ->> 'family' IS NOT NULL))[1] AS family,
               (array_agg(x.p ->> 'given' ORDER BY x.ord DESC)
                    FILTER (WHERE x.p ->> 'given' IS NOT NULL))[1] AS given,
               (array_agg(x.p ->> 'gender' ORDER BY x.ord DESC)
                    FILTER (WHERE x.p ->> 'gender' IS NOT NULL))[1] AS gender,
               (array_agg(x.p ->> 'practice_ods' ORDER BY x.ord DESC)
                    FILTER (WHERE x.p ->> 'practice_ods' IS NOT NULL))[1] AS practice_ods,
               bool_or(x.restricted OR x.p ->> 'postcode' IS NOT NULL) AS postcode_said,
               (array_agg(CASE WHEN x.restricted THEN NULL ELSE x.p ->> 'postcode' END
                          ORDER BY x.ord DESC)
                    FILTER (WHERE x.restricted OR x.p ->> 'postcode' IS NOT NULL))[1] AS postcode
          FROM x GROUP BY x.p ->> 'nhs_number'),
    up AS (
        INSERT INTO patients AS p (nhs_number, birth_date, family, given, gender, postcode, practice_ods)
        SELECT f.nhs_number, f.birth_date, f.family, f.given, f.gender, f.postcode, f.practice_ods
          FROM f ORDER BY f.nhs_number
        ON CONFLICT (nhs_number) DO UPDATE SET
            birth_date   = coalesce(EXCLUDED.birth_date, p.birth_date),
            family       = coalesce(EXCLUDED.family, p.family),
            given        = coalesce(EXCLUDED.given, p.given),
            gender       = coalesce(EXCLUDED.gender, p.gender),
            postcode     = CASE WHEN (SELECT f.postcode_said FROM f WHERE f.nhs_number = EXCLUDED.nhs_number)
                                THEN EXCLUDED.postcode ELSE p.postcode END,
            practice_ods = coalesce(EXCLUDED.practice_ods, p.practice_ods),
            updated_at   = now()
        RETURNING p.nhs_number, p.id)
    SELECT coalesce(jsonb_object_agg(up.nhs_number, up.id), '{}') INTO v_pats FROM up;

    -- (each stored version looked up by its key, LATERAL ... LIMIT 1: one
    -- index probe per item whatever the planner thinks of the batch's size,
    -- never a scan of referrals)
    SELECT coalesce(array_agg(c.ord::int ORDER BY c.ord), '{}') INTO v_fast FROM (
        SELECT i.ord, i.v -> 'doc' ->> 'key' AS key, (i.v -> 'doc' ->> 'version')::bigint AS ver,
               i.v -> 'doc' ->> 'ubrn' AS ubrn,
               count(*) OVER (PARTITION BY i.v -> 'doc' ->> 'key') AS same_key,
               count(*) OVER (PARTITION BY coalesce(i.v -> 'doc' ->> 'ubrn', '#' || i.ord)) AS same_ubrn
          FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i(v, ord)) c
      LEFT JOIN LATERAL (SELECT r.id FROM referrals r
                          WHERE r.referral_key = c.key AND r.version = c.ver LIMIT 1) old ON true
     WHERE c.key IS NOT NULL AND c.ver IS NOT NULL AND c.same_key = 1 AND c.same_ubrn = 1
       AND old.id IS NULL;

    IF cardinality(v_fast) > 0 THEN
        WITH i AS (
            SELECT i.ord::int AS ord, (i.v ->> 'payload')::bigint AS payload, i.v -> 'doc' AS doc,
                   i.v ->> 'state' AS state, i.v ->> 'service' AS service
              FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i(v, ord)
             WHERE i.ord = ANY (v_fast)),
        ins AS (
            INSERT INTO referrals (referral_key, ubrn, version, source, payload_id, patient_id, service,
                                   ers_service_id, priority, authored_at, received_at,
                                   registered_practice, referrer_ods, referrer_sds, referrer_name,
                                   form_questionnaire, form_version, ers_state, ers_referral_type,
                                   state, doc)
            SELECT i.doc ->> 'key', i.doc ->> 'ubrn', (i.doc ->> 'version')::bigint, i.doc ->> 'source',
                   i.payload,
                   CASE WHEN i.doc -> 'patient' ->> 'nhs_number_status' = 'valid'
                        THEN (v_pats ->> (i.doc -> 'patient' ->> 'nhs_number'))::bigint END,
                   i.service, i.doc -> 'ers' ->> 'service_id', i.doc ->> 'priority',
                   (i.doc ->> 'authored')::timestamptz,
                   (SELECT b.received_at FROM inbox b WHERE b.id = i.payload),
                   i.doc -> 'patient' ->> 'practice_ods', i.doc -> 'referrer' ->> 'org_ods',
                   i.doc -> 'referrer' ->> 'sds_user_id', i.doc -> 'referrer' ->> 'name',
                   i.doc -> 'form' ->> 'questionnaire', i.doc -> 'form' ->> 'version',
                   i.doc -> 'ers' ->> 'state', i.doc -> 'ers' ->> 'referral_type',
                   i.state, i.doc
              FROM i ORDER BY i.ord
            ON CONFLICT (referral_key, version) DO NOTHING
            RETURNING id, referral_key),
        c AS (SELECT i.*, ins.id FROM i JOIN ins ON ins.referral_key = i.doc ->> 'key'),
        att AS (
            INSERT INTO attachments AS t (referral_id, ubrn, url, title, content_type, declared_size,
                                          availability, type, attached_by, attached_by_org)
            SELECT c.id, c.doc ->> 'ubrn', x.v ->> 'url', x.v ->> 'title', x.v ->> 'content_type',
                   (x.v ->> 'size')::bigint, x.v ->> 'availability', x.v ->> 'type',
                   x.v ->> 'attached_by', x.v ->> 'attached_by_org'
              FROM c CROSS JOIN LATERAL jsonb_array_elements(coalesce(c.doc -> 'attachments', '[]')) AS x(v)
             WHERE c.doc ->> 'ubrn' IS NOT NULL
            ON CONFLICT (ubrn, url) WHERE ubrn IS NOT NULL DO UPDATE SET
                referral_id  = EXCLUDED.referral_id,
                availability = EXCLUDED.availability,
                title        = coalesce(EXCLUDED.title, t.title),
                content_type = coalesce(EXCLUDED.content_type, t.content_type),
                declared_size= coalesce(EXCLUDED.declared_size, t.declared_size)),
        ev AS (
            INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
            SELECT c.id, c.doc ->> 'ubrn', c.payload, 'referral-received', 'rasd',
                   jsonb_build_object('source', c.doc ->> 'source',
                                      'version', (c.doc ->> 'version')::bigint,
                                      'state', c.state, 'service', c.service)
              FROM c ORDER BY c.ord)
        SELECT coalesce(array_agg(c.ord ORDER BY c.ord), '{}'), coalesce(array_agg(c.id ORDER BY c.ord), '{}')
          INTO v_ords, v_ids FROM c;

        RETURN QUERY SELECT u.o, u.id, 'created'::text FROM unnest(v_ords, v_ids) AS u(o, id);
        -- another transaction stored one of them first: a duplicate, as in
        -- ras_store_referral_row
        IF cardinality(v_ords) < cardinality(v_fast) THEN
            RETURN QUERY
                SELECT i.ord::int, old.id, 'duplicate'::text
                  FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i(v, ord)
                 CROSS JOIN LATERAL (SELECT r.id FROM referrals r
                                      WHERE r.referral_key = i.v -> 'doc' ->> 'key'
                                        AND r.version = (i.v -> 'doc' ->> 'version')::bigint
                                      LIMIT 1) old
                 WHERE i.ord = ANY (v_fast) AND NOT (i.ord = ANY (v_ords));
        END IF;
    END IF;

    FOR v_row IN
        SELECT i.ord::int AS ord, i.v AS item
          FROM jsonb_array_elements(p_items) WITH ORDINALITY AS i(v, ord)
         WHERE NOT (i.ord = ANY (v_fast))
         ORDER BY i.ord
    LOOP
        RETURN QUERY
            SELECT v_row.ord, s.referral_id, s.outcome
              FROM ras_store_referral_row(
                       (v_row.item ->> 'payload')::bigint, v_row.item -> 'doc', v_row.item ->> 'state',
                       v_row.item ->> 'service',
                       (SELECT b.received_at FROM inbox b WHERE b.id = (v_row.item ->> 'payload')::bigint),
                       CASE WHEN v_row.item -> 'doc' -> 'patient' ->> 'nhs_number_status' = 'valid'
                            THEN (v_pats ->> (v_row.item -> 'doc' -> 'patient' ->> 'nhs_number'))::bigint
                       END) AS s;
    END LOOP;
END $$;
