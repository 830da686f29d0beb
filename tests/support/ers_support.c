/* ers_support: shared e-RS test helpers (see tests/ers_support.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "ers_support.h"
#include "harness.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/error.h"

static int64_t
clock_mono(void *ctx)
{
	return ((struct ers_clock *)ctx)->mono;
}

static void
clock_sleep(void *ctx, int64_t ms)
{
	struct ers_clock *k = ctx;

	if (k->nsleeps < (int)(sizeof(k->sleeps) / sizeof(k->sleeps[0])))
		k->sleeps[k->nsleeps] = ms;
	k->nsleeps++;
	k->slept += ms;
	k->mono += ms;
}

void
ers_clock_init(struct ers_clock *k)
{
	memset(k, 0, sizeof(*k));
	k->mono = 1000000;
}

struct ras_ers_clock
ers_clock_fns(struct ers_clock *k)
{
	struct ras_ers_clock c = { clock_mono, clock_sleep, k };

	return c;
}

static char *
bio_text(BIO *b)
{
	char *data;
	long n = BIO_get_mem_data(b, &data);
	char *s = malloc((size_t)n + 1);

	memcpy(s, data, (size_t)n);
	s[n] = '\0';
	return s;
}

void
ers_keypair(const char **priv, const char **pub)
{
	static char *pv, *pb;

	if (pv == NULL) {
		EVP_PKEY *k = EVP_RSA_gen(2048);
		BIO *a = BIO_new(BIO_s_mem()), *b = BIO_new(BIO_s_mem());

		if (k == NULL || !PEM_write_bio_PrivateKey(a, k, NULL, NULL, 0, NULL, NULL) ||
		    !PEM_write_bio_PUBKEY(b, k)) {
			fprintf(stderr, "cannot make a test RSA key\n");
			exit(1);
		}
		pv = bio_text(a);
		pb = bio_text(b);
		BIO_free(a);
		BIO_free(b);
		EVP_PKEY_free(k);
	}
	*priv = pv;
	*pub = pb;
}

struct ras_ers *
ers_client(struct fake_ers *f, enum ras_ers_mode mode, const char *services, struct ers_clock *clk)
{
	struct ras_ers_opts o = { 0 };
	struct ras_ers *c = NULL;
	const char *priv, *pub;
	static char token_path[4096];

	ers_keypair(&priv, &pub);
	o.base_url = fake_ers_base_url(f);
	o.token_url = fake_ers_token_url(f);
	o.mode = mode;
	o.api_key = ERS_API_KEY;
	o.kid = ERS_KID;
	o.private_key_pem = priv;
	o.private_key_len = strlen(priv);
	if (mode == RAS_ERS_USER) {
		char *p = ras_test_write_tmp("ers-bearer-token", "user-token-1\n", 13);

		snprintf(token_path, sizeof(token_path), "%s", p);
		free(p);
		o.bearer_token_file = token_path;
		o.business_function = "SERVICE_PROVIDER_CLINICIAN";
		o.ods_code = "R69";
	}
	o.services = services;
	o.schedule = "08:00,13:00";
	o.instance = "test";
	o.rate_limit = 10;
	if (clk)
		o.clock = ers_clock_fns(clk);
	if (ras_ers_new(&o, &c) < 0) {
		fprintf(stderr, "cannot make the e-RS client: %s\n", ras_error_last());
		exit(1);
	}
	return c;
}

static json_t *
part_json(const char *s, size_t len)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *j = NULL;

	if (ras_crypto_base64_decode(s, len, &b) == 0)
		(void)ras_json_parse(b.data, b.len, 0, &j);
	ras_buf_free(&b);
	return j;
}

const char *
ers_check_jwt(const char *jwt, const char *pub_pem, const char *aud, int64_t now, char *jti_out,
    size_t jti_size)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	const char *why = NULL;
	json_t *h = NULL, *c = NULL, *exp;
	BIO *bio = NULL;
	EVP_PKEY *k = NULL;
	EVP_MD_CTX *ctx = NULL;
	struct ras_buf sig = RAS_BUF_INIT(0);

	if (d2 == NULL || strchr(d2 + 1, '.'))
		return "not a compact JWS of three parts";
	for (const char *p = jwt; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
			return "JWS parts are not unpadded base64url";
	h = part_json(jwt, (size_t)(d1 - jwt));
	c = part_json(d1 + 1, (size_t)(d2 - d1 - 1));
	if (h == NULL || c == NULL) {
		why = "header or claims are not JSON";
		goto done;
	}
	if (!ras_json_str(h, "alg") || strcmp(ras_json_str(h, "alg"), "RS512") != 0)
		why = "alg is not RS512";
	else if (!ras_json_str(h, "typ") || strcmp(ras_json_str(h, "typ"), "JWT") != 0)
		why = "typ is not JWT";
	else if (!ras_json_str(h, "kid") || strcmp(ras_json_str(h, "kid"), ERS_KID) != 0)
		why = "kid is not the configured key id";
	else if (!ras_json_str(c, "iss") || strcmp(ras_json_str(c, "iss"), ERS_API_KEY) != 0)
		why = "iss is not the API key";
	else if (!ras_json_str(c, "sub") || strcmp(ras_json_str(c, "sub"), ERS_API_KEY) != 0)
		why = "sub is not the API key";
	else if (!ras_json_str(c, "aud") || strcmp(ras_json_str(c, "aud"), aud) != 0)
		why = "aud is not exactly the token URL";
	else if (!ras_json_str(c, "jti") || strlen(ras_json_str(c, "jti")) != 36)
		why = "jti is not a UUID string";
	else if (!json_is_integer(exp = json_object_get(c, "exp")))
		why = "exp is not an integer";
	else if (json_integer_value(exp) > now + 300 || json_integer_value(exp) <= now)
		why = "exp is not within (now, now + 300]";
	else if (json_object_size(h) != 3)
		why = "header has more than alg, typ and kid";
	if (why)
		goto done;
	snprintf(jti_out, jti_size, "%s", ras_json_str(c, "jti"));
	bio = BIO_new_mem_buf(pub_pem, -1);
	k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	ctx = EVP_MD_CTX_new();
	if (k == NULL || ras_crypto_base64_decode(d2 + 1, strlen(d2 + 1), &sig) < 0 ||
	    EVP_DigestVerifyInit(ctx, NULL, EVP_sha512(), NULL, k) != 1 ||
	    EVP_DigestVerify(ctx, (const unsigned char *)sig.data, sig.len, (const unsigned char *)jwt,
	    (size_t)(d2 - jwt)) != 1)
		why = "RS512 signature does not verify with the public key";
done:
	ras_buf_free(&sig);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	BIO_free(bio);
	json_decref(h);
	json_decref(c);
	return why;
}

json_t *
ers_fixture(const char *rel)
{
	char path[512];
	size_t len;
	char *t;
	json_t *j = NULL;

	snprintf(path, sizeof(path), "ers/%s", rel);
	t = ras_test_read(ras_test_fixture(path), &len);
	if (ras_json_parse(t, len, 0, &j) < 0) {
		fprintf(stderr, "fixture %s is not JSON\n", rel);
		exit(1);
	}
	free(t);
	return j;
}

bool
ers_body_equals(const char *body, size_t len, const char *rel)
{
	json_t *want = ers_fixture(rel), *got = NULL;
	bool same;

	same = ras_json_parse(body, len, 0, &got) == 0 && json_equal(want, got);
	json_decref(want);
	json_decref(got);
	return same;
}

char *
ers_form_value(const char *body, const char *name)
{
	size_t nl = strlen(name);

	for (const char *p = body; p && *p;) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			char *v = malloc(len - nl);

			memcpy(v, p + nl + 1, len - nl - 1);
			v[len - nl - 1] = '\0';
			return v;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

struct fake_ers *
ers_fake_start(bool stateful)
{
	const char *priv, *pub;
	struct fake_ers_opts o = { 0 };

	ers_keypair(&priv, &pub);
	o.public_key_pem = pub;
	o.require_auth = true;
	o.stateful = stateful;
	return fake_ers_start(&o);
}
