/* fake_ers: loopback e-RS, token endpoint and object store (see tests/fake_ers.h). */
#define _GNU_SOURCE   /* vasprintf */
#include <ctype.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <zlib.h>

#include "fake_ers.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/json.h"
#include "ras_config.h"

#define ERS_SD "https://fhir.nhs.uk/STU3/StructureDefinition/"
#define ERS_CS "https://fhir.nhs.uk/STU3/CodeSystem/"
#define MAX_ROUTES 128
#define MAX_SCRIPTS 64
#define MAX_REFS 256

struct route {
	char host[8];
	char method[8];
	char path[256];
	json_t *request;        /* POST: the body to match */
	char response[512];     /* file, relative to the fixtures directory */
	int status;
};

struct script {
	struct fake_ers_script s;
	char host[8], method[8], path_has[256], retry_after[16];
	char *body, *error_code, *other_reason, *other_comments;
	int left;
};

struct ref {
	char ubrn[64];
	int version;
	char state[64], reason[64];
	char *comments;
	int writes;
};

struct fake_ers {
	struct fake_ers_opts o;
	char dir[1024];
	struct fake_http *ers, *store;
	char base[128], token_url[128], store_url[128];
	pthread_mutex_t lock;
	struct route routes[MAX_ROUTES];
	size_t nroutes;
	struct script scripts[MAX_SCRIPTS];
	size_t nscripts;
	struct ref refs[MAX_REFS];
	size_t nrefs;
	char tokens[64][48];
	unsigned ntokens, bad_assertions, gzipped, reqno;
	char *key_pem;
	long long now;            /* 0 = the real clock */
	/* bodies and header values handed to fake_http outlive the handler */
	char **keep;
	size_t nkeep, capkeep;
};

/* ---- helpers ---------------------------------------------------------------- */

static char *
keep(struct fake_ers *f, char *p)
{
	if (f->nkeep == f->capkeep) {
		f->capkeep = f->capkeep ? f->capkeep * 2 : 256;
		f->keep = realloc(f->keep, f->capkeep * sizeof(*f->keep));
	}
	f->keep[f->nkeep++] = p;
	return p;
}

static char *
keepf(struct fake_ers *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static char *
keepf(struct fake_ers *f, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return keep(f, s);
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	long n;

	if (fp == NULL)
		return NULL;
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(fp);
	if (buf) {
		buf[n] = '\0';
		if (len)
			*len = (size_t)n;
	}
	return buf;
}

static json_t *
load_json(struct fake_ers *f, const char *rel)
{
	char path[2048];
	size_t len;
	char *t;
	json_t *j = NULL;

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	t = slurp(path, &len);
	if (t && ras_json_parse(t, len, 0, &j) < 0)
		j = NULL;
	free(t);
	return j;
}

static const char *
content_type_of(const char *file)
{
	const char *dot = strrchr(file, '.');

	if (dot == NULL)
		return "application/octet-stream";
	if (strcmp(dot, ".json") == 0)
		return "application/fhir+json";
	if (strcmp(dot, ".pdf") == 0)
		return "application/pdf";
	if (strcmp(dot, ".xml") == 0)
		return "application/fhir+xml";
	if (strcmp(dot, ".xhtml") == 0)
		return "application/xhtml+xml";
	return "application/octet-stream";
}

static void
set_body(struct fake_ers *f, struct fake_resp *resp, char *body, size_t len)
{
	resp->body = keep(f, body);
	resp->body_len = len;
	if (len == 0) {
		resp->body = NULL;
		resp->body_len = 0;
	}
}

static void
set_json(struct fake_ers *f, struct fake_resp *resp, int status, const json_t *j)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	size_t len = 0;

	char *text;

	(void)ras_json_dump(j, RAS_JSON_PRETTY, &b);
	resp->status = status;
	resp->content_type = "application/fhir+json";
	text = ras_buf_detach(&b, &len);
	set_body(f, resp, text, len);
	ras_buf_free(&b);
}

static void
set_file(struct fake_ers *f, struct fake_resp *resp, int status, const char *rel)
{
	char path[2048];
	size_t len = 0;
	char *t;

	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	t = slurp(path, &len);
	resp->status = t ? status : 500;
	resp->content_type = content_type_of(rel);
	if (t)
		set_body(f, resp, t, len);
}

/* An STU3 (or R4) OperationOutcome with an e-RS code. */
static void
set_outcome(struct fake_ers *f, struct fake_resp *resp, int status, const char *code,
    const char *diag, bool r4)
{
	json_t *j = json_pack("{s:s, s:{s:[s]}, s:[{s:s, s:s, s:{s:[{s:s, s:s}]}, s:s}]}",
	    "resourceType", "OperationOutcome", "meta", "profile",
	    r4 ? "https://fhir.nhs.uk/StructureDefinition/NHSDigital-OperationOutcome" :
	    ERS_SD "eRS-OperationOutcome-1",
	    "issue", "severity", "error", "code", status == 409 ? "conflict" : status == 423 ? "lock-error" :
	    "business-rule", "details", "coding", "system",
	    r4 ? "https://fhir.nhs.uk/CodeSystem/ers-error-codes" : ERS_CS "eRS-APIErrorCode-1",
	    "code", code, "diagnostics", diag ? diag : code);

	set_json(f, resp, status, j);
	json_decref(j);
}

