/* httpd: the intake, health and metrics endpoints (see httpd.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include "daemon.h"
#include "httpd.h"
#include "listen.h"
#include "loop.h"
#include "metrics.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/log.h"
#include "ras/mappings.h"
#include "ras/migrate.h"
#include "ras/runtime.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "receive.h"
#include "stage.h"
#include "stages.h"
#include "workers.h"

/* X-Correlation-ID values taken from senders: printable, this long at most. */
#define CORRELATION_MAX 64
/* Memory per connection for headers (MHD's pool), not the body. */
#define HTTP_CONN_MEMORY (64u * 1024u)

struct req;

struct ras_httpd {
	struct ras_daemon *d;
	struct MHD_Daemon *mhd;
	int epfd;
	struct ras_loop_timer *timer;
	struct ras_buf token;       /* empty: no bearer token required */
	bool mtls;
	size_t max_body;
	int64_t commit_delay;       /* [http] commit_delay, milliseconds */
	/* Group commit: intake POSTs waiting (suspended) for one commit. */
	struct req *group[RAS_HTTP_GROUP_MAX];
	size_t ngroup, group_bytes;
	size_t nconn;               /* connections open (MHD_OPTION_NOTIFY_CONNECTION) */
	size_t inflight;            /* POSTs of groups being kept by a worker */
	struct ras_workers *workers;   /* [http] commit_workers >= 2; else NULL */
	struct ras_loop_timer *group_timer;
	bool resumed;               /* connections resumed: MHD must run again */
	char address[80];
	char *cert, *key, *ca;      /* PEM text handed to MHD (kept while it runs) */
};

struct req {
	struct ras_buf body;
	bool toobig;
	bool intake;
	char corr[CORRELATION_MAX + 1];
	/* group commit: the payload waits in ras_httpd.group (its connection
	 * suspended) until the group's commit, then is answered */
	struct MHD_Connection *c;
	const char *url;
	struct ras_inbox_item it;
	bool queued, answered;
	int err;
	struct ras_receipt rc;
};

/* ---- responses --------------------------------------------------------- */

static enum MHD_Result
send_text(struct MHD_Connection *c, struct ras_httpd *h, unsigned status, const char *ctype,
    const char *body, size_t len, const struct req *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (r && r->corr[0])
		(void)MHD_add_response_header(resp, "X-Correlation-ID", r->corr);
	if (status == MHD_HTTP_UNAUTHORIZED)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "30");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	if (status / 100 >= 1 && status / 100 <= 5)
		h->d->stats.http[status / 100]++;
	return ret;
}

/* An OperationOutcome with one issue.  `state` and `payload_id` (when not
 * 0) go into details so that senders can act on them without parsing
 * text. */
static enum MHD_Result
outcome(struct MHD_Connection *c, struct ras_httpd *h, unsigned status, const char *severity,
    const char *code, const char *state, int64_t payload_id, const char *diag, const struct req *r)
{
	struct ras_buf out = RAS_BUF_INIT(0);
	json_t *oo, *issue, *details;
	enum MHD_Result ret;

	oo = json_pack("{s:s, s:[]}", "resourceType", "OperationOutcome", "issue");
	issue = json_pack("{s:s, s:s, s:s}", "severity", severity, "code", code, "diagnostics",
	    diag ? diag : "");
	details = json_object();
	if (oo == NULL || issue == NULL || details == NULL) {
		json_decref(oo);
		json_decref(issue);
		json_decref(details);
		return MHD_NO;
	}
	if (state)
		(void)ras_json_set_new(details, "coding", json_pack("[{s:s, s:s}]", "system",
		    "urn:rasd:intake-state", "code", state));
	if (payload_id)
		(void)ras_json_set_new(details, "text",
		    json_sprintf("payload %lld", (long long)payload_id));
	if (json_object_size(details))
		(void)ras_json_set_new(issue, "details", details);
	else
		json_decref(details);
	(void)ras_json_append_new(json_object_get(oo, "issue"), issue);
	(void)ras_json_dump(oo, RAS_JSON_COMPACT, &out);
	(void)ras_buf_putc(&out, '\n');
	json_decref(oo);
	ret = send_text(c, h, status, "application/fhir+json; charset=utf-8", out.data ? out.data : "",
	    out.len, r);
	ras_buf_free(&out);
	return ret;
}

