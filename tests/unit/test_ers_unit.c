/*
 * e-RS client units against the loopback fake e-RS (no database): the
 * client assertion JWT (checked with OpenSSL here), tokens, the headers of
 * each access mode, back-off, the rate limit, gzip, the A008/A028 bodies,
 * and XML forms (FHIR XML and mapped XHTML).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "ers_support.h"
#include "fake_ers.h"
#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/nhsapi_auth.h"
#include "ras/ers.h"
#include "ras/ers_outcome.h"
#include "ras/ers_poll.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/form.h"
#include "ras/intake.h"
#include "ras/xml.h"
#include "ras/xmlform.h"
#include "ras_config.h"

static const struct fake_req *
last_req(struct fake_http *h, const char *path_has)
{
	const struct fake_req *r = NULL;

	for (size_t i = 0; i < fake_http_count(h); i++)
		if (strstr(fake_http_req(h, i)->path, path_has))
			r = fake_http_req(h, i);
	return r;
}

static int
a005(struct ras_ers *c, int64_t now, const char *ubrn, unsigned flags, struct ras_ers_call *k)
{
	ras_ers_call_init(k, "A005", "GET", flags);
	k->ubrn = ubrn;
	snprintf(k->url, sizeof(k->url), "/STU3/ReferralRequest/%s", ubrn);
	return ras_ers_perform(c, now, k, 1);
}

/* --- the client assertion ------------------------------------------------ */

static void
jwt_assertion(void)
{
	struct fake_ers *f = ers_fake_start(false);
	struct ras_ers *c = ers_client(f, RAS_ERS_APPLICATION, "21012", NULL);
	struct ras_buf a = RAS_BUF_INIT(0), b = RAS_BUF_INIT(0);
	const char *priv, *pub, *why;
	char jti1[64] = "", jti2[64] = "";
	int64_t now = time(NULL);

	ers_keypair(&priv, &pub);
	CU_ASSERT_EQUAL_FATAL(ras_nhsapi_auth_assertion(ras_ers_auth_of(c), now, &a), 0);
	CU_ASSERT_EQUAL_FATAL(ras_nhsapi_auth_assertion(ras_ers_auth_of(c), now, &b), 0);
	why = ers_check_jwt(a.data, pub, fake_ers_token_url(f), now, jti1, sizeof(jti1));
	if (why)
		fprintf(stderr, "JWT: %s\n", why);
	CU_ASSERT_PTR_NULL(why);
	CU_ASSERT_PTR_NULL(ers_check_jwt(b.data, pub, fake_ers_token_url(f), now, jti2, sizeof(jti2)));
	/* jti is unique per assertion */
	CU_ASSERT_STRING_NOT_EQUAL(jti1, jti2);
	/* an aud that differs by one character is not the token URL */
	CU_ASSERT_PTR_NOT_NULL(ers_check_jwt(a.data, pub, "http://127.0.0.1/oauth2/token/", now, jti1,
	    sizeof(jti1)));
	/* a different key's signature does not verify */
	{
		EVP_PKEY *other = EVP_RSA_gen(2048);
		BIO *bio = BIO_new(BIO_s_mem());
		char *data;
		long n;
		char *otherpub;

		PEM_write_bio_PUBKEY(bio, other);
		n = BIO_get_mem_data(bio, &data);
		otherpub = strndup(data, (size_t)n);
		CU_ASSERT_PTR_NOT_NULL(ers_check_jwt(a.data, otherpub, fake_ers_token_url(f), now, jti1,
		    sizeof(jti1)));
		free(otherpub);
		BIO_free(bio);
		EVP_PKEY_free(other);
	}
	ras_buf_free(&a);
	ras_buf_free(&b);
	ras_ers_free(c);
	fake_ers_stop(f);
}

static void
key_check(void)
{
	const char *priv, *pub;
	EVP_PKEY *small = EVP_RSA_gen(1024), *ec = EVP_EC_gen("P-256");
	BIO *b1 = BIO_new(BIO_s_mem()), *b2 = BIO_new(BIO_s_mem());
	char *d1, *d2;
	long n1, n2;

	ers_keypair(&priv, &pub);
	CU_ASSERT_EQUAL(ras_crypto_rsa_key_check(priv, strlen(priv)), 0);
	PEM_write_bio_PrivateKey(b1, small, NULL, NULL, 0, NULL, NULL);
	PEM_write_bio_PrivateKey(b2, ec, NULL, NULL, 0, NULL, NULL);
	n1 = BIO_get_mem_data(b1, &d1);
	n2 = BIO_get_mem_data(b2, &d2);
	CU_ASSERT_EQUAL(ras_crypto_rsa_key_check(d1, (size_t)n1), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "too short"));
	CU_ASSERT_EQUAL(ras_crypto_rsa_key_check(d2, (size_t)n2), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "not an RSA key"));
	CU_ASSERT_EQUAL(ras_crypto_rsa_key_check(pub, strlen(pub)), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_crypto_rsa_key_check("garbage", 7), RAS_EINVALID);
	BIO_free(b1);
	BIO_free(b2);
	EVP_PKEY_free(small);
	EVP_PKEY_free(ec);
}

/* --- tokens and headers ----------------------------------------------------- */