static bool
path_match(const char *pattern, const char *path)
{
	while (*pattern && *path) {
		if (*pattern == '*') {
			pattern++;
			while (*path && *path != '/')
				path++;
			continue;
		}
		if (*pattern != *path)
			return false;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

static struct ref *
find_ref(struct fake_ers *f, const char *ubrn)
{
	for (size_t i = 0; i < f->nrefs; i++)
		if (strcmp(f->refs[i].ubrn, ubrn) == 0)
			return &f->refs[i];
	return NULL;
}

static struct ref *
set_ref(struct fake_ers *f, const char *ubrn, int version, const char *state, const char *reason,
    const char *comments)
{
	struct ref *r = find_ref(f, ubrn);

	if (r == NULL) {
		if (f->nrefs >= MAX_REFS)
			return NULL;
		r = &f->refs[f->nrefs++];
		memset(r, 0, sizeof(*r));
		snprintf(r->ubrn, sizeof(r->ubrn), "%s", ubrn);
	}
	r->version = version;
	snprintf(r->state, sizeof(r->state), "%s", state ? state : "AWAITING_TRIAGE");
	snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "");
	free(r->comments);
	r->comments = comments ? strdup(comments) : NULL;
	return r;
}

/* Rewrite a ReferralRequest to the modelled version and review state. */
static void
patch_referral(json_t *rr, const struct ref *r)
{
	json_t *meta = json_object_get(rr, "meta"), *exts = json_object_get(rr, "extension"), *e, *sub;
	char ver[16];
	size_t i;

	snprintf(ver, sizeof(ver), "%d", r->version);
	json_object_set_new(rr, "id", json_string(r->ubrn));
	if (meta)
		json_object_set_new(meta, "versionId", json_string(ver));
	sub = json_array();
	json_array_append_new(sub, json_pack("{s:s, s:{s:s, s:s}}", "url", "state", "valueCoding",
	    "system", ERS_CS "eRS-ReferralState-1", "code", r->state));
	if (r->reason[0])
		json_array_append_new(sub, json_pack("{s:s, s:{s:s, s:s}}", "url", "reason", "valueCoding",
		    "system", strcmp(r->reason, "TRIAGE") == 0 ? ERS_CS "eRS-ReviewReason-1" :
		    ERS_CS "eRS-ReviewOutcome-1", "code", r->reason));
	if (r->comments)
		json_array_append_new(sub, json_pack("{s:s, s:s}", "url", "comments", "valueString",
		    r->comments));
	json_array_foreach(exts, i, e) {
		const char *url = json_string_value(json_object_get(e, "url"));

		if (url && strcmp(url, ERS_SD "Extension-eRS-ReferralState-1") == 0) {
			json_object_set(e, "extension", sub);
			break;
		}
	}
	json_decref(sub);
}

static void
add_common_headers(struct fake_ers *f, const struct fake_req *req, struct fake_resp *resp)
{
	const char *cid = fake_req_header(req, "X-Correlation-ID");

	fake_resp_header(resp, "X-Request-ID", keepf(f, "fake-%u", ++f->reqno));
	if (cid)
		fake_resp_header(resp, "X-Correlation-ID", keepf(f, "%s", cid));
}

static void
maybe_gzip(struct fake_ers *f, const struct fake_req *req, struct fake_resp *resp)
{
	const char *ae = fake_req_header(req, "Accept-Encoding");
	z_stream z;
	unsigned char *out;
	size_t cap;

	if (f->o.no_gzip || ae == NULL || strstr(ae, "gzip") == NULL || resp->body == NULL ||
	    resp->body_len <= 1024)
		return;
	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return;
	cap = deflateBound(&z, (uLong)resp->body_len);
	out = malloc(cap);
	z.next_in = (unsigned char *)resp->body;
	z.avail_in = (uInt)resp->body_len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END) {
		deflateEnd(&z);
		free(out);
		return;
	}
	resp->body = keep(f, (char *)out);
	resp->body_len = z.total_out;
	deflateEnd(&z);
	fake_resp_header(resp, "Content-Encoding", "gzip");
	f->gzipped++;
}

/* ---- token endpoint ------------------------------------------------------ */

static char *
form_value(const char *body, const char *name)
{
	size_t nl = strlen(name);
	const char *p = body;

	while (p && *p) {
		const char *amp = strchr(p, '&');
		size_t len = amp ? (size_t)(amp - p) : strlen(p);

		if (len > nl && strncmp(p, name, nl) == 0 && p[nl] == '=') {
			char *v = malloc(len - nl);
			size_t o = 0;

			for (size_t i = nl + 1; i < len; i++) {
				if (p[i] == '%' && i + 2 < len && isxdigit((unsigned char)p[i + 1]) &&
				    isxdigit((unsigned char)p[i + 2])) {
					char hex[3] = { p[i + 1], p[i + 2], 0 };

					v[o++] = (char)strtol(hex, NULL, 16);
					i += 2;
				} else {
					v[o++] = p[i] == '+' ? ' ' : p[i];
				}
			}
			v[o] = '\0';
			return v;
		}
		p = amp ? amp + 1 : NULL;
	}
	return NULL;
}

static json_t *
b64url_json(const char *s, size_t len)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *j = NULL;

	if (ras_crypto_base64_decode(s, len, &b) == 0)
		(void)ras_json_parse(b.data, b.len, 0, &j);
	ras_buf_free(&b);
	return j;
}

