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