static void
token_flow(void)
{
	struct fake_ers *f = ers_fake_start(false);
	struct ras_ers *c = ers_client(f, RAS_ERS_APPLICATION, "21012", NULL);
	struct ras_ers_call k;
	const struct fake_req *t, *r;
	const char *priv, *pub;
	char jti[64], *assertion, *grant, *type;
	int64_t now = time(NULL);

	ers_keypair(&priv, &pub);
	CU_ASSERT_EQUAL_FATAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	CU_ASSERT_EQUAL(fake_ers_tokens_issued(f), 1);
	CU_ASSERT_EQUAL(fake_ers_bad_assertions(f), 0);
	t = last_req(fake_ers_http(f), "/oauth2/token");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_STRING_EQUAL(t->method, "POST");
	CU_ASSERT_STRING_EQUAL(fake_req_header(t, "Content-Type"), "application/x-www-form-urlencoded");
	grant = ers_form_value(t->body, "grant_type");
	type = ers_form_value(t->body, "client_assertion_type");
	assertion = ers_form_value(t->body, "client_assertion");
	CU_ASSERT_STRING_EQUAL(grant, "client_credentials");
	CU_ASSERT_STRING_EQUAL(type, "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer");
	CU_ASSERT_PTR_NULL(ers_check_jwt(assertion, pub, fake_ers_token_url(f), now, jti, sizeof(jti)));
	free(grant);
	free(type);
	free(assertion);
	r = last_req(fake_ers_http(f), "/STU3/ReferralRequest/000000070000");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_EQUAL(strncmp(fake_req_header(r, "Authorization"), "Bearer fake-token-", 18), 0);
	ras_ers_call_release(&k, 1);

	/* the token is cached ... */
	CU_ASSERT_EQUAL(a005(c, now + 100, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(fake_ers_tokens_issued(f), 1);
	ras_ers_call_release(&k, 1);
	/* ... and renewed before it expires (expires_in "599") */
	fake_ers_set_now(f, now + 560);
	CU_ASSERT_EQUAL(a005(c, now + 560, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	CU_ASSERT_EQUAL(fake_ers_tokens_issued(f), 2);
	ras_ers_call_release(&k, 1);

	/* a 401 with an empty body (STU3 proxy) renews the token and repeats */
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "ReferralRequest/000000070000",
	    .status = 401 });
	CU_ASSERT_EQUAL(a005(c, now + 560, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	CU_ASSERT_EQUAL(k.attempts, 2);
	CU_ASSERT_EQUAL(fake_ers_tokens_issued(f), 3);
	ras_ers_call_release(&k, 1);

	/* a refused assertion is a clear error, not a retry loop */
	fake_ers_set_now(f, now + 100000);
	ras_nhsapi_auth_invalidate(ras_ers_auth_of(c));
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "JWT has expired"));
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	fake_ers_stop(f);
}

static bool
has_header_prefix(const struct fake_req *r, const char *prefix)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strncasecmp(r->headers[i].name, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static void
headers_by_mode(void)
{
	struct fake_ers *f;
	struct ras_ers *c;
	struct ras_ers_call k;
	const struct fake_req *r;
	char cid[64];
	int64_t now = time(NULL);

	/* application-restricted: token, correlation id, no user or x-ers headers */
	f = ers_fake_start(false);
	c = ers_client(f, RAS_ERS_APPLICATION, "21012", NULL);
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	r = last_req(fake_ers_http(f), "ReferralRequest/000000070000");
	CU_ASSERT_PTR_NOT_NULL_FATAL(r);
	CU_ASSERT_PTR_NOT_NULL(fake_req_header(r, "Authorization"));
	CU_ASSERT_EQUAL(strlen(fake_req_header(r, "X-Correlation-ID")), 36);
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "X-Correlation-ID"), k.correlation_id);
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "Accept"), "application/fhir+json");
	CU_ASSERT_FALSE(has_header_prefix(r, "NHSD-"));
	CU_ASSERT_FALSE(has_header_prefix(r, "x-ers-"));
	/* the response X-Request-ID is kept */
	CU_ASSERT_EQUAL(strncmp(k.request_id, "fake-", 5), 0);
	snprintf(cid, sizeof(cid), "%s", k.correlation_id);
	ras_ers_call_release(&k, 1);
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_STRING_NOT_EQUAL(k.correlation_id, cid);
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	fake_ers_stop(f);

	/* user-restricted: the role headers and the token from the file */
	{
		struct fake_ers_opts o = { 0 };

		f = fake_ers_start(&o);
	}
	c = ers_client(f, RAS_ERS_USER, "21012", NULL);
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	r = last_req(fake_ers_http(f), "ReferralRequest/000000070000");
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "Authorization"), "Bearer user-token-1");
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "NHSD-eRS-Business-Function"), "SERVICE_PROVIDER_CLINICIAN");
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "NHSD-End-User-Organisation-ODS"), "R69");
	CU_ASSERT_PTR_NULL(fake_req_header(r, "NHSD-eRS-On-Behalf-Of-User-ID"));
	CU_ASSERT_FALSE(has_header_prefix(r, "x-ers-"));
	CU_ASSERT_EQUAL(fake_ers_tokens_issued(f), 0);
	ras_ers_call_release(&k, 1);
	/* the token file is read again when it changes */
	{
		char *p;
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		nanosleep(&ts, NULL);
		p = ras_test_write_tmp("ers-bearer-token", "user-token-22\n", 14);
		free(p);
	}
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	r = last_req(fake_ers_http(f), "ReferralRequest/000000070000");
	CU_ASSERT_STRING_EQUAL(fake_req_header(r, "Authorization"), "Bearer user-token-22");
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);

	/* sandbox: no Authorization at all */
	c = ers_client(f, RAS_ERS_SANDBOX, "21012", NULL);
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	r = last_req(fake_ers_http(f), "ReferralRequest/000000070000");
	CU_ASSERT_PTR_NULL(fake_req_header(r, "Authorization"));
	CU_ASSERT_FALSE(has_header_prefix(r, "NHSD-"));
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	fake_ers_stop(f);
}

/* The business function decides what a user-restricted caller may do, and
 * e-RS (its official sandbox; scripts/conformance) refuses the rest with a
 * 403 whose reason is plain text: SERVICE_PROVIDER_ADMIN may read the
 * worklist but not a referral or record an outcome.  rasd keeps the reason. */
static void
business_function_refusals(void)
{
	struct fake_ers_opts fo = { 0 };
	struct fake_ers *f = fake_ers_start(&fo);
	struct ras_ers_opts o = { 0 };
	struct ras_ers *c = NULL;
	struct ras_ers_call k;
	char *tok = ras_test_write_tmp("ers-bearer-token-spa", "user-token-1\n", 13), msg[512];
	int64_t now = time(NULL);

	o.base_url = fake_ers_base_url(f);
	o.mode = RAS_ERS_USER;
	o.bearer_token_file = tok;
	o.business_function = "SERVICE_PROVIDER_ADMIN";
	o.ods_code = "R69";
	o.services = "21012";
	o.schedule = "08:00,13:00";
	o.instance = "test";
	o.rate_limit = 10;
	CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 403);
	ras_ers_call_error(&k, msg, sizeof(msg));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "HTTP 403"));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "cannot be accessed using the e-RS Business Function provided"));
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	/* ADMIN without an On-Behalf-Of user: refused, and said why */
	o.business_function = "SERVICE_PROVIDER_CLINICIAN_ADMIN";
	CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 403);
	ras_ers_call_error(&k, msg, sizeof(msg));
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "On-Behalf-Of User ID must be provided"));
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	/* with one: allowed */
	o.obo_user_id = "123456789012";
	CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	free(tok);
	fake_ers_stop(f);
}

/* --- TLS: always verified, CA bundle configurable -------------------------- */

static char *
pem_of_cert(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)n);
	BIO_free(b);
	return s;
}

static char *
pem_of_key(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s;
	long n;

	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &data);
	s = strndup(data, (size_t)n);
	BIO_free(b);
	return s;
}

static X509 *
make_cert(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, bool ca)
{
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), ca ? 1 : 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC, (const unsigned char *)cn,
	    -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(issuer ? issuer : x));
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
	X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	if (ca) {
		e = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	} else {
		e = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, "IP:127.0.0.1");
		X509_add_ext(x, e, -1);
		X509_EXTENSION_free(e);
	}
	X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256());
	return x;
}