/* Check a client assertion as APIM does (NOTES §3.1); NULL when good. */
static const char *
check_assertion(struct fake_ers *f, const char *jwt)
{
	const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
	json_t *h = NULL, *c = NULL;
	const char *why = NULL;
	json_int_t exp;
	long long now = f->now ? f->now : (long long)time(NULL);

	if (d2 == NULL)
		return "client_assertion is not a JWS";
	h = b64url_json(jwt, (size_t)(d1 - jwt));
	c = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1));
	if (h == NULL || c == NULL) {
		why = "client_assertion header or claims are not JSON";
		goto done;
	}
	if (!ras_json_str(h, "alg") || strcmp(ras_json_str(h, "alg"), "RS512") != 0)
		why = "Invalid 'alg' header in client_assertion JWT - unsupported JWT algorithm - must be 'RS512'";
	else if (!ras_json_str(h, "typ") || strcasecmp(ras_json_str(h, "typ"), "JWT") != 0)
		why = "Invalid 'typ' header in client_assertion JWT - must be 'JWT'";
	else if (!ras_json_str(h, "kid"))
		why = "Missing 'kid' header in client_assertion JWT";
	else if (!ras_json_str(c, "iss") || !ras_json_str(c, "sub") ||
	    strcmp(ras_json_str(c, "iss"), ras_json_str(c, "sub")) != 0)
		why = "Missing or non-matching 'iss'/'sub' claims in client_assertion JWT";
	else if (!ras_json_str(c, "aud") || strcmp(ras_json_str(c, "aud"), f->token_url) != 0)
		why = "Missing or invalid 'aud' claim in client_assertion JWT";
	else if (!ras_json_str(c, "jti"))
		why = "Missing 'jti' claim in client_assertion JWT";
	else if (!json_is_integer(json_object_get(c, "exp")))
		why = "Missing exp claim in client_assertion JWT";
	if (why)
		goto done;
	exp = json_integer_value(json_object_get(c, "exp"));
	if (exp <= now) {
		why = "Invalid exp claim in client_assertion JWT - JWT has expired";
		goto done;
	}
	if (exp > now + 310) {
		why = "Invalid exp claim in client_assertion JWT - more than 5 minutes in future";
		goto done;
	}
	if (f->key_pem) {
		BIO *bio = BIO_new_mem_buf(f->key_pem, -1);
		EVP_PKEY *k = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		struct ras_buf sig = RAS_BUF_INIT(0);

		if (k == NULL || ras_crypto_base64_decode(d2 + 1, strlen(d2 + 1), &sig) < 0 ||
		    EVP_DigestVerifyInit(ctx, NULL, EVP_sha512(), NULL, k) != 1 ||
		    EVP_DigestVerify(ctx, (unsigned char *)sig.data, sig.len, (const unsigned char *)jwt,
		    (size_t)(d2 - jwt)) != 1)
			why = "Invalid 'kid' header in client_assertion JWT - no matching public key";
		ras_buf_free(&sig);
		EVP_MD_CTX_free(ctx);
		EVP_PKEY_free(k);
		BIO_free(bio);
	}
done:
	json_decref(h);
	json_decref(c);
	return why;
}

