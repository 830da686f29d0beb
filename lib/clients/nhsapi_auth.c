/* nhsapi_auth: NHS API platform access tokens for e-RS and PDS (see include/ras/nhsapi_auth.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/nhsapi_auth.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/json.h"
#include "ras/limits.h"

/* APIM refuses exp more than 300 s ahead (310 with its own slack); stay
 * 10 s inside that for clock differences. */
#define ASSERTION_LIFETIME 290
/* Renew this long before the token expires. */
#define RENEW_BEFORE 60

struct ras_nhsapi_auth {
	enum ras_nhsapi_mode mode;
	char section[16];             /* configuration section, for messages: "ers", "pds" */
	char label[24];               /* "an e-RS", "a PDS" */
	char *token_url, *api_key, *kid, *bearer_file;
	char *key;
	size_t key_len;
	long timeout_ms;
	/* cached token */
	char *header;                 /* "Bearer …" */
	int64_t expires_at;           /* wall clock; 0 = none */
	/* bearer token file identity when last read */
	struct stat st;
	bool have_st;
	unsigned requests;
};

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
ras_nhsapi_auth_new(const struct ras_nhsapi_auth_opts *o, struct ras_nhsapi_auth **out)
{
	struct ras_nhsapi_auth *a = calloc(1, sizeof(*a));
	int err;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	a->mode = o->mode;
	snprintf(a->section, sizeof(a->section), "%s", o->section ? o->section : "ers");
	snprintf(a->label, sizeof(a->label), "%s", o->label ? o->label : "an e-RS");
	a->timeout_ms = o->timeout_ms ? o->timeout_ms : 60000;
	a->token_url = dup_or_null(o->token_url);
	a->api_key = dup_or_null(o->api_key);
	a->kid = dup_or_null(o->kid);
	a->bearer_file = dup_or_null(o->bearer_token_file);
	if (o->mode == RAS_NHSAPI_APPLICATION) {
		if (!a->token_url || !a->api_key || !a->kid || !o->private_key_pem) {
			ras_nhsapi_auth_free(a);
			return ras_error_code(RAS_EINVALID,
			    "application-restricted mode needs token_url, api_key, kid and private_key");
		}
		if ((err = ras_crypto_rsa_key_check(o->private_key_pem, o->private_key_len)) < 0) {
			ras_nhsapi_auth_free(a);
			ras_error_context("%s.private_key", a->section);
			return err;
		}
		a->key = malloc(o->private_key_len + 1);
		if (a->key == NULL) {
			ras_nhsapi_auth_free(a);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		memcpy(a->key, o->private_key_pem, o->private_key_len);
		a->key[o->private_key_len] = '\0';
		a->key_len = o->private_key_len;
	} else if (o->mode == RAS_NHSAPI_USER && a->bearer_file == NULL) {
		ras_nhsapi_auth_free(a);
		return ras_error_code(RAS_EINVALID, "user-restricted mode needs bearer_token_file");
	}
	*out = a;
	return 0;
}

void
ras_nhsapi_auth_free(struct ras_nhsapi_auth *a)
{
	if (a == NULL)
		return;
	if (a->key) {
		/* the key is a secret: do not leave it in freed memory */
		volatile char *p = a->key;

		for (size_t i = 0; i < a->key_len; i++)
			p[i] = 0;
	}
	free(a->key);
	free(a->token_url);
	free(a->api_key);
	free(a->kid);
	free(a->bearer_file);
	free(a->header);
	free(a);
}

void
ras_nhsapi_auth_invalidate(struct ras_nhsapi_auth *a)
{
	a->expires_at = 0;
	a->have_st = false;
}

unsigned
ras_nhsapi_auth_token_requests(const struct ras_nhsapi_auth *a)
{
	return a->requests;
}

int
ras_nhsapi_auth_assertion(struct ras_nhsapi_auth *a, int64_t now, struct ras_buf *out)
{
	char jti[RAS_UUID_STR_LEN];
	json_t *hdr = NULL, *claims = NULL;
	struct ras_buf h = RAS_BUF_INIT(0), c = RAS_BUF_INIT(0);
	int err;

	if (a->key == NULL)
		return ras_error_code(RAS_EINVALID, "no private key (not in application-restricted mode)");
	if ((err = ras_crypto_uuid(jti)) < 0)
		return err;
	hdr = json_pack("{s:s, s:s, s:s}", "alg", "RS512", "typ", "JWT", "kid", a->kid);
	claims = json_pack("{s:s, s:s, s:s, s:s, s:I}", "iss", a->api_key, "sub", a->api_key,
	    "aud", a->token_url, "jti", jti, "exp", (json_int_t)(now + ASSERTION_LIFETIME));
	if (hdr == NULL || claims == NULL) {
		err = ras_error_code(RAS_EINVALID, "cannot build the client assertion (bad api_key or kid)");
		goto done;
	}
	if ((err = ras_json_dump(hdr, RAS_JSON_COMPACT, &h)) < 0 ||
	    (err = ras_json_dump(claims, RAS_JSON_COMPACT, &c)) < 0)
		goto done;
	err = ras_crypto_jwt_rs512(a->key, a->key_len, h.data, c.data, out);
done:
	json_decref(hdr);
	json_decref(claims);
	ras_buf_free(&h);
	ras_buf_free(&c);
	return err;
}

static int
set_header(struct ras_nhsapi_auth *a, const char *token, size_t len)
{
	char *h;

	if (len == 0 || len > RAS_SECRET_MAX)
		return ras_error_code(RAS_EINVALID, "access token is empty or too long");
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)token[i] <= ' ' || (unsigned char)token[i] >= 0x7f)
			return ras_error_code(RAS_EINVALID, "access token contains characters a header cannot carry");
	h = malloc(len + 8);
	if (h == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	memcpy(h, "Bearer ", 7);
	memcpy(h + 7, token, len);
	h[len + 7] = '\0';
	free(a->header);
	a->header = h;
	return 0;
}