static enum MHD_Result
tls_answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	static const char body[] = "{\"resourceType\":\"OperationOutcome\"}";
	struct MHD_Response *r;
	enum MHD_Result ret;

	(void)cls; (void)url; (void)method; (void)version; (void)upload; (void)upload_size;
	if (*con_cls == NULL) {
		*con_cls = (void *)1;
		return MHD_YES;
	}
	r = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
	ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static void
tls_verified(void)
{
	EVP_PKEY *cakey = EVP_RSA_gen(2048), *srvkey = EVP_RSA_gen(2048);
	X509 *ca = make_cert(cakey, "rasd test CA", NULL, NULL, true);
	X509 *srv = make_cert(srvkey, "127.0.0.1", ca, cakey, false);
	char *ca_pem = pem_of_cert(ca), *srv_pem = pem_of_cert(srv), *key_pem = pem_of_key(srvkey);
	char *ca_file = ras_test_write_tmp("tls-ca.pem", ca_pem, strlen(ca_pem));
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	struct ras_ers_opts o = { 0 };
	struct ras_ers *c = NULL;
	struct ras_ers_call k;
	char base[128];

	d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TLS, 0, NULL, NULL, tls_answer, NULL,
	    MHD_OPTION_HTTPS_MEM_KEY, key_pem, MHD_OPTION_HTTPS_MEM_CERT, srv_pem,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
	CU_ASSERT_PTR_NOT_NULL_FATAL(d);
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(base, sizeof(base), "https://127.0.0.1:%u/referrals/FHIR", info->port);
	o.base_url = base;
	o.mode = RAS_ERS_SANDBOX;
	/* the system CAs do not know this server: the call never happens, and
	 * is not retried (only a configuration change can help) */
	CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
	CU_ASSERT_EQUAL(a005(c, time(NULL), "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.err, RAS_EINVALID);
	CU_ASSERT_EQUAL(k.http.status, 0);
	CU_ASSERT_EQUAL(k.attempts, 1);
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	/* with the configured CA bundle it is verified and used */
	o.ca_file = ca_file;
	CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
	CU_ASSERT_EQUAL(a005(c, time(NULL), "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.err, 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	/* plain http goes only to loopback */
	o.base_url = "http://int.api.service.nhs.uk/referrals/FHIR";
	o.ca_file = NULL;
	CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
	CU_ASSERT_EQUAL(a005(c, time(NULL), "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.err, RAS_EINVALID);
	ras_ers_call_release(&k, 1);
	ras_ers_free(c);
	MHD_stop_daemon(d);
	free(ca_file);
	free(ca_pem);
	free(srv_pem);
	free(key_pem);
	X509_free(ca);
	X509_free(srv);
	EVP_PKEY_free(cakey);
	EVP_PKEY_free(srvkey);
}

/* --- back-off, rate limit, transport -------------------------------------- */

static void
backoff_429_503(void)
{
	struct fake_ers *f = ers_fake_start(false);
	struct ers_clock clk;
	struct ras_ers *c;
	struct ras_ers_call k;
	int64_t now = time(NULL);

	ers_clock_init(&clk);
	c = ers_client(f, RAS_ERS_APPLICATION, "21012", &clk);
	/* 429 (empty STU3 body) twice: 1 s, then 2 s, each with jitter */
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "ReferralRequest/000000070000",
	    .status = 429, .times = 2 });
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	CU_ASSERT_EQUAL(k.attempts, 3);
	CU_ASSERT_EQUAL(fake_ers_count(f, "GET", "ReferralRequest/000000070000"), 3);
	CU_ASSERT_EQUAL_FATAL(clk.nsleeps, 2);
	CU_ASSERT(clk.sleeps[0] >= 750 && clk.sleeps[0] <= 1250);
	CU_ASSERT(clk.sleeps[1] >= 1500 && clk.sleeps[1] <= 2500);
	ras_ers_call_release(&k, 1);

	/* 503 with Retry-After: exactly that long */
	ers_clock_init(&clk);
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "ReferralRequest/000000070000",
	    .status = 503, .retry_after = "2", .body = "{}" });
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	CU_ASSERT_EQUAL_FATAL(clk.nsleeps, 1);
	CU_ASSERT_EQUAL(clk.sleeps[0], 2000);
	ras_ers_call_release(&k, 1);

	/* a Retry-After too long to wait in-line goes back to the caller */
	ers_clock_init(&clk);
	fake_ers_script(f, &(struct fake_ers_script){ .method = "GET", .path_has = "ReferralRequest/000000070000",
	    .status = 503, .retry_after = "600", .error_code = "SYSTEM_UNAVAILABLE" });
	CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 503);
	CU_ASSERT_EQUAL(k.retry_after_s, 600);
	CU_ASSERT_STRING_EQUAL(k.error_code, "SYSTEM_UNAVAILABLE");
	CU_ASSERT_EQUAL(clk.nsleeps, 0);
	ras_ers_call_release(&k, 1);

	/* a write is never repeated after a 503: its outcome is the caller's */
	ers_clock_init(&clk);
	{
		size_t before = fake_ers_count(f, "POST", "recordReviewOutcome");

		fake_ers_script(f, &(struct fake_ers_script){ .method = "POST", .path_has = "recordReviewOutcome",
		    .status = 503, .retry_after = "1", .body = "{}" });
		ras_ers_call_init(&k, "A028", "POST", RAS_ERS_CALL_WRITE);
		snprintf(k.url, sizeof(k.url), "/STU3/ReferralRequest/000000070000/$ers.recordReviewOutcome");
		k.body = "{}";
		k.body_len = 2;
		CU_ASSERT_EQUAL(ras_ers_perform(c, now, &k, 1), 0);
		CU_ASSERT_EQUAL(k.http.status, 503);
		CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "recordReviewOutcome"), before + 1);
		CU_ASSERT_EQUAL(clk.nsleeps, 0);
		ras_ers_call_release(&k, 1);
	}

	/* a write whose connection drops after it was sent: outcome unknown,
	 * and libcurl must not have sent it again on its own */
	{
		size_t before = fake_ers_count(f, "POST", "recordReviewOutcome");

		fake_ers_script(f, &(struct fake_ers_script){ .method = "POST", .path_has = "recordReviewOutcome",
		    .drop = true });
		ras_ers_call_init(&k, "A028", "POST", RAS_ERS_CALL_WRITE);
		snprintf(k.url, sizeof(k.url), "/STU3/ReferralRequest/000000070000/$ers.recordReviewOutcome");
		k.body = "{}";
		k.body_len = 2;
		CU_ASSERT_EQUAL(ras_ers_perform(c, now, &k, 1), 0);
		CU_ASSERT_EQUAL(k.http.err, RAS_ETIMEDOUT);
		CU_ASSERT_EQUAL(k.http.status, 0);
		CU_ASSERT_EQUAL(k.attempts, 1);
		CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "recordReviewOutcome"), before + 1);
		ras_ers_call_release(&k, 1);
	}
	ras_ers_free(c);
	fake_ers_stop(f);
}