static void
token(struct fake_ers *f, const struct fake_req *req, struct fake_resp *resp)
{
	char *grant = form_value(req->body, "grant_type");
	char *type = form_value(req->body, "client_assertion_type");
	char *jwt = form_value(req->body, "client_assertion");
	const char *why = NULL;
	json_t *j;

	if (strcmp(req->method, "POST") != 0)
		why = "token endpoint takes POST";
	else if (grant == NULL || strcmp(grant, "client_credentials") != 0)
		why = "grant_type is missing or not client_credentials";
	else if (type == NULL || strcmp(type, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") != 0)
		why = "Missing or invalid client_assertion_type - must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'";
	else if (jwt == NULL)
		why = "Missing client_assertion";
	else
		why = check_assertion(f, jwt);
	if (why) {
		f->bad_assertions++;
		j = json_pack("{s:s, s:s, s:s}", "error", "invalid_request", "error_description", why,
		    "message_id", "fake");
		set_json(f, resp, 400, j);
		resp->content_type = "application/json";
	} else {
		unsigned n = f->ntokens < 64 ? f->ntokens : 63;

		snprintf(f->tokens[n], sizeof(f->tokens[n]), "fake-token-%u-%ld", f->ntokens, (long)time(NULL));
		f->ntokens++;
		/* APIM sends expires_in and issued_at as strings */
		j = json_pack("{s:s, s:s, s:s, s:s}", "access_token", f->tokens[n], "expires_in", "599",
		    "token_type", "Bearer", "issued_at", "1700000000000");
		set_json(f, resp, 200, j);
		resp->content_type = "application/json";
	}
	json_decref(j);
	free(grant);
	free(type);
	free(jwt);
}

static bool
token_ok(struct fake_ers *f, const struct fake_req *req)
{
	const char *a = fake_req_header(req, "Authorization");

	if (a == NULL || strncmp(a, "Bearer ", 7) != 0)
		return false;
	for (unsigned i = 0; i < f->ntokens && i < 64; i++)
		if (strcmp(f->tokens[i], a + 7) == 0)
			return true;
	return false;
}

/* ---- e-RS routes ------------------------------------------------------------ */

static const struct route *
route_get(struct fake_ers *f, const char *host, const char *method, const char *path)
{
	for (size_t i = 0; i < f->nroutes; i++)
		if (strcmp(f->routes[i].host, host) == 0 && strcmp(f->routes[i].method, method) == 0 &&
		    f->routes[i].request == NULL && path_match(f->routes[i].path, path))
			return &f->routes[i];
	return NULL;
}

static const struct route *
route_post(struct fake_ers *f, const char *path, const json_t *body)
{
	for (size_t i = 0; i < f->nroutes; i++)
		if (strcmp(f->routes[i].host, "ers") == 0 && strcmp(f->routes[i].method, "POST") == 0 &&
		    path_match(f->routes[i].path, path) &&
		    (f->routes[i].request == NULL || (body && json_equal(f->routes[i].request, body))))
			return &f->routes[i];
	return NULL;
}

static void
sandbox_error(struct fake_ers *f, struct fake_resp *resp, int status, bool r4)
{
	set_file(f, resp, status, r4 ? "sandbox/r4/R4-SandboxErrorOutcome.json" :
	    "sandbox/stu3/STU3-SandboxErrorOutcome.json");
}

/* Stateful: every TRIAGE_DEFERRAL item of a served worklist is awaiting
 * triage at its listed version. */
static void
learn_worklist(struct fake_ers *f, const json_t *list)
{
	json_t *e;
	size_t i;

	json_array_foreach(json_object_get(list, "entry"), i, e) {
		const char *ref = ras_json_str(ras_json_obj(e, "item"), "reference");
		json_t *item = json_array_get(json_object_get(e, "extension"), 0), *x;
		const char *type = NULL;
		int version = 0;
		size_t k;

		json_array_foreach(json_object_get(item, "extension"), k, x) {
			const char *u = ras_json_str(x, "url");

			if (u && strcmp(u, "referralType") == 0)
				type = ras_json_str(json_array_get(ras_json_arr(ras_json_obj(x,
				    "valueCodeableConcept"), "coding"), 0), "code");
			if (u && strcmp(u, "referralRequestVersion") == 0)
				version = (int)json_integer_value(json_object_get(x, "valueInteger"));
		}
		if (ref && strncmp(ref, "ReferralRequest/", 16) == 0 && type &&
		    strcmp(type, "TRIAGE_DEFERRAL") == 0 && find_ref(f, ref + 16) == NULL)
			set_ref(f, ref + 16, version, "AWAITING_TRIAGE", "TRIAGE", NULL);
	}
}

static void
worklist(struct fake_ers *f, const struct fake_req *req, struct fake_resp *resp, const char *path)
{
	json_t *body = NULL, *list;
	const struct route *r;

	(void)ras_json_parse(req->body, req->body_len, 0, &body);
	r = route_post(f, path, body);
	json_decref(body);
	if (r == NULL || r->request == NULL) {
		sandbox_error(f, resp, 422, false);
		return;
	}
	set_file(f, resp, r->status, r->response);
	if (f->o.stateful && (list = load_json(f, r->response)) != NULL) {
		learn_worklist(f, list);
		json_decref(list);
	}
}

static void
referral(struct fake_ers *f, struct fake_resp *resp, const char *ubrn, const char *history)
{
	char path[256];
	const struct route *r;
	struct ref *st = find_ref(f, ubrn);
	json_t *rr;
	int version;

	snprintf(path, sizeof(path), "/STU3/ReferralRequest/%s", ubrn);
	r = route_get(f, "ers", "GET", path);
	if (r == NULL || (rr = load_json(f, r->response)) == NULL) {
		sandbox_error(f, resp, 422, false);
		return;
	}
	if (f->o.stateful && st)
		patch_referral(rr, st);
	version = (int)strtol(ras_json_str(ras_json_obj(rr, "meta"), "versionId") ?
	    ras_json_str(ras_json_obj(rr, "meta"), "versionId") : "0", NULL, 10);
	if (history && strtol(history, NULL, 10) != version) {
		/* only the latest version can be read (NOTES §11) */
		json_decref(rr);
		set_outcome(f, resp, 404, "HISTORY_NOT_SUPPORTED", "Only the latest version is available", false);
		return;
	}
	set_json(f, resp, 200, rr);
	fake_resp_header(resp, "ETag", keepf(f, "W/\"%d\"", version));
	json_decref(rr);
}

static void
actions(struct fake_ers *f, struct fake_resp *resp, const char *path)
{
	const char *focus = strstr(path, "focus=ReferralRequest/");
	char ubrn[64] = "";
	int version = -1;
	struct ref *st = NULL;
	const struct route *r;

	if (focus && sscanf(focus, "focus=ReferralRequest/%63[^/]/_history/%d", ubrn, &version) == 2)
		st = find_ref(f, ubrn);
	if (f->o.stateful && st) {
		json_t *b;

		if (strstr(path, "intent=proposal") == NULL || strstr(path, "status=ready") == NULL) {
			set_outcome(f, resp, 400, "MISSING_PARAMETER", "intent and status are required", false);
			return;
		}
		if (version != st->version) {
			set_outcome(f, resp, 400, "HISTORY_NOT_SUPPORTED", "Only the latest version is available", false);
			return;
		}
		b = load_json(f, strcmp(st->state, "AWAITING_TRIAGE") == 0 ?
		    "sandbox/stu3/availableActionsForUserList/WithRecordReviewOutcome.json" :
		    "sandbox/stu3/availableActionsForUserList/Empty.json");
		if (b) {
			json_t *task = ras_json_obj(json_array_get(ras_json_arr(b, "entry"), 0), "resource");
			char *ref = keepf(f, "ReferralRequest/%s/_history/%d", ubrn, version);

			if (task)
				json_object_set_new(task, "focus", json_pack("{s:s}", "reference", ref));
			set_json(f, resp, 200, b);
			json_decref(b);
		}
		return;
	}
	r = route_get(f, "ers", "GET", path);
	if (r == NULL) {
		sandbox_error(f, resp, 400, false);
		return;
	}
	set_file(f, resp, r->status, r->response);
}

static const char *
param_code(const json_t *params, const char *name, const char **str)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(params, "parameter"), i, p) {
		const char *n = ras_json_str(p, "name");

		if (n && strcmp(n, name) == 0) {
			if (str)
				*str = ras_json_str(p, "valueString");
			return ras_json_str(ras_json_obj(p, "valueCoding"), "code");
		}
	}
	if (str)
		*str = NULL;
	return NULL;
}

