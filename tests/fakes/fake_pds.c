/* fake_pds: loopback PDS FHIR endpoint (see tests/fakes/fake_pds.h). */
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_http.h"
#include "fake_pds.h"
#include "ras/buf.h"
#include "ras/json.h"
#include "ras/nhsno.h"
#include "ras_config.h"

#define BASE_PATH "/personal-demographics/FHIR/R4"
#define PATIENTS_MAX 32

struct patient {
	char nhs[11];
	char *json;
	char version[16];
};

struct fake_pds {
	struct fake_http *http;
	pthread_mutex_t lock;
	char base[128];
	struct patient p[PATIENTS_MAX];
	size_t n;
	char supersede_old[PATIENTS_MAX][11], supersede_new[PATIENTS_MAX][11];
	size_t nsup;
	char invalidated[PATIENTS_MAX][11];
	size_t ninv;
	char *not_found, *invalid_id, *missing, *invalid_value, *denied, *invalidated_body;
	char token[256];
	int fail, fail_status, delay, delay_ms;
};

static char *
fixture(const char *name)
{
	char path[4096];
	struct ras_buf b = RAS_BUF_INIT(1 << 20);

	snprintf(path, sizeof(path), "%s/tests/fixtures/pds/%s", RAS_SOURCE_ROOT, name);
	if (ras_buf_read_file(&b, path) < 0) {
		fprintf(stderr, "fake_pds: cannot read %s\n", path);
		exit(1);
	}
	return b.data;
}

/* s with every `from` replaced by `to` (malloc'd). */
static char *
replace(const char *s, const char *from, const char *to)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	const char *p;
	size_t fl = strlen(from);

	while ((p = strstr(s, from)) != NULL) {
		(void)ras_buf_append(&b, s, (size_t)(p - s));
		(void)ras_buf_puts(&b, to);
		s = p + fl;
	}
	(void)ras_buf_puts(&b, s);
	return b.data;
}

static void
add_locked(struct fake_pds *f, const char *nhs, const char *json)
{
	json_t *j = json_loads(json, 0, NULL);
	const char *v = json_string_value(json_object_get(json_object_get(j, "meta"), "versionId"));
	struct patient *p = NULL;

	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->p[i].nhs, nhs) == 0)
			p = &f->p[i];
	if (p == NULL && f->n < PATIENTS_MAX)
		p = &f->p[f->n++];
	if (p) {
		free(p->json);
		snprintf(p->nhs, sizeof(p->nhs), "%s", nhs);
		p->json = strdup(json);
		snprintf(p->version, sizeof(p->version), "%s", v ? v : "1");
	}
	json_decref(j);
}

void
fake_pds_add(struct fake_pds *f, const char *nhs, const char *json)
{
	pthread_mutex_lock(&f->lock);
	add_locked(f, nhs, json);
	pthread_mutex_unlock(&f->lock);
}

static void
add_stub(struct fake_pds *f, const char *nhs)
{
	char name[64];
	char *j;

	snprintf(name, sizeof(name), "patient_%s.json", nhs);
	j = fixture(name);
	add_locked(f, nhs, j);
	free(j);
}

/* The stub of `from` under another number (e-RS example patients). */
static void
add_as(struct fake_pds *f, const char *from, const char *nhs)
{
	char name[64];
	char *j, *k;

	snprintf(name, sizeof(name), "patient_%s.json", from);
	j = fixture(name);
	k = replace(j, from, nhs);
	add_locked(f, nhs, k);
	free(j);
	free(k);
}