static void
rate_limit(void)
{
	struct fake_ers *f = ers_fake_start(false);
	struct ers_clock clk;
	struct ras_ers *c;
	struct ras_ers_call *k = calloc(25, sizeof(*k));
	int64_t now = time(NULL);

	ers_clock_init(&clk);
	c = ers_client(f, RAS_ERS_APPLICATION, "21012", &clk);
	for (int i = 0; i < 25; i++) {
		ras_ers_call_init(&k[i], "A005", "GET", 0);
		snprintf(k[i].url, sizeof(k[i].url), "/STU3/ReferralRequest/000000070000");
	}
	CU_ASSERT_EQUAL(ras_ers_perform(c, now, k, 25), 0);
	for (int i = 0; i < 25; i++)
		CU_ASSERT_EQUAL(k[i].http.status, 200);
	/* 25 calls at 10 a second: the limiter waited two windows */
	CU_ASSERT_EQUAL(clk.slept, 2000);
	CU_ASSERT_EQUAL(clk.nsleeps, 2);
	ras_ers_call_release(k, 25);
	/* the next single call still counts the last window */
	ras_ers_call_init(&k[0], "A005", "GET", 0);
	snprintf(k[0].url, sizeof(k[0].url), "/STU3/ReferralRequest/000000070000");
	CU_ASSERT_EQUAL(ras_ers_perform(c, now, k, 1), 0);
	CU_ASSERT_EQUAL(clk.slept, 2000);   /* only 5 in the current window */
	ras_ers_call_release(k, 1);
	free(k);
	ras_ers_free(c);
	fake_ers_stop(f);
}

static void
gzip_and_outcomes(void)
{
	struct fake_ers *f = ers_fake_start(false);
	struct ras_ers *c = ers_client(f, RAS_ERS_APPLICATION, "21012", NULL);
	struct ras_ers_call k;
	const struct fake_req *r;
	char code[64], diag[256];
	char *t;
	size_t len;

	CU_ASSERT_EQUAL(a005(c, time(NULL), "000000070004", 0, &k), 0);
	CU_ASSERT_EQUAL(k.http.status, 200);
	r = last_req(fake_ers_http(f), "ReferralRequest/000000070004");
	CU_ASSERT_PTR_NOT_NULL(strstr(fake_req_header(r, "Accept-Encoding"), "gzip"));
	CU_ASSERT(fake_ers_gzipped(f) >= 1);
	CU_ASSERT_TRUE(ers_body_equals(k.http.body_out.data, k.http.body_out.len,
	    "sandbox/stu3/retrieveReferralRequest/responses/ConvertedFromAdviceAndGuidance.json"));
	ras_ers_call_release(&k, 1);

	t = ras_test_read(ras_test_fixture("ers/sandbox/stu3/STU3-OperationOutcome.json"), &len);
	ras_ers_parse_outcome(t, len, code, sizeof(code), diag, sizeof(diag));
	CU_ASSERT_STRING_EQUAL(code, "UNEXPECTED_FIELD");
	CU_ASSERT_PTR_NOT_NULL(strstr(diag, "unknown parameter name"));
	free(t);
	t = ras_test_read(ras_test_fixture("ers/sandbox/r4/NHSDigital-OperationOutcome-422.json"), &len);
	ras_ers_parse_outcome(t, len, code, sizeof(code), diag, sizeof(diag));
	CU_ASSERT_STRING_EQUAL(code, "PENDING");
	free(t);
	ras_ers_parse_outcome("", 0, code, sizeof(code), diag, sizeof(diag));
	CU_ASSERT_STRING_EQUAL(code, "");
	ras_ers_parse_outcome("not json", 8, code, sizeof(code), diag, sizeof(diag));
	CU_ASSERT_STRING_EQUAL(code, "");
	/* a plain-text 403 keeps its reason (issue 15): the first line */
	{
		static const char txt[] = "Forbidden: ASID 200000000001 is not authorised for A008\r\nmore";
		static const char html[] = "<html><body>403 Forbidden</body></html>";
		static const char fault[] = "{\"fault\": {\"faultstring\": \"Invalid ApiKey\"}}";

		ras_ers_parse_outcome(txt, sizeof(txt) - 1, code, sizeof(code), diag, sizeof(diag));
		CU_ASSERT_STRING_EQUAL(code, "");
		CU_ASSERT_STRING_EQUAL(diag, "Forbidden: ASID 200000000001 is not authorised for A008");
		ras_ers_parse_outcome(html, sizeof(html) - 1, code, sizeof(code), diag, sizeof(diag));
		CU_ASSERT_STRING_EQUAL(diag, "");
		ras_ers_parse_outcome("bad\x01bytes", 9, code, sizeof(code), diag, sizeof(diag));
		CU_ASSERT_STRING_EQUAL(diag, "");
		ras_ers_parse_outcome(fault, sizeof(fault) - 1, code, sizeof(code), diag, sizeof(diag));
		CU_ASSERT_STRING_EQUAL(diag, "Invalid ApiKey");
	}
	ras_ers_free(c);
	fake_ers_stop(f);
}

/* --- bodies, policy helpers --------------------------------------------- */

static void
request_bodies(void)
{
	char *b = NULL;

	/* A008 with the service filter: the official example, for its service */
	CU_ASSERT_EQUAL_FATAL(ras_ers_poll_worklist_request("21012", &b), 0);
	CU_ASSERT_TRUE(ers_body_equals(b, strlen(b), "sandbox/stu3/retrieveWorklist/requests/FilteringByService.json"));
	free(b);
	/* A028: the official return and accept examples, exactly */
	CU_ASSERT_EQUAL_FATAL(ras_ers_outcome_review_body("RETURN_TO_REFERRER_WITH_ADVICE",
	    "Condition not serious. No further action needed", NULL, &b), 0);
	CU_ASSERT_TRUE(ers_body_equals(b, strlen(b),
	    "sandbox/stu3/recordTriageOutcome/requests/ReturnToReferrerWithAdvice.json"));
	free(b);
	CU_ASSERT_EQUAL_FATAL(ras_ers_outcome_review_body("ACCEPT_REFER_BOOK_LATER",
	    "Urgent action needed. To be booked ASAP", "URGENT", &b), 0);
	CU_ASSERT_TRUE(ers_body_equals(b, strlen(b),
	    "sandbox/stu3/recordTriageOutcome/requests/AcceptReferBookLater.json"));
	free(b);
	/* never a priority on a return */
	CU_ASSERT_EQUAL_FATAL(ras_ers_outcome_review_body("RETURN_TO_REFERRER_WITH_ADVICE",
	    "Condition not serious. No further action needed", "URGENT", &b), 0);
	CU_ASSERT_PTR_NULL(strstr(b, "reviewPriority"));
	free(b);
	/* never empty comments */
	CU_ASSERT_EQUAL(ras_ers_outcome_review_body("RETURN_TO_REFERRER_WITH_ADVICE", "", NULL, &b), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_ers_outcome_review_body("ACCEPT_REFER_BOOK_LATER", NULL, NULL, &b), RAS_EINVALID);
}