static bool
has_param(const json_t *params, const char *name)
{
	json_t *p;
	size_t i;

	json_array_foreach(json_object_get(params, "parameter"), i, p)
		if (ras_json_str(p, "name") && strcmp(ras_json_str(p, "name"), name) == 0)
			return true;
	return false;
}

static void
review(struct fake_ers *f, const struct fake_req *req, struct fake_resp *resp, const char *path,
    const char *ubrn)
{
	struct ref *st = find_ref(f, ubrn);
	json_t *body = NULL, *rr;
	const char *outcome, *comments = NULL, *ifm = fake_req_header(req, "If-Match");
	char want[32];

	(void)ras_json_parse(req->body, req->body_len, 0, &body);
	if (!(f->o.stateful && st)) {
		const struct route *r = route_post(f, path, body);

		json_decref(body);
		if (r == NULL || r->request == NULL) {
			sandbox_error(f, resp, 422, false);
			return;
		}
		if ((rr = load_json(f, r->response)) == NULL) {
			resp->status = 500;
			return;
		}
		set_json(f, resp, r->status, rr);
		fake_resp_header(resp, "ETag", keepf(f, "W/\"%s\"",
		    ras_json_str(ras_json_obj(rr, "meta"), "versionId")));
		json_decref(rr);
		return;
	}
	snprintf(want, sizeof(want), "W/\"%d\"", st->version);
	if (ifm == NULL || strcmp(ifm, want) != 0) {
		json_decref(body);
		set_outcome(f, resp, 409, "VERSION_CONFLICT",
		    "The version of the resource does not match the If-Match header", false);
		return;
	}
	outcome = param_code(body, "reviewOutcome", NULL);
	(void)param_code(body, "reviewComments", &comments);
	if (body == NULL || outcome == NULL) {
		set_outcome(f, resp, 422, "MISSING_VALUE", "reviewOutcome is required", false);
	} else if (strcmp(outcome, "ACCEPT_REFER_BOOK_LATER") != 0 &&
	    strcmp(outcome, "RETURN_TO_REFERRER_WITH_ADVICE") != 0) {
		set_outcome(f, resp, 422, "INVALID_CODE", "reviewOutcome is not supported", false);
	} else if (comments == NULL || *comments == '\0') {
		set_outcome(f, resp, 422, "VALUE_IS_REQUIRED", "reviewComments is required", false);
	} else if (strcmp(outcome, "RETURN_TO_REFERRER_WITH_ADVICE") == 0 &&
	    has_param(body, "reviewPriority")) {
		set_outcome(f, resp, 422, "PRIORITY_NOT_CURRENT",
		    "reviewPriority cannot be set when returning to the referrer", false);
	} else if (strcmp(st->state, "AWAITING_TRIAGE") != 0) {
		set_outcome(f, resp, 422, "INVALID_STATE", "The referral is not awaiting review", false);
	} else {
		char *c = strdup(comments);

		set_ref(f, ubrn, st->version + 1, "TRIAGED_PROVIDER_TO_ACTION", outcome, c);
		free(c);
		st->writes++;
		rr = load_json(f, strcmp(outcome, "ACCEPT_REFER_BOOK_LATER") == 0 ?
		    "sandbox/stu3/recordTriageOutcome/responses/AcceptReferBookLater.json" :
		    "sandbox/stu3/recordTriageOutcome/responses/ReturnToReferrerWithAdvice.json");
		if (rr) {
			patch_referral(rr, st);
			set_json(f, resp, 200, rr);
			fake_resp_header(resp, "ETag", keepf(f, "W/\"%d\"", st->version));
			json_decref(rr);
		}
	}
	json_decref(body);
}

static void
clinical_info(struct fake_ers *f, struct fake_resp *resp, const char *path, const char *ubrn)
{
	const struct route *r = route_post(f, path, NULL);

	if (r == NULL) {
		sandbox_error(f, resp, 422, false);
		return;
	}
	set_file(f, resp, r->status, r->response);
	fake_resp_header(resp, "Content-Disposition", keepf(f,
	    "attachment; filename=\"%s_Clinical_Information_Summary_20210706114852.pdf\"", ubrn));
}

static bool
binary_id_ok(const char *id)
{
	size_t n = strlen(id);

	if (strncmp(id, "att-", 4) == 0)
		return n > 4;
	if (n != 36)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((i == 8 || i == 13 || i == 18 || i == 23) ? id[i] != '-' : !isxdigit((unsigned char)id[i]))
			return false;
	return true;
}

