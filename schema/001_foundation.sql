-- 001 foundation: the inbox of received payloads, patients, referrals with
-- their form answers, conditions and attachments, and the append-only
-- event log.  See schema/README for the conventions.

-- Every payload rasd receives, verbatim, before anything parses it.
CREATE TABLE inbox (
    id             bigserial PRIMARY KEY,
    sha256         text NOT NULL UNIQUE,         -- hex digest of the whole payload
    source         text NOT NULL,                -- file, http, spool, mesh, ers
    source_ref     text,                         -- file name, path, MESH id: never patient data
    content_type   text,
    body           bytea NOT NULL,
    size           bigint NOT NULL,              -- size of the payload as received
    truncated      boolean NOT NULL DEFAULT false, -- body holds only the first RAS_PAYLOAD_KEEP_MAX bytes
    received_at    timestamptz NOT NULL DEFAULT now(),
    state          text NOT NULL DEFAULT 'received'
                   CHECK (state IN ('received', 'stored', 'duplicate', 'partial', 'rejected')),
    kind           text,                         -- detected payload kind (fhir-bundle, ers-worklist, …)
    error          text,                         -- why it was rejected (or what part was)
    service_hint   text,                         -- rasd service id given by the route
    ubrn_hint      text,                         -- referral context given by the route (e-RS fetches)
    correlation_id text,
    processed_at   timestamptz
);
CREATE INDEX inbox_pending ON inbox (id) WHERE state = 'received';
CREATE INDEX inbox_rejected ON inbox (received_at) WHERE state IN ('rejected', 'partial');