static void
policy(void)
{
	static const struct { const char *url; bool prod; } urls[] = {
		{ "https://api.service.nhs.uk/referrals/FHIR", true },
		{ "https://API.service.nhs.uk:443/referrals/FHIR", true },
		{ "https://api.service.nhs.uk", true },
		{ "https://int.api.service.nhs.uk/referrals/FHIR", false },
		{ "https://sandbox.api.service.nhs.uk/referrals/FHIR", false },
		{ "https://api.service.nhs.uk.example.com/referrals", false },
		{ "http://127.0.0.1:8080/referrals/FHIR", false },
	};
	struct ras_ers_opts o = { 0 };
	struct ras_ers *c = NULL;
	int64_t d;

	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
		CU_ASSERT_EQUAL(ras_ers_is_production(urls[i].url), urls[i].prod);
	for (int i = 0; i < 50; i++) {
		d = ras_ers_backoff_ms(1, 1000, 30000);
		CU_ASSERT(d >= 750 && d <= 1250);
		d = ras_ers_backoff_ms(3, 1000, 30000);
		CU_ASSERT(d >= 3000 && d <= 5000);
		d = ras_ers_backoff_ms(20, 1000, 30000);
		CU_ASSERT(d >= 22500 && d <= 37500);
	}
	/* sandbox mode is refused against production; schedules are checked */
	o.base_url = "https://api.service.nhs.uk/referrals/FHIR";
	o.mode = RAS_ERS_SANDBOX;
	CU_ASSERT_EQUAL(ras_ers_new(&o, &c), RAS_EINVALID);
	o.base_url = "https://int.api.service.nhs.uk/referrals/FHIR";
	o.schedule = "08:00,13:00,17:00";
	CU_ASSERT_EQUAL(ras_ers_new(&o, &c), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "two worklist calls"));
	o.schedule = "13:00,08:00";
	CU_ASSERT_EQUAL(ras_ers_new(&o, &c), RAS_EINVALID);
	o.schedule = "8:00";
	CU_ASSERT_EQUAL(ras_ers_new(&o, &c), RAS_EINVALID);
	o.schedule = "07:30,12:45";
	o.services = "21012=midnotts, 21012";
	CU_ASSERT_EQUAL(ras_ers_new(&o, &c), RAS_EINVALID);
	o.services = "21012=midnotts, 11002";
	CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &c), 0);
	{
		const struct ras_ers_service *s;
		const int *m;

		CU_ASSERT_EQUAL(ras_ers_services(c, &s), 2);
		CU_ASSERT_STRING_EQUAL(s[0].rasd_service, "midnotts");
		CU_ASSERT_STRING_EQUAL(s[1].rasd_service, "");
		CU_ASSERT_EQUAL(ras_ers_schedule(c, &m), 2);
		CU_ASSERT_EQUAL(m[0], 7 * 60 + 30);
		CU_ASSERT_EQUAL(m[1], 12 * 60 + 45);
	}
	ras_ers_free(c);
	/* user mode needs its role headers; application mode its key */
	o.mode = RAS_ERS_USER;
	o.bearer_token_file = "/nonexistent";
	CU_ASSERT_EQUAL(ras_ers_new(&o, &c), RAS_EINVALID);
	o.mode = RAS_ERS_APPLICATION;
	o.token_url = "https://int.api.service.nhs.uk/oauth2/token";
	o.api_key = "k";
	o.kid = "1";
	CU_ASSERT_EQUAL(ras_ers_new(&o, &c), RAS_EINVALID);
}

static void
config_options(void)
{
	static const char good[] =
	    "[ers]\nbase_url = https://int.api.service.nhs.uk/referrals/FHIR\n"
	    "token_url = https://int.api.service.nhs.uk/oauth2/token\nmode = application\n"
	    "api_key = abc123\nkid = key-1\nprivate_key = ers-private-key\n"
	    "service_ids = 21012=midnotts\nschedule = 08:00, 13:00\nrate_limit = 10\n";
	static const char bad[] =
	    "[ers]\nmode = robot\nschedule = 08:00,12:00,16:00\nrate_limit = 50\ntimeout = 2\n"
	    "business_function = PROVIDER_AUTHORISED_APPLICATION\napi_key = has space\n";
	struct ras_buf problems = RAS_BUF_INIT(0);
	struct ras_config *cfg = NULL;
	char *p;

	p = ras_test_write_tmp("ers-good.conf", good, sizeof(good) - 1);
	CU_ASSERT_EQUAL(ras_config_load(p, &cfg, &problems), 0);
	CU_ASSERT_STRING_EQUAL(ras_config_get(cfg, "ers", NULL, "mode"), "application");
	CU_ASSERT_EQUAL(ras_config_int(cfg, "ers", NULL, "timeout"), 200);
	CU_ASSERT_EQUAL(ras_config_int(cfg, "ers", NULL, "max_attempts"), 5);
	ras_config_free(cfg);
	free(p);
	p = ras_test_write_tmp("ers-bad.conf", bad, sizeof(bad) - 1);
	CU_ASSERT_EQUAL(ras_config_load(p, &cfg, &problems), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_test_count(problems.data, "\n"), 6);
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "ers.mode must be application, user or sandbox"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "two worklist calls a day"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "ers.rate_limit must be between 1 and 10"));
	CU_ASSERT_PTR_NOT_NULL(strstr(problems.data, "ers.timeout must be between 5 and 900"));
	ras_config_free(cfg);
	ras_buf_free(&problems);
	free(p);

	/* poll_days: working (default) or all; a Saturday polls only with all */
	{
		struct ras_date sat = { 2026, 4, 4 }, mon = { 2026, 4, 6 };
		struct ras_ers *c = NULL;

		cfg = ras_test_config("[ers]\nbase_url = https://int.api.service.nhs.uk/referrals/FHIR\n"
		    "mode = sandbox\nservice_ids = 21012\n");
		CU_ASSERT_EQUAL_FATAL(ras_ers_from_config(cfg, &c), 0);
		CU_ASSERT_FALSE(ras_ers_every_day(c));
		CU_ASSERT_FALSE(ras_ers_working_day(c, &sat));
		CU_ASSERT_TRUE(ras_ers_working_day(c, &mon));
		ras_ers_free(c);
		ras_config_free(cfg);
		cfg = ras_test_config("[ers]\nbase_url = https://int.api.service.nhs.uk/referrals/FHIR\n"
		    "mode = sandbox\nservice_ids = 21012\npoll_days = all\n");
		CU_ASSERT_EQUAL_FATAL(ras_ers_from_config(cfg, &c), 0);
		CU_ASSERT_TRUE(ras_ers_every_day(c));
		CU_ASSERT_TRUE(ras_ers_working_day(c, &sat));
		ras_ers_free(c);
		ras_config_free(cfg);
		p = ras_test_write_tmp("ers-days.conf", "[ers]\npoll_days = weekends\n", 26);
		CU_ASSERT_EQUAL(ras_config_load(p, &cfg, &problems), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(problems.data ? problems.data : "", "must be working or all"));
		ras_config_free(cfg);
		ras_buf_free(&problems);
		free(p);
	}
}

