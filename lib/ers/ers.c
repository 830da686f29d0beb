/* ers: the e-RS API client core (see include/ras/ers.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/nhsapi_auth.h"
#include "ras/ers.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/triage.h"

/* Longest a batch waits in total for 429/503 back-off before handing the
 * failure back to its caller (who retries in a later cycle). */
#define RETRY_WAIT_MAX_MS 60000
/* Retry-After values above this are not waited for in-line. */
#define RETRY_AFTER_MAX_S 30
/* Calls remembered for ers_calls between flushes. */
#define CALL_LOG_MAX 10000
/* Highest rate limit (start times remembered). */
#define RATE_MAX 1000

struct call_log {
	int64_t at;
	char endpoint[24];
	char method[8];
	char ubrn[RAS_ID_MAX + 1];
	long status;
	int ms;
	char correlation_id[RAS_UUID_STR_LEN];
	char request_id[128];
	char error_code[64];
	char error[256];
};

struct ras_ers {
	enum ras_ers_mode mode;
	char *base_url, *token_url;
	char *business_function, *ods_code, *obo_user_id;
	char *accept_comment;
	char instance[128];
	struct ras_http *http;
	struct ras_nhsapi_auth *auth;
	int rate;
	long timeout_ms, store_timeout_ms;
	int max_attempts;
	struct ras_ers_service services[RAS_ERS_SERVICES_MAX];
	size_t nservices;
	int schedule[RAS_ERS_SCHEDULE_MAX];
	size_t nschedule;
	struct ras_ers_clock clock;
	ras_ers_workday_fn workday;
	void *workday_ctx;
	bool every_day;                    /* [ers] poll_days = all */
	const struct ras_triage *triage;   /* triages what a poll stores (borrowed) */
	const struct ras_xmlform_maps *form_maps;  /* XML forms: referral-form attachments */
	/* rate limiter: start times (monotonic ms) of the last `rate` calls */
	int64_t starts[RATE_MAX];
	size_t nstarts, startpos;
	struct call_log *log;
	size_t nlog, caplog;
};

const char *
ras_ers_mode_name(enum ras_ers_mode m)
{
	switch (m) {
	case RAS_ERS_APPLICATION: return "application";
	case RAS_ERS_USER: return "user";
	case RAS_ERS_SANDBOX: return "sandbox";
	}
	return "unknown";
}

static int64_t
real_mono_ms(void *ctx)
{
	(void)ctx;
	return ras_time_mono_ms();
}

/* Back-off and rate-limit waits go through the http adapter: in rasd the
 * loop goes on serving meanwhile (a 503's Retry-After can be a minute). */
static void
real_sleep_ms(void *ctx, int64_t ms)
{
	(void)ctx;
	ras_http_sleep_ms(ms);
}

bool
ras_ers_is_production(const char *url)
{
	static const char host[] = "api.service.nhs.uk";
	const char *p;
	size_t hl = sizeof(host) - 1;

	if (url == NULL)
		return false;
	p = strstr(url, "://");
	p = p ? p + 3 : url;
	/* exactly the production host (int., sandbox. and others are not) */
	if (strncasecmp(p, host, hl) != 0)
		return false;
	return p[hl] == '\0' || p[hl] == '/' || p[hl] == ':';
}

