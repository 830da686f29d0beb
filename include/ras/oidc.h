/*
 * oidc: signing clinicians in with NHS CIS2 (OpenID Connect), for the
 * clinicians' pages (docs/design/ui.md).  The only file that includes
 * cjose: every JOSE object (the client assertion rasd signs, the ID token
 * it verifies, the provider's JWKS) goes through it.
 *
 * The flow is the authorization code flow with PKCE (S256):
 *
 *   ras_oidc_begin()   discovery (cached), a fresh state, nonce and code
 *                      verifier, and the authorization URL to send the
 *                      browser to;
 *   ras_oidc_finish()  the code exchanged at the token endpoint with
 *                      private_key_jwt client authentication (a JWT signed
 *                      with [ui] client_key, aud = the token endpoint), the
 *                      ID token checked (signature against the provider's
 *                      JWKS, alg not none nor HMAC, iss, aud/azp, exp, iat,
 *                      nonce), then the userinfo endpoint read with the
 *                      access token for the national RBAC roles (its sub
 *                      must be the ID token's).
 *
 * Each refusal is RAS_EINVALID with a one-line reason naming the check
 * that failed (never a token or a claim value other than the subject);
 * RAS_EIO / RAS_ETIMEDOUT when the provider could not be reached.
 */
#ifndef RAS_OIDC_H
#define RAS_OIDC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/json.h"
#include "ras/limits.h"

struct ras_oidc;

/* Seconds of clock difference tolerated on exp and iat. */
#define RAS_OIDC_LEEWAY 60

struct ras_oidc_opts {
	const char *issuer;              /* exactly as the provider's discovery document says */
	const char *client_id;
	const char *client_key;          /* PEM RSA private key or a private JWK (JSON) */
	size_t client_key_len;
	const char *client_key_id;       /* kid of the client assertion */
	const char *redirect_url;
	const char *scope;               /* "openid profile nationalrbacaccess" */
	const char *acr_values;          /* NULL: none */
	const char *ca_file;             /* NULL: the system's */
	bool allow_http_loopback;
};

int ras_oidc_new(const struct ras_oidc_opts *opts, struct ras_oidc **out);
void ras_oidc_free(struct ras_oidc *o);

/* Random values are base64url of 32 random bytes (43 characters). */
#define RAS_OIDC_RANDOM_LEN 44

struct ras_oidc_start {
	char state[RAS_OIDC_RANDOM_LEN];
	char nonce[RAS_OIDC_RANDOM_LEN];
	char verifier[RAS_OIDC_RANDOM_LEN];
	char *url;                       /* the authorization request (malloc'd) */
};

int ras_oidc_begin(struct ras_oidc *o, struct ras_oidc_start *out);
void ras_oidc_start_release(struct ras_oidc_start *s);

struct ras_oidc_identity {
	char sub[RAS_ID_MAX + 1];        /* CIS2: the user's SDS user id */
	char name[256];                  /* name claim, may be empty */
	char selected_role[RAS_ID_MAX + 1]; /* selected_roleid, may be empty */
	json_t *rbac_roles;              /* nhsid_nrbac_roles (array, owned), may be NULL */
};

/* Exchange `code` and check everything (above).  `now` is the wall clock
 * the expiry is judged by. */
int ras_oidc_finish(struct ras_oidc *o, const char *code, const char *verifier, const char *nonce,
    int64_t now, struct ras_oidc_identity *out);
void ras_oidc_identity_release(struct ras_oidc_identity *id);

/* The role codes of the identity's selected RBAC role (the one whose
 * person_roleid is selected_roleid; every role when none is selected):
 * calls fn with each role_code ("S8000:G8000:R8000").  Returns the count
 * of roles looked at. */
size_t ras_oidc_role_codes(const struct ras_oidc_identity *id,
    void (*fn)(const char *role_code, void *ctx), void *ctx);

#endif