/* --- XML ------------------------------------------------------------------ */

static void
xml_reading(void)
{
	static const char laughs[] =
	    "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
	    "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]>"
	    "<lolz>&lol2;</lolz>";
	static const char xxe[] =
	    "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><r>&x;</r>";
	static const char doc[] =
	    "<a xmlns=\"urn:x\"><b id=\"1\">one</b><b id=\"2\"> two </b><c/></a>";
	struct ras_arena *a = ras_arena_new();
	struct ras_xml_doc *d;
	const char **v;
	size_t n;
	const char *ns[] = { "x", "urn:x", NULL };

	CU_ASSERT_EQUAL(ras_xml_parse(a, laughs, sizeof(laughs) - 1, 0, &d), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "declares entities"));
	CU_ASSERT_EQUAL(ras_xml_parse(a, xxe, sizeof(xxe) - 1, 0, &d), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_xml_parse(a, "<a>\n<b></a>", 11, 0, &d), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "line 2"));
	CU_ASSERT_EQUAL(ras_xml_parse(a, doc, sizeof(doc) - 1, 10, &d), RAS_ETOOBIG);
	CU_ASSERT_EQUAL_FATAL(ras_xml_parse(a, doc, sizeof(doc) - 1, 0, &d), 0);
	CU_ASSERT_STRING_EQUAL(ras_xml_name(ras_xml_root(d)), "a");
	CU_ASSERT_STRING_EQUAL(ras_xml_ns(ras_xml_root(d)), "urn:x");
	CU_ASSERT_STRING_EQUAL(ras_xml_attr(a, ras_xml_first(ras_xml_root(d)), "id"), "1");
	CU_ASSERT_STRING_EQUAL(ras_xml_name(ras_xml_next(ras_xml_next(ras_xml_first(ras_xml_root(d))))), "c");
	CU_ASSERT_EQUAL(ras_xml_xpath(a, d, "//x:b", ns, &v, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 2);
	CU_ASSERT_STRING_EQUAL(v[1], " two ");
	CU_ASSERT_EQUAL(ras_xml_xpath(a, d, "count(//x:b)", ns, &v, &n), 0);
	CU_ASSERT_STRING_EQUAL(v[0], "2");
	CU_ASSERT_EQUAL(ras_xml_xpath(a, d, "boolean(//x:zz)", ns, &v, &n), 0);
	CU_ASSERT_STRING_EQUAL(v[0], "false");
	CU_ASSERT_EQUAL(ras_xml_xpath(a, d, "//x:b[", ns, &v, &n), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_xml_xpath_check("//h:td[@id='x']"), 0);
	CU_ASSERT_EQUAL(ras_xml_xpath_check("//h:td[@id='x'"), RAS_EINVALID);
	ras_arena_free(a);
}

static const struct ras_answer *
answer_of(const struct ras_form *f, const char *link)
{
	return ras_form_answer(f, link);
}

static struct ras_xmlform_maps *
shipped_maps(void)
{
	struct ras_xmlform_maps *m = NULL;
	struct ras_buf problems = RAS_BUF_INIT(0);

	if (ras_xmlform_maps_load(RAS_SOURCE_ROOT "/mappings/form-maps", &m, &problems) < 0) {
		fprintf(stderr, "%s", problems.data ? problems.data : ras_error_last());
		exit(1);
	}
	ras_buf_free(&problems);
	return m;
}

