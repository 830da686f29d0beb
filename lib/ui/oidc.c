/* oidc: NHS CIS2 sign-in through cjose and libcurl (see include/ras/oidc.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjose/cjose.h>

#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/html.h"
#include "ras/http.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/oidc.h"
#include "ras/time.h"

/* Discovery documents, JWKS, token and userinfo answers are small. */
#define OIDC_DOC_MAX RAS_TOKEN_RESPONSE_MAX
/* A provider's JWKS is fetched again for an unknown kid at most this often. */
#define JWKS_REFRESH_SECONDS 60
#define OIDC_TIMEOUT_MS 15000

struct ras_oidc {
	char *issuer, *client_id, *client_key_id, *redirect_url, *scope, *acr_values;
	cjose_jwk_t *key;
	struct ras_http *http;
	json_t *disc;                 /* discovery document */
	json_t *jwks;                 /* provider's keys */
	int64_t jwks_at;
};

static int
cjose_fail(const char *what, const cjose_err *e)
{
	return ras_error_code(RAS_EINVALID, "%s: %s", what, e->message ? e->message : "cjose error");
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
ras_oidc_new(const struct ras_oidc_opts *opts, struct ras_oidc **out)
{
	struct ras_http_opts ho;
	struct ras_oidc *o;
	struct ras_buf jwk = RAS_BUF_INIT(RAS_SECRET_MAX);
	cjose_err ce;
	int err = 0;

	*out = NULL;
	if (!opts->issuer || !opts->client_id || !opts->client_key || !opts->redirect_url)
		return ras_error_code(RAS_EINVALID, "[ui] needs issuer, client_id, client_key and redirect_url");
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	o->issuer = strdup(opts->issuer);
	o->client_id = strdup(opts->client_id);
	o->client_key_id = dup_or_null(opts->client_key_id);
	o->redirect_url = strdup(opts->redirect_url);
	o->scope = strdup(opts->scope ? opts->scope : "openid");
	o->acr_values = dup_or_null(opts->acr_values);
	if (!o->issuer || !o->client_id || !o->redirect_url || !o->scope) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	/* The key: a JWK as is, or a PEM RSA key turned into one. */
	{
		const char *p = opts->client_key;

		while (p < opts->client_key + opts->client_key_len && (*p == ' ' || *p == '\n'))
			p++;
		if (p < opts->client_key + opts->client_key_len && *p == '{')
			err = ras_buf_append(&jwk, opts->client_key, opts->client_key_len);
		else
			err = ras_crypto_rsa_jwk(opts->client_key, opts->client_key_len, &jwk);
		if (err < 0) {
			ras_error_context("[ui] client_key");
			goto fail;
		}
	}
	if ((o->key = cjose_jwk_import(jwk.data, jwk.len, &ce)) == NULL) {
		err = cjose_fail("[ui] client_key is not a usable key", &ce);
		goto fail;
	}
	if (cjose_jwk_get_kty(o->key, &ce) != CJOSE_JWK_KTY_RSA) {
		err = ras_error_code(RAS_EINVALID, "[ui] client_key must be an RSA key");
		goto fail;
	}
	memset(&ho, 0, sizeof(ho));
	ho.ca_file = opts->ca_file;
	ho.allow_http_loopback = opts->allow_http_loopback;
	/* sign-in runs inside the UI listener's callback: wait here (ras/http.h) */
	ho.wait_here = true;
	if ((err = ras_http_new(&ho, &o->http)) < 0)
		goto fail;
	explicit_bzero(jwk.data, jwk.len);
	ras_buf_free(&jwk);
	*out = o;
	return 0;
fail:
	if (jwk.data)
		explicit_bzero(jwk.data, jwk.len);
	ras_buf_free(&jwk);
	ras_oidc_free(o);
	return err;
}

void
ras_oidc_free(struct ras_oidc *o)
{
	if (o == NULL)
		return;
	free(o->issuer);
	free(o->client_id);
	free(o->client_key_id);
	free(o->redirect_url);
	free(o->scope);
	free(o->acr_values);
	if (o->key)
		cjose_jwk_release(o->key);
	ras_http_free(o->http);
	json_decref(o->disc);
	json_decref(o->jwks);
	free(o);
}

/* ---- HTTP ------------------------------------------------------------ */

/* GET or POST url; the answer must be 200 JSON. */
static int
fetch_json(struct ras_oidc *o, const char *what, const char *method, const char *url,
    const char *form, const char *bearer, json_t **out)
{
	struct ras_http_request r;
	char auth[RAS_TOKEN_RESPONSE_MAX + 16];
	int err;

	*out = NULL;
	ras_http_request_init(&r, method, url);
	r.timeout_ms = OIDC_TIMEOUT_MS;
	r.max_body = OIDC_DOC_MAX;
	r.no_replay = form != NULL;    /* a code is good for one exchange */
	(void)ras_http_request_header(&r, "Accept", "application/json");
	if (form) {
		(void)ras_http_request_header(&r, "Content-Type", "application/x-www-form-urlencoded");
		r.body = form;
		r.body_len = strlen(form);
	}
	if (bearer) {
		if (strlen(bearer) > RAS_TOKEN_RESPONSE_MAX)
			return ras_error_code(RAS_ETOOBIG, "the access token is too long");
		snprintf(auth, sizeof(auth), "Bearer %s", bearer);
		(void)ras_http_request_header(&r, "Authorization", auth);
	}
	if ((err = ras_http_perform(o->http, &r, 1)) < 0)
		goto done;
	if (r.err < 0) {
		err = ras_error_code(r.err, "could not reach the identity provider's %s: %s", what, r.errmsg);
		goto done;
	}
	if (r.status != 200) {
		char detail[160] = "";

		/* An OAuth2 error code says why, without secrets. */
		if (r.body_out.data && r.body_out.len < OIDC_DOC_MAX) {
			json_t *j = NULL;

			if (ras_json_parse(r.body_out.data, r.body_out.len, OIDC_DOC_MAX, &j) == 0 &&
			    ras_json_str(j, "error"))
				snprintf(detail, sizeof(detail), " (%.100s)", ras_json_str(j, "error"));
			json_decref(j);
		}
		err = ras_error_code(r.status >= 500 ? RAS_EIO : RAS_EINVALID,
		    "the identity provider's %s answered HTTP %ld%s", what, r.status, detail);
		goto done;
	}
	if ((err = ras_json_parse(r.body_out.data ? r.body_out.data : "", r.body_out.len, OIDC_DOC_MAX,
	    out)) < 0 || !json_is_object(*out)) {
		json_decref(*out);
		*out = NULL;
		err = ras_error_code(RAS_EINVALID, "the identity provider's %s is not a JSON object", what);
	}
done:
	ras_http_request_release(&r);
	return err;
}

static int
discover(struct ras_oidc *o)
{
	struct ras_buf url = RAS_BUF_INIT(0);
	json_t *d = NULL;
	int err;

	if (o->disc)
		return 0;
	(void)ras_buf_puts(&url, o->issuer);
	if (url.len && url.data[url.len - 1] == '/')
		url.data[--url.len] = '\0';
	if ((err = ras_buf_puts(&url, "/.well-known/openid-configuration")) < 0 ||
	    (err = fetch_json(o, "discovery document", "GET", url.data, NULL, NULL, &d)) < 0)
		goto done;
	if (!ras_json_str(d, "issuer") || strcmp(ras_json_str(d, "issuer"), o->issuer) != 0) {
		err = ras_error_code(RAS_EINVALID,
		    "the discovery document names another issuer than [ui] issuer");
		goto done;
	}
	if (!ras_json_str(d, "authorization_endpoint") || !ras_json_str(d, "token_endpoint") ||
	    !ras_json_str(d, "jwks_uri") || !ras_json_str(d, "userinfo_endpoint")) {
		err = ras_error_code(RAS_EINVALID, "the discovery document lacks an endpoint "
		    "(authorization, token, jwks_uri or userinfo)");
		goto done;
	}
	o->disc = d;
	d = NULL;
done:
	json_decref(d);
	ras_buf_free(&url);
	return err;
}

static int
load_jwks(struct ras_oidc *o, bool force)
{
	json_t *k = NULL;
	int64_t now = ras_time_now();
	int err;

	if (o->jwks && (!force || now - o->jwks_at < JWKS_REFRESH_SECONDS))
		return 0;
	if ((err = fetch_json(o, "JWKS", "GET", ras_json_str(o->disc, "jwks_uri"), NULL, NULL, &k)) < 0)
		return err;
	if (!json_is_array(json_object_get(k, "keys"))) {
		json_decref(k);
		return ras_error_code(RAS_EINVALID, "the identity provider's JWKS has no keys");
	}
	json_decref(o->jwks);
	o->jwks = k;
	o->jwks_at = now;
	return 0;
}

/* ---- the authorization request ------------------------------------- */

static int
random_b64url(char out[RAS_OIDC_RANDOM_LEN])
{
	unsigned char r[32];
	struct ras_buf b = RAS_BUF_INIT(0);
	int err;

	if ((err = ras_crypto_random(r, sizeof(r))) < 0)
		return err;
	if ((err = ras_crypto_base64url(r, sizeof(r), &b)) == 0)
		snprintf(out, RAS_OIDC_RANDOM_LEN, "%s", b.data);
	ras_buf_free(&b);
	return err;
}

int
ras_oidc_begin(struct ras_oidc *o, struct ras_oidc_start *out)
{
	struct ras_buf url = RAS_BUF_INIT(0), ch = RAS_BUF_INIT(0);
	unsigned char digest[RAS_SHA256_LEN];
	const char *ep;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = discover(o)) < 0)
		return err;
	if ((err = random_b64url(out->state)) < 0 || (err = random_b64url(out->nonce)) < 0 ||
	    (err = random_b64url(out->verifier)) < 0)
		return err;
	ras_crypto_sha256(out->verifier, strlen(out->verifier), digest);
	if ((err = ras_crypto_base64url(digest, sizeof(digest), &ch)) < 0)
		goto done;
	ep = ras_json_str(o->disc, "authorization_endpoint");
	(void)ras_buf_puts(&url, ep);
	(void)ras_buf_puts(&url, strchr(ep, '?') ? "&" : "?");
	(void)ras_buf_puts(&url, "response_type=code&client_id=");
	(void)ras_html_urlenc(&url, o->client_id);
	(void)ras_buf_puts(&url, "&redirect_uri=");
	(void)ras_html_urlenc(&url, o->redirect_url);
	(void)ras_buf_puts(&url, "&scope=");
	(void)ras_html_urlenc(&url, o->scope);
	(void)ras_buf_printf(&url, "&state=%s&nonce=%s&code_challenge=%s&code_challenge_method=S256",
	    out->state, out->nonce, ch.data);
	if (o->acr_values) {
		(void)ras_buf_puts(&url, "&acr_values=");
		(void)ras_html_urlenc(&url, o->acr_values);
	}
	if ((out->url = ras_buf_detach(&url, NULL)) == NULL)
		err = ras_error_code(RAS_ENOMEM, "out of memory");
