-- 012 ui: the clinicians' pages (issue 13, docs/design/ui.md).
--
-- Sign-ins in progress and sessions are kept here, server-side, so that
-- every rasd instance behind one address knows them and a restart signs
-- nobody out.  Only digests of the browser's secrets are stored: the
-- cookie value (session) and the OAuth2 state (sign-in) are looked up by
-- their SHA-256, so a read of this table cannot be replayed as a cookie.
-- Who viewed which referral, who signed in and out, and who decided what
-- through the pages are rows in the event log (events), like every other
-- audit entry.

-- A sign-in between the redirect to the identity provider and its answer.
CREATE TABLE ui_logins (
    state_sha256   text PRIMARY KEY,               -- hex SHA-256 of the OAuth2 state
    nonce          text NOT NULL,                  -- the ID token must carry it back
    code_verifier  text NOT NULL,                  -- PKCE (S256)
    return_to      text,                           -- a path on this site
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL
);
CREATE INDEX ui_logins_expires ON ui_logins (expires_at);

-- A signed-in clinician.  roles: 'clinician', 'admin' (mapped from the
-- CIS2 RBAC role the user selected); role_code: that CIS2 role as given.
CREATE TABLE ui_sessions (
    id             bigserial PRIMARY KEY,
    token_sha256   text NOT NULL UNIQUE,           -- hex SHA-256 of the cookie value
    sds_user_id    text NOT NULL CHECK (sds_user_id ~ '^[0-9]{12}$'),
    name           text,                           -- the clinician's name, as CIS2 gives it
    roles          text[] NOT NULL,
    role_code      text,
    csrf           text NOT NULL,                  -- the token every form of this session carries
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    ended_at       timestamptz                     -- signed out
);
CREATE INDEX ui_sessions_expires ON ui_sessions (expires_at) WHERE ended_at IS NULL;

-- ---- merging safety (006) and operations (009) ----------------------------
-- Both replaced ras_store_form: safety keeps the form a new one replaces
-- (other_forms, read by the safety net) and sends a decided referral with a
-- dangerous new form back to triage; operations attaches a form to the
-- version e-RS serves, never a superseded worklist stub.  009 ran after 006
-- and dropped safety's version; this is both.  (Here because the branch
-- that first builds them together owns this number; it moves with whichever
-- migration the lead makes the later one.)
CREATE OR REPLACE FUNCTION ras_store_form(p_ubrn text, p_form jsonb, p_payload bigint) RETURNS bigint
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