static void
xml_forms(void)
{
	struct ras_xmlform_maps *maps = shipped_maps();
	struct ras_arena *a = ras_arena_new();
	struct ras_intake in;
	const struct ras_answer *x;
	size_t len;
	char *t;

	CU_ASSERT_EQUAL(ras_xmlform_maps_count(maps), 1);
	/* FHIR XML: no map needed */
	t = ras_test_read(ras_test_fixture("ers/local/objectstore/7a2e3d4b-2c3d-4e5f-9a01-1b2c3d4e5f60.xml"), &len);
	CU_ASSERT_EQUAL_FATAL(ras_intake_parse(a, NULL, t, len, &in), 0);
	CU_ASSERT_EQUAL(in.kind, RAS_PAYLOAD_FORM);
	CU_ASSERT_STRING_EQUAL(in.form->questionnaire, "urn:rasd:questionnaire:community-pain-referral");
	CU_ASSERT_STRING_EQUAL(in.form->version, "2");
	CU_ASSERT_STRING_EQUAL(in.form->authored, "2026-04-07T09:30:00+01:00");
	CU_ASSERT_EQUAL_FATAL((x = answer_of(in.form, "pain-duration-weeks")) != NULL, 1);
	CU_ASSERT_EQUAL(x->type, RAS_ANSWER_INTEGER);
	CU_ASSERT_EQUAL(x->i, 30);
	CU_ASSERT_EQUAL(ras_form_bool(in.form, "pain-daily"), 1);
	CU_ASSERT_EQUAL(ras_form_bool(in.form, "suspected-cancer"), 0);
	CU_ASSERT_TRUE(ras_form_has_code(in.form, "cognitive-impairment", "none"));
	CU_ASSERT_EQUAL_FATAL((x = answer_of(in.form, "medication")) != NULL, 1);
	CU_ASSERT_STRING_EQUAL(x->group, "medication-changes");
	free(t);

	/* XHTML: only through a map */
	t = ras_test_read(ras_test_fixture("ers/local/objectstore/8b3f4e5c-3d4e-4f60-8b12-2c3d4e5f6071.xhtml"), &len);
	CU_ASSERT_EQUAL(ras_intake_parse(a, NULL, t, len, &in), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "no form map"));
	CU_ASSERT_EQUAL_FATAL(ras_intake_parse(a, maps, t, len, &in), 0);
	CU_ASSERT_EQUAL(in.kind, RAS_PAYLOAD_FORM);
	CU_ASSERT_STRING_EQUAL(in.form->questionnaire, "urn:rasd:questionnaire:community-pain-referral");
	CU_ASSERT_STRING_EQUAL(in.form->authored, "2026-04-08T11:00:00+01:00");
	CU_ASSERT_EQUAL_FATAL((x = answer_of(in.form, "pain-duration-weeks")) != NULL, 1);
	CU_ASSERT_EQUAL(x->i, 14);
	CU_ASSERT_EQUAL_FATAL((x = answer_of(in.form, "diagnosis")) != NULL, 1);
	CU_ASSERT_STRING_EQUAL(x->s, "Chronic neck pain");
	CU_ASSERT_EQUAL(ras_form_bool(in.form, "red-flags-screened"), 1);
	CU_ASSERT_EQUAL(ras_form_bool(in.form, "opioids"), 0);
	CU_ASSERT_EQUAL_FATAL((x = answer_of(in.form, "cognitive-impairment")) != NULL, 1);
	CU_ASSERT_STRING_EQUAL(x->code, "none");
	CU_ASSERT_STRING_EQUAL(x->s, "None");
	/* an empty cell is unanswered, not an empty answer */
	CU_ASSERT_PTR_NULL(answer_of(in.form, "treatments-tried"));
	CU_ASSERT_PTR_NULL(answer_of(in.form, "dependants"));
	{
		/* a value that does not fit its type fails the form, naming the field */
		char *bad = strdup(t), *p = strstr(bad, "> 14 <");

		memcpy(p, ">lots<", 6);
		CU_ASSERT_EQUAL(ras_intake_parse(a, maps, bad, strlen(bad), &in), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "pain-duration-weeks"));
		CU_ASSERT_PTR_NULL(strstr(ras_error_last(), "lots"));
		free(bad);
	}
	free(t);
	/* XML that is not a form */
	CU_ASSERT_EQUAL(ras_intake_parse(a, maps, "<letter><p>Dear</p></letter>", strlen("<letter><p>Dear</p></letter>"), &in), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "no form map"));
	CU_ASSERT_EQUAL(ras_intake_parse(a, maps, "<Bundle xmlns=\"http://hl7.org/fhir\"/>",
	    strlen("<Bundle xmlns=\"http://hl7.org/fhir\"/>"), &in), RAS_EINVALID);

	/* maps are checked when loaded */
	{
		struct ras_xmlform_maps *m;
		static const char date_map[] =
		    "{\"name\":\"d\",\"questionnaire\":\"urn:q|1\",\"match\":{\"root\":\"form\"},"
		    "\"fields\":[{\"linkId\":\"when\",\"xpath\":\"/form/when\",\"type\":\"date\"},"
		    "{\"linkId\":\"score\",\"xpath\":\"/form/score\",\"type\":\"decimal\"},"
		    "{\"linkId\":\"ok\",\"xpath\":\"/form/ok\",\"type\":\"boolean\",\"true\":[\"ja\"],\"false\":[\"nein\"]}]}";
		static const char bad_xpath[] =
		    "{\"name\":\"x\",\"questionnaire\":\"q\",\"match\":{\"root\":\"r\"},"
		    "\"fields\":[{\"linkId\":\"a\",\"xpath\":\"//a[\",\"type\":\"string\"}]}";
		static const char bad_type[] =
		    "{\"name\":\"x\",\"questionnaire\":\"q\",\"match\":{\"root\":\"r\"},"
		    "\"fields\":[{\"linkId\":\"a\",\"xpath\":\"//a\",\"type\":\"colour\"}]}";
		json_t *qr;
		const char *how;

		CU_ASSERT_EQUAL_FATAL(ras_xmlform_maps_new(&m), 0);
		CU_ASSERT_EQUAL(ras_xmlform_maps_add(m, "t1", "{\"name\":\"x\"}", 12), RAS_EINVALID);
		CU_ASSERT_EQUAL(ras_xmlform_maps_add(m, "t2", bad_xpath, strlen(bad_xpath)), RAS_EINVALID);
		CU_ASSERT_EQUAL(ras_xmlform_maps_add(m, "t3", bad_type, strlen(bad_type)), RAS_EINVALID);
		CU_ASSERT_EQUAL_FATAL(ras_xmlform_maps_add(m, "t4", date_map, sizeof(date_map) - 1), 0);
		CU_ASSERT_EQUAL(ras_xmlform_maps_add(m, "t5", date_map, sizeof(date_map) - 1), RAS_EINVALID);
		CU_ASSERT_EQUAL_FATAL(ras_xmlform_read(a, m, "<form><when>29/02/2024</when><score>2.5</score><ok>Ja</ok></form>",
		    strlen("<form><when>29/02/2024</when><score>2.5</score><ok>Ja</ok></form>"), &qr, &how), 0);
		CU_ASSERT_STRING_EQUAL(how, "d");
		CU_ASSERT_STRING_EQUAL(ras_json_str(json_array_get(ras_json_arr(json_array_get(ras_json_arr(qr, "item"), 0),
		    "answer"), 0), "valueDate"), "2024-02-29");
		CU_ASSERT_EQUAL(ras_xmlform_read(a, m, "<form><when>30/02/2024</when></form>", strlen("<form><when>30/02/2024</when></form>"), &qr, &how),
		    RAS_EINVALID);
		CU_ASSERT_EQUAL(ras_xmlform_read(a, m, "<form><ok>vielleicht</ok></form>", strlen("<form><ok>vielleicht</ok></form>"), &qr, &how),
		    RAS_EINVALID);
		ras_xmlform_maps_free(m);
	}
	ras_arena_free(a);
	ras_xmlform_maps_free(maps);
}

/* --- every fault of the fakes' fault layer ------------------------------ */

/*
 * The e-RS client against each fault fake_http can inject, on a read
 * (A005) and a write (A028): a clear error for each (transport errors
 * name what happened; a body or header past its ceiling says so), a write
 * sent once and never repeated (its outcome is established by reading
 * e-RS back), and the same read answered normally once the fault is gone
 * (nothing lost: the caller's next cycle gets it).
 */
