-- 007 pds: patient demographics from the Personal Demographics Service
-- (issue 10; docs/design/pds.md).
--
-- Every PDS response is stored verbatim (pds_lookups) before anything uses
-- it.  A referral that needs demographics waits in state "demographics"
-- with a pds_checks row until its lookup has an answer; the patient row
-- then carries the PDS values beside what referrals sent (the referral's
-- own document is never changed), and the referral goes back to "new" to
-- be triaged with them.

ALTER TABLE referrals DROP CONSTRAINT referrals_state_check;
ALTER TABLE referrals ADD CONSTRAINT referrals_state_check CHECK (state IN (
    'awaiting-details', 'new', 'demographics', 'review', 'decided', 'unassigned',
    'triage-failed', 'related', 'superseded'));

-- Every lookup, as sent and as answered.
CREATE TABLE pds_lookups (
    id              bigserial PRIMARY KEY,
    nhs_number      text NOT NULL,              -- the number asked for
    answered_id     text,                       -- Patient.id (differs: superseded)
    referral_id     bigint REFERENCES referrals (id),
    request_id      text,                       -- X-Request-ID (the same on every retry)
    correlation_id  text,
    attempts        int NOT NULL DEFAULT 0,
    status          int,                        -- HTTP status of the last attempt
    result          text NOT NULL CHECK (result IN ('found', 'not-found', 'invalidated', 'invalid',
                                                    'refused', 'unavailable')),
    code            text,                       -- Spine error code
    etag            text,
    version_id      text,                       -- meta.versionId
    content_type    text,
    body            bytea,                      -- the response, verbatim
    summary         jsonb,                      -- ras_pds_patient_to_json (found)
    error           text,
    actor           text NOT NULL,              -- rasd, rasctl
    looked_up_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pds_lookups_number ON pds_lookups (nhs_number, id);
CREATE INDEX pds_lookups_referral ON pds_lookups (referral_id) WHERE referral_id IS NOT NULL;
CREATE INDEX pds_lookups_result ON pds_lookups (result, looked_up_at);

CREATE TRIGGER pds_lookups_no_update BEFORE UPDATE OR DELETE ON pds_lookups
    FOR EACH ROW EXECUTE FUNCTION ras_events_append_only();

-- A referral's demographics: waiting (PDS not answered yet; the referral is
-- in state "demographics") or done (the lookup that answered).
CREATE TABLE pds_checks (
    referral_id      bigint PRIMARY KEY REFERENCES referrals (id),
    nhs_number       text NOT NULL,             -- the number to look up (the new one once superseded)
    state            text NOT NULL CHECK (state IN ('waiting', 'done')),
    result           text,                      -- of the last lookup
    lookup_id        bigint REFERENCES pds_lookups (id),
    attempts         int NOT NULL DEFAULT 0,    -- lookups tried
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    waiting_since    timestamptz NOT NULL DEFAULT now(),
    differences      jsonb NOT NULL DEFAULT '{}', -- verify: referral value beside the PDS value
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pds_checks_due ON pds_checks (next_attempt_at) WHERE state = 'waiting';

-- The patient row gains what PDS says.  family/given/birth_date/gender/
-- postcode/practice_ods keep what referrals sent; the pds_* columns are
-- PDS's.  A restricted patient never has an address here.
ALTER TABLE patients
    ADD COLUMN pds_family        text,
    ADD COLUMN pds_given         text,
    ADD COLUMN pds_birth_date    text,           -- yyyy-mm-dd, yyyy-mm or yyyy
    ADD COLUMN pds_gender        text,
    ADD COLUMN pds_address       jsonb,          -- {use, lines, postcode}; never for restricted
    ADD COLUMN pds_practice_ods  text,
    ADD COLUMN pds_deceased      text,
    ADD COLUMN pds_security      text,
    ADD COLUMN pds_restricted    boolean,
    ADD COLUMN pds_version       text,
    ADD COLUMN pds_lookup_id     bigint REFERENCES pds_lookups (id),
    ADD COLUMN pds_checked_at    timestamptz,
    ADD COLUMN superseded_by     text;           -- PDS answered this number with another

-- Store one PDS answer for a patient (and its referral, when there is
-- one): the patient row of the number PDS answered with gets the PDS
-- values; a superseded number's row is marked and its referrals move to
-- the new row; the check is done and (p_retriage) the referral goes back
-- to triage.
-- Returns the patient id.
CREATE FUNCTION ras_pds_apply(p_lookup bigint, p_referral bigint, p_actor text,
                              p_differences jsonb, p_retriage boolean)
RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    l      pds_lookups%ROWTYPE;
    s      jsonb;
    v_pat  bigint;
    v_ubrn text;
BEGIN
    SELECT * INTO l FROM pds_lookups WHERE id = p_lookup;
    s := l.summary;
    IF l.result = 'found' THEN
        INSERT INTO patients AS p (nhs_number) VALUES (l.answered_id)
        ON CONFLICT (nhs_number) DO UPDATE SET updated_at = now()
        RETURNING id INTO v_pat;
        UPDATE patients SET
            pds_family       = s -> 'name' ->> 'family',
            pds_given        = s -> 'name' ->> 'given',
            pds_birth_date   = s ->> 'birth_date',
            pds_gender       = s ->> 'gender',
            -- NOTES §7: a restricted record drops any location data held before
            pds_address      = CASE WHEN (s ->> 'restricted')::boolean THEN NULL ELSE s -> 'address' END,
            pds_practice_ods = CASE WHEN (s ->> 'restricted')::boolean THEN NULL ELSE s ->> 'practice_ods' END,
            postcode         = CASE WHEN (s ->> 'restricted')::boolean THEN NULL ELSE postcode END,
            pds_deceased     = s ->> 'deceased',
            pds_security     = s ->> 'security',
            pds_restricted   = (s ->> 'restricted')::boolean,
            pds_version      = l.version_id,
            pds_lookup_id    = l.id,
            pds_checked_at   = l.looked_up_at,
            updated_at       = now()
        WHERE id = v_pat;
        IF l.answered_id <> l.nhs_number THEN
            UPDATE patients SET superseded_by = l.answered_id, updated_at = now()
             WHERE nhs_number = l.nhs_number;
            INSERT INTO patients (nhs_number, superseded_by) VALUES (l.nhs_number, l.answered_id)
            ON CONFLICT (nhs_number) DO NOTHING;
        END IF;
    END IF;
    IF p_referral IS NOT NULL THEN
        SELECT ubrn INTO v_ubrn FROM referrals WHERE id = p_referral;
        IF v_pat IS NOT NULL THEN
            -- the practice letters go to: PDS's when the referral named none
            -- (never for a restricted patient, NOTES §7)
            UPDATE referrals SET patient_id = v_pat,
                   registered_practice = coalesce(registered_practice,
                       CASE WHEN (s ->> 'restricted')::boolean THEN NULL ELSE s ->> 'practice_ods' END),
                   updated_at = now()
             WHERE id = p_referral;
        END IF;
        INSERT INTO pds_checks AS k (referral_id, nhs_number, state, result, lookup_id, attempts,
                                     differences)
        VALUES (p_referral, coalesce(l.answered_id, l.nhs_number), 'done', l.result, l.id, 1,
                coalesce(p_differences, '{}'))
        ON CONFLICT (referral_id) DO UPDATE SET
            nhs_number = coalesce(l.answered_id, k.nhs_number), state = 'done', result = l.result,
            lookup_id = l.id, attempts = k.attempts + 1,
            differences = coalesce(p_differences, '{}'), updated_at = now();
        -- back to triage (not when the record is only read again for letters)
        UPDATE referrals SET state = 'new', updated_at = now()
         WHERE id = p_referral AND p_retriage AND state IN ('demographics', 'new', 'review');
        INSERT INTO events (referral_id, ubrn, kind, actor, detail)
        VALUES (p_referral, v_ubrn, 'pds-lookup', p_actor,
                jsonb_strip_nulls(jsonb_build_object('lookup', l.id, 'result', l.result,
                    'version', l.version_id, 'request_id', l.request_id,
                    'restricted', (s ->> 'restricted')::boolean,
                    'deceased', s ->> 'deceased' IS NOT NULL,
                    'differences', CASE WHEN p_differences = '{}' THEN NULL
                                        ELSE (SELECT jsonb_agg(k) FROM jsonb_object_keys(p_differences) k) END)));
        IF l.result = 'found' AND l.answered_id <> l.nhs_number THEN
            INSERT INTO events (referral_id, ubrn, kind, actor, detail)
            VALUES (p_referral, v_ubrn, 'pds-superseded', p_actor,
                    jsonb_build_object('lookup', l.id, 'superseded', l.nhs_number,
                                       'now', l.answered_id));
        END IF;
    END IF;
    RETURN v_pat;
END $$;
