/*
 * nhsapi_auth: the access token for calls to APIs of the NHS API platform
 * (e-RS, PDS): one module serves both, each client holding its own
 * instance (its own key, API key and cached token).  ers/NOTES §3,
 * pds/NOTES §3.1: the same identity service and the same grant.
 *
 * Application-restricted: a client assertion JWT signed with RS512 —
 * header {alg: RS512, typ: JWT, kid}, claims {iss = sub = API key, aud =
 * the token URL exactly, jti = a new UUID, exp = now + 290 s (APIM refuses
 * more than 300 s ahead)} — is exchanged at the token URL (OAuth2 client
 * credentials, private_key_jwt).  The token is cached and renewed a minute
 * before it expires (expires_in arrives as a JSON string, "599"; a number
 * is accepted too); a 401 from e-RS invalidates it.
 *
 * User-restricted: the bearer token is read from a file that another
 * process (the CIS2 login helper) keeps fresh; the file is read again
 * whenever its inode, size or modification time changes.
 *
 * The private key and tokens never appear in messages.
 */
#ifndef RAS_NHSAPI_AUTH_H
#define RAS_NHSAPI_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ras_buf;
struct ras_http;
struct ras_nhsapi_auth;

/* The access modes; e-RS and PDS both use these values (enum ras_ers_mode
 * has the same numbers). */
enum ras_nhsapi_mode {
	RAS_NHSAPI_APPLICATION = 1,       /* application-restricted: signed JWT client credentials */
	RAS_NHSAPI_USER,                  /* user-restricted: bearer token from a file */
	RAS_NHSAPI_SANDBOX,               /* no token (sandboxes, local fakes); never production */
};

struct ras_nhsapi_auth_opts {
	enum ras_nhsapi_mode mode;
	const char *section;              /* config section for messages ("ers" when NULL) */
	const char *label;                /* "an e-RS" (default), "a PDS": in messages */
	const char *token_url;
	const char *api_key;
	const char *kid;
	const char *private_key_pem;      /* copied */
	size_t private_key_len;
	const char *bearer_token_file;
	long timeout_ms;
};

int ras_nhsapi_auth_new(const struct ras_nhsapi_auth_opts *o, struct ras_nhsapi_auth **out);
void ras_nhsapi_auth_free(struct ras_nhsapi_auth *a);

/* A token request made while getting the header, for the call log. */
struct ras_nhsapi_auth_call {
	bool made;
	long status;                      /* 0 when no response */
	double seconds;
	char correlation_id[40];
	char request_id[128];
	char error[256];
};

/*
 * The value for the Authorization header ("Bearer …"), fetching a token or
 * re-reading the token file when needed; *out is NULL in sandbox mode.  The
 * string stays valid until the next call on `a`.  RAS_EIO when the token
 * endpoint cannot be reached or answers 5xx (try later), RAS_EINVALID when
 * it refuses the assertion (its error and error_description in the
 * message), RAS_ENOTFOUND when the token file is missing or empty.
 * `now` is wall-clock seconds.  *call says whether a token request was
 * made and how it went.
 */
int ras_nhsapi_auth_header(struct ras_nhsapi_auth *a, struct ras_http *http, int64_t now,
    const char **out, struct ras_nhsapi_auth_call *call);

/* Forget the cached token (after a 401). */
void ras_nhsapi_auth_invalidate(struct ras_nhsapi_auth *a);

/* Build one client assertion for `now` (exposed for tests and the demo). */
int ras_nhsapi_auth_assertion(struct ras_nhsapi_auth *a, int64_t now, struct ras_buf *out);

/* Number of token requests made (for tests and metrics). */
unsigned ras_nhsapi_auth_token_requests(const struct ras_nhsapi_auth *a);

#endif