done:
	ras_buf_free(&url);
	ras_buf_free(&ch);
	return err;
}

void
ras_oidc_start_release(struct ras_oidc_start *s)
{
	free(s->url);
	s->url = NULL;
}

/* ---- the token request --------------------------------------------- */

/* The private_key_jwt client assertion (RFC 7523), signed by cjose. */
static int
client_assertion(struct ras_oidc *o, const char *aud, struct ras_buf *out)
{
	char jti[RAS_UUID_STR_LEN];
	int64_t now = ras_time_now();
	json_t *claims;
	char *text = NULL;
	cjose_header_t *hdr = NULL;
	cjose_jws_t *jws = NULL;
	const char *ser = NULL;
	cjose_err ce;
	int err = 0;

	if ((err = ras_crypto_uuid(jti)) < 0)
		return err;
	claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I}", "iss", o->client_id, "sub", o->client_id,
	    "aud", aud, "jti", jti, "iat", (json_int_t)now, "exp", (json_int_t)(now + 300));
	if (claims == NULL || (text = json_dumps(claims, JSON_COMPACT)) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	if ((hdr = cjose_header_new(&ce)) == NULL ||
	    !cjose_header_set(hdr, CJOSE_HDR_ALG, CJOSE_HDR_ALG_RS512, &ce) ||
	    !cjose_header_set(hdr, "typ", "JWT", &ce) ||
	    (o->client_key_id && !cjose_header_set(hdr, CJOSE_HDR_KID, o->client_key_id, &ce)) ||
	    (jws = cjose_jws_sign(o->key, hdr, (const uint8_t *)text, strlen(text), &ce)) == NULL ||
	    !cjose_jws_export(jws, &ser, &ce)) {
		err = cjose_fail("cannot sign the client assertion", &ce);
		goto done;
	}
	err = ras_buf_puts(out, ser);
done:
	if (jws)
		cjose_jws_release(jws);
	if (hdr)
		cjose_header_release(hdr);
	free(text);
	json_decref(claims);
	return err;
}