static void
every_fault(void)
{
	static const struct {
		const char *name;
		enum fake_fault_kind kind;
		int ms;
		size_t bytes;
		int want;
		const char *says;
	} faults[] = {
		{ "drop", FAKE_FAULT_DROP, 0, 0, RAS_ETIMEDOUT, "" },
		{ "delay past the timeout", FAKE_FAULT_DELAY, 2500, 0, RAS_ETIMEDOUT, "imeout" },
		{ "truncated body", FAKE_FAULT_TRUNCATE, 0, 0, RAS_ETIMEDOUT, "" },
		{ "oversize body", FAKE_FAULT_OVERSIZE, 0, RAS_PAYLOAD_MAX + 1024, RAS_ETOOBIG, "larger than" },
		{ "endless header", FAKE_FAULT_ENDLESS_HEADER, 0, 0, RAS_ETOOBIG, "RAS_HTTP_HEADER_MAX" },
		{ "slow drip", FAKE_FAULT_SLOW_DRIP, 400, 0, RAS_ETIMEDOUT, "imeout" },
	};
	struct fake_ers *f = ers_fake_start(true);
	struct ras_ers *c = ers_client(f, RAS_ERS_APPLICATION, "21012", NULL);
	struct fake_http *h = fake_ers_http(f);
	struct ras_ers_call k;
	int64_t now = time(NULL);
	char msg[512];

	/* a token first, so that each fault meets the call itself */
	CU_ASSERT_EQUAL_FATAL(ras_ers_authenticate(c, now), 0);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		/* every matching request, so that libcurl's own re-send of a read
		 * on a reused connection meets the fault too */
		struct fake_fault ft = { .kind = faults[i].kind, .path_has = "/STU3/ReferralRequest/000000070000",
			.ms = faults[i].ms, .bytes = faults[i].bytes, .times = -1 };
		size_t faulted = fake_http_faulted(h), writes;

		/* a read */
		fake_http_faults_clear(h);
		fake_http_fault(h, &ft);
		ras_ers_call_init(&k, "A005", "GET", 0);
		k.ubrn = "000000070000";
		k.timeout_ms = 1000;
		snprintf(k.url, sizeof(k.url), "/STU3/ReferralRequest/000000070000");
		CU_ASSERT_EQUAL(ras_ers_perform(c, now, &k, 1), 0);
		if (k.http.err != faults[i].want)
			fprintf(stderr, "e-RS read, %s: %d %s\n", faults[i].name, k.http.err, k.http.errmsg);
		CU_ASSERT_EQUAL(k.http.err, faults[i].want);
		CU_ASSERT(fake_http_faulted(h) > faulted);
		ras_ers_call_error(&k, msg, sizeof(msg));
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, "A005"));
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, faults[i].says));
		ras_ers_call_release(&k, 1);
		/* the fault gone, the same read is answered */
		fake_http_faults_clear(h);
		CU_ASSERT_EQUAL(a005(c, now, "000000070000", 0, &k), 0);
		CU_ASSERT_EQUAL(k.http.err, 0);
		CU_ASSERT_EQUAL(k.http.status, 200);
		ras_ers_call_release(&k, 1);

		/* a write: sent once, never repeated, outcome the caller's */
		ft.path_has = "recordReviewOutcome";
		fake_http_fault(h, &ft);
		writes = fake_ers_count(f, "POST", "recordReviewOutcome");
		ras_ers_call_init(&k, "A028", "POST", RAS_ERS_CALL_WRITE);
		snprintf(k.url, sizeof(k.url), "/STU3/ReferralRequest/000000070000/$ers.recordReviewOutcome");
		k.body = "{}";
		k.body_len = 2;
		k.timeout_ms = 1000;
		CU_ASSERT_EQUAL(ras_ers_perform(c, now, &k, 1), 0);
		CU_ASSERT_EQUAL(k.http.err, faults[i].want);
		CU_ASSERT_EQUAL(k.attempts, 1);
		CU_ASSERT_EQUAL(fake_ers_count(f, "POST", "recordReviewOutcome"), writes + 1);
		ras_ers_call_release(&k, 1);
		fake_http_faults_clear(h);
	}

	/* a TLS handshake that fails: never sent, RAS_EIO (safe to retry) */
	{
		struct ras_ers_opts o = { 0 };
		struct ras_ers *tc = NULL;
		char base[128];
		struct fake_fault ft = { .kind = FAKE_FAULT_TLS };
		size_t before = fake_http_count(h);

		snprintf(base, sizeof(base), "https://127.0.0.1:%u/referrals/FHIR", fake_http_port(h));
		o.base_url = base;
		o.mode = RAS_ERS_SANDBOX;
		o.services = "21012";
		o.schedule = "08:00,13:00";
		o.instance = "test";
		CU_ASSERT_EQUAL_FATAL(ras_ers_new(&o, &tc), 0);
		fake_http_fault(h, &ft);
		ras_ers_call_init(&k, "A005", "GET", 0);
		k.timeout_ms = 2000;
		snprintf(k.url, sizeof(k.url), "/STU3/ReferralRequest/000000070000");
		CU_ASSERT_EQUAL(ras_ers_perform(tc, now, &k, 1), 0);
		CU_ASSERT_EQUAL(k.http.err, RAS_EIO);
		CU_ASSERT_EQUAL(k.http.status, 0);
		CU_ASSERT_EQUAL(fake_http_faulted(h) > 0, true);
		CU_ASSERT_EQUAL(fake_http_count(h), before);
		ras_ers_call_release(&k, 1);
		ras_ers_free(tc);
		fake_http_faults_clear(h);
	}
	ras_ers_free(c);
	fake_ers_stop(f);
}

static const struct ras_test_case auth_cases[] = {
	{ "client assertion JWT (RS512, claims, unique jti)", jwt_assertion },
	{ "private key checks", key_check },
	{ "token request, cache, renewal, 401", token_flow },
	{ "headers by access mode", headers_by_mode },
	{ "business functions refused with a plain-text 403, reason kept", business_function_refusals },
	{ NULL, NULL },
};

static const struct ras_test_case transport_cases[] = {
	{ "429 back-off, 503 Retry-After, writes, dropped connection", backoff_429_503 },
	{ "every fault of the fault layer", every_fault },
	{ "rate limit: 10 calls a second", rate_limit },
	{ "gzip and OperationOutcome parsing", gzip_and_outcomes },
	{ "TLS verified; CA bundle configurable; http only to loopback", tls_verified },
	{ NULL, NULL },
};

static const struct ras_test_case policy_cases[] = {
	{ "A008 and A028 bodies equal the official examples", request_bodies },
	{ "production, back-off bounds, schedule, services", policy },
	{ "[ers] configuration options", config_options },
	{ NULL, NULL },
};

static const struct ras_test_case xml_cases[] = {
	{ "libxml2 reading: no entities, line numbers, XPath", xml_reading },
	{ "forms: FHIR XML and mapped XHTML", xml_forms },
	{ NULL, NULL },
};

int
main(void)
{
	static const struct ras_test_suite suites[] = {
		{ "ers-auth", auth_cases, NULL, NULL },
		{ "ers-transport", transport_cases, NULL, NULL },
		{ "ers-policy", policy_cases, NULL, NULL },
		{ "xml-forms", xml_cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
