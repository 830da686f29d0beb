/* pds: the PDS FHIR client and the reading of its Patient (see include/ras/pds.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/nhsno.h"
#include "ras/pds.h"

/* The back-off doubles up to this (NOTES §11: exponential with a cap). */
#define BACKOFF_CAP_MS 16000

struct ras_pds {
	char *base_url;
	char *end_user_ods;
	enum ras_nhsapi_mode mode;
	struct ras_http *http;
	struct ras_nhsapi_auth *auth;
	int64_t interval_ms;            /* 1000 / rate_limit */
	int64_t last_start_ms;          /* monotonic start of the previous request; 0 none */
	long timeout_ms;
	int max_attempts;
	int64_t backoff_ms;
	struct ras_pds_clock clock;
	unsigned requests;
};

static int64_t
real_mono_ms(void *ctx)
{
	(void)ctx;
	return ras_time_mono_ms();
}

/* Pacing and back-off waits go through the http adapter: in rasd the loop
 * goes on serving meanwhile (docs/design/event-loop.md). */
static void
real_sleep_ms(void *ctx, int64_t ms)
{
	(void)ctx;
	ras_http_sleep_ms(ms);
}

const char *
ras_pds_result_name(enum ras_pds_result r)
{
	switch (r) {
	case RAS_PDS_FOUND: return "found";
	case RAS_PDS_NOT_FOUND: return "not-found";
	case RAS_PDS_INVALIDATED: return "invalidated";
	case RAS_PDS_INVALID: return "invalid";
	case RAS_PDS_REFUSED: return "refused";
	case RAS_PDS_UNAVAILABLE: return "unavailable";
	}
	return "unknown";
}

static bool
is_production(const char *url)
{
	return strstr(url, "://api.service.nhs.uk/") != NULL;
}