/* expires_in: a JSON string of digits ("599", as APIM sends it) or a number. */
static int
parse_expires(const json_t *v, int64_t *out)
{
	if (json_is_integer(v)) {
		*out = (int64_t)json_integer_value(v);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		char *end;
		long long n;

		errno = 0;
		n = strtoll(s, &end, 10);
		if (errno || end == s || *end != '\0')
			return -1;
		*out = n;
	} else {
		return -1;
	}
	return *out > 0 && *out <= 86400 ? 0 : -1;
}

static int
fetch_token(struct ras_nhsapi_auth *a, struct ras_http *http, int64_t now,
    struct ras_nhsapi_auth_call *call)
{
	struct ras_buf assertion = RAS_BUF_INIT(0), body = RAS_BUF_INIT(0);
	struct ras_http_request r;
	json_t *j = NULL;
	int64_t expires_in = 0;
	const char *tok;
	char cid[RAS_UUID_STR_LEN];
	int err;

	ras_http_request_init(&r, "POST", a->token_url);
	if ((err = ras_nhsapi_auth_assertion(a, now, &assertion)) < 0)
		goto done;
	/* The assertion is base64url and dots: nothing to percent-encode. */
	if ((err = ras_buf_printf(&body, "grant_type=client_credentials"
	    "&client_assertion_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3Aclient-assertion-type%%3Ajwt-bearer"
	    "&client_assertion=%s", assertion.data)) < 0)
		goto done;
	if ((err = ras_crypto_uuid(cid)) < 0)
		goto done;
	r.body = body.data;
	r.body_len = body.len;
	r.timeout_ms = a->timeout_ms;
	r.max_body = RAS_TOKEN_RESPONSE_MAX;
	(void)ras_http_request_header(&r, "Content-Type", "application/x-www-form-urlencoded");
	(void)ras_http_request_header(&r, "Accept", "application/json");
	(void)ras_http_request_header(&r, "X-Correlation-ID", cid);
	if ((err = ras_http_perform(http, &r, 1)) < 0)
		goto done;
	a->requests++;
	call->made = true;
	call->status = r.status;
	call->seconds = r.seconds;
	snprintf(call->correlation_id, sizeof(call->correlation_id), "%s", cid);
	(void)ras_http_response_header(&r, "X-Request-ID", call->request_id, sizeof(call->request_id));
	if (r.err) {
		err = ras_error_code(r.err == RAS_ETOOBIG ? RAS_EINVALID : RAS_EIO,
		    "could not get %s access token: %s", a->label, r.errmsg);
		goto done;
	}
	if (r.status >= 500 || r.status == 429) {
		err = ras_error_code(RAS_EIO, "could not get %s access token: token endpoint answered HTTP %ld",
		    a->label, r.status);
		goto done;
	}
	if (r.status != 200) {
		/* {"error": …, "error_description": …}: safe to show (no secrets). */
		const char *e = NULL, *d = NULL;

		if (ras_json_parse(r.body_out.data, r.body_out.len, RAS_TOKEN_RESPONSE_MAX, &j) == 0) {
			e = ras_json_str(j, "error");
			d = ras_json_str(j, "error_description");
		}
		err = ras_error_code(RAS_EINVALID, "cannot get %s access token: HTTP %ld %.60s%s%.200s",
		    a->label, r.status, e ? e : "", d ? ": " : "", d ? d : "");
		goto done;
	}
	if ((err = ras_json_parse(r.body_out.data, r.body_out.len, RAS_TOKEN_RESPONSE_MAX, &j)) < 0) {
		ras_error_context("token response");
		goto done;
	}
	tok = ras_json_str(j, "access_token");
	if (tok == NULL || parse_expires(json_object_get(j, "expires_in"), &expires_in) < 0) {
		err = ras_error_code(RAS_EINVALID,
		    "token response lacks access_token or a valid expires_in");
		goto done;
	}
	if (ras_json_str(j, "token_type") && strcasecmp(ras_json_str(j, "token_type"), "Bearer") != 0) {
		err = ras_error_code(RAS_EINVALID, "token response is not a Bearer token");
		goto done;
	}
	if ((err = set_header(a, tok, strlen(tok))) < 0)
		goto done;
	a->expires_at = now + expires_in;
done:
	if (err < 0 && call->made && call->error[0] == '\0')
		snprintf(call->error, sizeof(call->error), "%s", ras_error_last());
	json_decref(j);
	ras_http_request_release(&r);
	ras_buf_free(&assertion);
	ras_buf_free(&body);
	return err;
}

