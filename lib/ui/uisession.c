/* uisession: sign-ins, sessions and the pages' audit entries (see include/ras/uisession.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/uisession.h"

/* A sign-in must come back from the identity provider within this. */
#define LOGIN_SECONDS 600

static int
new_token(char out[RAS_UISESSION_TOKEN_LEN])
{
	unsigned char r[32];
	struct ras_buf b = RAS_BUF_INIT(0);
	int err;

	if ((err = ras_crypto_random(r, sizeof(r))) < 0)
		return err;
	if ((err = ras_crypto_base64url(r, sizeof(r), &b)) == 0)
		snprintf(out, RAS_UISESSION_TOKEN_LEN, "%s", b.data);
	ras_buf_free(&b);
	return err;
}

bool
ras_uisession_token_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ (i < lb ? b[i] : 0));
	return diff == 0;
}

int
ras_uisession_login_put(struct ras_db *db, const char *state, const char *nonce,
    const char *verifier, const char *return_to)
{
	char h[RAS_SHA256_HEX_LEN], secs[16];
	struct ras_db_param p[5];
	int err;

	ras_crypto_sha256_hex(state, strlen(state), h);
	snprintf(secs, sizeof(secs), "%d", LOGIN_SECONDS);
	p[0] = RAS_DB_TEXT(h);
	p[1] = RAS_DB_TEXT(nonce);
	p[2] = RAS_DB_TEXT(verifier);
	p[3] = RAS_DB_TEXT(return_to);
	p[4] = RAS_DB_TEXT(secs);
	/* Forget abandoned sign-ins as new ones start. */
	if ((err = ras_db_query(db, NULL, "DELETE FROM ui_logins WHERE expires_at < now()", 0, NULL)) < 0)
		return err;
	return ras_db_query(db, NULL,
	    "INSERT INTO ui_logins (state_sha256, nonce, code_verifier, return_to, expires_at)"
	    " VALUES ($1, $2, $3, $4, now() + make_interval(secs => $5::int))", 5, p);
}

int
ras_uisession_login_take(struct ras_db *db, const char *state, char *nonce, char *verifier,
    char *return_to)
{
	char h[RAS_SHA256_HEX_LEN];
	struct ras_db_res *res = NULL;
	int err;

	ras_crypto_sha256_hex(state, strlen(state), h);
	if ((err = ras_db_query(db, &res,
	    "DELETE FROM ui_logins WHERE state_sha256 = $1 RETURNING nonce, code_verifier,"
	    " coalesce(return_to, ''), expires_at > now()", 1, &RAS_DB_TEXT(h))) < 0)
		return err;
	if (ras_db_res_rows(res) != 1 || strcmp(ras_db_res_get(res, 0, 3), "t") != 0) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOTFOUND, "no sign-in in progress for this state (expired or used)");
	}
	snprintf(nonce, RAS_UISESSION_TOKEN_LEN, "%s", ras_db_res_get(res, 0, 0));
	snprintf(verifier, RAS_UISESSION_TOKEN_LEN, "%s", ras_db_res_get(res, 0, 1));
	snprintf(return_to, 256, "%s", ras_db_res_get(res, 0, 2));
	ras_db_res_free(res);
	return 0;
}

static void
roles_array(unsigned roles, char *buf, size_t size)
{
	snprintf(buf, size, "{%s%s%s}", roles & RAS_UI_ROLE_CLINICIAN ? "clinician" : "",
	    (roles & RAS_UI_ROLE_CLINICIAN) && (roles & RAS_UI_ROLE_ADMIN) ? "," : "",
	    roles & RAS_UI_ROLE_ADMIN ? "admin" : "");
}

static unsigned
roles_parse(const char *s)
{
	return (strstr(s, "clinician") ? RAS_UI_ROLE_CLINICIAN : 0u) |
	    (strstr(s, "admin") ? RAS_UI_ROLE_ADMIN : 0u);
}

const char *
ras_uisession_role_names(unsigned roles)
{
	if ((roles & RAS_UI_ROLE_CLINICIAN) && (roles & RAS_UI_ROLE_ADMIN))
		return "clinician, admin";
	if (roles & RAS_UI_ROLE_CLINICIAN)
		return "clinician";
	if (roles & RAS_UI_ROLE_ADMIN)
		return "admin";
	return "none";
}

static const char SQL_SESSION_COLS[] =
    "id, sds_user_id, coalesce(name, ''), coalesce(role_code, ''), roles::text, csrf,"
    " extract(epoch FROM expires_at)::bigint";

static void
fill(const struct ras_db_res *res, struct ras_uisession *out)
{
	memset(out, 0, sizeof(*out));
	(void)ras_db_res_int(res, 0, 0, &out->id);
	snprintf(out->sds_user_id, sizeof(out->sds_user_id), "%s", ras_db_res_get(res, 0, 1));
	snprintf(out->name, sizeof(out->name), "%s", ras_db_res_get(res, 0, 2));
	snprintf(out->role_code, sizeof(out->role_code), "%s", ras_db_res_get(res, 0, 3));
	out->roles = roles_parse(ras_db_res_get(res, 0, 4));
	snprintf(out->csrf, sizeof(out->csrf), "%s", ras_db_res_get(res, 0, 5));
	(void)ras_db_res_int(res, 0, 6, &out->expires_at);
}