int
ras_pds_new(const struct ras_pds_opts *o, struct ras_pds **out)
{
	struct ras_pds *c = calloc(1, sizeof(*c));
	struct ras_http_opts hopts = { 0 };
	struct ras_nhsapi_auth_opts aopts = { 0 };
	bool loopback;
	int err;

	if (c == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	c->mode = o->mode ? o->mode : RAS_NHSAPI_APPLICATION;
	if (o->base_url == NULL || (strncmp(o->base_url, "https://", 8) != 0 &&
	    strncmp(o->base_url, "http://", 7) != 0)) {
		err = ras_error_code(RAS_EINVALID, "pds.base_url must be an https URL");
		goto fail;
	}
	if (c->mode == RAS_NHSAPI_SANDBOX && is_production(o->base_url)) {
		err = ras_error_code(RAS_EINVALID, "pds.mode = sandbox cannot be used with the production base URL");
		goto fail;
	}
	if ((c->base_url = strdup(o->base_url)) == NULL ||
	    (o->end_user_ods && (c->end_user_ods = strdup(o->end_user_ods)) == NULL)) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	while (strlen(c->base_url) > 8 && c->base_url[strlen(c->base_url) - 1] == '/')
		c->base_url[strlen(c->base_url) - 1] = '\0';
	c->interval_ms = 1000 / (o->rate_limit > 0 ? o->rate_limit : 5);
	c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
	c->max_attempts = o->max_attempts > 0 ? o->max_attempts : 4;
	c->backoff_ms = o->backoff_ms > 0 ? o->backoff_ms : 1000;
	c->clock = o->clock;
	if (c->clock.mono_ms == NULL)
		c->clock.mono_ms = real_mono_ms;
	if (c->clock.sleep_ms == NULL)
		c->clock.sleep_ms = real_sleep_ms;

	loopback = strncmp(c->base_url, "http://", 7) == 0;
	hopts.ca_file = o->ca_file;
	hopts.client_cert = o->client_cert;
	hopts.client_key = o->client_key;
	hopts.allow_http_loopback = loopback;   /* the adapter still refuses non-loopback http */
	if ((err = ras_http_new(&hopts, &c->http)) < 0)
		goto fail;
	if (c->mode == RAS_NHSAPI_APPLICATION && (o->token_url == NULL ||
	    (strncmp(o->token_url, "https://", 8) != 0 &&
	    !(loopback && strncmp(o->token_url, "http://", 7) == 0)))) {
		err = ras_error_code(RAS_EINVALID, "pds.token_url must be an https URL");
		goto fail;
	}
	aopts.mode = c->mode;
	aopts.section = "pds";
	aopts.label = "a PDS";
	aopts.token_url = o->token_url;
	aopts.api_key = o->api_key;
	aopts.kid = o->kid;
	aopts.private_key_pem = o->private_key_pem;
	aopts.private_key_len = o->private_key_len;
	aopts.bearer_token_file = o->bearer_token_file;
	aopts.timeout_ms = c->timeout_ms;
	if ((err = ras_nhsapi_auth_new(&aopts, &c->auth)) < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	ras_pds_free(c);
	return err;
}

void
ras_pds_free(struct ras_pds *c)
{
	if (c == NULL)
		return;
	ras_http_free(c->http);
	ras_nhsapi_auth_free(c->auth);
	free(c->base_url);
	free(c->end_user_ods);
	free(c);
}

int
ras_pds_from_config(const struct ras_config *cfg, struct ras_pds **out)
{
	struct ras_pds_opts o = { 0 };
	struct ras_buf key = RAS_BUF_INIT(RAS_SECRET_MAX);
	const char *mode = ras_config_get(cfg, "pds", NULL, "mode");
	int err;

	o.base_url = ras_config_get(cfg, "pds", NULL, "base_url");
	if (o.base_url == NULL)
		return ras_error_code(RAS_ENOTFOUND, "PDS is not configured ([pds] base_url is not set)");
	if (mode == NULL || strcmp(mode, "application") == 0)
		o.mode = RAS_NHSAPI_APPLICATION;
	else if (strcmp(mode, "user") == 0)
		o.mode = RAS_NHSAPI_USER;
	else if (strcmp(mode, "sandbox") == 0)
		o.mode = RAS_NHSAPI_SANDBOX;
	else
		return ras_error_code(RAS_EINVALID, "pds.mode must be application, user or sandbox");
	o.token_url = ras_config_get(cfg, "pds", NULL, "token_url");
	o.api_key = ras_config_get(cfg, "pds", NULL, "api_key");
	o.kid = ras_config_get(cfg, "pds", NULL, "kid");
	o.bearer_token_file = ras_config_get(cfg, "pds", NULL, "bearer_token_file");
	o.end_user_ods = ras_config_get(cfg, "pds", NULL, "end_user_ods");
	o.ca_file = ras_config_get(cfg, "pds", NULL, "ca_file");
	o.client_cert = ras_config_get(cfg, "pds", NULL, "client_cert");
	o.client_key = ras_config_get(cfg, "pds", NULL, "client_key");
	o.rate_limit = (int)ras_config_int(cfg, "pds", NULL, "rate_limit");
	o.timeout_ms = (long)ras_config_int(cfg, "pds", NULL, "timeout") * 1000L;
	o.max_attempts = (int)ras_config_int(cfg, "pds", NULL, "max_attempts");
	if (o.mode == RAS_NHSAPI_APPLICATION) {
		if ((err = ras_config_secret(cfg, "pds", NULL, "private_key", &key)) < 0)
			goto done;
		o.private_key_pem = key.data;
		o.private_key_len = key.len;
	}
	err = ras_pds_new(&o, out);
done:
	if (key.data)
		memset(key.data, 0, key.len);
	ras_buf_free(&key);
	return err;
}

void
ras_pds_settings(const struct ras_config *cfg, struct ras_pds_settings *out)
{
	out->verify = ras_config_bool(cfg, "pds", NULL, "verify");
	out->max_age_s = ras_config_int(cfg, "pds", NULL, "max_age") * 3600;
}

unsigned
ras_pds_requests(const struct ras_pds *c)
{
	return c->requests;
}

struct ras_nhsapi_auth *
ras_pds_auth_of(struct ras_pds *c)
{
	return c->auth;
}

void
ras_pds_lookup_release(struct ras_pds_lookup *l)
{
	ras_buf_free(&l->body);
}

/* ---- reading the Patient ------------------------------------------------- */

/* The date part of a FHIR date or dateTime; false when it has none. */
static bool
date_of(const char *s, struct ras_date *d)
{
	char b[11];

	if (s == NULL || strlen(s) < 10)
		return false;
	memcpy(b, s, 10);
	b[10] = '\0';
	return ras_date_parse(b, d) == 0;
}

/* Is `today` within the element's period (start absent or not after today,
 * end absent or not before today)?  `period_holder` holds "period". */
static bool
current(const json_t *period_holder, const struct ras_date *today)
{
	const json_t *p = json_object_get(period_holder, "period");
	struct ras_date d;

	if (!json_is_object(p) || today == NULL)
		return true;
	if (date_of(ras_json_str(p, "start"), &d) && ras_date_cmp(&d, today) > 0)
		return false;
	if (date_of(ras_json_str(p, "end"), &d) && ras_date_cmp(&d, today) < 0)
		return false;
	return true;
}

static const char *
join_strings(struct ras_arena *a, const json_t *arr)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_STRING_MAX);
	size_t i;
	json_t *v;
	char *s;

	if (!json_is_array(arr) || json_array_size(arr) == 0)
		return NULL;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) || *json_string_value(v) == '\0')
			continue;
		if ((b.len && ras_buf_putc(&b, ' ') < 0) || ras_buf_puts(&b, json_string_value(v)) < 0)
			break;
	}
	s = b.data ? ras_arena_strdup(a, b.data) : NULL;
	ras_buf_free(&b);
	return s;
}