static int
read_token_file(struct ras_nhsapi_auth *a)
{
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	struct ras_buf b = RAS_BUF_INIT(RAS_SECRET_MAX);
	char path[4096];
	struct stat st;
	int err;

	/* A bare name is a systemd credential, like ras_config_secret(). */
	if (a->bearer_file[0] != '/' && creds && strchr(a->bearer_file, '/') == NULL)
		snprintf(path, sizeof(path), "%s/%s", creds, a->bearer_file);
	else
		snprintf(path, sizeof(path), "%s", a->bearer_file);
	if (stat(path, &st) < 0)
		return ras_error_code(RAS_ENOTFOUND, "cannot read the bearer token file \"%s\": %s", path,
		    strerror(errno));
	if (a->have_st && a->header && st.st_ino == a->st.st_ino && st.st_size == a->st.st_size &&
	    st.st_mtim.tv_sec == a->st.st_mtim.tv_sec && st.st_mtim.tv_nsec == a->st.st_mtim.tv_nsec)
		return 0;
	if ((err = ras_buf_read_file(&b, path)) < 0) {
		ras_error_context("bearer token file");
		ras_buf_free(&b);
		return err;
	}
	while (b.len && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r' ||
	    b.data[b.len - 1] == ' '))
		b.data[--b.len] = '\0';
	if (b.len == 0) {
		ras_buf_free(&b);
		return ras_error_code(RAS_ENOTFOUND, "the bearer token file \"%s\" is empty", path);
	}
	err = set_header(a, b.data, b.len);
	ras_buf_free(&b);
	if (err < 0)
		return err;
	a->st = st;
	a->have_st = true;
	return 0;
}

int
ras_nhsapi_auth_header(struct ras_nhsapi_auth *a, struct ras_http *http, int64_t now,
    const char **out, struct ras_nhsapi_auth_call *call)
{
	int err;

	memset(call, 0, sizeof(*call));
	*out = NULL;
	switch (a->mode) {
	case RAS_NHSAPI_APPLICATION:
		if (a->header == NULL || a->expires_at == 0 || now >= a->expires_at - RENEW_BEFORE) {
			if ((err = fetch_token(a, http, now, call)) < 0)
				return err;
		}
		*out = a->header;
		return 0;
	case RAS_NHSAPI_USER:
		if ((err = read_token_file(a)) < 0)
			return err;
		*out = a->header;
		return 0;
	default:
		return 0;
	}
}