/* The JWK of the provider's JWKS that verifies this JWS, or NULL. */
static cjose_jwk_t *
provider_key(struct ras_oidc *o, const char *kid, const char *alg)
{
	size_t i;
	json_t *k;
	cjose_err ce;

	json_array_foreach(json_object_get(o->jwks, "keys"), i, k) {
		const char *use = ras_json_str(k, "use"), *kalg = ras_json_str(k, "alg");
		const char *kkid = ras_json_str(k, "kid");
		char *text;
		cjose_jwk_t *jwk;

		if (use && strcmp(use, "sig") != 0)
			continue;
		if (kalg && strcmp(kalg, alg) != 0)
			continue;
		if (kid && (kkid == NULL || strcmp(kid, kkid) != 0))
			continue;
		if ((text = json_dumps(k, JSON_COMPACT)) == NULL)
			return NULL;
		jwk = cjose_jwk_import(text, strlen(text), &ce);
		free(text);
		if (jwk)
			return jwk;
	}
	return NULL;
}

static bool
alg_ok(const char *alg)
{
	static const char *const ok[] = { "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
		"ES256", "ES384", "ES512", NULL };

	for (int i = 0; alg && ok[i]; i++)
		if (strcmp(alg, ok[i]) == 0)
			return true;
	return false;
}