static const json_t *
pick_by_use(const json_t *arr, const char *use, const struct ras_date *today, bool need_current)
{
	size_t i;
	json_t *v;

	json_array_foreach(arr, i, v) {
		const char *u = ras_json_str(v, "use");

		if (u && strcmp(u, use) == 0 && (!need_current || current(v, today)))
			return v;
	}
	return NULL;
}

static const char *
sdup(struct ras_arena *a, const char *s)
{
	return s ? ras_arena_strdup(a, s) : NULL;
}

int
ras_pds_parse_patient(struct ras_arena *a, const char *body, size_t len, const char *asked,
    const struct ras_date *today, struct ras_pds_patient *out)
{
	json_t *j = NULL, *meta, *names, *addrs, *gps;
	const json_t *name, *addr;
	const char *rt;
	int err;
	size_t i;
	json_t *v;

	memset(out, 0, sizeof(*out));
	if ((err = ras_json_parse_arena(a, body, len, RAS_HTTP_BODY_MAX, &j)) < 0) {
		ras_error_context("PDS response");
		return err;
	}
	rt = ras_json_str(j, "resourceType");
	if (rt == NULL || strcmp(rt, "Patient") != 0 || ras_json_str(j, "id") == NULL)
		return ras_error_code(RAS_EINVALID, "the PDS response is not a Patient with an id");
	out->id = sdup(a, ras_json_str(j, "id"));
	out->superseded = asked && strcmp(asked, out->id) != 0;
	meta = ras_json_obj(j, "meta");
	out->version = sdup(a, ras_json_str(meta, "versionId"));
	{
		json_t *sec = ras_json_arr(meta, "security");

		if (json_array_size(sec) > 0)
			out->security = sdup(a, ras_json_str(json_array_get(sec, 0), "code"));
	}
	/* NOTES §7: anything but U, or no label at all, is restricted. */
	out->restricted = out->security == NULL || strcmp(out->security, "U") != 0;

	names = ras_json_arr(j, "name");
	if ((name = pick_by_use(names, "usual", today, true)) == NULL &&
	    (name = pick_by_use(names, "official", today, true)) == NULL)
		name = pick_by_use(names, "usual", today, false);
	if (name) {
		out->family = sdup(a, ras_json_str(name, "family"));
		out->given = join_strings(a, json_object_get(name, "given"));
		out->prefix = join_strings(a, json_object_get(name, "prefix"));
	}
	out->gender = sdup(a, ras_json_str(j, "gender"));
	out->birth_date = sdup(a, ras_json_str(j, "birthDate"));
	out->deceased = sdup(a, ras_json_str(j, "deceasedDateTime"));
	json_array_foreach(ras_json_arr(j, "extension"), i, v) {
		const char *url = ras_json_str(v, "url");
		size_t k;
		json_t *sub;

		if (url == NULL || strstr(url, "Extension-UKCore-DeathNotificationStatus") == NULL)
			continue;
		json_array_foreach(ras_json_arr(v, "extension"), k, sub) {
			const json_t *cc = ras_json_obj(sub, "valueCodeableConcept");
			const json_t *coding = json_array_get(ras_json_arr(cc, "coding"), 0);

			if (ras_json_str(sub, "url") && strcmp(ras_json_str(sub, "url"), "deathNotificationStatus") == 0 &&
			    ras_json_str(coding, "code"))
				out->death_notification = sdup(a, ras_json_str(coding, "code"));
		}
	}

	if (out->restricted)
		return 0;   /* never read location data of a restricted record */

	/* Correspondence address (NOTES §6, §14.8): a current billing address,
	 * else a current temp one, else the current home one. */
	addrs = ras_json_arr(j, "address");
	if ((addr = pick_by_use(addrs, "billing", today, true)) == NULL &&
	    (addr = pick_by_use(addrs, "temp", today, true)) == NULL)
		addr = pick_by_use(addrs, "home", today, true);
	if (addr) {
		out->address_use = sdup(a, ras_json_str(addr, "use"));
		json_array_foreach(ras_json_arr(addr, "line"), i, v) {
			if (out->n_address_lines == 5)
				break;
			if (json_is_string(v) && *json_string_value(v))
				out->address_lines[out->n_address_lines++] = sdup(a, json_string_value(v));
		}
		out->postcode = sdup(a, ras_json_str(addr, "postalCode"));
	}
	/* The registered practice: generalPractitioner whose identifier's
	 * period has not ended (the period sits inside identifier). */
	gps = ras_json_arr(j, "generalPractitioner");
	json_array_foreach(gps, i, v) {
		const json_t *id = ras_json_obj(v, "identifier");
		const char *sys = ras_json_str(id, "system");

		if (sys && strcmp(sys, "https://fhir.nhs.uk/Id/ods-organization-code") == 0 &&
		    ras_json_str(id, "value") && current(id, today)) {
			out->practice_ods = sdup(a, ras_json_str(id, "value"));
			break;
		}
	}
	return 0;
}