/* ---- authentication ---------------------------------------------------- */

static bool
token_ok(const struct ras_httpd *h, const char *auth)
{
	const char *given;
	size_t glen;
	unsigned char diff = 0;

	if (h->token.len == 0)
		return true;
	if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
		return false;
	given = auth + 7;
	while (*given == ' ')
		given++;
	glen = strlen(given);
	/* Constant time in the token's length. */
	diff = glen != h->token.len;
	for (size_t i = 0; i < h->token.len; i++)
		diff |= (unsigned char)(h->token.data[i] ^ (i < glen ? given[i] : 0));
	return diff == 0;
}

static bool
client_cert_ok(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
	    MHD_CONNECTION_INFO_GNUTLS_SESSION);
	gnutls_session_t s;
	unsigned status = 0, n = 0;

	if (ci == NULL || ci->tls_session == NULL)
		return false;
	s = (gnutls_session_t)ci->tls_session;
	if (gnutls_certificate_get_peers(s, &n) == NULL || n == 0)
		return false;
	if (gnutls_certificate_verify_peers2(s, &status) != GNUTLS_E_SUCCESS)
		return false;
	return status == 0;
}

/* ---- handlers ----------------------------------------------------------- */

static bool
json_content_type(const char *ct)
{
	if (ct == NULL)
		return true;   /* FHIR senders usually say; a missing type is taken as JSON */
	return strncasecmp(ct, "application/fhir+json", 21) == 0 ||
	    strncasecmp(ct, "application/json", 16) == 0;
}

static void
set_correlation(struct MHD_Connection *c, struct req *r)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Correlation-ID");
	bool ok = v != NULL && *v != '\0' && strlen(v) <= CORRELATION_MAX;

	if (v == NULL)
		v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-ID");
	ok = v != NULL && *v != '\0' && strlen(v) <= CORRELATION_MAX;
	for (const char *p = v; ok && *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == ':'))
			ok = false;
	if (ok)
		snprintf(r->corr, sizeof(r->corr), "%s", v);
	else
		(void)ras_crypto_uuid(r->corr);
}