/* What the request asks, as the (stateful) sandbox answers it. */
/*
 * The business function a user-restricted caller names (NHSD-eRS-Business-
 * Function), checked as the official sandbox checks it (scripts/conformance
 * found the fake did not): a function the endpoint does not allow, or an
 * On-Behalf-Of user id given without SERVICE_PROVIDER_CLINICIAN_ADMIN (or
 * missing with it), is refused with 403 and a plain-text reason, which is
 * what a client must keep.  No header (application-restricted): no check.
 */
static bool
business_function_refused(struct fake_ers *f, const struct fake_req *req, struct fake_resp *resp,
    const char *path)
{
	static const char *const spc[] = { "SERVICE_PROVIDER_CLINICIAN", "SERVICE_PROVIDER_CLINICIAN_ADMIN",
		NULL };
	static const char *const read[] = { "REFERRING_CLINICIAN", "REFERRING_CLINICIAN_ADMIN",
		"SERVICE_PROVIDER_CLINICIAN", "SERVICE_PROVIDER_CLINICIAN_ADMIN", NULL };
	static const char *const worklist_bf[] = { "SERVICE_PROVIDER_CLINICIAN", "SERVICE_PROVIDER_ADMIN",
		"SERVICE_PROVIDER_CLINICIAN_ADMIN", "REFERRING_CLINICIAN", "REFERRING_CLINICIAN_ADMIN",
		"REFERRING_ADMIN", NULL };
	const char *bf = fake_req_header(req, "NHSD-eRS-Business-Function");
	const char *obo = fake_req_header(req, "NHSD-eRS-On-Behalf-Of-User-ID");
	const char *const *allowed = read;
	const char *msg = NULL;
	char list[512] = "";
	bool ok = false;

	if (bf == NULL || *bf == '\0')
		return false;
	if (strstr(path, "$ers.recordReviewOutcome"))
		allowed = spc;
	else if (strstr(path, "$ers.fetchworklist"))
		allowed = worklist_bf;
	for (size_t i = 0; allowed[i]; i++) {
		ok |= strcmp(bf, allowed[i]) == 0;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "," : "", allowed[i]);
	}
	if (!ok)
		msg = keepf(f, "SANDBOX_ERROR: This endpoint cannot be accessed using the e-RS Business "
		    "Function provided. Allowed values: %s", list);
	else if (strcmp(bf, "SERVICE_PROVIDER_CLINICIAN_ADMIN") == 0 && (obo == NULL || *obo == '\0'))
		msg = "SANDBOX_ERROR: When this endpoint is accessed using the e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN "
		    "Business Function then an On-Behalf-Of User ID must be provided";
	else if (strcmp(bf, "SERVICE_PROVIDER_CLINICIAN_ADMIN") != 0 && obo && *obo)
		msg = "SANDBOX_ERROR: An On-Behalf-Of User ID must only be provided if this endpoint is accessed "
		    "using the e-RS SERVICE_PROVIDER_CLINICIAN_ADMIN Business Function";
	if (msg == NULL)
		return false;
	resp->status = 403;
	resp->content_type = "text/html; charset=utf-8";   /* what the sandbox's hapi sends for a string */
	set_body(f, resp, strdup(msg), strlen(msg));
	return true;
}