static int
verify_id_token(struct ras_oidc *o, const char *token, const char *nonce, int64_t now, json_t **claims)
{
	cjose_jws_t *jws = NULL;
	cjose_jwk_t *jwk = NULL;
	cjose_header_t *hdr;
	const char *alg, *kid;
	uint8_t *plain = NULL;
	size_t plen = 0;
	json_t *c = NULL, *aud, *exp, *iat;
	cjose_err ce;
	int err = 0;

	*claims = NULL;
	if (strlen(token) > RAS_TOKEN_RESPONSE_MAX)
		return ras_error_code(RAS_ETOOBIG, "the ID token is too long");
	if ((jws = cjose_jws_import(token, strlen(token), &ce)) == NULL)
		return cjose_fail("the ID token is not a JWS", &ce);
	hdr = cjose_jws_get_protected(jws);
	alg = hdr ? cjose_header_get(hdr, CJOSE_HDR_ALG, &ce) : NULL;
	kid = hdr ? cjose_header_get(hdr, CJOSE_HDR_KID, &ce) : NULL;
	if (!alg_ok(alg)) {
		err = ras_error_code(RAS_EINVALID, "the ID token is signed with \"%.20s\", not an "
		    "asymmetric algorithm", alg ? alg : "none");
		goto done;
	}
	if ((err = load_jwks(o, false)) < 0)
		goto done;
	if ((jwk = provider_key(o, kid, alg)) == NULL) {
		/* Keys roll over: look again, at most once a minute. */
		if ((err = load_jwks(o, true)) < 0)
			goto done;
		jwk = provider_key(o, kid, alg);
	}
	if (jwk == NULL) {
		err = ras_error_code(RAS_EINVALID, "no key of the identity provider matches the ID token's kid");
		goto done;
	}
	if (!cjose_jws_verify(jws, jwk, &ce)) {
		err = ras_error_code(RAS_EINVALID, "the ID token's signature does not verify");
		goto done;
	}
	if (!cjose_jws_get_plaintext(jws, &plain, &plen, &ce) ||
	    ras_json_parse((const char *)plain, plen, OIDC_DOC_MAX, &c) < 0 || !json_is_object(c)) {
		err = ras_error_code(RAS_EINVALID, "the ID token's claims are not a JSON object");
		goto done;
	}
	if (!ras_json_str(c, "iss") || strcmp(ras_json_str(c, "iss"), o->issuer) != 0) {
		err = ras_error_code(RAS_EINVALID, "the ID token's issuer is not [ui] issuer");
		goto done;
	}
	aud = json_object_get(c, "aud");
	{
		bool mine = false;
		size_t i, n = 0;
		json_t *v;

		if (json_is_string(aud)) {
			mine = strcmp(json_string_value(aud), o->client_id) == 0;
			n = 1;
		} else if (json_is_array(aud)) {
			json_array_foreach(aud, i, v)
				if (json_is_string(v) && strcmp(json_string_value(v), o->client_id) == 0)
					mine = true;
			n = json_array_size(aud);
		}
		if (!mine) {
			err = ras_error_code(RAS_EINVALID, "the ID token's audience is not this client ([ui] client_id)");
			goto done;
		}
		if (n > 1 && (!ras_json_str(c, "azp") || strcmp(ras_json_str(c, "azp"), o->client_id) != 0)) {
			err = ras_error_code(RAS_EINVALID, "the ID token has several audiences and azp is not this client");
			goto done;
		}
	}
	exp = json_object_get(c, "exp");
	iat = json_object_get(c, "iat");
	if (!json_is_integer(exp) || json_integer_value(exp) + RAS_OIDC_LEEWAY < now) {
		err = ras_error_code(RAS_EINVALID, "the ID token has expired");
		goto done;
	}
	if (!json_is_integer(iat) || json_integer_value(iat) > now + RAS_OIDC_LEEWAY) {
		err = ras_error_code(RAS_EINVALID, "the ID token was issued in the future (or says not when)");
		goto done;
	}
	if (!ras_json_str(c, "nonce") || strcmp(ras_json_str(c, "nonce"), nonce) != 0) {
		err = ras_error_code(RAS_EINVALID, "the ID token's nonce is not this sign-in's");
		goto done;
	}
	if (!ras_json_str(c, "sub") || strlen(ras_json_str(c, "sub")) > RAS_ID_MAX) {
		err = ras_error_code(RAS_EINVALID, "the ID token has no usable subject");
		goto done;
	}
	*claims = c;
	c = NULL;
done:
	json_decref(c);
	if (jwk)
		cjose_jwk_release(jwk);
	cjose_jws_release(jws);
	return err;
}