static enum MHD_Result
handle_get(struct ras_httpd *h, struct MHD_Connection *c, const char *url, struct req *r)
{
	struct ras_daemon *d = h->d;

	if (strcmp(url, "/healthz") == 0)
		return send_text(c, h, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n", 3, r);
	if (strcmp(url, "/readyz") == 0) {
		struct ras_db *db = d->ready && !d->stopping ? ras_daemon_db(d) : NULL;
		const char *why = d->stopping ? "stopping" : !d->ready ? "starting" :
		    db == NULL ? "database unavailable" : NULL;
		char msg[300];
		int err;

		if (why == NULL && (err = ras_migrate_check(db)) < 0)
			why = err == RAS_EIO ? "database unavailable" : "database schema does not match this rasd";
		if (why == NULL)
			return send_text(c, h, MHD_HTTP_OK, "text/plain; charset=utf-8", "ready\n", 6, r);
		snprintf(msg, sizeof(msg), "not ready: %s\n", why);
		return send_text(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain; charset=utf-8", msg,
		    strlen(msg), r);
	}
	if (strcmp(url, "/metrics") == 0) {
		struct ras_buf out = RAS_BUF_INIT(0);
		enum MHD_Result ret;

		(void)ras_metrics_render(d, &out);
		ret = send_text(c, h, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8",
		    out.data ? out.data : "", out.len, r);
		ras_buf_free(&out);
		return ret;
	}
	return outcome(c, h, MHD_HTTP_NOT_FOUND, "error", "not-found", NULL, 0, "no such endpoint", r);
}

static unsigned
status_for(const struct ras_receipt *rc, const char **severity, const char **code)
{
	*severity = "information";
	*code = "informational";
	if (strcmp(rc->state, "stored") == 0 || strcmp(rc->state, "partial") == 0 ||
	    strcmp(rc->state, "recorded") == 0) {
		if (strcmp(rc->state, "partial") == 0)
			*severity = "warning";
		return rc->new_payload ? MHD_HTTP_CREATED : MHD_HTTP_OK;
	}
	if (strcmp(rc->state, "duplicate") == 0) {
		*code = "duplicate";
		return MHD_HTTP_OK;
	}
	if (strcmp(rc->state, "queued") == 0)
		return MHD_HTTP_ACCEPTED;
	*severity = "error";
	if (rc->kind == NULL || strcmp(rc->kind, "unknown") == 0) {
		*code = "structure";
		return MHD_HTTP_BAD_REQUEST;
	}
	*code = "invalid";
	return MHD_HTTP_UNPROCESSABLE_CONTENT;
}

/* A service id this configuration has a rule set for. */
static bool
known_service(struct ras_daemon *d, const char *id)
{
	const struct ras_runtime *rt = ras_stages_runtime(d->units);
	size_t n = strlen(id);

	if (n == 0 || n > RAS_ID_MAX || strspn(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
		return false;
	return rt && ras_mappings_ruleset(ras_triage_mappings(ras_runtime_triage(rt)), id) != NULL;
}

/* The answer to an intake POST once its group was committed (or not). */
static enum MHD_Result
answer_intake(struct ras_httpd *h, struct MHD_Connection *c, struct req *r)
{
	const struct ras_receipt *rc = &r->rc;
	const char *severity, *code;
	unsigned status;

	if (r->err < 0) {
		struct ras_log_field f[] = { { "STAGE", "http" }, { "CORRELATION_ID", r->corr },
			{ NULL, NULL } };

		ras_log_fields(RAS_LOG_ERR, f, "could not keep a POST to %s (answered 503): %s", r->url,
		    ras_error_last());
		return outcome(c, h, MHD_HTTP_SERVICE_UNAVAILABLE, "error", "transient", NULL, 0,
		    "could not keep the payload (database unavailable): nothing was stored, try again", r);
	}
	status = status_for(rc, &severity, &code);
	{
		char pid[24], st[8];
		struct ras_log_field f[] = { { "STAGE", "http" }, { "CORRELATION_ID", r->corr },
			{ "PAYLOAD_ID", pid }, { "UBRN", rc->ubrn[0] ? rc->ubrn : NULL },
			{ "HTTP_STATUS", st }, { NULL, NULL } };

		snprintf(pid, sizeof(pid), "%lld", (long long)rc->payload_id);
		snprintf(st, sizeof(st), "%u", status);
		ras_log_fields(status >= 400 ? RAS_LOG_WARNING : RAS_LOG_INFO, f,
		    "POST %s: %u %s (payload #%s)", r->url, status, rc->state, pid);
	}
	return outcome(c, h, status, severity, code, rc->state, rc->payload_id, rc->message, r);
}

/*
 * Group commit.  Every POST waiting in the group is kept by one call of
 * ras_receive (one transaction keeps, normalises and triages them); only
 * then are their connections resumed and answered, so no sender hears
 * "kept" before its payload is durable.  Concurrent senders share one
 * commit (one WAL flush) instead of queueing for one each.  The group
 * waits up to [http] commit_delay for more senders, unless every open
 * connection already has a POST in it: then nobody else can join before
 * someone is answered, and waiting would only idle.
 *
 * With [http] commit_workers >= 2 a group is kept by a worker thread on a
 * connection of its own (workers.h) while the loop goes on taking POSTs
 * for the next group, so PostgreSQL (most of what a referral costs) works
 * on two groups at once.  The senders the loop is waiting for are then
 * shared between the idle workers: a group goes as soon as it holds its
 * share of the open connections that have no POST in a group yet (with
 * eight senders and two workers, groups of four, side by side), instead
 * of one group of all of them while the other worker idles.  When every
 * worker is busy the group grows until one is free (or until it is full:
 * then it is kept here, on the loop's connection, as with one worker).
 * Each group is its own transaction; the answers still wait for its commit.
 */
static void rearm(struct ras_httpd *h);

struct group {
	struct ras_httpd *h;
	size_t n;
	int err;
	struct ras_receive_job *job;
	struct req *reqs[RAS_HTTP_GROUP_MAX];
	struct ras_inbox_item items[RAS_HTTP_GROUP_MAX];
	struct ras_receipt rcs[RAS_HTTP_GROUP_MAX];
};

/* On the loop's thread, once the group's transaction is over: answer. */
static void
group_done(void *arg)
{
	struct group *g = arg;
	struct ras_httpd *h = g->h;
	int err = g->err < 0 ? g->err : ras_receive_finish(h->d, g->job);

	for (size_t i = 0; i < g->n; i++) {
		struct req *r = g->reqs[i];

		r->err = err;
		r->rc = g->rcs[i];
		r->queued = false;
		r->answered = true;
		MHD_resume_connection(r->c);
	}
	h->inflight -= g->n;
	free(g);
	/* a group that waited for a free worker goes now */
	if (h->ngroup)
		ras_loop_timer_after(h->group_timer, 0);
	/* MHD runs at once to answer (not from here: this may be inside one of
	 * its callbacks) */
	h->resumed = true;
	ras_loop_timer_after(h->timer, 0);
}

static void
group_run(void *arg, struct ras_db *db)
{
	struct group *g = arg;

	ras_receive_run(g->job, db);
}

/* Keep the group: by an idle worker, or here.  `force`: here too when no
 * worker is idle (the group is full, or rasd is stopping). */
static void
group_commit(struct ras_httpd *h, bool force)
{
	struct group *g;
	size_t n = h->ngroup;

	if (n == 0)
		return;
	if (h->workers && !force && ras_workers_busy(h->workers) == ras_workers_count(h->workers))
		return;   /* group_done calls again */
	ras_loop_timer_stop(h->group_timer);
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		/* nothing kept: every sender is told to try again */
		for (size_t i = 0; i < n; i++) {
			struct req *r = h->group[i];

			r->err = ras_error_code(RAS_ENOMEM, "out of memory");
			r->queued = false;
			r->answered = true;
			MHD_resume_connection(r->c);
		}
		h->ngroup = 0;
		h->group_bytes = 0;
		h->resumed = true;
		return;
	}
	g->h = h;
	g->n = n;
	for (size_t i = 0; i < n; i++) {
		g->reqs[i] = h->group[i];
		g->items[i] = h->group[i]->it;
	}
	h->ngroup = 0;
	h->group_bytes = 0;
	h->inflight += n;
	g->err = ras_receive_prepare(h->d, g->items, n, g->rcs, &g->job);
	if (g->err == 0 && h->workers && ras_workers_submit(h->workers, g, group_run, group_done))
		return;
	if (g->err == 0)
		ras_receive_run(g->job, ras_daemon_db(h->d));
	group_done(g);
}

static void
on_group_due(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	struct ras_httpd *h = ctx;

	(void)l;
	(void)t;
	group_commit(h, false);
	rearm(h);
}

/* Whether the group should go now (see "Group commit" above). */
static bool
group_complete(struct ras_httpd *h)
{
	size_t idle = 1, waiting;

	if (h->ngroup == RAS_HTTP_GROUP_MAX || h->group_bytes >= RAS_HTTP_GROUP_BYTES)
		return true;
	if (h->workers)
		idle = ras_workers_count(h->workers) - ras_workers_busy(h->workers);
	if (idle == 0)
		return false;   /* it waits for a worker */
	/* open connections without a POST kept by a worker: this group's and
	 * those that might still join it */
	waiting = h->nconn > h->inflight ? h->nconn - h->inflight : 0;
	return h->ngroup * idle >= waiting;
}

static enum MHD_Result
handle_intake(struct ras_httpd *h, struct MHD_Connection *c, const char *url, struct req *r)
{
	struct ras_daemon *d = h->d;
	struct ras_inbox_item *it = &r->it;

	if (r->body.len == 0)
		return outcome(c, h, MHD_HTTP_BAD_REQUEST, "error", "structure", NULL, 0,
		    "the request has no body", r);
	memset(it, 0, sizeof(*it));
	it->data = r->body.data;
	it->len = r->body.len;
	it->full_size = r->body.len;
	it->source = "http";
	it->source_ref = url;
	it->content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	it->correlation_id = r->corr;
	if (it->content_type && strlen(it->content_type) > 200)
		it->content_type = NULL;
	/* ?service=ID: the rasd service the sender refers to (one URL per
	 * service on a referral portal), as [spool] service is for files. */
	it->service_hint = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service");
	if (it->service_hint && !known_service(d, it->service_hint))
		return outcome(c, h, MHD_HTTP_BAD_REQUEST, "error", "not-supported", NULL, 0,
		    "the service named by ?service= has no rule set here: nothing was stored", r);
	h->d->stats.http_bytes += r->body.len;
	/* (the strings above live in the connection's memory, which MHD keeps
	 * while the connection is suspended) */
	if (h->ngroup == RAS_HTTP_GROUP_MAX ||
	    (h->ngroup && h->group_bytes + r->body.len > RAS_HTTP_GROUP_BYTES))
		group_commit(h, true);
	r->c = c;
	r->url = url;
	r->queued = true;
	h->group[h->ngroup++] = r;
	h->group_bytes += r->body.len;
	MHD_suspend_connection(c);
	if (!group_complete(h)) {
		if (!ras_loop_timer_armed(h->group_timer))
			ras_loop_timer_after(h->group_timer, h->commit_delay);
	} else if (h->workers) {
		group_commit(h, false);   /* now: the POSTs MHD reads next make the next group */
	} else {
		ras_loop_timer_after(h->group_timer, 0);
	}
	return MHD_YES;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct ras_httpd *h = cls;
	struct req *r = *req_cls;

	(void)version;
	if (r == NULL) {
		bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
		bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
		    strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
		bool intake = strcmp(url, "/fhir/Bundle") == 0 || strcmp(url, "/fhir/$process-message") == 0;
		const char *cl;

		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		ras_buf_init(&r->body, h->max_body);
		*req_cls = r;
		set_correlation(c, r);
		if (!intake) {
			if (!get)
				return outcome(c, h, strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
				    strcmp(url, "/metrics") == 0 ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND,
				    "error", "not-supported", NULL, 0, "no such endpoint for this method", r);
			return handle_get(h, c, url, r);
		}
		if (!post)
			return outcome(c, h, MHD_HTTP_METHOD_NOT_ALLOWED, "error", "not-supported", NULL, 0,
			    "use POST", r);
		if (h->mtls && !client_cert_ok(c))
			return outcome(c, h, MHD_HTTP_FORBIDDEN, "error", "security", NULL, 0,
			    "a client certificate signed by the configured CA is required", r);
		if (!token_ok(h, MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_AUTHORIZATION)))
			return outcome(c, h, MHD_HTTP_UNAUTHORIZED, "error", "login", NULL, 0,
			    "a valid bearer token is required", r);
		if (!json_content_type(MHD_lookup_connection_value(c, MHD_HEADER_KIND,
		    MHD_HTTP_HEADER_CONTENT_TYPE)))
			return outcome(c, h, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "error", "not-supported", NULL, 0,
			    "send application/fhir+json", r);
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		if (cl) {
			char *end;
			unsigned long long n = strtoull(cl, &end, 10);

			if (*end == '\0' && n > h->max_body)
				return outcome(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "error", "too-costly", NULL, 0,
				    "the body is larger than this endpoint accepts", r);
		}
		r->intake = true;
		return MHD_YES;
	}
	if (*upload_size) {
		if (!r->toobig && ras_buf_append(&r->body, upload, *upload_size) < 0)
			r->toobig = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (!r->intake)
		return MHD_NO;
	if (r->answered)
		return answer_intake(h, c, r);
	if (r->toobig)
		return outcome(c, h, MHD_HTTP_CONTENT_TOO_LARGE, "error", "too-costly", NULL, 0,
		    "the body is larger than this endpoint accepts", r);
	return handle_intake(h, c, url, r);
}

/* Connections opened and closed: a group in which every open connection
 * waits commits at once (handle_intake). */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx, enum MHD_ConnectionNotificationCode code)
{
	struct ras_httpd *h = cls;

	(void)c;
	(void)socket_ctx;
	if (code == MHD_CONNECTION_NOTIFY_STARTED)
		h->nconn++;
	else if (code == MHD_CONNECTION_NOTIFY_CLOSED && h->nconn > 0)
		h->nconn--;
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode t)
{
	struct req *r = *req_cls;

	(void)cls;
	(void)c;
	(void)t;
	if (r) {
		/* (a suspended connection is not ended by MHD: never queued here) */
		ras_buf_free(&r->body);
		free(r);
		*req_cls = NULL;
	}
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	ras_log_fields(RAS_LOG_WARNING, (struct ras_log_field[]){ { "STAGE", "http" }, { NULL, NULL } },
	    "http: %s", msg);
}
#pragma GCC diagnostic pop

/* ---- loop integration -------------------------------------------------- */

static void
rearm(struct ras_httpd *h)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;

	if (h->resumed) {
		/* the resumed connections are answered by MHD's next run: now */
		h->resumed = false;
		ras_loop_timer_after(h->timer, 0);
	} else if (MHD_get_timeout(h->mhd, &ms) == MHD_YES)
		ras_loop_timer_after(h->timer, ms > 60000 ? 60000 : (int64_t)ms);
	else
		ras_loop_timer_stop(h->timer);
}

