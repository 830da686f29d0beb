/*
 * uisession: the clinicians' pages' server-side state (schema 012): sign-ins
 * in progress and sessions, found by the SHA-256 of the browser's secret,
 * and the audit entries the pages write (events).
 */
#ifndef RAS_UISESSION_H
#define RAS_UISESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "ras/json.h"
#include "ras/limits.h"

struct ras_db;

/* Session cookie values and CSRF tokens: base64url of 32 random bytes. */
#define RAS_UISESSION_TOKEN_LEN 44

/* Roles a session may carry. */
#define RAS_UI_ROLE_CLINICIAN 1u
#define RAS_UI_ROLE_ADMIN     2u

struct ras_uisession {
	int64_t id;
	char sds_user_id[13];
	char name[256];
	char role_code[RAS_ID_MAX + 1];
	unsigned roles;                  /* RAS_UI_ROLE_* */
	char csrf[RAS_UISESSION_TOKEN_LEN];
	int64_t expires_at;
};

/* Keep a sign-in in progress (expires after ten minutes). */
int ras_uisession_login_put(struct ras_db *db, const char *state, const char *nonce,
    const char *verifier, const char *return_to);

/* Take (and delete) the sign-in of `state`; RAS_ENOTFOUND when unknown
 * or expired.  nonce and verifier: RAS_UISESSION_TOKEN_LEN bytes;
 * return_to: 256 bytes ("" when none). */
int ras_uisession_login_take(struct ras_db *db, const char *state, char *nonce, char *verifier,
    char *return_to);

/* Start a session; *token (RAS_UISESSION_TOKEN_LEN) is the cookie value,
 * known only to the browser. */
int ras_uisession_create(struct ras_db *db, const struct ras_uisession *s, int lifetime,
    char token[RAS_UISESSION_TOKEN_LEN], struct ras_uisession *out);

/* The live session of a cookie value; RAS_ENOTFOUND when none (unknown,
 * expired or ended). */
int ras_uisession_get(struct ras_db *db, const char *token, struct ras_uisession *out);

int ras_uisession_end(struct ras_db *db, int64_t id);

/* Role names ("clinician", "admin" joined by ", ") for pages and the trail. */
const char *ras_uisession_role_names(unsigned roles);

/* One audit entry: kind ("ui-view", "ui-sign-in", …), actor the SDS user
 * id, referral by UBRN or storage key (NULL: none), detail an object
 * (borrowed). */
int ras_uisession_audit(struct ras_db *db, const char *kind, const char *actor, const char *referral,
    json_t *detail);

/* True when the two strings are equal, in time independent of where they differ. */
bool ras_uisession_token_eq(const char *a, const char *b);

#endif