json_t *
ras_pds_patient_to_json(const struct ras_pds_patient *p, const char *asked)
{
	json_t *o = json_object(), *name = json_object();

	if (o == NULL || name == NULL) {
		json_decref(o);
		json_decref(name);
		return NULL;
	}
	(void)ras_json_set_str(o, "nhs_number", p->id);
	if (p->superseded && asked)
		(void)ras_json_set_str(o, "superseded_from", asked);
	(void)ras_json_set_str(o, "version", p->version);
	(void)ras_json_set_str(o, "security", p->security);
	(void)ras_json_set_new(o, "restricted", json_boolean(p->restricted));
	(void)ras_json_set_str(name, "family", p->family);
	(void)ras_json_set_str(name, "given", p->given);
	(void)ras_json_set_str(name, "prefix", p->prefix);
	(void)ras_json_set_new(o, "name", name);
	(void)ras_json_set_str(o, "gender", p->gender);
	(void)ras_json_set_str(o, "birth_date", p->birth_date);
	(void)ras_json_set_str(o, "deceased", p->deceased);
	(void)ras_json_set_str(o, "death_notification", p->death_notification);
	if (!p->restricted && (p->n_address_lines || p->postcode)) {
		json_t *ad = json_object(), *lines = json_array();

		for (size_t i = 0; i < p->n_address_lines; i++)
			(void)ras_json_append_new(lines, json_string(p->address_lines[i]));
		(void)ras_json_set_str(ad, "use", p->address_use);
		(void)ras_json_set_new(ad, "lines", lines);
		(void)ras_json_set_str(ad, "postcode", p->postcode);
		(void)ras_json_set_new(o, "address", ad);
	}
	if (!p->restricted)
		(void)ras_json_set_str(o, "practice_ods", p->practice_ods);
	return o;
}