static void
on_ready(struct ras_loop *l, int fd, uint32_t events, void *ctx)
{
	struct ras_httpd *h = ctx;

	(void)l;
	(void)fd;
	(void)events;
	(void)MHD_run(h->mhd);
	rearm(h);
}

static void
on_timeout(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	struct ras_httpd *h = ctx;

	(void)l;
	(void)t;
	(void)MHD_run(h->mhd);
	rearm(h);
}

/* ---- configuration ------------------------------------------------------ */

static int
parse_listen(const char *v, struct sockaddr_storage *ss, socklen_t *len, bool *v6)
{
	struct ras_listen_addr a;
	int err;

	if ((err = ras_listen_parse("http", v, &a)) < 0)
		return err;
	*ss = a.ss;
	*len = a.len;
	*v6 = a.v6;
	return 0;
}

int
ras_httpd_check(const struct ras_config *cfg, struct ras_buf *problems)
{
	const char *listen = ras_config_get(cfg, "http", NULL, "listen");
	const char *cert = ras_config_get(cfg, "http", NULL, "tls_certificate");
	const char *key = ras_config_get(cfg, "http", NULL, "tls_key");
	const char *ca = ras_config_get(cfg, "http", NULL, "client_ca");
	const char *token = ras_config_get(cfg, "http", NULL, "token");
	struct sockaddr_storage ss;
	socklen_t len;
	bool v6;
	int n = 0;

	if (listen == NULL)
		return 0;
	if (parse_listen(listen, &ss, &len, &v6) < 0) {
		(void)ras_buf_printf(problems, "%s\n", ras_error_last());
		n++;
	}
	if ((cert == NULL) != (key == NULL)) {
		(void)ras_buf_printf(problems, "[http] tls_certificate and tls_key go together\n");
		n++;
	}
	if (ca && cert == NULL) {
		(void)ras_buf_printf(problems, "[http] client_ca (mTLS) needs tls_certificate and tls_key\n");
		n++;
	}
	if (token == NULL && ca == NULL) {
		(void)ras_buf_printf(problems,
		    "[http] needs token (a bearer token file or credential) or client_ca (mTLS): the intake "
		    "endpoint is never open\n");
		n++;
	}
	if (token) {
		struct ras_buf t = RAS_BUF_INIT(RAS_SECRET_MAX);

		if (ras_config_secret(cfg, "http", NULL, "token", &t) < 0) {
			(void)ras_buf_printf(problems, "%s\n", ras_error_last());
			n++;
		} else if (t.len < 16) {
			(void)ras_buf_printf(problems, "[http] token must be at least 16 characters\n");
			n++;
		}
		ras_buf_free(&t);
	}
	if (key) {
		struct ras_buf t = RAS_BUF_INIT(RAS_SECRET_MAX);

		if (ras_config_secret(cfg, "http", NULL, "tls_key", &t) < 0) {
			(void)ras_buf_printf(problems, "%s\n", ras_error_last());
			n++;
		}
		ras_buf_free(&t);
	}
	for (int i = 0; i < 2; i++) {
		const char *p = i == 0 ? cert : ca;
		struct ras_buf t = RAS_BUF_INIT(RAS_SECRET_MAX);

		if (p && ras_buf_read_file(&t, p) < 0) {
			(void)ras_buf_printf(problems, "[http] %s: %s\n", i == 0 ? "tls_certificate" : "client_ca",
			    ras_error_last());
			n++;
		}
		ras_buf_free(&t);
	}
	return n;
}