static void
answer(struct fake_ers *f, const struct fake_req *req, struct fake_resp *resp)
{
	static const char prefix[] = "/referrals/FHIR";
	const char *path = req->path;
	char ubrn[64], op[64], hist[16];

	if (strcmp(path, "/oauth2/token") == 0) {
		token(f, req, resp);
		return;
	}
	if (strncmp(path, prefix, sizeof(prefix) - 1) != 0) {
		resp->status = 404;
		return;
	}
	path += sizeof(prefix) - 1;
	for (size_t i = 0; i < req->nheaders; i++)
		if (strncasecmp(req->headers[i].name, "x-ers-", 6) == 0) {
			/* the APIM proxy refuses backend headers from clients */
			set_file(f, resp, 403, "sandbox/stu3/STU3-Forbidden.json");
			return;
		}
	if (f->o.require_auth && !token_ok(f, req)) {
		if (strncmp(path, "/R4/", 4) == 0) {
			set_outcome(f, resp, 401, "ACCESS_DENIED", "Invalid access token", true);
		} else {
			resp->status = 401;   /* STU3: the proxy sends no body */
			fake_resp_header(resp, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
		}
		return;
	}
	if (strncmp(path, "/STU3/", 6) == 0 && business_function_refused(f, req, resp, path))
		return;
	if (strcmp(req->method, "POST") == 0 && strcmp(path, "/STU3/ReferralRequest/$ers.fetchworklist") == 0) {
		worklist(f, req, resp, path);
	} else if (strcmp(req->method, "GET") == 0 &&
	    sscanf(path, "/STU3/ReferralRequest/%63[^/?]/_history/%15[0-9]", ubrn, hist) == 2) {
		referral(f, resp, ubrn, hist);
	} else if (strcmp(req->method, "GET") == 0 &&
	    sscanf(path, "/STU3/ReferralRequest/%63[^/?]", ubrn) == 1 &&
	    strlen(path) == strlen("/STU3/ReferralRequest/") + strlen(ubrn)) {
		referral(f, resp, ubrn, NULL);
	} else if (strcmp(req->method, "POST") == 0 &&
	    sscanf(path, "/STU3/ReferralRequest/%63[^/]/%63s", ubrn, op) == 2 &&
	    strcmp(op, "$ers.recordReviewOutcome") == 0) {
		review(f, req, resp, path, ubrn);
	} else if (strcmp(req->method, "POST") == 0 &&
	    sscanf(path, "/STU3/ReferralRequest/%63[^/]/%63s", ubrn, op) == 2 &&
	    strcmp(op, "$ers.generateCRI") == 0) {
		clinical_info(f, resp, path, ubrn);
	} else if (strcmp(req->method, "GET") == 0 && strncmp(path, "/STU3/Task?", 11) == 0) {
		actions(f, resp, path);
	} else if (strcmp(req->method, "GET") == 0 && strncmp(path, "/R4/Binary/", 11) == 0) {
		if (!binary_id_ok(path + 11)) {
			sandbox_error(f, resp, 400, true);
			return;
		}
		resp->status = 307;
		fake_resp_header(resp, "Location", keepf(f, "%s/ObjectStore/%s", f->store_url, path + 11));
	} else {
		resp->status = 404;
	}
}

static struct script *
script_for(struct fake_ers *f, const char *host, const struct fake_req *req)
{
	for (size_t i = 0; i < f->nscripts; i++) {
		struct script *s = &f->scripts[i];

		if (s->left <= 0 || strcmp(s->host, host) != 0)
			continue;
		if (s->method[0] && strcmp(s->method, req->method) != 0)
			continue;
		if (s->path_has[0] && strstr(req->path, s->path_has) == NULL)
			continue;
		s->left--;
		return s;
	}
	return NULL;
}

static void
play(struct fake_ers *f, struct script *s, const struct fake_req *req, struct fake_resp *resp)
{
	if (s->other_reason) {
		char ubrn[64];
		const char *p = strstr(req->path, "/ReferralRequest/");
		struct ref *st;

		if (p && sscanf(p, "/ReferralRequest/%63[^/?]", ubrn) == 1 && (st = find_ref(f, ubrn)))
			set_ref(f, ubrn, st->version + 1, "TRIAGED_PROVIDER_TO_ACTION", s->other_reason,
			    s->other_comments);
	}
	if (s->s.delay_ms && s->s.status == 0 && !s->s.drop && s->error_code == NULL && s->body == NULL) {
		answer(f, req, resp);
		resp->delay_ms = s->s.delay_ms;
		return;
	}
	if (s->s.apply) {
		struct fake_resp ignored = { 0 };

		answer(f, req, &ignored);
	}
	memset(resp, 0, sizeof(*resp));
	resp->status = s->s.status;
	resp->drop = s->s.drop;
	if (s->error_code)
		set_outcome(f, resp, s->s.status, s->error_code, "scripted by the test", strstr(req->path, "/R4/") != NULL);
	else if (s->body) {
		set_body(f, resp, strdup(s->body), strlen(s->body));
		resp->content_type = "application/fhir+json";
	}
	if (s->retry_after[0])
		fake_resp_header(resp, "Retry-After", s->retry_after);
}

static void
handle_ers(void *ctx, const struct fake_req *req, struct fake_resp *resp)
{
	struct fake_ers *f = ctx;
	struct script *s;

	pthread_mutex_lock(&f->lock);
	if ((s = script_for(f, "ers", req)) != NULL)
		play(f, s, req, resp);
	else
		answer(f, req, resp);
	add_common_headers(f, req, resp);
	maybe_gzip(f, req, resp);
	pthread_mutex_unlock(&f->lock);
}

static void
handle_store(void *ctx, const struct fake_req *req, struct fake_resp *resp)
{
	struct fake_ers *f = ctx;
	const struct route *r;
	struct script *s;

	pthread_mutex_lock(&f->lock);
	if ((s = script_for(f, "store", req)) != NULL) {
		play(f, s, req, resp);
	} else if ((r = route_get(f, "store", req->method, req->path)) != NULL) {
		const char *slash = strrchr(r->response, '/');

		set_file(f, resp, r->status, r->response);
		/* the sandbox's object store names the file this way */
		fake_resp_header(resp, "Content-Disposition", keepf(f,
		    "attachment; filename=\"%s\"; filename*=UTF-8''%s", slash ? slash + 1 : r->response,
		    slash ? slash + 1 : r->response));
	} else {
		resp->status = 404;
	}
	pthread_mutex_unlock(&f->lock);
}

/* ---- lifecycle --------------------------------------------------------------- */

static int
load_routes(struct fake_ers *f)
{
	char path[2048], line[2048];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/routes", f->dir);
	if ((fp = fopen(path, "r")) == NULL) {
		fprintf(stderr, "fake_ers: cannot open %s\n", path);
		return -1;
	}
	while (fgets(line, sizeof(line), fp)) {
		struct route *r = &f->routes[f->nroutes];
		char req[512];

		if (line[0] == '#' || line[0] == '\n')
			continue;
		if (f->nroutes >= MAX_ROUTES ||
		    sscanf(line, "%7s %7s %255s %511s %511s %d", r->host, r->method, r->path, req,
		    r->response, &r->status) != 6) {
			fprintf(stderr, "fake_ers: bad route: %s", line);
			fclose(fp);
			return -1;
		}
		r->request = NULL;
		if (strcmp(req, "-") != 0 && (r->request = load_json(f, req)) == NULL) {
			fprintf(stderr, "fake_ers: cannot read %s\n", req);
			fclose(fp);
			return -1;
		}
		f->nroutes++;
	}
	fclose(fp);
	return 0;
}

struct fake_ers *
fake_ers_start(const struct fake_ers_opts *o)
{
	struct fake_ers *f = calloc(1, sizeof(*f));

	f->o = *o;
	snprintf(f->dir, sizeof(f->dir), "%s", o->fixtures ? o->fixtures :
	    RAS_SOURCE_ROOT "/tests/fixtures/ers");
	f->o.fixtures = f->dir;
	if (o->public_key_pem)
		f->key_pem = strdup(o->public_key_pem);
	f->o.public_key_pem = f->key_pem;
	pthread_mutex_init(&f->lock, NULL);
	if (load_routes(f) < 0) {
		fake_ers_stop(f);
		return NULL;
	}
	f->store = fake_http_start_port(handle_store, f, o->store_port);
	snprintf(f->store_url, sizeof(f->store_url), "%s", fake_http_url(f->store));
	f->ers = fake_http_start_port(handle_ers, f, o->port);
	snprintf(f->base, sizeof(f->base), "%s/referrals/FHIR", fake_http_url(f->ers));
	snprintf(f->token_url, sizeof(f->token_url), "%s/oauth2/token", fake_http_url(f->ers));
	return f;
}

void
fake_ers_stop(struct fake_ers *f)
{
	if (f == NULL)
		return;
	fake_http_stop(f->ers);
	fake_http_stop(f->store);
	for (size_t i = 0; i < f->nroutes; i++)
		json_decref(f->routes[i].request);
	fake_ers_clear_scripts(f);
	for (size_t i = 0; i < f->nrefs; i++)
		free(f->refs[i].comments);
	for (size_t i = 0; i < f->nkeep; i++)
		free(f->keep[i]);
	free(f->keep);
	free(f->key_pem);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

const char *
fake_ers_base_url(const struct fake_ers *f)
{
	return f->base;
}

const char *
fake_ers_token_url(const struct fake_ers *f)
{
	return f->token_url;
}

const char *
fake_ers_store_url(const struct fake_ers *f)
{
	return f->store_url;
}

struct fake_http *
fake_ers_http(struct fake_ers *f)
{
	return f->ers;
}

struct fake_http *
fake_ers_store(struct fake_ers *f)
{
	return f->store;
}

static char *
dup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

void
fake_ers_script(struct fake_ers *f, const struct fake_ers_script *in)
{
	struct script *s;

	pthread_mutex_lock(&f->lock);
	if (f->nscripts < MAX_SCRIPTS) {
		s = &f->scripts[f->nscripts++];
		memset(s, 0, sizeof(*s));
		s->s = *in;
		snprintf(s->host, sizeof(s->host), "%s", in->host ? in->host : "ers");
		snprintf(s->method, sizeof(s->method), "%s", in->method ? in->method : "");
		snprintf(s->path_has, sizeof(s->path_has), "%s", in->path_has ? in->path_has : "");
		snprintf(s->retry_after, sizeof(s->retry_after), "%s", in->retry_after ? in->retry_after : "");
		s->body = dup0(in->body);
		s->error_code = dup0(in->error_code);
		s->other_reason = dup0(in->other_reason);
		s->other_comments = dup0(in->other_comments);
		s->left = in->times > 0 ? in->times : 1;
	}
	pthread_mutex_unlock(&f->lock);
}

void
fake_ers_clear_scripts(struct fake_ers *f)
{
	for (size_t i = 0; i < f->nscripts; i++) {
		free(f->scripts[i].body);
		free(f->scripts[i].error_code);
		free(f->scripts[i].other_reason);
		free(f->scripts[i].other_comments);
	}
	f->nscripts = 0;
}

void
fake_ers_referral(struct fake_ers *f, const char *ubrn, int version, const char *state,
    const char *reason, const char *comments)
{
	pthread_mutex_lock(&f->lock);
	(void)set_ref(f, ubrn, version, state, reason, comments);
	pthread_mutex_unlock(&f->lock);
}

int
fake_ers_version(struct fake_ers *f, const char *ubrn)
{
	struct ref *r;
	int v;

	pthread_mutex_lock(&f->lock);
	r = find_ref(f, ubrn);
	v = r ? r->version : 0;
	pthread_mutex_unlock(&f->lock);
	return v;
}

int
fake_ers_writes(struct fake_ers *f, const char *ubrn)
{
	struct ref *r;
	int v;

	pthread_mutex_lock(&f->lock);
	r = find_ref(f, ubrn);
	v = r ? r->writes : 0;
	pthread_mutex_unlock(&f->lock);
	return v;
}

unsigned
fake_ers_tokens_issued(struct fake_ers *f)
{
	return f->ntokens;
}

unsigned
fake_ers_gzipped(struct fake_ers *f)
{
	return f->gzipped;
}

unsigned
fake_ers_bad_assertions(struct fake_ers *f)
{
	return f->bad_assertions;
}

size_t
fake_ers_count(struct fake_ers *f, const char *method, const char *path_has)
{
	size_t n = 0, total = fake_http_count(f->ers);

	for (size_t i = 0; i < total; i++) {
		const struct fake_req *r = fake_http_req(f->ers, i);

		if ((method == NULL || strcmp(r->method, method) == 0) &&
		    (path_has == NULL || strstr(r->path, path_has)))
			n++;
	}
	return n;
}

void
fake_ers_set_now(struct fake_ers *f, long long now)
{
	pthread_mutex_lock(&f->lock);
	f->now = now;
	pthread_mutex_unlock(&f->lock);
}