static int
parse_schedule(struct ras_ers *c, const char *s)
{
	const char *p = s;

	c->nschedule = 0;
	while (p && *p) {
		int hh, mm, n = 0;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		if (sscanf(p, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5 || hh < 0 || hh > 23 || mm < 0 ||
		    mm > 59)
			return ras_error_code(RAS_EINVALID, "ers.schedule must be HH:MM times separated by commas");
		if (c->nschedule >= RAS_ERS_SCHEDULE_MAX)
			return ras_error_code(RAS_EINVALID,
			    "ers.schedule lists more than %d times: e-RS allows two worklist calls a day per service",
			    RAS_ERS_SCHEDULE_MAX);
		if (c->nschedule && hh * 60 + mm <= c->schedule[c->nschedule - 1])
			return ras_error_code(RAS_EINVALID, "ers.schedule times must be in ascending order");
		c->schedule[c->nschedule++] = hh * 60 + mm;
		p += n;
		while (*p == ' ')
			p++;
		if (*p && *p != ',')
			return ras_error_code(RAS_EINVALID, "ers.schedule must be HH:MM times separated by commas");
	}
	return 0;
}

static bool
id_ok(const char *s, size_t len)
{
	if (len == 0 || len > RAS_ID_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
			return false;
	return true;
}

static int
add_service(const char *item, void *ctx)
{
	struct ras_ers *c = ctx;
	const char *eq = strchr(item, '=');
	size_t idlen = eq ? (size_t)(eq - item) : strlen(item);
	struct ras_ers_service *s;

	while (idlen && item[idlen - 1] == ' ')
		idlen--;
	if (c->nservices >= RAS_ERS_SERVICES_MAX)
		return ras_error_code(RAS_ETOOBIG, "ers.service_ids lists more than %d services",
		    RAS_ERS_SERVICES_MAX);
	if (!id_ok(item, idlen))
		return ras_error_code(RAS_EINVALID, "ers.service_ids: \"%.40s\" is not a service id", item);
	s = &c->services[c->nservices];
	memcpy(s->id, item, idlen);
	s->id[idlen] = '\0';
	s->rasd_service[0] = '\0';
	if (eq) {
		const char *r = eq + 1;

		while (*r == ' ')
			r++;
		if (!id_ok(r, strlen(r)))
			return ras_error_code(RAS_EINVALID, "ers.service_ids: \"%.40s\" is not a rasd service id", r);
		snprintf(s->rasd_service, sizeof(s->rasd_service), "%s", r);
	}
	for (size_t i = 0; i < c->nservices; i++)
		if (strcmp(c->services[i].id, s->id) == 0)
			return ras_error_code(RAS_EINVALID, "ers.service_ids lists %s twice", s->id);
	c->nservices++;
	return 0;
}

static char *
dup_opt(const char *s)
{
	return s && *s ? strdup(s) : NULL;
}

int
ras_ers_new(const struct ras_ers_opts *o, struct ras_ers **out)
{
	struct ras_ers *c = calloc(1, sizeof(*c));
	struct ras_http_opts hopts = { 0 };
	struct ras_nhsapi_auth_opts aopts = { 0 };
	int err;

	if (c == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	c->mode = o->mode ? o->mode : RAS_ERS_APPLICATION;
	if (o->base_url == NULL || (strncmp(o->base_url, "https://", 8) != 0 &&
	    strncmp(o->base_url, "http://", 7) != 0)) {
		err = ras_error_code(RAS_EINVALID, "ers.base_url must be an https URL");
		goto fail;
	}
	if (c->mode == RAS_ERS_SANDBOX && ras_ers_is_production(o->base_url)) {
		err = ras_error_code(RAS_EINVALID, "ers.mode = sandbox cannot be used with the production base URL");
		goto fail;
	}
	if (c->mode == RAS_ERS_USER && (o->business_function == NULL || o->ods_code == NULL)) {
		err = ras_error_code(RAS_EINVALID,
		    "user-restricted mode needs ers.business_function and ers.ods_code");
		goto fail;
	}
	c->base_url = strdup(o->base_url);
	while (c->base_url && strlen(c->base_url) > 8 && c->base_url[strlen(c->base_url) - 1] == '/')
		c->base_url[strlen(c->base_url) - 1] = '\0';
	c->token_url = dup_opt(o->token_url);
	c->business_function = dup_opt(o->business_function);
	c->ods_code = dup_opt(o->ods_code);
	c->obo_user_id = dup_opt(o->obo_user_id);
	c->accept_comment = strdup(o->accept_comment && *o->accept_comment ? o->accept_comment :
	    "Accepted for assessment by the pain management service; the service will contact the "
	    "patient to book.");
	if (c->base_url == NULL || c->accept_comment == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	if (o->instance && *o->instance)
		snprintf(c->instance, sizeof(c->instance), "%s", o->instance);
	else if (gethostname(c->instance, sizeof(c->instance) - 1) != 0)
		snprintf(c->instance, sizeof(c->instance), "rasd");
	c->rate = o->rate_limit > 0 ? o->rate_limit : 10;
	if (c->rate > RATE_MAX)
		c->rate = RATE_MAX;
	c->timeout_ms = o->timeout_ms ? o->timeout_ms : 200000;
	c->store_timeout_ms = o->store_timeout_ms ? o->store_timeout_ms : 300000;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 5;
	c->clock = o->clock;
	if (c->clock.mono_ms == NULL)
		c->clock.mono_ms = real_mono_ms;
	if (c->clock.sleep_ms == NULL)
		c->clock.sleep_ms = real_sleep_ms;
	c->workday = o->is_working_day;
	c->workday_ctx = o->workday_ctx;
	c->every_day = o->every_day;
	if ((err = parse_schedule(c, o->schedule ? o->schedule : "08:00,13:00")) < 0)
		goto fail;
	if (o->services && (err = ras_config_list_each(o->services, add_service, c)) < 0)
		goto fail;

	hopts.ca_file = o->ca_file;
	hopts.client_cert = o->client_cert;
	hopts.client_key = o->client_key;
	/* http:// only ever reaches loopback (the adapter checks): local fakes. */
	hopts.allow_http_loopback = strncmp(c->base_url, "http://", 7) == 0;
	if ((err = ras_http_new(&hopts, &c->http)) < 0)
		goto fail;
	aopts.mode = (enum ras_nhsapi_mode)c->mode;   /* same numbers */
	aopts.token_url = o->token_url;
	aopts.api_key = o->api_key;
	aopts.kid = o->kid;
	aopts.private_key_pem = o->private_key_pem;
	aopts.private_key_len = o->private_key_len;
	aopts.bearer_token_file = o->bearer_token_file;
	aopts.timeout_ms = 60000;
	if (c->mode == RAS_ERS_APPLICATION && (o->token_url == NULL ||
	    (strncmp(o->token_url, "https://", 8) != 0 &&
	    !(hopts.allow_http_loopback && strncmp(o->token_url, "http://", 7) == 0)))) {
		err = ras_error_code(RAS_EINVALID, "ers.token_url must be an https URL");
		goto fail;
	}
	if ((err = ras_nhsapi_auth_new(&aopts, &c->auth)) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	ras_ers_free(c);
	return err;
}

void
ras_ers_free(struct ras_ers *c)
{
	if (c == NULL)
		return;
	ras_http_free(c->http);
	ras_nhsapi_auth_free(c->auth);
	free(c->base_url);
	free(c->token_url);
	free(c->business_function);
	free(c->ods_code);
	free(c->obo_user_id);
	free(c->accept_comment);
	free(c->log);
	free(c);
}

int
ras_ers_from_config(const struct ras_config *cfg, struct ras_ers **out)
{
	struct ras_ers_opts o = { 0 };
	struct ras_buf key = RAS_BUF_INIT(RAS_SECRET_MAX);
	const char *mode = ras_config_get(cfg, "ers", NULL, "mode");
	int err;

	o.base_url = ras_config_get(cfg, "ers", NULL, "base_url");
	if (o.base_url == NULL)
		return ras_error_code(RAS_ENOTFOUND, "e-RS is not configured ([ers] base_url is not set)");
	if (mode == NULL || strcmp(mode, "application") == 0)
		o.mode = RAS_ERS_APPLICATION;
	else if (strcmp(mode, "user") == 0)
		o.mode = RAS_ERS_USER;
	else if (strcmp(mode, "sandbox") == 0)
		o.mode = RAS_ERS_SANDBOX;
	else
		return ras_error_code(RAS_EINVALID, "ers.mode must be application, user or sandbox");
	o.token_url = ras_config_get(cfg, "ers", NULL, "token_url");
	o.api_key = ras_config_get(cfg, "ers", NULL, "api_key");
	o.kid = ras_config_get(cfg, "ers", NULL, "kid");
	o.bearer_token_file = ras_config_get(cfg, "ers", NULL, "bearer_token_file");
	o.business_function = ras_config_get(cfg, "ers", NULL, "business_function");
	o.ods_code = ras_config_get(cfg, "ers", NULL, "ods_code");
	o.obo_user_id = ras_config_get(cfg, "ers", NULL, "obo_user_id");
	o.ca_file = ras_config_get(cfg, "ers", NULL, "ca_file");
	o.client_cert = ras_config_get(cfg, "ers", NULL, "client_cert");
	o.client_key = ras_config_get(cfg, "ers", NULL, "client_key");
	o.rate_limit = (int)ras_config_int(cfg, "ers", NULL, "rate_limit");
	o.timeout_ms = (long)ras_config_int(cfg, "ers", NULL, "timeout") * 1000L;
	o.max_attempts = (int)ras_config_int(cfg, "ers", NULL, "max_attempts");
	o.schedule = ras_config_get(cfg, "ers", NULL, "schedule");
	o.services = ras_config_get(cfg, "ers", NULL, "service_ids");
	o.accept_comment = ras_config_get(cfg, "ers", NULL, "accept_comment");
	o.instance = ras_config_get(cfg, "general", NULL, "instance");
	o.every_day = ras_config_get(cfg, "ers", NULL, "poll_days") &&
	    strcmp(ras_config_get(cfg, "ers", NULL, "poll_days"), "all") == 0;
	if (o.mode == RAS_ERS_APPLICATION) {
		if ((err = ras_config_secret(cfg, "ers", NULL, "private_key", &key)) < 0)
			goto done;
		o.private_key_pem = key.data;
		o.private_key_len = key.len;
	}
	err = ras_ers_new(&o, out);
done:
	if (key.data)
		memset(key.data, 0, key.len);
	ras_buf_free(&key);
	return err;
}

bool
ras_ers_every_day(const struct ras_ers *c)
{
	return c->every_day;
}

void
ras_ers_set_workday(struct ras_ers *c, ras_ers_workday_fn fn, void *ctx)
{
	c->workday = fn;
	c->workday_ctx = ctx;
}

void
ras_ers_set_triage(struct ras_ers *c, const struct ras_triage *t)
{
	c->triage = t;
	if (t) {
		c->workday = ras_calendar_workday;
		c->workday_ctx = (void *)ras_mappings_calendar(ras_triage_mappings(t));
	}
}

const struct ras_triage *
ras_ers_triage(const struct ras_ers *c)
{
	return c->triage;
}

void
ras_ers_set_form_maps(struct ras_ers *c, const struct ras_xmlform_maps *maps)
{
	c->form_maps = maps;
}

const struct ras_xmlform_maps *
ras_ers_form_maps(const struct ras_ers *c)
{
	return c->form_maps;
}

enum ras_ers_mode
ras_ers_mode(const struct ras_ers *c)
{
	return c->mode;
}

const char *
ras_ers_base_url(const struct ras_ers *c)
{
	return c->base_url;
}

const char *
ras_ers_accept_comment(const struct ras_ers *c)
{
	return c->accept_comment;
}

const char *
ras_ers_instance(const struct ras_ers *c)
{
	return c->instance;
}

int
ras_ers_max_attempts(const struct ras_ers *c)
{
	return c->max_attempts;
}

size_t
ras_ers_services(const struct ras_ers *c, const struct ras_ers_service **out)
{
	*out = c->services;
	return c->nservices;
}

const struct ras_ers_service *
ras_ers_service_find(const struct ras_ers *c, const char *id)
{
	for (size_t i = 0; i < c->nservices; i++)
		if (strcmp(c->services[i].id, id) == 0)
			return &c->services[i];
	return NULL;
}

size_t
ras_ers_schedule(const struct ras_ers *c, const int **minutes)
{
	*minutes = c->schedule;
	return c->nschedule;
}

bool
ras_ers_working_day(const struct ras_ers *c, const struct ras_date *d)
{
	if (c->every_day)
		return true;
	if (c->workday)
		return c->workday(d, c->workday_ctx);
	return ras_date_weekday(d) <= 5;
}

/* --- calls ---------------------------------------------------------------- */

void
ras_ers_call_init(struct ras_ers_call *k, const char *endpoint, const char *method, unsigned flags)
{
	memset(k, 0, sizeof(*k));
	k->endpoint = endpoint;
	k->method = method;
	k->flags = flags;
	k->retry_after_s = -1;
}

void
ras_ers_call_release(struct ras_ers_call *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ras_http_request_release(&k[i].http);
}

int64_t
ras_ers_backoff_ms(int attempt, int64_t base_ms, int64_t cap_ms)
{
	int64_t d = base_ms;
	uint32_t r = 0;

	for (int i = 1; i < attempt && d < cap_ms; i++)
		d *= 2;
	if (d > cap_ms)
		d = cap_ms;
	/* ±25% jitter so that several instances do not retry in step */
	if (ras_crypto_random(&r, sizeof(r)) < 0)
		r = 0x80000000u;
	return d - d / 4 + (int64_t)((double)r / 4294967295.0 * (double)(d / 2));
}

/* A reason given as plain text (a gateway's 403 "Forbidden: …", a proxy's
 * message): its first line, when it is printable text and not an HTML page. */
static void
plain_reason(const char *body, size_t len, char *diag, size_t diag_size)
{
	size_t n = 0, k = 0;

	if (len == 0 || body[0] == '<')
		return;
	while (k < len && body[k] != '\n' && body[k] != '\r' && n + 1 < diag_size) {
		unsigned char ch = (unsigned char)body[k++];

		if (ch == '\t')
			ch = ' ';
		if (ch < 0x20 || ch == 0x7f) {
			diag[0] = '\0';
			return;
		}
		diag[n++] = (char)ch;
	}
	while (n > 0 && diag[n - 1] == ' ')
		n--;
	diag[n] = '\0';
}

void
ras_ers_parse_outcome(const char *body, size_t len, char *code, size_t code_size, char *diag,
    size_t diag_size)
{
	json_t *j = NULL, *issue, *coding;
	const char *c, *d;
	size_t k = 0;

	code[0] = '\0';
	diag[0] = '\0';
	while (k < len && (body[k] == ' ' || body[k] == '\n' || body[k] == '\r' || body[k] == '\t'))
		k++;
	if (k >= len)
		return;
	if (body[k] != '{' || ras_json_parse(body, len, RAS_PAYLOAD_MAX, &j) < 0) {
		plain_reason(body + k, len - k, diag, diag_size);
		return;
	}
	if (ras_json_obj(j, "fault") || ras_json_str(j, "error_description") || ras_json_str(j, "message")) {
		/* the API gateway's own JSON errors (Apigee fault, OAuth) */
		const char *r = ras_json_str(ras_json_obj(j, "fault"), "faultstring");

		if (r == NULL)
			r = ras_json_str(j, "error_description");
		if (r == NULL)
			r = ras_json_str(j, "message");
		if (r)
			plain_reason(r, strlen(r), diag, diag_size);
	}
	if (ras_json_str(j, "resourceType") && strcmp(ras_json_str(j, "resourceType"), "OperationOutcome") == 0) {
		issue = json_array_get(ras_json_arr(j, "issue"), 0);
		coding = json_array_get(ras_json_arr(ras_json_obj(issue, "details"), "coding"), 0);
		c = ras_json_str(coding, "code");
		d = ras_json_str(issue, "diagnostics");
		if (c)
			snprintf(code, code_size, "%s", c);
		if (d) {
			snprintf(diag, diag_size, "%s", d);
			for (char *p = diag; *p; p++)
				if (*p == '\n' || *p == '\r' || *p == '\t')
					*p = ' ';
		}
	}
	json_decref(j);
}

const char *
ras_ers_call_error(const struct ras_ers_call *k, char *buf, size_t size)
{
	const char *u = k->ubrn ? k->ubrn : "";

	if (k->http.err)
		snprintf(buf, size, "%s%s%s: %s", k->endpoint, *u ? " " : "", u, k->http.errmsg);
	else if (k->error_code[0] || k->diagnostics[0])
		snprintf(buf, size, "%s%s%s: HTTP %ld %s%s%s", k->endpoint, *u ? " " : "", u,
		    k->http.status, k->error_code, k->diagnostics[0] ? ": " : "", k->diagnostics);
	else
		snprintf(buf, size, "%s%s%s: HTTP %ld", k->endpoint, *u ? " " : "", u, k->http.status);
	return buf;
}

/* Wait until k more calls may start without more than `rate` in a second. */
static void
rate_wait(struct ras_ers *c, size_t k)
{
	for (;;) {
		int64_t now = c->clock.mono_ms(c->clock.ctx), wait = 0;
		size_t inwin = 0;
		int64_t times[RATE_MAX];
		size_t nt = 0;

		for (size_t i = 0; i < c->nstarts; i++)
			if (c->starts[i] > now - 1000)
				times[nt++] = c->starts[i];
		inwin = nt;
		if (inwin + k <= (size_t)c->rate)
			return;
		/* the (inwin + k - rate) oldest starts in the window must age out */
		for (size_t a = 0; a < nt; a++)
			for (size_t b = a + 1; b < nt; b++)
				if (times[b] < times[a]) {
					int64_t t = times[a];

					times[a] = times[b];
					times[b] = t;
				}
		wait = times[inwin + k - (size_t)c->rate - 1] + 1000 - now;
		if (wait < 1)
			wait = 1;
		c->clock.sleep_ms(c->clock.ctx, wait);
	}
}

static void
rate_note(struct ras_ers *c, size_t k)
{
	int64_t now = c->clock.mono_ms(c->clock.ctx);

	for (size_t i = 0; i < k; i++) {
		c->starts[c->startpos] = now;
		c->startpos = (c->startpos + 1) % (size_t)c->rate;
		if (c->nstarts < (size_t)c->rate)
			c->nstarts++;
	}
}

static void
log_call(struct ras_ers *c, int64_t now, const char *endpoint, const char *method,
    const char *ubrn, long status, double seconds, const char *cid, const char *rid,
    const char *code, const char *error)
{
	struct call_log *e;

	if (c->nlog >= CALL_LOG_MAX)
		return;   /* flushed every cycle; dropping the log never blocks the work */
	if (c->nlog == c->caplog) {
		size_t cap = c->caplog ? c->caplog * 2 : 64;
		struct call_log *nl = realloc(c->log, cap * sizeof(*nl));

		if (nl == NULL)
			return;
		c->log = nl;
		c->caplog = cap;
	}
	e = &c->log[c->nlog++];
	memset(e, 0, sizeof(*e));
	e->at = now;
	snprintf(e->endpoint, sizeof(e->endpoint), "%s", endpoint);
	snprintf(e->method, sizeof(e->method), "%s", method);
	snprintf(e->ubrn, sizeof(e->ubrn), "%s", ubrn ? ubrn : "");
	e->status = status;
	e->ms = (int)(seconds * 1000.0);
	snprintf(e->correlation_id, sizeof(e->correlation_id), "%s", cid ? cid : "");
	snprintf(e->request_id, sizeof(e->request_id), "%s", rid ? rid : "");
	snprintf(e->error_code, sizeof(e->error_code), "%s", code ? code : "");
	snprintf(e->error, sizeof(e->error), "%s", error ? error : "");
}

/* Build the HTTP request of one attempt.  Strings referenced by the
 * request live in the call (url, correlation id) or in the client. */
static int
prepare(struct ras_ers *c, struct ras_ers_call *k, const char *auth)
{
	struct ras_http_request *r = &k->http;
	bool absolute = (k->flags & RAS_ERS_CALL_ABSOLUTE) != 0;

	ras_http_request_release(r);
	if (absolute) {
		snprintf(k->full_url_, sizeof(k->full_url_), "%s", k->url);
	} else if (snprintf(k->full_url_, sizeof(k->full_url_), "%s%s", c->base_url, k->url) >=
	    (int)sizeof(k->full_url_)) {
		return ras_error_code(RAS_ETOOBIG, "%s URL too long", k->endpoint);
	}
	ras_http_request_init(r, k->method, k->full_url_);
	r->body = k->body;
	r->body_len = k->body_len;
	r->max_body = k->max_body ? k->max_body : RAS_PAYLOAD_MAX;
	r->timeout_ms = k->timeout_ms ? k->timeout_ms : (absolute ? c->store_timeout_ms : c->timeout_ms);
	r->no_replay = (k->flags & RAS_ERS_CALL_WRITE) != 0;
	if (absolute)
		return 0;   /* the object store gets a bare GET: no token, no e-RS headers */
	if (k->correlation_id[0] == '\0' && ras_crypto_uuid(k->correlation_id) < 0)
		return ras_error_code(RAS_ERROR, "could not make a correlation id");
	(void)ras_http_request_header(r, "X-Correlation-ID", k->correlation_id);
	if (auth)
		(void)ras_http_request_header(r, "Authorization", auth);
	if (c->mode == RAS_ERS_USER) {
		/* Only user-restricted calls name the acting role; application-
		 * restricted identity comes from the APIM app (NOTES §3.1). */
		(void)ras_http_request_header(r, "NHSD-eRS-Business-Function", c->business_function);
		(void)ras_http_request_header(r, "NHSD-End-User-Organisation-ODS", c->ods_code);
		if (c->obo_user_id)
			(void)ras_http_request_header(r, "NHSD-eRS-On-Behalf-Of-User-ID", c->obo_user_id);
	}
	if (k->flags & RAS_ERS_CALL_NO_ACCEPT)
		(void)ras_http_request_header(r, "Accept", "");
	else
		(void)ras_http_request_header(r, "Accept", "application/fhir+json");
	if (k->body)
		(void)ras_http_request_header(r, "Content-Type", "application/fhir+json");
	else if (strcmp(k->method, "POST") == 0)
		(void)ras_http_request_header(r, "Content-Type", "");
	if (k->if_match)
		(void)ras_http_request_header(r, "If-Match", k->if_match);
	return 0;
}

static int64_t
parse_retry_after(const struct ras_http_request *r)
{
	char v[64];
	char *end;
	long long n;

	if (ras_http_response_header(r, "Retry-After", v, sizeof(v)) == NULL)
		return -1;
	errno = 0;
	n = strtoll(v, &end, 10);
	if (errno || end == v || *end != '\0' || n < 0 || n > 86400)
		return -1;
	return n;
}

/* What to do with one finished attempt. */
enum next { DONE, RETRY_NOW, RETRY_WAIT };

static enum next
classify(struct ras_ers *c, struct ras_ers_call *k, bool *auth_failed, int64_t *wait_ms)
{
	long st = k->http.status;
	bool write = (k->flags & RAS_ERS_CALL_WRITE) != 0;
	bool absolute = (k->flags & RAS_ERS_CALL_ABSOLUTE) != 0;

	if (k->attempts >= c->max_attempts)
		return DONE;
	if (k->http.err == RAS_EIO) {
		/* never reached the server (DNS, connect): safe to repeat, writes
		 * included; a TLS trust failure (RAS_EINVALID) is not repeated */
		*wait_ms = ras_ers_backoff_ms(k->attempts, 1000, 30000);
		return RETRY_WAIT;
	}
	if (k->http.err)
		return DONE;
	if (st == 401 && !absolute && c->mode == RAS_ERS_APPLICATION && k->attempts == 1) {
		*auth_failed = true;
		return RETRY_NOW;
	}
	if (st == 429) {
		/* spike arrest at the gateway: the request was not processed */
		*wait_ms = ras_ers_backoff_ms(k->attempts, 1000, 30000);
		return RETRY_WAIT;
	}
	if (st == 503 && !write) {
		if (k->retry_after_s > RETRY_AFTER_MAX_S)
			return DONE;
		*wait_ms = k->retry_after_s >= 0 ? k->retry_after_s * 1000 :
		    ras_ers_backoff_ms(k->attempts, 1000, 30000);
		return RETRY_WAIT;
	}
	return DONE;
}

int
ras_ers_perform(struct ras_ers *c, int64_t now, struct ras_ers_call *calls, size_t n)
{
	size_t *todo = calloc(n ? n : 1, sizeof(*todo));
	struct ras_http_request *batch = calloc(n ? n : 1, sizeof(*batch));
	size_t ntodo = 0;
	int64_t waited = 0;
	int err = 0;

	if (todo == NULL || batch == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		calls[i].attempts = 0;
		calls[i].retry_after_s = -1;
		calls[i].request_id[0] = calls[i].error_code[0] = calls[i].diagnostics[0] = '\0';
		todo[ntodo++] = i;
	}
	while (ntodo > 0) {
		const char *auth = NULL;
		struct ras_nhsapi_auth_call tc;
		bool need_auth = false, auth_failed = false;
		size_t nnext = 0;
		int64_t wait_ms = 0;

		for (size_t t = 0; t < ntodo; t++)
			if (!(calls[todo[t]].flags & RAS_ERS_CALL_ABSOLUTE))
				need_auth = true;
		if (need_auth) {
			err = ras_nhsapi_auth_header(c->auth, c->http, now, &auth, &tc);
			if (tc.made)
				log_call(c, now, "token", "POST", NULL, tc.status, tc.seconds, tc.correlation_id,
				    tc.request_id, NULL, tc.error);
			if (err < 0)
				goto done;
		}
		/* Start at most `rate` calls at a time, each group after the
		 * limiter allows it. */
		for (size_t off = 0; off < ntodo; off += (size_t)c->rate) {
			size_t m = ntodo - off < (size_t)c->rate ? ntodo - off : (size_t)c->rate;

			for (size_t t = 0; t < m; t++) {
				struct ras_ers_call *k = &calls[todo[off + t]];

				if ((err = prepare(c, k, auth)) < 0)
					goto done;
				k->attempts++;
			}
			rate_wait(c, m);
			rate_note(c, m);
			for (size_t t = 0; t < m; t++)
				batch[t] = calls[todo[off + t]].http;
			if ((err = ras_http_perform(c->http, batch, m)) < 0)
				goto done;
			for (size_t t = 0; t < m; t++) {
				struct ras_ers_call *k = &calls[todo[off + t]];
				char emsg[256];

				k->http = batch[t];
				k->retry_after_s = parse_retry_after(&k->http);
				(void)ras_http_response_header(&k->http, "X-Request-ID", k->request_id,
				    sizeof(k->request_id));
				k->error_code[0] = k->diagnostics[0] = '\0';
				if (!k->http.err && k->http.status >= 400)
					ras_ers_parse_outcome(k->http.body_out.data, k->http.body_out.len,
					    k->error_code, sizeof(k->error_code), k->diagnostics,
					    sizeof(k->diagnostics));
				log_call(c, now, (k->flags & RAS_ERS_CALL_ABSOLUTE) ? "object-store" : k->endpoint,
				    k->method, k->ubrn, k->http.status, k->http.seconds,
				    (k->flags & RAS_ERS_CALL_ABSOLUTE) ? NULL : k->correlation_id, k->request_id,
				    k->error_code, (k->http.err || k->http.status >= 400) ?
				    ras_ers_call_error(k, emsg, sizeof(emsg)) : NULL);
			}
		}
		/* Decide which calls go again. */
		for (size_t t = 0; t < ntodo; t++) {
			struct ras_ers_call *k = &calls[todo[t]];
			int64_t w = 0;

			switch (classify(c, k, &auth_failed, &w)) {
			case DONE:
				break;
			case RETRY_WAIT:
				if (waited + w > RETRY_WAIT_MAX_MS)
					break;
				if (w > wait_ms)
					wait_ms = w;
				todo[nnext++] = todo[t];
				break;
			case RETRY_NOW:
				todo[nnext++] = todo[t];
				break;
			}
		}
		if (auth_failed)
			ras_nhsapi_auth_invalidate(c->auth);
		ntodo = nnext;
		if (ntodo && wait_ms > 0) {
			c->clock.sleep_ms(c->clock.ctx, wait_ms);
			waited += wait_ms;
		}
	}
done:
	free(todo);
	free(batch);
	return err;
}

int
ras_ers_authenticate(struct ras_ers *c, int64_t now)
{
	struct ras_nhsapi_auth_call tc;
	const char *auth;
	int err;

	err = ras_nhsapi_auth_header(c->auth, c->http, now, &auth, &tc);
	if (tc.made)
		log_call(c, now, "token", "POST", NULL, tc.status, tc.seconds, tc.correlation_id,
		    tc.request_id, NULL, tc.error);
	return err;
}

int
ras_ers_flush_calls(struct ras_ers *c, struct ras_db *db)
{
	static const char sql[] =
	    "INSERT INTO ers_calls (at, endpoint, method, ubrn, status, ms, correlation_id, request_id,"
	    " error_code, error, instance)"
	    " SELECT to_timestamp(x.at), x.endpoint, x.method, nullif(x.ubrn, ''), nullif(x.status, 0),"
	    "  x.ms, nullif(x.cid, ''), nullif(x.rid, ''), nullif(x.code, ''), nullif(x.error, ''), $2"
	    " FROM jsonb_to_recordset($1::jsonb) AS x(at bigint, endpoint text, method text, ubrn text,"
	    "  status int, ms int, cid text, rid text, code text, error text)";
	json_t *arr;
	struct ras_buf b = RAS_BUF_INIT(0);
	int err = 0;

	if (c->nlog == 0)
		return 0;
	arr = json_array();
	if (arr == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < c->nlog; i++) {
		const struct call_log *e = &c->log[i];
		json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:I, s:i, s:s, s:s, s:s, s:s}",
		    "at", (json_int_t)e->at, "endpoint", e->endpoint, "method", e->method,
		    "ubrn", e->ubrn, "status", (json_int_t)e->status, "ms", e->ms,
		    "cid", e->correlation_id, "rid", e->request_id, "code", e->error_code,
		    "error", e->error);

		/* json_pack refuses invalid UTF-8 (a hostile diagnostics string):
		 * keep the entry without its texts. */
		if (o == NULL)
			o = json_pack("{s:I, s:s, s:s, s:I}", "at", (json_int_t)e->at, "endpoint",
			    e->endpoint, "method", e->method, "status", (json_int_t)e->status);
		if (o == NULL || json_array_append_new(arr, o) < 0) {
			json_decref(arr);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
	}
	if ((err = ras_json_dump(arr, RAS_JSON_COMPACT, &b)) == 0)
		err = ras_db_query(db, NULL, sql, 2, (struct ras_db_param[]){ RAS_DB_TEXT(b.data),
		    RAS_DB_TEXT(c->instance) });
	json_decref(arr);
	ras_buf_free(&b);
	if (err == 0)
		c->nlog = 0;
	return err;
}

struct ras_nhsapi_auth *
ras_ers_auth_of(struct ras_ers *c)
{
	return c->auth;
}