int
ras_httpd_reconfigure(struct ras_httpd *h, const struct ras_config *cfg)
{
	struct ras_buf tok = RAS_BUF_INIT(RAS_SECRET_MAX);

	if (h == NULL)
		return 0;
	if (ras_config_get(cfg, "http", NULL, "token") &&
	    ras_config_secret(cfg, "http", NULL, "token", &tok) < 0) {
		ras_buf_free(&tok);
		return RAS_EINVALID;
	}
	ras_buf_free(&h->token);
	h->token = tok;
	h->max_body = (size_t)ras_config_int(cfg, "http", NULL, "max_body");
	h->commit_delay = ras_config_int(cfg, "http", NULL, "commit_delay");
	return 0;
}

static char *
read_pem(const char *path)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_SECRET_MAX);

	if (ras_buf_read_file(&b, path) < 0) {
		ras_buf_free(&b);
		return NULL;
	}
	return ras_buf_detach(&b, NULL);
}

int
ras_httpd_start(struct ras_daemon *d, const struct ras_config *cfg, struct ras_httpd **out)
{
	const char *listen = ras_config_get(cfg, "http", NULL, "listen");
	const char *cert = ras_config_get(cfg, "http", NULL, "tls_certificate");
	const char *ca = ras_config_get(cfg, "http", NULL, "client_ca");
	struct ras_httpd *h;
	struct sockaddr_storage ss;
	socklen_t sslen;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
	bool v6;
	int err;

	*out = NULL;
	if (listen == NULL)
		return 0;
	if ((err = parse_listen(listen, &ss, &sslen, &v6)) < 0)
		return err;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	h->d = d;
	h->epfd = -1;
	ras_buf_init(&h->token, RAS_SECRET_MAX);
	if (ras_httpd_reconfigure(h, cfg) < 0) {
		err = RAS_EINVALID;
		goto fail;
	}
	if (v6)
		flags |= MHD_USE_IPv6;
	if (cert) {
		struct ras_buf key = RAS_BUF_INIT(RAS_SECRET_MAX);

		flags |= MHD_USE_TLS;
		if (ras_config_secret(cfg, "http", NULL, "tls_key", &key) < 0) {
			ras_buf_free(&key);
			err = RAS_EINVALID;
			goto fail;
		}
		h->key = ras_buf_detach(&key, NULL);
		h->cert = read_pem(cert);
		if (h->key == NULL || h->cert == NULL) {
			err = ras_error_code(RAS_EINVALID, "cannot read [http] tls_certificate or tls_key");
			goto fail;
		}
		if (ca) {
			if ((h->ca = read_pem(ca)) == NULL) {
				err = ras_error_code(RAS_EINVALID, "cannot read [http] client_ca");
				goto fail;
			}
			h->mtls = true;
		}
	}
	{
		/* TLS options only when serving TLS (MHD complains otherwise). */
		struct MHD_OptionItem tls[] = {
			{ cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, h->key },
			{ MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert },
			{ ca ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, h->ca },
			{ MHD_OPTION_END, 0, NULL },
		};

		h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h,
		    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		    MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		    MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		    MHD_OPTION_CONNECTION_LIMIT,
		    (unsigned)ras_config_int(cfg, "http", NULL, "max_connections"),
		    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ras_config_int(cfg, "http", NULL, "timeout"),
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONN_MEMORY,
		    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
		    /* SO_REUSEPORT: rasd@ instances on one host share the port
		     * and the kernel spreads connections between them. */
		    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		    MHD_OPTION_ARRAY, tls,
		    MHD_OPTION_END);
	}
	if (h->mhd == NULL) {
		err = ras_error_code(RAS_EIO, "could not listen on %s (address in use, not permitted, "
		    "or bad TLS material)", listen);
		goto fail;
	}
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	h->epfd = info ? info->epoll_fd : -1;
	info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
	{
		char host[64];
		const char *colon = strrchr(listen, ':');

		snprintf(host, sizeof(host), "%.*s", (int)(colon - listen), listen);
		snprintf(h->address, sizeof(h->address), "%s:%u", host, info ? (unsigned)info->port : 0u);
	}
	if (h->epfd < 0) {
		err = ras_error_code(RAS_EIO, "libmicrohttpd gave no epoll descriptor");
		goto fail;
	}
	h->timer = ras_loop_timer_new(d->loop, "http", on_timeout, h);
	h->group_timer = ras_loop_timer_new(d->loop, "http-commit", on_group_due, h);
	/* both serve requests while a stage waits on a remote service */
	if (h->timer)
		ras_loop_timer_set_nested(h->timer, true);
	if (h->group_timer)
		ras_loop_timer_set_nested(h->group_timer, true);
	if (h->timer == NULL || h->group_timer == NULL || (err = ras_loop_add_fd(d->loop, h->epfd, EPOLLIN, on_ready, h)) < 0) {
		if (h->timer == NULL || h->group_timer == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	if (ras_config_int(cfg, "http", NULL, "commit_workers") >= 2 &&
	    (err = ras_workers_new(d->loop, ras_config_get(cfg, "database", NULL, "conninfo"),
	    (size_t)ras_config_int(cfg, "http", NULL, "commit_workers"), &h->workers)) < 0)
		goto fail;
	rearm(h);
	*out = h;
	return 0;
fail:
	ras_httpd_stop(d, h);
	return err;
}

void
ras_httpd_stop(struct ras_daemon *d, struct ras_httpd *h)
{
	if (h == NULL)
		return;
	/* POSTs still waiting for their group's commit: kept now (the
	 * workers' groups first), and answered if MHD can still write to them */
	ras_workers_free(h->workers);
	h->workers = NULL;
	if (h->ngroup && h->mhd)
		group_commit(h, true);
	if (h->mhd && h->resumed)
		for (int i = 0; i < 3; i++)   /* resume, answer, write */
			(void)MHD_run(h->mhd);
	if (h->epfd >= 0)
		ras_loop_del_fd(d->loop, h->epfd);
	if (h->timer)
		ras_loop_timer_free(d->loop, h->timer);
	if (h->group_timer)
		ras_loop_timer_free(d->loop, h->group_timer);
	if (h->mhd)
		MHD_stop_daemon(h->mhd);
	ras_buf_free(&h->token);
	free(h->cert);
	if (h->key) {
		explicit_bzero(h->key, strlen(h->key));
		free(h->key);
	}
	free(h->ca);
	free(h);
}

void
ras_httpd_drain(struct ras_httpd *h)
{
	if (h)
		ras_workers_drain(h->workers);
}

const char *
ras_httpd_address(const struct ras_httpd *h)
{
	return h ? h->address : NULL;
}