int
ras_oidc_finish(struct ras_oidc *o, const char *code, const char *verifier, const char *nonce,
    int64_t now, struct ras_oidc_identity *out)
{
	struct ras_buf form = RAS_BUF_INIT(0), jwt = RAS_BUF_INIT(0);
	json_t *tok = NULL, *claims = NULL, *ui = NULL;
	const char *te, *id_token, *access;
	int err;

	memset(out, 0, sizeof(*out));
	if (code == NULL || *code == '\0' || strlen(code) > RAS_TOKEN_RESPONSE_MAX)
		return ras_error_code(RAS_EINVALID, "the identity provider sent no usable code");
	if ((err = discover(o)) < 0)
		return err;
	te = ras_json_str(o->disc, "token_endpoint");
	if ((err = client_assertion(o, te, &jwt)) < 0)
		goto done;
	(void)ras_buf_puts(&form, "grant_type=authorization_code&code=");
	(void)ras_html_urlenc(&form, code);
	(void)ras_buf_puts(&form, "&redirect_uri=");
	(void)ras_html_urlenc(&form, o->redirect_url);
	(void)ras_buf_puts(&form, "&code_verifier=");
	(void)ras_html_urlenc(&form, verifier);
	(void)ras_buf_puts(&form, "&client_id=");
	(void)ras_html_urlenc(&form, o->client_id);
	(void)ras_buf_puts(&form, "&client_assertion_type=");
	(void)ras_html_urlenc(&form, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
	(void)ras_buf_puts(&form, "&client_assertion=");
	if ((err = ras_html_urlenc(&form, jwt.data)) < 0)
		goto done;
	if ((err = fetch_json(o, "token endpoint", "POST", te, form.data, NULL, &tok)) < 0)
		goto done;
	id_token = ras_json_str(tok, "id_token");
	access = ras_json_str(tok, "access_token");
	if (id_token == NULL || access == NULL) {
		err = ras_error_code(RAS_EINVALID, "the token endpoint gave no ID token or access token");
		goto done;
	}
	if ((err = verify_id_token(o, id_token, nonce, now, &claims)) < 0)
		goto done;
	snprintf(out->sub, sizeof(out->sub), "%s", ras_json_str(claims, "sub"));
	if ((err = fetch_json(o, "userinfo endpoint", "GET", ras_json_str(o->disc, "userinfo_endpoint"),
	    NULL, access, &ui)) < 0)
		goto done;
	if (!ras_json_str(ui, "sub") || strcmp(ras_json_str(ui, "sub"), out->sub) != 0) {
		err = ras_error_code(RAS_EINVALID, "userinfo names another subject than the ID token");
		goto done;
	}
	{
		const char *name = ras_json_str(ui, "name") ? ras_json_str(ui, "name") :
		    ras_json_str(claims, "name");
		const char *sel = ras_json_str(claims, "selected_roleid") ?
		    ras_json_str(claims, "selected_roleid") : ras_json_str(ui, "selected_roleid");
		json_t *roles = json_object_get(ui, "nhsid_nrbac_roles");

		snprintf(out->name, sizeof(out->name), "%s", name ? name : "");
		snprintf(out->selected_role, sizeof(out->selected_role), "%s", sel ? sel : "");
		if (json_is_array(roles))
			out->rbac_roles = json_incref(roles);
	}
done:
	if (err < 0)
		ras_oidc_identity_release(out);
	json_decref(tok);
	json_decref(claims);
	json_decref(ui);
	if (jwt.data)
		explicit_bzero(jwt.data, jwt.len);
	ras_buf_free(&jwt);
	ras_buf_free(&form);
	return err;
}

void
ras_oidc_identity_release(struct ras_oidc_identity *id)
{
	json_decref(id->rbac_roles);
	id->rbac_roles = NULL;
}

size_t
ras_oidc_role_codes(const struct ras_oidc_identity *id, void (*fn)(const char *role_code, void *ctx),
    void *ctx)
{
	size_t i, n = 0;
	json_t *r;

	json_array_foreach(id->rbac_roles, i, r) {
		const char *pr = ras_json_str(r, "person_roleid"), *code = ras_json_str(r, "role_code");

		if (id->selected_role[0] && (pr == NULL || strcmp(pr, id->selected_role) != 0))
			continue;
		if (code)
			fn(code, ctx);
		n++;
	}
	return n;
}