CREATE TABLE patients (
    id            bigserial PRIMARY KEY,
    nhs_number    text NOT NULL UNIQUE CHECK (nhs_number ~ '^[0-9]{10}$'),
    birth_date    date,
    family        text,
    given         text,
    gender        text,
    postcode      text,
    practice_ods  text,                         -- registered GP practice
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- One row per (referral, version).  referral_key is the UBRN, or
-- "local:<system>|<value>" for referrals that arrived without one.
CREATE TABLE referrals (
    id                  bigserial PRIMARY KEY,
    referral_key        text NOT NULL,
    ubrn                text,
    version             bigint NOT NULL CHECK (version > 0),
    source              text NOT NULL,           -- payload kind that created it
    payload_id          bigint REFERENCES inbox (id),
    patient_id          bigint REFERENCES patients (id),
    service             text,                    -- rasd service id (dorset-2019, midnotts, …)
    ers_service_id      text,
    priority            text NOT NULL,
    authored_at         timestamptz,
    received_at         timestamptz NOT NULL,
    registered_practice text,
    referrer_ods        text,
    referrer_sds        text,
    referrer_name       text,
    form_questionnaire  text,
    form_version        text,
    ers_state           text,
    ers_referral_type   text,
    -- Every referral state, and who sets it (README "Referral states"):
    --   awaiting-details  an e-RS worklist item whose referral is not fetched yet (store)
    --   new               ready for triage (store; a re-triage sends a referral back)
    --   review            its current decision awaits a clinician: a review or a
    --                     recommendation (triage, 002)
    --   decided           its current decision is final: the rules under the
    --                     service's automation level, or a clinician (triage, 002)
    --   unassigned        no rasd service could be given to it (triage)
    --   triage-failed     it could not be triaged; the event log says why (triage)
    --   related           fetched only because another e-RS referral names it (e-RS, 003)
    --   superseded        a worklist stub of a version e-RS no longer serves (e-RS, 003)
    state               text NOT NULL CHECK (state IN ('awaiting-details', 'new', 'review',
                            'decided', 'unassigned', 'triage-failed', 'related', 'superseded')),
    doc                 jsonb NOT NULL,          -- the normalised referral (rasctl show)
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    UNIQUE (referral_key, version)
);
CREATE INDEX referrals_ubrn ON referrals (ubrn);
CREATE INDEX referrals_state ON referrals (state, id);
CREATE INDEX referrals_patient ON referrals (patient_id);

CREATE TABLE referral_answers (
    referral_id    bigint NOT NULL REFERENCES referrals (id) ON DELETE CASCADE,
    seq            int NOT NULL,
    link_id        text NOT NULL,
    group_link_id  text,
    group_index    int NOT NULL DEFAULT 0,
    value_type     text NOT NULL,
    value_boolean  boolean,
    value_integer  bigint,
    value_decimal  double precision,
    value_text     text,
    value_system   text,
    value_code     text,
    PRIMARY KEY (referral_id, seq)
);

CREATE TABLE referral_conditions (
    referral_id     bigint NOT NULL REFERENCES referrals (id) ON DELETE CASCADE,
    seq             int NOT NULL,
    system          text,
    code            text,
    display         text,
    clinical_status text,
    PRIMARY KEY (referral_id, seq)
);

-- Attachments: metadata as listed by e-RS, plus the content once fetched
-- (capped at RAS_ATTACHMENT_MAX, 20 MiB; larger files are marked too-big).
CREATE TABLE attachments (
    id               bigserial PRIMARY KEY,
    referral_id      bigint REFERENCES referrals (id),
    ubrn             text,
    url              text NOT NULL,             -- "Binary/<id>" as e-RS names it
    title            text,
    content_type     text,
    declared_size    bigint,
    availability     text,                      -- AVAILABLE, PENDING, THREATS_FOUND, VALIDATION_FAILED
    type             text,
    attached_by      text,
    attached_by_org  text,
    content          bytea,
    content_sha256   text,
    content_size     bigint CHECK (content_size IS NULL OR content_size <= 20971520),
    state            text NOT NULL DEFAULT 'listed'
                     CHECK (state IN ('listed', 'fetched', 'pending', 'blocked', 'failed', 'too-big')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    error            text,
    fetched_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX attachments_ubrn_url ON attachments (ubrn, url) WHERE ubrn IS NOT NULL;
CREATE INDEX attachments_referral ON attachments (referral_id);

-- The audit trail.  Rows are only ever inserted.
CREATE TABLE events (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    referral_id  bigint,
    ubrn         text,
    payload_id   bigint,
    kind         text NOT NULL,
    actor        text NOT NULL,                 -- rasd, rasctl, or an SDS user id
    detail       jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_referral ON events (referral_id, id);
CREATE INDEX events_ubrn ON events (ubrn, id);

CREATE FUNCTION ras_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION ras_events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION ras_events_append_only();

-- Merge two normalised referral documents: objects merge key by key,
-- anything else from `b` wins unless it is null.
CREATE FUNCTION ras_jsonb_merge(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN jsonb_typeof(a) = 'object' AND jsonb_typeof(b) = 'object' THEN
            (SELECT coalesce(jsonb_object_agg(k,
                        CASE WHEN a ? k AND b ? k THEN ras_jsonb_merge(a -> k, b -> k)
                             WHEN b ? k THEN b -> k
                             ELSE a -> k END), '{}'::jsonb)
               FROM (SELECT jsonb_object_keys(a) AS k UNION SELECT jsonb_object_keys(b)) keys)
        WHEN b IS NULL OR jsonb_typeof(b) = 'null' THEN a
        ELSE b
    END
$$;

-- Store one normalised referral (see lib/store.c).  Returns the referral id
-- and what happened: created, merged (another e-RS view of the same
-- version added detail) or duplicate (already stored; nothing changed).
CREATE FUNCTION ras_store_referral(p_payload bigint, p_doc jsonb, p_state text,
                                   p_service text, p_received timestamptz)
RETURNS TABLE (referral_id bigint, outcome text)
LANGUAGE plpgsql AS $$
DECLARE
    v_key   text := p_doc ->> 'key';
    v_ver   bigint := (p_doc ->> 'version')::bigint;
    v_pat   bigint;
    v_id    bigint;
    v_old   referrals%ROWTYPE;
    v_p     jsonb := p_doc -> 'patient';
    v_src   text := p_doc ->> 'source';
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
            postcode     = coalesce(EXCLUDED.postcode, p.postcode),
            practice_ods = coalesce(EXCLUDED.practice_ods, p.practice_ods),
            updated_at   = now()
        RETURNING id INTO v_pat;
    END IF;

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
            state            = CASE WHEN r.state = 'awaiting-details' THEN p_state ELSE r.state END,
            updated_at       = now()
        WHERE r.id = v_old.id;
        PERFORM ras_store_referral_parts(v_old.id, p_doc);
        INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
        VALUES (v_old.id, p_doc ->> 'ubrn', p_payload, 'referral-merged', 'rasd',
                jsonb_build_object('source', v_src, 'version', v_ver));
        RETURN QUERY SELECT v_old.id, 'merged'::text;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_old.id, 'duplicate'::text;
END $$;

-- Answers, conditions and attachments of a referral document.  Answers and
-- conditions are replaced only when the document carries them; attachment
-- metadata is upserted by (UBRN, url) and never loses fetched content.
CREATE FUNCTION ras_store_referral_parts(p_id bigint, p_doc jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p_doc -> 'form' IS NOT NULL AND jsonb_typeof(p_doc -> 'form') = 'object' THEN
        DELETE FROM referral_answers WHERE referral_id = p_id;
        INSERT INTO referral_answers (referral_id, seq, link_id, group_link_id, group_index,
                                      value_type, value_boolean, value_integer, value_decimal,
                                      value_text, value_system, value_code)
        SELECT p_id, a.ord, a.v ->> 'link_id', a.v ->> 'group',
               coalesce((a.v ->> 'group_index')::int, 0), a.v ->> 'type',
               CASE WHEN a.v ->> 'type' = 'boolean' THEN (a.v ->> 'value')::boolean END,
               CASE WHEN a.v ->> 'type' = 'integer' THEN (a.v ->> 'value')::bigint END,
               CASE WHEN a.v ->> 'type' = 'decimal' THEN (a.v ->> 'value')::double precision END,
               CASE WHEN a.v ->> 'type' IN ('string', 'date', 'other') THEN a.v ->> 'value'
                    WHEN a.v ->> 'type' = 'coding' THEN a.v ->> 'display' END,
               a.v ->> 'system', a.v ->> 'code'
          FROM jsonb_array_elements(p_doc -> 'form' -> 'answers') WITH ORDINALITY AS a(v, ord);
        UPDATE referrals SET form_questionnaire = p_doc -> 'form' ->> 'questionnaire',
                             form_version = p_doc -> 'form' ->> 'version'
         WHERE id = p_id;
    END IF;
    IF jsonb_array_length(coalesce(p_doc -> 'conditions', '[]')) > 0 THEN
        DELETE FROM referral_conditions WHERE referral_id = p_id;
        INSERT INTO referral_conditions (referral_id, seq, system, code, display, clinical_status)
        SELECT p_id, c.ord, c.v ->> 'system', c.v ->> 'code', c.v ->> 'display',
               c.v ->> 'clinical_status'
          FROM jsonb_array_elements(p_doc -> 'conditions') WITH ORDINALITY AS c(v, ord);
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

-- A referral form that arrived on its own (an e-RS attachment): it becomes
-- the form of the latest stored version of the referral with that UBRN.
CREATE FUNCTION ras_store_form(p_ubrn text, p_form jsonb, p_payload bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT id INTO v_id FROM referrals WHERE ubrn = p_ubrn ORDER BY version DESC LIMIT 1 FOR UPDATE;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'no stored referral with UBRN %', p_ubrn USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE referrals SET doc = jsonb_set(doc, '{form}', p_form), updated_at = now() WHERE id = v_id;
    PERFORM ras_store_referral_parts(v_id, jsonb_build_object('form', p_form));
    INSERT INTO events (referral_id, ubrn, payload_id, kind, actor)
    VALUES (v_id, p_ubrn, p_payload, 'form-received', 'rasd');
    RETURN v_id;
END $$;