int
ras_uisession_create(struct ras_db *db, const struct ras_uisession *s, int lifetime,
    char token[RAS_UISESSION_TOKEN_LEN], struct ras_uisession *out)
{
	char h[RAS_SHA256_HEX_LEN], csrf[RAS_UISESSION_TOKEN_LEN], roles[32], secs[16];
	struct ras_buf sql = RAS_BUF_INIT(0);
	struct ras_db_res *res = NULL;
	struct ras_db_param p[7];
	int err;

	if ((err = new_token(token)) < 0 || (err = new_token(csrf)) < 0)
		return err;
	ras_crypto_sha256_hex(token, strlen(token), h);
	roles_array(s->roles, roles, sizeof(roles));
	snprintf(secs, sizeof(secs), "%d", lifetime);
	p[0] = RAS_DB_TEXT(h);
	p[1] = RAS_DB_TEXT(s->sds_user_id);
	p[2] = RAS_DB_TEXT(s->name[0] ? s->name : NULL);
	p[3] = RAS_DB_TEXT(roles);
	p[4] = RAS_DB_TEXT(s->role_code[0] ? s->role_code : NULL);
	p[5] = RAS_DB_TEXT(csrf);
	p[6] = RAS_DB_TEXT(secs);
	(void)ras_db_query(db, NULL, "DELETE FROM ui_sessions WHERE expires_at < now() - interval '1 day'",
	    0, NULL);
	(void)ras_buf_printf(&sql, "INSERT INTO ui_sessions (token_sha256, sds_user_id, name, roles,"
	    " role_code, csrf, expires_at) VALUES ($1, $2, $3, $4::text[], $5, $6,"
	    " now() + make_interval(secs => $7::int)) RETURNING %s", SQL_SESSION_COLS);
	if ((err = ras_db_query(db, &res, sql.data, 7, p)) == 0)
		fill(res, out);
	ras_db_res_free(res);
	ras_buf_free(&sql);
	return err;
}

int
ras_uisession_get(struct ras_db *db, const char *token, struct ras_uisession *out)
{
	char h[RAS_SHA256_HEX_LEN];
	struct ras_buf sql = RAS_BUF_INIT(0);
	struct ras_db_res *res = NULL;
	int err;

	if (token == NULL || strlen(token) + 1 != RAS_UISESSION_TOKEN_LEN)
		return ras_error_code(RAS_ENOTFOUND, "no session");
	ras_crypto_sha256_hex(token, strlen(token), h);
	(void)ras_buf_printf(&sql, "SELECT %s FROM ui_sessions WHERE token_sha256 = $1"
	    " AND ended_at IS NULL AND expires_at > now()", SQL_SESSION_COLS);
	if ((err = ras_db_query(db, &res, sql.data, 1, &RAS_DB_TEXT(h))) == 0) {
		if (ras_db_res_rows(res) == 1)
			fill(res, out);
		else
			err = ras_error_code(RAS_ENOTFOUND, "no session");
	}
	ras_db_res_free(res);
	ras_buf_free(&sql);
	return err;
}

int
ras_uisession_end(struct ras_db *db, int64_t id)
{
	char v[24];

	snprintf(v, sizeof(v), "%lld", (long long)id);
	return ras_db_query(db, NULL, "UPDATE ui_sessions SET ended_at = now() WHERE id = $1::bigint"
	    " AND ended_at IS NULL", 1, &RAS_DB_TEXT(v));
}

int
ras_uisession_audit(struct ras_db *db, const char *kind, const char *actor, const char *referral,
    json_t *detail)
{
	struct ras_buf d = RAS_BUF_INIT(0);
	struct ras_db_param p[4];
	int err;

	if ((err = ras_json_dump(detail, JSON_COMPACT, &d)) < 0)
		return err;
	p[0] = RAS_DB_TEXT(referral);
	p[1] = RAS_DB_TEXT(kind);
	p[2] = RAS_DB_TEXT(actor);
	p[3] = RAS_DB_TEXT(d.data ? d.data : "{}");
	err = ras_db_query(db, NULL,
	    "INSERT INTO events (referral_id, ubrn, kind, actor, detail)"
	    " SELECT r.id, coalesce(r.ubrn, $1), $2, $3, $4::jsonb"
	    " FROM (SELECT NULL) x LEFT JOIN LATERAL (SELECT id, ubrn FROM referrals"
	    "   WHERE $1::text IS NOT NULL AND (referral_key = $1 OR ubrn = $1)"
	    "   ORDER BY version DESC LIMIT 1) r ON true", 4, p);
	ras_buf_free(&d);
	return err;
}