/* ---- the call -------------------------------------------------------------- */

/* The Spine error code of an OperationOutcome body (issue[0].details.coding[0].code). */
static void
spine_code(const struct ras_buf *body, char *code, size_t size)
{
	json_t *j = NULL;
	const char *c;

	code[0] = '\0';
	if (body->len == 0 || ras_json_parse(body->data, body->len, RAS_HTTP_BODY_MAX, &j) < 0)
		return;
	c = ras_json_str(json_array_get(ras_json_arr(ras_json_obj(json_array_get(ras_json_arr(j, "issue"), 0),
	    "details"), "coding"), 0), "code");
	if (c)
		snprintf(code, size, "%s", c);
	json_decref(j);
}

/* Wait for the rate limit, then note the start of a request. */
static void
pace(struct ras_pds *c)
{
	int64_t now = c->clock.mono_ms(c->clock.ctx);

	if (c->last_start_ms && now - c->last_start_ms < c->interval_ms) {
		c->clock.sleep_ms(c->clock.ctx, c->interval_ms - (now - c->last_start_ms));
		now = c->clock.mono_ms(c->clock.ctx);
	}
	c->last_start_ms = now;
}

static int64_t
backoff(const struct ras_pds *c, int attempt)
{
	int64_t d = c->backoff_ms;

	for (int i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
		d *= 2;
	return d > BACKOFF_CAP_MS ? BACKOFF_CAP_MS : d;
}

int
ras_pds_get(struct ras_pds *c, struct ras_arena *a, const char *nhs_number,
    const struct ras_date *today, struct ras_pds_lookup *out)
{
	char url[1024];
	bool renewed = false;
	int err;

	memset(out, 0, sizeof(*out));
	ras_buf_init(&out->body, RAS_HTTP_BODY_MAX);
	snprintf(out->asked, sizeof(out->asked), "%.10s", nhs_number ? nhs_number : "");
	if (nhs_number == NULL || ras_nhsno_check(nhs_number) != RAS_NHSNO_OK) {
		out->result = RAS_PDS_INVALID;
		snprintf(out->error, sizeof(out->error), "not a valid NHS number (%s): not sent to PDS",
		    ras_nhsno_reason(nhs_number ? ras_nhsno_check(nhs_number) : RAS_NHSNO_MISSING));
		return 0;
	}
	if ((err = ras_crypto_uuid(out->request_id)) < 0 || (err = ras_crypto_uuid(out->correlation_id)) < 0)
		return err;
	snprintf(url, sizeof(url), "%s/Patient/%s", c->base_url, nhs_number);
	for (;;) {
		struct ras_http_request r;
		struct ras_nhsapi_auth_call tc;
		const char *auth = NULL;
		bool retry = false;
		long st;

		if (out->attempts >= c->max_attempts) {
			out->result = RAS_PDS_UNAVAILABLE;
			break;
		}
		if (out->attempts > 0)
			c->clock.sleep_ms(c->clock.ctx, backoff(c, out->attempts));
		err = ras_nhsapi_auth_header(c->auth, c->http, ras_time_now(), &auth, &tc);
		if (err == RAS_ENOMEM)
			return err;
		if (err < 0) {
			/* no token: the token endpoint is down (try later) or refuses us */
			out->result = err == RAS_EIO ? RAS_PDS_UNAVAILABLE : RAS_PDS_REFUSED;
			snprintf(out->error, sizeof(out->error), "%s", ras_error_last());
			break;
		}
		ras_http_request_init(&r, "GET", url);
		r.timeout_ms = c->timeout_ms;
		r.max_body = RAS_HTTP_BODY_MAX;
		(void)ras_http_request_header(&r, "Accept", "application/fhir+json");
		(void)ras_http_request_header(&r, "X-Request-ID", out->request_id);
		(void)ras_http_request_header(&r, "X-Correlation-ID", out->correlation_id);
		if (auth)
			(void)ras_http_request_header(&r, "Authorization", auth);
		if (c->end_user_ods)
			(void)ras_http_request_header(&r, "NHSD-End-User-Organisation-ODS", c->end_user_ods);
		pace(c);
		if ((err = ras_http_perform(c->http, &r, 1)) < 0) {
			ras_http_request_release(&r);
			return err;
		}
		c->requests++;
		out->attempts++;
		out->seconds += r.seconds;
		st = out->status = r.status;
		ras_buf_reset(&out->body);
		if (r.body_out.len && ras_buf_append(&out->body, r.body_out.data, r.body_out.len) < 0) {
			ras_http_request_release(&r);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		out->etag[0] = out->content_type[0] = '\0';
		(void)ras_http_response_header(&r, "ETag", out->etag, sizeof(out->etag));
		(void)ras_http_response_header(&r, "Content-Type", out->content_type, sizeof(out->content_type));
		if (r.err) {
			snprintf(out->error, sizeof(out->error), "%s", r.errmsg);
			retry = r.err != RAS_EINVALID && r.err != RAS_ETOOBIG;
			if (!retry)
				out->result = RAS_PDS_REFUSED;
		} else {
			spine_code(&out->body, out->code, sizeof(out->code));
			if (st == 200) {
				out->result = RAS_PDS_FOUND;
			} else if (st == 404) {
				out->result = strcmp(out->code, "INVALIDATED_RESOURCE") == 0 ? RAS_PDS_INVALIDATED :
				    RAS_PDS_NOT_FOUND;
			} else if (st == 400 && strcmp(out->code, "INVALID_RESOURCE_ID") == 0) {
				out->result = RAS_PDS_INVALID;
			} else if (st == 401 && c->mode == RAS_NHSAPI_APPLICATION && !renewed) {
				/* NOTES §3.1: a new token once, then give up */
				ras_nhsapi_auth_invalidate(c->auth);
				renewed = true;
				retry = true;
				out->attempts--;   /* not a back-off step */
			} else if (st == 408 || st == 429 || st >= 500) {
				retry = true;
			} else {
				out->result = RAS_PDS_REFUSED;
			}
			if (out->result != RAS_PDS_FOUND)
				snprintf(out->error, sizeof(out->error), "PDS answered HTTP %ld%s%s", st,
				    out->code[0] ? " " : "", out->code);
		}
		ras_http_request_release(&r);
		if (!retry)
			break;
	}
	if (out->result == RAS_PDS_FOUND) {
		ras_error_clear();
		if ((err = ras_pds_parse_patient(a, out->body.data ? out->body.data : "", out->body.len,
		    nhs_number, today, &out->patient)) < 0) {
			if (err == RAS_ENOMEM)
				return err;
			/* a 200 that is not a Patient: treat as a failure of the service */
			out->result = RAS_PDS_UNAVAILABLE;
			snprintf(out->error, sizeof(out->error), "%s", ras_error_last());
		} else {
			out->have_patient = true;
			out->error[0] = '\0';
		}
	}
	return 0;
}