static bool
is_uuid(const char *s)
{
	static const char shape[] = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx";

	if (strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++)
		if (shape[i] == '-' ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* The sandbox's token check: letters and digits with at least one of each,
 * optionally "_" and more letters and digits. */
static bool
sandbox_token_ok(const char *t)
{
	bool alpha = false, digit = false;
	const char *p = t;

	for (; *p && *p != '_'; p++) {
		if (!isalnum((unsigned char)*p))
			return false;
		alpha |= isalpha((unsigned char)*p) != 0;
		digit |= isdigit((unsigned char)*p) != 0;
	}
	if (*p == '_')
		for (p++; *p; p++)
			if (!isalnum((unsigned char)*p))
				return false;
	return alpha && digit;
}

static void
outcome(struct fake_resp *resp, int status, const char *tmpl, const char *display, const char *diag)
{
	/* a thread's last body, in a fixed buffer: the server threads end
	 * without a chance to free a heap copy (fake_http copies resp->body) */
	static __thread char body[8192];
	char *a, *b, q[512];

	snprintf(q, sizeof(q), "\"%s\"", display ? display : "");
	a = replace(tmpl, "\"#(display)\"", q);
	snprintf(q, sizeof(q), "\"%s\"", diag ? diag : "");
	b = replace(a, "\"#(diagnostics)\"", q);
	free(a);
	if (strlen(b) >= sizeof(body)) {
		fprintf(stderr, "fake_pds: an OperationOutcome template is longer than %zu bytes\n", sizeof(body));
		abort();
	}
	memcpy(body, b, strlen(b) + 1);
	free(b);
	resp->status = status;
	resp->content_type = "application/fhir+json";
	resp->body = body;
}

/* Proxy-made errors (429, 5xx, 401 of a real token check): application/json. */
static void
proxy_error(struct fake_resp *resp, int status)
{
	static __thread char body[512];
	const char *code = status == 429 ? "TOO_MANY_REQUESTS" : status == 401 ? "ACCESS_DENIED" :
	    status == 408 ? "UNABLE_TO_CALL_SERVICE" : "UNKNOWN_ERROR";

	snprintf(body, sizeof(body), "{\"resourceType\":\"OperationOutcome\",\"issue\":[{\"severity\":\"error\","
	    "\"code\":\"%s\",\"details\":{\"coding\":[{\"system\":\"https://fhir.nhs.uk/R4/CodeSystem/"
	    "Spine-ErrorOrWarningCode\",\"version\":\"1\",\"code\":\"%s\"}]},\"diagnostics\":\"scripted %d\"}]}",
	    status == 401 ? "forbidden" : status == 429 ? "value" : "unknown", code, status);
	resp->status = status;
	resp->content_type = "application/json";
	resp->body = body;
}

static void
handler(void *ctx, const struct fake_req *req, struct fake_resp *resp)
{
	struct fake_pds *f = ctx;
	static __thread char etag[32], rid[64], cid[128];
	const char *path = req->path, *xr = fake_req_header(req, "X-Request-ID");
	const char *xc = fake_req_header(req, "X-Correlation-ID"), *auth = fake_req_header(req, "Authorization");
	char id[64];
	size_t n;

	if (strncmp(path, BASE_PATH, strlen(BASE_PATH)) == 0)
		path += strlen(BASE_PATH);
	pthread_mutex_lock(&f->lock);
	if (xr) {
		snprintf(rid, sizeof(rid), "%s", xr);
		fake_resp_header(resp, "X-Request-ID", rid);
	}
	if (xc) {
		snprintf(cid, sizeof(cid), "%s", xc);
		fake_resp_header(resp, "X-Correlation-ID", cid);
	}
	if (f->delay > 0) {
		f->delay--;
		resp->delay_ms = f->delay_ms;
	}
	if (f->fail > 0) {
		f->fail--;
		proxy_error(resp, f->fail_status);
		goto done;
	}
	if (strcmp(req->method, "GET") != 0 || strncmp(path, "/Patient/", 9) != 0) {
		resp->status = 404;
		goto done;
	}
	if (xr == NULL) {
		outcome(resp, 400, f->missing, NULL,
		    "Invalid request with error - X-Request-ID header must be supplied to access this resource");
		goto done;
	}
	if (!is_uuid(xr)) {
		char d[160];

		snprintf(d, sizeof(d), "Invalid value - '%.64s' in header 'X-Request-ID'", xr);
		outcome(resp, 400, f->invalid_value, NULL, d);
		goto done;
	}
	if (f->token[0]) {
		if (auth == NULL || strncmp(auth, "Bearer ", 7) != 0 || strcmp(auth + 7, f->token) != 0) {
			outcome(resp, 401, f->denied, "Access Denied - Unauthorised", "Invalid Access Token");
			goto done;
		}
	} else if (auth) {
		if (strncmp(auth, "Bearer ", 7) != 0) {
			outcome(resp, 401, f->denied, "Access Denied - Unauthorised", "Missing access token");
			goto done;
		}
		if (!sandbox_token_ok(auth + 7)) {
			outcome(resp, 401, f->denied, "Access Denied - Unauthorised", "Invalid Access Token");
			goto done;
		}
	}
	snprintf(id, sizeof(id), "%s", path + 9);
	if (ras_nhsno_check(id) != RAS_NHSNO_OK) {
		outcome(resp, 400, f->invalid_id, NULL, NULL);
		goto done;
	}
	for (size_t i = 0; i < f->ninv; i++)
		if (strcmp(f->invalidated[i], id) == 0) {
			outcome(resp, 404, f->invalidated_body, NULL, NULL);
			goto done;
		}
	for (size_t i = 0; i < f->nsup; i++)
		if (strcmp(f->supersede_old[i], id) == 0)
			snprintf(id, sizeof(id), "%s", f->supersede_new[i]);
	for (n = 0; n < f->n; n++)
		if (strcmp(f->p[n].nhs, id) == 0)
			break;
	if (n == f->n) {
		outcome(resp, 404, f->not_found, NULL, NULL);
		goto done;
	}
	snprintf(etag, sizeof(etag), "W/\"%s\"", f->p[n].version);
	fake_resp_header(resp, "ETag", etag);
	resp->status = 200;
	resp->content_type = "application/fhir+json";
	resp->body = f->p[n].json;   /* copied by fake_http */
done:
	pthread_mutex_unlock(&f->lock);
}

struct fake_pds *
fake_pds_start(void)
{
	struct fake_pds *f = calloc(1, sizeof(*f));
	static const char *const stubs[] = { "9000000009", "9000000025", "9000000033", "9693632109",
		"9732110317", NULL };

	pthread_mutex_init(&f->lock, NULL);
	for (int i = 0; stubs[i]; i++)
		add_stub(f, stubs[i]);
	add_as(f, "9693632109", "9912003888");
	add_as(f, "9000000025", "9462979626");
	f->not_found = fixture("RESOURCE_NOT_FOUND.json");
	f->invalid_id = fixture("INVALID_RESOURCE_ID.json");
	f->missing = fixture("MISSING_VALUE.json");
	f->invalid_value = fixture("INVALID_VALUE.json");
	f->denied = fixture("ACCESS_DENIED.json");
	f->invalidated_body = fixture("INVALIDATED_RESOURCE.json");
	f->http = fake_http_start(handler, f);
	snprintf(f->base, sizeof(f->base), "%s%s", fake_http_url(f->http), BASE_PATH);
	return f;
}

void
fake_pds_stop(struct fake_pds *f)
{
	if (f == NULL)
		return;
	fake_http_stop(f->http);
	for (size_t i = 0; i < f->n; i++)
		free(f->p[i].json);
	free(f->not_found);
	free(f->invalid_id);
	free(f->missing);
	free(f->invalid_value);
	free(f->denied);
	free(f->invalidated_body);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

const char *
fake_pds_base(const struct fake_pds *f)
{
	return f->base;
}

struct fake_http *
fake_pds_http(struct fake_pds *f)
{
	return f->http;
}

void
fake_pds_fail(struct fake_pds *f, int n, int status)
{
	pthread_mutex_lock(&f->lock);
	f->fail = n;
	f->fail_status = status;
	pthread_mutex_unlock(&f->lock);
}

void
fake_pds_delay(struct fake_pds *f, int n, int delay_ms)
{
	pthread_mutex_lock(&f->lock);
	f->delay = n;
	f->delay_ms = delay_ms;
	pthread_mutex_unlock(&f->lock);
}

void
fake_pds_supersede(struct fake_pds *f, const char *old, const char *now)
{
	pthread_mutex_lock(&f->lock);
	if (f->nsup < PATIENTS_MAX) {
		snprintf(f->supersede_old[f->nsup], sizeof(f->supersede_old[0]), "%s", old);
		snprintf(f->supersede_new[f->nsup], sizeof(f->supersede_new[0]), "%s", now);
		f->nsup++;
	}
	pthread_mutex_unlock(&f->lock);
}

void
fake_pds_invalidate(struct fake_pds *f, const char *nhs)
{
	pthread_mutex_lock(&f->lock);
	if (f->ninv < PATIENTS_MAX)
		snprintf(f->invalidated[f->ninv++], sizeof(f->invalidated[0]), "%s", nhs);
	pthread_mutex_unlock(&f->lock);
}

void
fake_pds_require_token(struct fake_pds *f, const char *token)
{
	pthread_mutex_lock(&f->lock);
	snprintf(f->token, sizeof(f->token), "%s", token ? token : "");
	pthread_mutex_unlock(&f->lock);
}
