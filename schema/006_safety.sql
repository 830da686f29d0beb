-- 006 safety: resubmissions as revisions, questionnaires that are not the
-- referral form kept beside it (issue 12).

-- Earlier documents of a referral version that arrived again with different
-- content.  The referral row always holds the newest revision; every older
-- one is kept here, never changed.
ALTER TABLE referrals ADD COLUMN revision int NOT NULL DEFAULT 1 CHECK (revision > 0);

CREATE TABLE referral_revisions (
    referral_id  bigint NOT NULL REFERENCES referrals (id),
    revision     int NOT NULL,
    payload_id   bigint REFERENCES inbox (id),
    received_at  timestamptz NOT NULL,
    superseded_at timestamptz NOT NULL DEFAULT now(),
    doc          jsonb NOT NULL,
    PRIMARY KEY (referral_id, revision)
);

CREATE FUNCTION ras_revisions_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'referral revisions are kept unchanged (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER referral_revisions_no_update BEFORE UPDATE OR DELETE ON referral_revisions
    FOR EACH ROW EXECUTE FUNCTION ras_revisions_append_only();

-- Store one normalised referral (lib/intake/store.c).  Returns the referral
-- id and what happened: created, merged (another e-RS view of the same
-- version added detail), revised (the same version with different content:
-- a new revision, triaged again) or duplicate (nothing changed).
CREATE OR REPLACE FUNCTION ras_store_referral(p_payload bigint, p_doc jsonb, p_state text,
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
            -- a restricted record (PDS S-flag) keeps no address, not even an old one
            postcode     = CASE WHEN coalesce((v_p ->> 'restricted')::boolean, false) THEN NULL
                                ELSE coalesce(EXCLUDED.postcode, p.postcode) END,
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
    IF p_doc -> 'form' IS NULL THEN
        DELETE FROM referral_answers WHERE referral_id = v_old.id;
    END IF;
    PERFORM ras_store_referral_parts(v_old.id, p_doc);
    INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
    VALUES (v_old.id, p_doc ->> 'ubrn', p_payload, 'referral-revised', 'rasd',
            jsonb_build_object('source', v_src, 'version', v_ver, 'revision', v_old.revision + 1,
                               'previous_payload_id', v_old.payload_id,
                               'previous_state', v_old.state,
                               'reason', 'the same referral version arrived with different content'));
    RETURN QUERY SELECT v_old.id, 'revised'::text;
END $$;


-- A QuestionnaireResponse that arrived on its own for a referral (an e-RS
-- attachment) but does not answer rasd's referral form (store.c decides):
-- kept in the referral document's other_forms, never read as the form.
-- The referral goes back to triage unless a final decision stands, so the
-- safety net sees it (a red flag in it must not wait).
CREATE FUNCTION ras_store_other_form(p_ubrn text, p_form jsonb, p_payload bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_state text;
BEGIN
    SELECT id, state INTO v_id, v_state FROM referrals WHERE ubrn = p_ubrn
     ORDER BY (state = 'superseded'), version DESC LIMIT 1 FOR UPDATE;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'no stored referral with UBRN %', p_ubrn USING ERRCODE = 'no_data_found';
    END IF;
    UPDATE referrals SET
        doc = jsonb_set(doc, '{other_forms}', coalesce(doc -> 'other_forms', '[]'::jsonb)
                                              || jsonb_build_array(p_form)),
        state = CASE WHEN state IN ('review', 'decided') THEN 'new' ELSE state END,
        updated_at = now()
    WHERE id = v_id;
    INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
    VALUES (v_id, p_ubrn, p_payload, 'other-form-received', 'rasd',
            jsonb_build_object('questionnaire', p_form ->> 'questionnaire',
                               'retriage', v_state IN ('review', 'decided')));
    RETURN v_id;
END $$;

-- (lib/intake/store.c calls this, not 001's ras_store_form, so that a later
-- migration replacing ras_store_form cannot undo it; like 009's, it attaches
-- the form to the version e-RS serves, never to a superseded worklist stub.)
-- A referral form that arrived on its own (an e-RS attachment), now aware
-- that a referral may receive more than one (e-RS referrers attach the
-- same form as JSON, XML and XHTML): the latest is the form, and the one it
-- replaces is kept in other_forms, where the safety net still reads it for
-- danger.  A referral in review goes back to triage (002's trigger); one
-- with a final decision only when the new form reports a red flag or
-- suspected cancer (e-RS may already have been told: a person must see it).
CREATE FUNCTION ras_store_referral_form(p_ubrn text, p_form jsonb, p_payload bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    v_id     bigint;
    v_doc    jsonb;
    v_state  text;
    v_kept   boolean;
    v_danger boolean := p_form -> 'answers' @> '[{"link_id": "red-flags"}]'
                        OR p_form -> 'answers' @> '[{"link_id": "suspected-cancer", "value": true}]';
BEGIN
    SELECT id, doc, state INTO v_id, v_doc, v_state FROM referrals WHERE ubrn = p_ubrn
     ORDER BY (state = 'superseded'), version DESC LIMIT 1 FOR UPDATE;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'no stored referral with UBRN %', p_ubrn USING ERRCODE = 'no_data_found';
    END IF;
    v_kept := v_doc -> 'form' IS NOT NULL AND v_doc -> 'form' <> p_form;
    IF v_kept THEN
        v_doc := jsonb_set(v_doc, '{other_forms}', coalesce(v_doc -> 'other_forms', '[]'::jsonb)
                                                   || jsonb_build_array(v_doc -> 'form'));
    END IF;
    UPDATE referrals SET
        doc = jsonb_set(v_doc, '{form}', p_form),
        state = CASE WHEN state = 'decided' AND v_danger THEN 'new' ELSE state END,
        updated_at = now()
    WHERE id = v_id;
    PERFORM ras_store_referral_parts(v_id, jsonb_build_object('form', p_form));
    INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)
    VALUES (v_id, p_ubrn, p_payload, 'form-received', 'rasd',
            jsonb_build_object('replaced_form_kept', v_kept,
                               'retriage', v_state = 'decided' AND v_danger));
    RETURN v_id;
END $$;
