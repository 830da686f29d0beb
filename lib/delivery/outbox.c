/* outbox: rendering and delivering documents (see include/ras/outbox.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/decision.h"
#include "ras/docprofile.h"
#include "ras/document.h"
#include "ras/episode.h"
#include "ras/error.h"
#include "ras/fhir_client.h"
#include "ras/http.h"
#include "ras/intake.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/mesh.h"
#include "ras/outbox.h"
#include "ras/referral_json.h"
#include "ras/routing.h"
#include "ras/store.h"
#include "ras/xml.h"

#define MAX_PROFILES 32

struct profile_slot {
	const char *service;
	struct ras_docprofile p;
	int err;
};

struct ras_outbox {
	struct ras_arena *a;          /* lives as long as the context */
	const char *mappings;
	struct ras_calendar *cal;     /* working days of the episode deadlines */
	struct ras_routing routing;
	bool gp_auto;
	struct profile_slot profiles[MAX_PROFILES];
	size_t nprofiles;
	struct ras_mesh *mesh;
	struct ras_http *mesh_http, *fhir_http;
	const char *workflow[RAS_DOC_PATIENT_COPY + 1];
	const char *fhir_token;
	long fhir_timeout_ms;
	int64_t handshake_interval, last_handshake;
	int batch, max_attempts;
	int64_t backoff_base, backoff_max, lease;
	const char *print_dir;
};

/* --- helpers ------------------------------------------------------------- */

int64_t
ras_outbox_backoff(int attempts, int64_t base, int64_t max)
{
	int64_t delay = base;
	uint32_t r = 0;

	for (int i = 1; i < attempts && delay < max; i++)
		delay *= 2;
	if (delay > max)
		delay = max;
	if (delay < 2)
		return delay;
	(void)ras_crypto_random(&r, sizeof(r));
	return delay / 2 + (int64_t)(r % (uint32_t)(delay - delay / 2 + 1));
}

static const char *
ts(struct ras_arena *a, int64_t t)
{
	char buf[RAS_TIME_STR_MAX];

	ras_time_format_utc(t, buf);
	return ras_arena_strdup(a, buf);
}

static const char *
num(struct ras_arena *a, int64_t v)
{
	return ras_arena_printf(a, "%lld", (long long)v);
}

/* A secret option that names a file for a library (a key): its path. */
static const char *
secret_path(struct ras_arena *a, const struct ras_config *cfg, const char *section,
    const char *name)
{
	const char *v = ras_config_get(cfg, section, NULL, name);
	const char *creds = getenv("CREDENTIALS_DIRECTORY");

	if (v == NULL || *v == '\0')
		return NULL;
	if (v[0] != '/' && creds && strchr(v, '/') == NULL)
		return ras_arena_printf(a, "%s/%s", creds, v);
	return ras_arena_strdup(a, v);
}

static int
secret(struct ras_arena *a, const struct ras_config *cfg, const char *section, const char *name,
    const char **out)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_SECRET_MAX);
	int err;

	*out = NULL;
	if (ras_config_get(cfg, section, NULL, name) == NULL)
		return 0;
	if ((err = ras_config_secret(cfg, section, NULL, name, &b)) < 0) {
		ras_buf_free(&b);
		return err;
	}
	*out = ras_arena_strdup(a, b.data ? b.data : "");
	if (b.data)
		memset(b.data, 0, b.len);
	ras_buf_free(&b);
	return *out ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}

int
ras_outbox_new(const struct ras_config *cfg, const char *mappings, struct ras_outbox **out)
{
	struct ras_outbox *o = calloc(1, sizeof(*o));
	bool loopback = ras_config_bool(cfg, "outbox", NULL, "allow_http_loopback");
	const char *table;
	int err = 0;

	if (o == NULL || (o->a = ras_arena_new()) == NULL) {
		free(o);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	o->mappings = ras_arena_strdup(o->a, mappings);
	if ((err = ras_mappings_load_calendar(mappings, &o->cal)) < 0)
		goto fail;
	o->batch = (int)ras_config_int(cfg, "outbox", NULL, "batch_size");
	o->max_attempts = (int)ras_config_int(cfg, "outbox", NULL, "max_attempts");
	o->backoff_base = ras_config_int(cfg, "outbox", NULL, "backoff_base");
	o->backoff_max = ras_config_int(cfg, "outbox", NULL, "backoff_max");
	o->lease = ras_config_int(cfg, "outbox", NULL, "lease");
	if (ras_config_get(cfg, "outbox", NULL, "print_dir"))
		o->print_dir = ras_arena_strdup(o->a, ras_config_get(cfg, "outbox", NULL, "print_dir"));
	o->gp_auto = ras_config_bool(cfg, "routing", NULL, "gp_auto_routing");
	if ((table = ras_config_get(cfg, "routing", NULL, "table")) != NULL &&
	    (err = ras_routing_load(o->a, table, &o->routing)) < 0)
		goto fail;
	o->workflow[RAS_DOC_TRIAGE_OUTCOME] = ras_config_get(cfg, "mesh", NULL, "workflow_triage_outcome");
	o->workflow[RAS_DOC_GP_2WW_NOTICE] = ras_config_get(cfg, "mesh", NULL, "workflow_gp_2ww_notice");
	o->workflow[RAS_DOC_NOTIFICATION_LETTER] = ras_config_get(cfg, "mesh", NULL,
	    "workflow_notification_letter");
	o->workflow[RAS_DOC_DISCHARGE_SUMMARY] = ras_config_get(cfg, "mesh", NULL,
	    "workflow_discharge_summary");
	for (int k = 0; k <= RAS_DOC_PATIENT_COPY; k++)
		if (o->workflow[k])
			o->workflow[k] = ras_arena_strdup(o->a, o->workflow[k]);
	o->handshake_interval = ras_config_int(cfg, "mesh", NULL, "handshake_interval");
	o->fhir_timeout_ms = (long)ras_config_int(cfg, "fhir", NULL, "timeout") * 1000;
	if ((err = secret(o->a, cfg, "fhir", "token", &o->fhir_token)) < 0)
		goto fail;
	{
		struct ras_http_opts ho = { .ca_file = ras_config_get(cfg, "fhir", NULL, "ca_file"),
			.client_cert = ras_config_get(cfg, "fhir", NULL, "client_cert"),
			.client_key = secret_path(o->a, cfg, "fhir", "client_key"),
			.allow_http_loopback = loopback };

		if ((err = ras_http_new(&ho, &o->fhir_http)) < 0)
			goto fail;
	}
	if (ras_config_bool(cfg, "mesh", NULL, "enabled")) {
		struct ras_mesh_opts mo = { .url = ras_config_get(cfg, "mesh", NULL, "url"),
			.mailbox = ras_config_get(cfg, "mesh", NULL, "mailbox"),
			.chunk_size = (size_t)ras_config_int(cfg, "mesh", NULL, "chunk_size"),
			.timeout_ms = (long)ras_config_int(cfg, "mesh", NULL, "timeout") * 1000 };
		struct ras_http_opts ho = { .ca_file = ras_config_get(cfg, "mesh", NULL, "ca_file"),
			.client_cert = ras_config_get(cfg, "mesh", NULL, "client_cert"),
			.client_key = secret_path(o->a, cfg, "mesh", "client_key"),
			.allow_http_loopback = loopback };

		if ((err = secret(o->a, cfg, "mesh", "password", &mo.password)) < 0 ||
		    (err = secret(o->a, cfg, "mesh", "shared_key", &mo.shared_key)) < 0)
			goto fail;
		if ((err = ras_mesh_new(&mo, &o->mesh)) < 0 || (err = ras_http_new(&ho, &o->mesh_http)) < 0)
			goto fail;
	}
	*out = o;
	return 0;
fail:
	ras_error_context("outbox configuration");
	ras_outbox_free(o);
	return err;
}

void
ras_outbox_free(struct ras_outbox *o)
{
	if (o == NULL)
		return;
	ras_calendar_free(o->cal);
	ras_mesh_free(o->mesh);
	ras_http_free(o->mesh_http);
	ras_http_free(o->fhir_http);
	ras_arena_free(o->a);
	free(o);
}

static const struct ras_docprofile *
profile(struct ras_outbox *o, const char *service)
{
	struct profile_slot *s;

	if (service == NULL) {
		ras_error_code(RAS_EINVALID, "the referral has no service: no document profile applies");
		return NULL;
	}
	for (size_t i = 0; i < o->nprofiles; i++)
		if (strcmp(o->profiles[i].service, service) == 0) {
			if (o->profiles[i].err) {
				ras_error_code(o->profiles[i].err, "service \"%s\" has no usable document profile",
				    service);
				return NULL;
			}
			return &o->profiles[i].p;
		}
	if (o->nprofiles == MAX_PROFILES) {
		ras_error_code(RAS_ETOOBIG, "more than %d services", MAX_PROFILES);
		return NULL;
	}
	s = &o->profiles[o->nprofiles++];
	s->service = ras_arena_strdup(o->a, service);
	s->err = ras_docprofile_load(o->a, o->mappings, service, &s->p);
	return s->err ? NULL : &s->p;
}

/* --- batched writes: one transaction, one pipeline ---------------------- */

struct stmt {
	const char *sql;
	int n;
	struct ras_db_param p[12];
};

struct writes {
	struct ras_arena *a;
	struct stmt *v;
	size_t n, cap;
	int err;
};

static void
w_add(struct writes *w, const char *sql, int n, ...)
{
	va_list ap;
	struct stmt *s;

	if (w->err)
		return;
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		struct stmt *nv = ras_arena_calloc(w->a, cap, sizeof(*nv));

		if (nv == NULL) {
			w->err = ras_error_code(RAS_ENOMEM, "out of memory");
			return;
		}
		if (w->n)
			memcpy(nv, w->v, w->n * sizeof(*nv));
		w->v = nv;
		w->cap = cap;
	}
	s = &w->v[w->n++];
	s->sql = sql;
	s->n = n;
	va_start(ap, n);
	for (int i = 0; i < n; i++)
		s->p[i] = RAS_DB_TEXT(va_arg(ap, const char *));
	va_end(ap);
}

/* Run the statements in the open transaction. */
static int
w_run(struct ras_db *db, struct writes *w)
{
	int err;

	if (w->err)
		return w->err;
	if (w->n == 0)
		return 0;
	if ((err = ras_db_pipeline_enter(db)) < 0)
		return err;
	for (size_t i = 0; i < w->n; i++)
		if ((err = ras_db_pipeline_send(db, w->v[i].sql, w->v[i].n, w->v[i].p)) < 0)
			goto out;
	if ((err = ras_db_pipeline_sync(db)) < 0)
		goto out;
	for (size_t i = 0; i < w->n; i++) {
		struct ras_db_res *res = NULL;

		err = ras_db_pipeline_result(db, &res);
		ras_db_res_free(res);
		if (err < 0)
			goto out;
	}
out:
	{
		int e2 = ras_db_pipeline_exit(db);

		return err ? err : e2;
	}
}

static const char SQL_EVENT[] =
	"INSERT INTO events (referral_id, kind, actor, detail) "
	"SELECT referral_id, $2, 'rasd', jsonb_build_object('outbox_id', id, 'kind', kind, "
	"'recipient', recipient_role, 'detail', $3::text) FROM outbox WHERE id = $1";

static const char SQL_DEADLINE[] =
	"SELECT ras_outbox_deadlines_check($1, $2)";

/* --- render ------------------------------------------------------------- */

static const char SQL_CLAIM_PENDING[] =
	"SELECT o.id, o.kind, o.doc_version, o.recipient_role, o.recipient_ods, o.service, "
	"o.referral_key, o.local_id, r.doc::text, d.doc::text, e.doc::text, "
	"to_char((SELECT max(a.decided_at) FROM decisions a WHERE a.referral_id = o.referral_id "
	"AND a.outcome = 'accept') AT TIME ZONE 'Europe/London', 'YYYY-MM-DD') "
	"FROM outbox o JOIN referrals r ON r.id = o.referral_id "
	"LEFT JOIN decisions d ON d.id = o.decision_id LEFT JOIN episodes e ON e.id = o.episode_id "
	"WHERE o.state = 'pending' ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED";

static const char SQL_READY[] =
	"UPDATE outbox SET state = 'ready', transport = $2, address = $3, workflow = $4, "
	"fhir_mode = $5, document_id = $6, message_id = $7, content_type = $8, "
	"payload = convert_to($9, 'UTF8'), doc = $10::jsonb, rendered_at = $11, next_attempt_at = $11, "
	"updated_at = $11 WHERE id = $1";

static const char SQL_DEAD[] =
	"UPDATE outbox SET state = 'dead', last_error = $2, updated_at = $3 WHERE id = $1";

static const char SQL_CANCEL[] =
	"UPDATE outbox SET state = 'cancelled', last_error = $2, updated_at = $3 WHERE id = $1";

static const char SQL_DEADLINE_CLAUSE[] =
	"UPDATE deadlines SET clause = $2 WHERE id = (SELECT deadline_id FROM outbox WHERE id = $1) "
	"AND clause IS NULL";

struct rendered {
	const char *transport, *address, *workflow, *fhir_mode, *document_id, *message_id;
	const char *content_type, *payload, *doc;
};

/* GPPROVIDER_<NHS number>_<YYYYMMDD>_<surname> (NOTES §1.9). */
static const char *
gpprovider(struct ras_arena *a, const struct ras_referral *r)
{
	char dob[RAS_DATE_STR_MAX];
	char *sur;

	if (r->patient.nhs_number == NULL || !r->patient.has_birth_date || r->patient.family == NULL)
		return NULL;
	ras_date_format(&r->patient.birth_date, dob);
	sur = ras_arena_strdup(a, r->patient.family);
	if (sur == NULL)
		return NULL;
	for (char *p = sur; *p; p++)
		if (*p == ' ' || *p == '_' || (unsigned char)*p < 0x20)
			*p = '-';
	return ras_arena_printf(a, "GPPROVIDER_%s_%.4s%.2s%.2s_%s", r->patient.nhs_number, dob, dob + 5,
	    dob + 8, sur);
}

static int
render_row(struct ras_outbox *o, struct ras_arena *a, struct ras_db_res *res, int row, int64_t now,
    struct rendered *out, bool *cancel)
{
	const char *kind_s = ras_db_res_get(res, row, 1), *role = ras_db_res_get(res, row, 3);
	const char *ods = ras_db_res_get(res, row, 4), *service = ras_db_res_get(res, row, 5);
	const char *local_id = ras_db_res_get(res, row, 7);
	const char *rdoc = ras_db_res_get(res, row, 8), *ddoc = ras_db_res_get(res, row, 9);
	const char *edoc = ras_db_res_get(res, row, 10), *accepted = ras_db_res_get(res, row, 11);
	const struct ras_docprofile *prof;
	const struct ras_route *route = NULL;
	struct ras_doc_input in = { 0 };
	struct ras_doc_missing missing;
	struct ras_referral ref;
	struct ras_decision dec;
	struct ras_episode ep;
	struct ras_buf body = RAS_BUF_INIT(0);
	json_t *j, *bundle, *wrapped = NULL;
	int64_t ver = 1;
	int err;

	memset(out, 0, sizeof(*out));
	*cancel = false;
	if ((prof = profile(o, service)) == NULL)
		return RAS_EINVALID;
	in.kind = ras_document_kind_parse(kind_s);
	if (ras_docprofile_kind(prof, kind_s) == NULL) {
		*cancel = true;
		return ras_error_code(RAS_EINVALID, "the %s specification calls for no %s", service, kind_s);
	}
	if ((err = ras_json_parse_arena(a, rdoc, strlen(rdoc), RAS_PAYLOAD_MAX, &j)) < 0 ||
	    (err = ras_referral_json_load(a, j, &ref)) < 0)
		return err;
	if (ddoc) {
		if ((err = ras_json_parse_arena(a, ddoc, strlen(ddoc), RAS_PAYLOAD_MAX, &j)) < 0 ||
		    (err = ras_decision_from_json(a, j, &dec)) < 0)
			return err;
		in.decision = &dec;
	}
	if (edoc) {
		struct ras_form form;

		if ((err = ras_json_parse_arena(a, edoc, strlen(edoc), RAS_PAYLOAD_MAX, &j)) < 0 ||
		    (err = ras_intake_fhir_form(a, j, &form)) < 0 ||
		    (err = ras_episode_from_form(a, &form, &ep)) < 0)
			return err;
		in.episode = &ep;
	}
	if (accepted && ras_date_parse(accepted, &in.accepted_date) == 0)
		in.has_accepted_date = true;
	/* An e-RS referrer hears a final accept or return through e-RS itself:
	 * the review outcome (A028) carries the advice to their worklist, and
	 * schema 003 queues it for exactly these decisions.  A letter would
	 * repeat it, and could not be built anyway: e-RS gives rasd the NHS
	 * number only, not the name and birth date a letter needs.  (If e-RS
	 * refuses the outcome, `rasctl ers pending` lists it for a person.) */
	if (in.kind == RAS_DOC_TRIAGE_OUTCOME && strcmp(role, "referrer") == 0 && ddoc &&
	    ref.ubrn && (ref.source == RAS_PAYLOAD_ERS_REFERRAL || ref.source == RAS_PAYLOAD_ERS_WORKLIST) &&
	    dec.final && (dec.outcome == RAS_OUTCOME_ACCEPT || dec.outcome == RAS_OUTCOME_RETURN)) {
		*cancel = true;
		return ras_error_code(RAS_EINVALID,
		    "the referrer is answered through e-RS (review outcome recorded by A028)");
	}
	(void)ras_db_res_int(res, row, 2, &ver);
	in.profile = prof;
	in.referral = &ref;
	in.referral_key = ras_db_res_get(res, row, 6);
	in.version = (int)ver;
	in.at = now;
	if ((err = ras_document_build(a, &in, &bundle, &missing)) < 0)
		return err;
	out->document_id = ras_document_identifier(bundle);
	out->message_id = ras_arena_alloc(a, RAS_UUID_STR_LEN);
	if (out->message_id == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_document_uuid((char *)out->message_id, "rasd:message|%s", local_id);
	{
		struct ras_buf d = RAS_BUF_INIT(0);

		if ((err = ras_json_dump(bundle, RAS_JSON_COMPACT, &d)) < 0)
			return err;
		out->doc = ras_arena_strdup(a, d.data);
		ras_buf_free(&d);
	}

	if (strcmp(role, "patient") == 0) {
		if (o->print_dir == NULL) {
			*cancel = true;
			return ras_error_code(RAS_EINVALID,
			    "patients' copies are not printed here ([outbox] print_dir is not set)");
		}
		if ((err = ras_document_html(a, bundle, prof, true, &body)) < 0)
			goto done;
		out->transport = "file";
		out->address = o->print_dir;
		out->content_type = "text/html; charset=utf-8";
		out->payload = ras_arena_strdup(a, body.data);
		goto done;
	}
	route = ras_routing_find(&o->routing, ods);
	if (route == NULL) {
		bool gp = strcmp(role, "gp") == 0 || (ods && ref.patient.practice_ods &&
		    strcmp(ods, ref.patient.practice_ods) == 0);

		if (!(gp && o->gp_auto && o->mesh)) {
			err = ras_error_code(RAS_EINVALID, "no route for %s %s in the routing table%s", role,
			    ods ? ods : "(no ODS code)", gp && !o->gp_auto ? " (GP auto-routing is off)" : "");
			goto done;
		}
		out->transport = "mesh";
		out->address = gpprovider(a, &ref);
		if (out->address == NULL) {
			err = ras_error_code(RAS_EINVALID, "GP auto-routing needs the patient's NHS number, "
			    "date of birth and surname");
			goto done;
		}
		out->workflow = o->workflow[in.kind];
	} else if (strcmp(route->transport, "mesh") == 0) {
		out->transport = "mesh";
		out->address = route->mailbox;
		out->workflow = route->workflow ? route->workflow : o->workflow[in.kind];
	} else {
		out->transport = "fhir";
		out->address = route->endpoint;
		out->fhir_mode = route->mode;
	}
	if (strcmp(out->transport, "mesh") == 0) {
		if (o->mesh == NULL) {
			err = ras_error_code(RAS_EINVALID, "the route is MESH but [mesh] is not enabled");
			goto done;
		}
		if (out->workflow == NULL) {
			err = ras_error_code(RAS_EINVALID, "no MESH workflow id for %s ([mesh] workflow_%s)",
			    kind_s, kind_s);
			goto done;
		}
	}
	if (out->fhir_mode && strcmp(out->fhir_mode, "document") == 0) {
		wrapped = json_incref(bundle);
	} else {
		struct ras_doc_message m = { .message_id = out->message_id, .at = now,
			.sender_ods = prof->provider.ods, .sender_name = prof->provider.name };

		if (strcmp(out->transport, "mesh") == 0) {
			m.source_endpoint = ras_arena_printf(a, "urn:nhs-uk:addressing:mesh:%s",
			    ras_mesh_mailbox(o->mesh));
			if (strncmp(out->address, "GPPROVIDER_", 11) != 0) {
				m.dest_endpoint = ras_arena_printf(a, "urn:nhs-uk:addressing:mesh:%s", out->address);
				m.receiver_ods = ods;
			}
		} else {
			m.source_endpoint = ras_arena_printf(a, "urn:nhs-uk:addressing:ods:%s",
			    prof->provider.ods);
			m.dest_endpoint = out->address;
			m.receiver_ods = ods;
		}
		if ((err = ras_document_message(bundle, &m, &wrapped)) < 0)
			goto done;
	}
	if (route && strcmp(route->format, "xml") == 0) {
		err = ras_xml_fhir_from_json(wrapped, &body);
		out->content_type = "application/fhir+xml";
	} else {
		err = ras_json_dump(wrapped, RAS_JSON_COMPACT, &body);
		out->content_type = "application/fhir+json";
	}
	json_decref(wrapped);
	if (err == 0)
		out->payload = ras_arena_strdup(a, body.data);
done:
	ras_buf_free(&body);
	if (err == 0 && out->payload == NULL)
		err = ras_error_code(RAS_ENOMEM, "out of memory");
	return err;
}

int
ras_outbox_render_pending(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_stats *st)
{
	struct ras_arena *a = ras_arena_new();
	struct writes w = { .a = a };
	struct ras_db_res *res = NULL;
	struct ras_db_param p[1];
	const char *at;
	int err, rows;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	at = ts(a, now);
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	p[0] = RAS_DB_TEXT(num(a, o->batch));
	if ((err = ras_db_query(db, &res, SQL_CLAIM_PENDING, 1, p)) < 0)
		goto fail;
	rows = ras_db_res_rows(res);
	if (st)
		st->claimed += rows;
	for (int i = 0; i < rows; i++) {
		const char *id = ras_arena_strdup(a, ras_db_res_get(res, i, 0));
		struct ras_arena *ra = ras_arena_new();
		struct rendered r;
		bool cancel;
		int rerr;

		if (ra == NULL || ras_arena_defer(a, (void (*)(void *))ras_arena_free, ra) < 0) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto fail;
		}
		rerr = render_row(o, ra, res, i, now, &r, &cancel);
		if (rerr == RAS_ENOMEM) {
			err = rerr;
			goto fail;
		}
		if (rerr < 0) {
			const char *why = ras_arena_strdup(a, ras_error_last());

			w_add(&w, cancel ? SQL_CANCEL : SQL_DEAD, 3, id, why, at);
			w_add(&w, SQL_EVENT, 3, id, cancel ? "document-cancelled" : "document-dead", why);
			w_add(&w, SQL_DEADLINE, 2, id, at);
			if (st && cancel)
				st->cancelled++;
			else if (st)
				st->dead++;
			continue;
		}
		w_add(&w, SQL_READY, 11, id, r.transport, r.address, r.workflow, r.fhir_mode, r.document_id,
		    r.message_id, r.content_type, r.payload, r.doc, at);
		{
			const struct ras_docprofile *pr = profile(o, ras_db_res_get(res, i, 5));
			const struct ras_dockind *k = pr ? ras_docprofile_kind(pr, ras_db_res_get(res, i, 1)) : NULL;

			if (k && k->deadline_clause)
				w_add(&w, SQL_DEADLINE_CLAUSE, 2, id, k->deadline_clause);
		}
		if (st)
			st->rendered++;
	}
	ras_db_res_free(res);
	res = NULL;
	if ((err = w_run(db, &w)) < 0)
		goto fail;
	err = ras_db_commit(db);
	goto done;
fail:
	ras_db_rollback(db);
done:
	ras_db_res_free(res);
	ras_arena_free(a);
	return err;
}

/* --- deliver ------------------------------------------------------------ */

static const char SQL_CLAIM_READY[] =
	"WITH c AS (SELECT id, state AS prev FROM outbox WHERE (state IN ('ready', 'unknown') "
	"AND next_attempt_at <= $1) "
	"OR (state = 'sending' AND claimed_at < $1::timestamptz - make_interval(secs => $3)) "
	"ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) "
	"UPDATE outbox o SET state = 'sending', claimed_at = $1, attempts = o.attempts + 1, "
	"updated_at = $1 FROM c WHERE o.id = c.id "
	"RETURNING o.id, c.prev, o.transport, "
	"o.address, o.workflow, o.fhir_mode, o.document_id, o.local_id, o.content_type, "
	"convert_from(o.payload, 'UTF8'), o.attempts, o.mesh_message_id, o.mesh_chunks_done, o.kind, "
	"o.message_id";

enum step { STEP_NONE, STEP_SEND, STEP_TRACK, STEP_POST, STEP_WRITE };

struct job {
	const char *id, *transport, *address, *workflow, *fhir_mode, *document_id, *local_id;
	const char *content_type, *payload, *kind, *message_id;
	bool unknown;               /* the last attempt's outcome is not known */
	int64_t attempts;
	char mesh_id[RAS_MESH_ID_MAX];
	size_t chunks_done, nchunks;
	enum step step;
	bool finished;
	bool written;               /* its result is committed */
	bool gave_up;
	/* outcome */
	const char *state;          /* delivered, ready, unknown, dead */
	const char *error;
	int64_t delay;
	long http_status;
	const char *action;
	double seconds;
};

static void
outcome(struct ras_outbox *o, struct job *j, int err, const char *action, long status, double secs)
{
	j->finished = true;
	j->action = action;
	j->http_status = status;
	j->seconds = secs;
	if (err == 0) {
		j->state = "delivered";
		j->error = NULL;
		return;
	}
	j->error = ras_error_last();
	if (err == RAS_EINVALID) {
		j->state = "dead";
	} else if (j->attempts >= o->max_attempts) {
		j->state = "dead";
		j->gave_up = true;
	} else if (err == RAS_ETIMEDOUT && strcmp(j->transport, "mesh") == 0 && j->mesh_id[0] == '\0') {
		j->state = "unknown";
		j->delay = ras_outbox_backoff((int)j->attempts, o->backoff_base, o->backoff_max);
	} else {
		j->state = "ready";
		j->delay = ras_outbox_backoff((int)j->attempts, o->backoff_base, o->backoff_max);
	}
}

static int
write_file(struct ras_outbox *o, struct job *j, struct ras_arena *a)
{
	const char *path = ras_arena_printf(a, "%s/%s-%s.html", o->print_dir, j->local_id, j->kind);
	const char *tmp = ras_arena_printf(a, "%s.tmp", path);
	size_t len = strlen(j->payload), off = 0;
	int fd;

	if (path == NULL || tmp == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return ras_error_code(RAS_EIO, "could not write to %s: %s", o->print_dir, strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, j->payload + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			close(fd);
			unlink(tmp);
			return ras_error_code(RAS_EIO, "could not write to %s: %s", o->print_dir,
			    strerror(errno));
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0 || close(fd) < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return ras_error_code(RAS_EIO, "could not write to %s: %s", o->print_dir, strerror(errno));
	}
	return 0;
}

static int
handshake_if_due(struct ras_outbox *o, struct ras_arena *a, int64_t now)
{
	struct ras_http_request r;
	int err;

	if (o->last_handshake && now - o->last_handshake < o->handshake_interval)
		return 0;
	if ((err = ras_mesh_prep_handshake(o->mesh, a, now, &r)) < 0)
		return err;
	if ((err = ras_http_perform(o->mesh_http, &r, 1)) < 0)
		return err;
	if (r.err) {
		err = ras_error_code(r.err, "MESH handshake failed: %s", r.errmsg);
	} else if (r.status != 200) {
		char why[256];

		/* MESH's own reason (a 403 says which check failed) */
		ras_mesh_error_reason(&r, why, sizeof(why));
		err = ras_error_code(RAS_EIO, "MESH handshake answered %ld%s%s", r.status,
		    why[0] ? ": " : "", why);
	} else
		o->last_handshake = now;
	ras_http_request_release(&r);
	return err;
}

/* mex-FileName: the local id (never patient data) and the payload's kind. */
static const char *
mesh_filename(struct ras_arena *a, const struct job *j)
{
	const char *ext = "dat";

	if (j->content_type && strstr(j->content_type, "xml"))
		ext = "xml";
	else if (j->content_type && strstr(j->content_type, "json"))
		ext = "json";
	else if (j->content_type && strstr(j->content_type, "pdf"))
		ext = "pdf";
	return ras_arena_printf(a, "%s.%s", j->local_id, ext);
}

/* The transfers of a round, in two groups whose results are committed
 * separately: files and FHIR posts first, then MESH (whose answers can take
 * long), so that a crash while MESH answers never repeats a FHIR post that
 * had already been answered. */
enum group { GROUP_DIRECT, GROUP_MESH };

/* One concurrent round of transfers of `group` for the jobs that have a next step. */
static int
run_round(struct ras_outbox *o, struct ras_arena *a, struct job *jobs, size_t n, int64_t now,
    bool mesh_ok, enum group group)
{
	struct ras_http_request *mreq = ras_arena_calloc(a, n + 1, sizeof(*mreq));
	struct ras_http_request *freq = ras_arena_calloc(a, n + 1, sizeof(*freq));
	size_t *mmap = ras_arena_calloc(a, n + 1, sizeof(*mmap)), *fmap = ras_arena_calloc(a, n + 1,
	    sizeof(*fmap));
	size_t nm = 0, nf = 0;
	int err;

	if (!mreq || !freq || !mmap || !fmap)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];

		if (j->finished)
			continue;
		if ((strcmp(j->transport, "mesh") == 0) != (group == GROUP_MESH))
			continue;
		if (strcmp(j->transport, "file") == 0) {
			err = write_file(o, j, a);
			outcome(o, j, err, "write", 0, 0);
		} else if (strcmp(j->transport, "fhir") == 0) {
			struct ras_fhir_post p = { .base = j->address, .mode = j->fhir_mode ? j->fhir_mode : "message",
				.identifier = j->document_id, .content_type = j->content_type, .token = o->fhir_token,
				.request_id = j->local_id, .body = j->payload, .len = strlen(j->payload),
				.timeout_ms = o->fhir_timeout_ms };

			if ((err = ras_fhir_client_prep(a, &p, &freq[nf])) < 0) {
				outcome(o, j, RAS_EINVALID, "post", 0, 0);
				continue;
			}
			fmap[nf++] = i;
		} else if (!mesh_ok) {
			outcome(o, j, RAS_EIO, "send", 0, 0);
		} else if (j->unknown && j->mesh_id[0] == '\0') {
			j->step = STEP_TRACK;
			if ((err = ras_mesh_prep_track_local(o->mesh, a, now, j->local_id, &mreq[nm])) < 0) {
				outcome(o, j, RAS_EINVALID, "track", 0, 0);
				continue;
			}
			mmap[nm++] = i;
		} else {
			struct ras_mesh_send s = { .to = j->address, .workflow = j->workflow,
				.local_id = j->local_id, .subject = j->kind, .content_type = j->content_type,
				.filename = mesh_filename(a, j), .body = j->payload, .len = strlen(j->payload),
				.chunk = j->chunks_done + 1, .message_id = j->mesh_id[0] ? j->mesh_id : NULL };

			j->step = STEP_SEND;
			j->nchunks = ras_mesh_chunks(o->mesh, s.len);
			if ((err = ras_mesh_prep_send(o->mesh, a, now, &s, &mreq[nm])) < 0) {
				outcome(o, j, RAS_EINVALID, "send", 0, 0);
				continue;
			}
			mmap[nm++] = i;
		}
	}
	if (nf && (err = ras_http_perform(o->fhir_http, freq, nf)) < 0)
		return err;
	if (nm && (err = ras_http_perform(o->mesh_http, mreq, nm)) < 0)
		return err;
	for (size_t k = 0; k < nf; k++) {
		struct job *j = &jobs[fmap[k]];

		err = ras_fhir_client_result(&freq[k]);
		outcome(o, j, err, "post", freq[k].status, freq[k].seconds);
		if (j->error)
			j->error = ras_arena_strdup(a, j->error);
		ras_http_request_release(&freq[k]);
	}
	for (size_t k = 0; k < nm; k++) {
		struct job *j = &jobs[mmap[k]];
		struct ras_http_request *r = &mreq[k];

		if (j->step == STEP_TRACK) {
			struct ras_mesh_tracking t;

			err = ras_mesh_track_result(r, &t);
			if (err == 0 && t.found && ras_mesh_track_state(&t) == RAS_MESH_TRACK_DELIVERED) {
				/* it did arrive whole: never send it again */
				snprintf(j->mesh_id, sizeof(j->mesh_id), "%s", t.message_id);
				outcome(o, j, 0, "track", r->status, r->seconds);
			} else if (err == 0 && t.found && ras_mesh_track_state(&t) == RAS_MESH_TRACK_FAILED) {
				snprintf(j->mesh_id, sizeof(j->mesh_id), "%s", t.message_id);
				outcome(o, j, ras_error_code(RAS_EINVALID, "MESH tracking says the message is %s",
				    t.status), "track", r->status, r->seconds);
			} else if (err == 0 && t.found) {
				/* `uploading`: some chunks never arrived, and MESH never
				 * delivers an incomplete message.  Which ones did is not
				 * known (progress is committed per attempt), so it is
				 * treated as unsent, as the specification allows: sent
				 * again whole, same pass; the partial one expires. */
				j->unknown = false;
				j->mesh_id[0] = '\0';
				j->chunks_done = 0;
				j->action = "track";
			} else if (err == 0) {
				/* MESH never received it: safe to send now, same pass */
				j->unknown = false;
				j->action = "track";
			} else {
				outcome(o, j, err == RAS_EINVALID ? RAS_EIO : err, "track", r->status, r->seconds);
				j->state = strcmp(j->state, "dead") == 0 ? "dead" : "unknown";
			}
		} else {
			char id[RAS_MESH_ID_MAX] = "";

			/* chunks after the first answer 202 with no id (`null`) */
			err = j->chunks_done ? ras_mesh_chunk_result(r) : ras_mesh_send_result(r, id, sizeof(id));
			if (err == 0) {
				if (j->mesh_id[0] == '\0')
					snprintf(j->mesh_id, sizeof(j->mesh_id), "%s", id);
				j->chunks_done++;
				if (j->chunks_done >= j->nchunks)
					outcome(o, j, 0, j->nchunks > 1 ? "chunk" : "send", r->status, r->seconds);
			} else if (j->chunks_done + 1 == j->nchunks && j->nchunks > 1 && r->status == 423) {
				/* the last chunk had arrived before: the message is complete */
				j->chunks_done++;
				outcome(o, j, 0, "chunk", r->status, r->seconds);
			} else {
				outcome(o, j, err, j->chunks_done ? "chunk" : "send", r->status, r->seconds);
			}
		}
		if (j->error)
			j->error = ras_arena_strdup(a, j->error);
		ras_http_request_release(r);
	}
	return 0;
}

static const char SQL_RESULT[] =
	"UPDATE outbox SET state = $2, last_error = $3, "
	"next_attempt_at = $4::timestamptz + make_interval(secs => $5), mesh_message_id = $6, "
	"mesh_chunks_done = $7, delivered_at = CASE WHEN $2 = 'delivered' THEN $4::timestamptz END, "
	"updated_at = $4 WHERE id = $1";

static const char SQL_DELIVERY[] =
	"INSERT INTO deliveries (outbox_id, attempt, at, transport, action, http_status, outcome, detail, "
	"mesh_message_id, seconds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/* Commit the outcome of every finished job not yet recorded, in one
 * transaction. */
static int
write_results(struct ras_outbox *o, struct ras_db *db, struct ras_arena *a, struct job *jobs,
    size_t n, const char *at, struct ras_outbox_stats *st)
{
	struct writes w = { .a = a };
	size_t todo = 0;
	int err;

	(void)o;
	for (size_t i = 0; i < n; i++)
		if (jobs[i].finished && !jobs[i].written)
			todo++;
	if (todo == 0)
		return 0;
	if ((err = ras_db_begin(db)) < 0)
		return err;
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		const char *outc = j->state;

		if (!j->finished || j->written)
			continue;
		if (j->gave_up)
			j->error = ras_arena_printf(a, "gave up after %lld attempts: %s", (long long)j->attempts,
			    j->error ? j->error : "unknown error");
		w_add(&w, SQL_RESULT, 7, j->id, j->state, j->error, at,
		    num(a, strcmp(j->state, "delivered") == 0 || strcmp(j->state, "dead") == 0 ? 0 : j->delay),
		    j->mesh_id[0] ? j->mesh_id : NULL, num(a, (int64_t)j->chunks_done));
		if (strcmp(outc, "ready") == 0)
			outc = "retry";
		w_add(&w, SQL_DELIVERY, 10, j->id, num(a, j->attempts), at, j->transport,
		    j->action ? j->action : "send", j->http_status ? num(a, j->http_status) : NULL, outc,
		    j->error, j->mesh_id[0] ? j->mesh_id : NULL, ras_arena_printf(a, "%.3f", j->seconds));
		if (strcmp(j->state, "delivered") == 0 || strcmp(j->state, "dead") == 0) {
			w_add(&w, SQL_DEADLINE, 2, j->id, at);
			w_add(&w, SQL_EVENT, 3, j->id, strcmp(j->state, "delivered") == 0 ?
			    "document-delivered" : "document-dead", j->error);
		}
	}
	if ((err = w_run(db, &w)) < 0) {
		ras_db_rollback(db);
		return err;
	}
	if ((err = ras_db_commit(db)) < 0)
		return err;
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];

		if (!j->finished || j->written)
			continue;
		j->written = true;
		if (st) {
			if (strcmp(j->state, "delivered") == 0)
				st->delivered++;
			else if (strcmp(j->state, "dead") == 0)
				st->dead++;
			else if (strcmp(j->state, "unknown") == 0)
				st->unknown++;
			else
				st->retried++;
		}
	}
	return 0;
}

int
ras_outbox_deliver_pending(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_stats *st)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_db_res *res = NULL;
	struct ras_db_param p[3];
	struct job *jobs = NULL;
	const char *at;
	bool mesh_ok = true, more;
	size_t n = 0;
	int err;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	at = ts(a, now);
	p[0] = RAS_DB_TEXT(at);
	p[1] = RAS_DB_TEXT(num(a, o->batch));
	p[2] = RAS_DB_TEXT(num(a, o->lease));
	/* Claim and mark 'sending' in one short transaction: the transfers run
	 * outside it, and a crash leaves 'sending' rows that the lease turns
	 * into 'unknown' (checked, never blindly resent). */
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = ras_db_query(db, &res, SQL_CLAIM_READY, 3, p)) < 0) {
		ras_db_rollback(db);
		goto done;
	}
	if ((err = ras_db_commit(db)) < 0)
		goto done;
	n = (size_t)ras_db_res_rows(res);
	if (st)
		st->claimed += (int)n;
	if (n == 0)
		goto done;
	jobs = ras_arena_calloc(a, n, sizeof(*jobs));
	if (jobs == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		int64_t v = 0;

		j->id = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 0));
		/* 'unknown', or 'sending' past its lease (a crash mid-send) */
		j->unknown = strcmp(ras_db_res_get(res, (int)i, 1), "ready") != 0;
		j->transport = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 2));
		j->address = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 3));
		j->workflow = ras_db_res_get(res, (int)i, 4) ? ras_arena_strdup(a, ras_db_res_get(res, (int)i, 4)) : NULL;
		j->fhir_mode = ras_db_res_get(res, (int)i, 5) ? ras_arena_strdup(a, ras_db_res_get(res, (int)i, 5)) : NULL;
		j->document_id = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 6));
		j->local_id = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 7));
		j->content_type = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 8));
		j->payload = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 9));
		(void)ras_db_res_int(res, (int)i, 10, &j->attempts);
		if (ras_db_res_get(res, (int)i, 11))
			snprintf(j->mesh_id, sizeof(j->mesh_id), "%s", ras_db_res_get(res, (int)i, 11));
		(void)ras_db_res_int(res, (int)i, 12, &v);
		j->chunks_done = j->mesh_id[0] ? (size_t)v : 0;
		j->kind = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 13));
		j->message_id = ras_arena_strdup(a, ras_db_res_get(res, (int)i, 14));
		if (j->transport == NULL || j->payload == NULL)
			outcome(o, j, ras_error_code(RAS_EINVALID, "row has no rendered payload"), "send", 0, 0);
		if (strcmp(j->transport ? j->transport : "", "mesh") != 0)
			j->unknown = false;   /* FHIR and files are safe to repeat */
	}
	if (o->mesh) {
		for (size_t i = 0; i < n; i++)
			if (!jobs[i].finished && strcmp(jobs[i].transport, "mesh") == 0) {
				if (handshake_if_due(o, a, now) < 0)
					mesh_ok = false;
				break;
			}
	} else {
		mesh_ok = false;
	}
	/* Rounds: first sends (or tracking), then further chunks, and sends of
	 * rows tracking found MESH never received.  What is known is committed
	 * after each group of transfers. */
	do {
		if ((err = run_round(o, a, jobs, n, now, mesh_ok, GROUP_DIRECT)) < 0 ||
		    (err = write_results(o, db, a, jobs, n, at, st)) < 0 ||
		    (err = run_round(o, a, jobs, n, now, mesh_ok, GROUP_MESH)) < 0 ||
		    (err = write_results(o, db, a, jobs, n, at, st)) < 0)
			goto done;
		more = false;
		for (size_t i = 0; i < n; i++)
			if (!jobs[i].finished)
				more = true;
	} while (more);
done:
	ras_db_res_free(res);
	ras_arena_free(a);
	return err;
}

/* --- MESH inbox ----------------------------------------------------------- */

static const char SQL_REPORT[] =
	"WITH m AS (INSERT INTO mesh_inbox (message_id, mailbox, message_type, workflow, local_id, "
	"linked_message_id, status_code, status_event, status_success, description, outbox_id, "
	"received_at) VALUES ($1, $2, 'REPORT', $3, $4, $5, $6, $7, $8, $9, "
	"(SELECT id FROM outbox WHERE local_id = $4 OR (mesh_message_id IS NOT NULL AND mesh_message_id = $5) "
	"ORDER BY id DESC LIMIT 1), $10) ON CONFLICT (message_id) DO NOTHING RETURNING outbox_id) "
	"UPDATE outbox o SET state = CASE WHEN $11 THEN 'dead' ELSE o.state END, "
	"last_error = CASE WHEN $11 THEN 'MESH report ' || coalesce($6, '') || ' ' || coalesce($7, '') || ': ' "
	"|| coalesce($9, '') ELSE o.last_error END, "
	"acknowledged_at = CASE WHEN $11 THEN o.acknowledged_at ELSE $10::timestamptz END, updated_at = $10 "
	"FROM m WHERE o.id = m.outbox_id RETURNING o.id";

static const char SQL_MESH_DATA[] =
	"INSERT INTO mesh_inbox (message_id, mailbox, message_type, workflow, local_id, payload_id, "
	"received_at) VALUES ($1, $2, 'DATA', $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING";

static const char SQL_MESH_ACKED[] =
	"UPDATE mesh_inbox SET acknowledged_at = $2 WHERE message_id = $1";

static const char SQL_REPORT_FOLLOWUP[] =
	"WITH o AS (SELECT id, referral_id, state, last_error, deadline_id FROM outbox "
	"WHERE id IN (SELECT outbox_id FROM mesh_inbox WHERE message_id = $1)), "
	"ev AS (INSERT INTO events (referral_id, kind, actor, detail) SELECT referral_id, "
	"'document-mesh-report', 'rasd', jsonb_build_object('outbox_id', id, 'state', state, "
	"'error', last_error) FROM o RETURNING 1) "
	"SELECT ras_outbox_deadlines_check(o.id, $2) FROM o";

int
ras_outbox_mesh_poll(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_stats *st)
{
	struct ras_arena *a = ras_arena_new();
	struct writes w = { .a = a };
	struct ras_http_request lr, *dl = NULL, *ack = NULL;
	const char **ids = NULL, *at;
	struct ras_mesh_meta *meta = NULL;
	bool *keep = NULL;
	size_t n = 0, nack = 0;
	int err;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	memset(&lr, 0, sizeof(lr));
	if (o->mesh == NULL) {
		ras_arena_free(a);
		return 0;
	}
	at = ts(a, now);
	if ((err = handshake_if_due(o, a, now)) < 0)
		goto done;
	if ((err = ras_mesh_prep_inbox(o->mesh, a, now, &lr)) < 0 ||
	    (err = ras_http_perform(o->mesh_http, &lr, 1)) < 0 ||
	    (err = ras_mesh_inbox_result(a, &lr, &ids, &n)) < 0)
		goto done;
	if (n > (size_t)o->batch)
		n = (size_t)o->batch;
	if (n == 0)
		goto done;
	dl = ras_arena_calloc(a, n, sizeof(*dl));
	ack = ras_arena_calloc(a, n, sizeof(*ack));
	meta = ras_arena_calloc(a, n, sizeof(*meta));
	keep = ras_arena_calloc(a, n, sizeof(*keep));
	if (!dl || !ack || !meta || !keep) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		if ((err = ras_mesh_prep_download(o->mesh, a, now, ids[i], 1, &dl[i])) < 0)
			goto done;
	if ((err = ras_http_perform(o->mesh_http, dl, n)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		ras_mesh_meta(&dl[i], &meta[i]);
		keep[i] = dl[i].err == 0 && (dl[i].status == 200 || dl[i].status == 206);
		/* further chunks, one after another (rare for rasd's inbox) */
		for (size_t c = 2; keep[i] && c <= meta[i].nchunks; c++) {
			struct ras_http_request cr;

			if ((err = ras_mesh_prep_download(o->mesh, a, now, ids[i], c, &cr)) < 0 ||
			    (err = ras_http_perform(o->mesh_http, &cr, 1)) < 0)
				goto done;
			if (cr.err || (cr.status != 200 && cr.status != 206) ||
			    ras_buf_append(&dl[i].body_out, cr.body_out.data, cr.body_out.len) < 0)
				keep[i] = false;
			ras_http_request_release(&cr);
		}
	}
	/* Data messages into the intake inbox first (its own transaction;
	 * the inbox de-duplicates by hash if we see one again). */
	for (size_t i = 0; i < n; i++) {
		size_t wl = strlen(meta[i].workflow);
		struct ras_inbox_item item = { 0 };
		struct ras_inbox_put_result put;

		if (!keep[i] || strcmp(meta[i].message_type, "REPORT") == 0)
			continue;
		if (wl > 4 && strcmp(meta[i].workflow + wl - 4, "_ACK") == 0) {
			/* ITK3 acknowledgements: logged, not referrals */
			w_add(&w, SQL_MESH_DATA, 6, ids[i], ras_mesh_mailbox(o->mesh), meta[i].workflow,
			    meta[i].local_id, NULL, at);
			continue;
		}
		item.data = dl[i].body_out.data ? dl[i].body_out.data : "";
		item.len = dl[i].body_out.len;
		item.full_size = dl[i].body_out.len;
		item.source = "mesh";
		item.source_ref = ids[i];
		item.content_type = meta[i].content_type[0] ? meta[i].content_type : NULL;
		if ((err = ras_store_inbox_put(db, &item, 1, &put)) < 0)
			goto done;
		w_add(&w, SQL_MESH_DATA, 6, ids[i], ras_mesh_mailbox(o->mesh), meta[i].workflow,
		    meta[i].local_id, num(a, put.id), at);
		if (st)
			st->received++;
	}
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = w_run(db, &w)) < 0) {
		ras_db_rollback(db);
		goto done;
	}
	/* Reports one by one: each says how many documents it killed, and
	 * those are counted (and logged by the caller) as dead letters. */
	for (size_t i = 0; i < n; i++) {
		struct ras_db_param rp[11];
		struct ras_db_res *rr = NULL;
		bool error;

		if (!keep[i] || strcmp(meta[i].message_type, "REPORT") != 0)
			continue;
		error = strcmp(meta[i].status_success, "SUCCESS") != 0 ||
		    (meta[i].status_code[0] && strcmp(meta[i].status_code, "00") != 0);
		rp[0] = RAS_DB_TEXT(ids[i]);
		rp[1] = RAS_DB_TEXT(ras_mesh_mailbox(o->mesh));
		rp[2] = RAS_DB_TEXT(meta[i].workflow);
		rp[3] = RAS_DB_TEXT(meta[i].local_id);
		rp[4] = RAS_DB_TEXT(meta[i].linked_id);
		rp[5] = RAS_DB_TEXT(meta[i].status_code);
		rp[6] = RAS_DB_TEXT(meta[i].status_event);
		rp[7] = RAS_DB_TEXT(meta[i].status_success);
		rp[8] = RAS_DB_TEXT(meta[i].status_description);
		rp[9] = RAS_DB_TEXT(at);
		rp[10] = RAS_DB_TEXT(error ? "true" : "false");
		if ((err = ras_db_query(db, &rr, SQL_REPORT, 11, rp)) < 0 ||
		    (err = ras_db_query(db, NULL, SQL_REPORT_FOLLOWUP, 2, (struct ras_db_param[]){
		    RAS_DB_TEXT(ids[i]), RAS_DB_TEXT(at) })) < 0) {
			ras_db_res_free(rr);
			ras_db_rollback(db);
			goto done;
		}
		if (st) {
			st->reports++;
			if (error)
				st->dead += ras_db_res_rows(rr);
		}
		ras_db_res_free(rr);
	}
	if ((err = ras_db_commit(db)) < 0)
		goto done;
	/* Acknowledge only what is safely stored. */
	for (size_t i = 0; i < n; i++)
		if (keep[i] && (err = ras_mesh_prep_ack(o->mesh, a, now, ids[i], &ack[nack++])) < 0)
			goto done;
	if (nack && (err = ras_http_perform(o->mesh_http, ack, nack)) < 0)
		goto done;
	w.n = 0;
	for (size_t i = 0, k = 0; i < n; i++) {
		if (!keep[i])
			continue;
		if (ack[k].err == 0 && ack[k].status == 200) {
			w_add(&w, SQL_MESH_ACKED, 2, ids[i], at);
			if (st)
				st->acknowledged++;
		}
		ras_http_request_release(&ack[k++]);
	}
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = w_run(db, &w)) < 0) {
		ras_db_rollback(db);
		goto done;
	}
	err = ras_db_commit(db);
done:
	ras_http_request_release(&lr);
	for (size_t i = 0; dl && i < n; i++)
		ras_http_request_release(&dl[i]);
	ras_arena_free(a);
	return err;
}

/* --- episodes ------------------------------------------------------------- */

static const char SQL_FIND_REFERRAL[] =
	"SELECT r.id, coalesce(r.service, ''), r.doc::text, "
	"to_char((SELECT max(a.decided_at) FROM decisions a WHERE a.referral_id = r.id "
	"AND a.outcome = 'accept') AT TIME ZONE 'Europe/London', 'YYYY-MM-DD'), "
	"(SELECT d.service FROM decisions d WHERE d.referral_id = r.id ORDER BY d.id DESC LIMIT 1) "
	"FROM referrals r WHERE r.ubrn = $1 OR r.referral_key = $1 OR r.id::text = $1 "
	"ORDER BY r.version DESC LIMIT 1";

static const char SQL_EPISODE[] =
	"SELECT ras_outbox_episode($1, $2, $3, $4::date, $5::jsonb, $6::date, $7, $8::boolean, $9, $10)";

int
ras_outbox_episode_put(struct ras_outbox *o, struct ras_db *db, const char *what, const char *kind,
    const char *data, size_t len, const char *actor, int64_t now, int64_t *episode_id)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_db_res *res = NULL;
	struct ras_db_param p[10];
	const struct ras_docprofile *prof;
	const struct ras_dockind *dk;
	struct ras_intake in;
	struct ras_episode ep;
	struct ras_referral ref;
	struct ras_doc_input di = { 0 };
	struct ras_doc_missing missing;
	struct ras_date event, due;
	json_t *rj, *bundle;
	const char *service, *doc_kind, *qr, *referral_id;
	char event_s[RAS_DATE_STR_MAX], due_s[RAS_DATE_STR_MAX];
	int err;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (strcmp(kind, "contact") && strcmp(kind, "discharge")) {
		err = ras_error_code(RAS_EINVALID, "episode kind is contact or discharge");
		goto done;
	}
	doc_kind = strcmp(kind, "contact") == 0 ? "notification-letter" : "discharge-summary";
	if ((err = ras_intake_parse(a, data, len, &in)) < 0)
		goto done;
	if (in.kind != RAS_PAYLOAD_FORM) {
		err = ras_error_code(RAS_EINVALID, "an episode summary is a QuestionnaireResponse");
		goto done;
	}
	if ((err = ras_episode_from_form(a, in.form, &ep)) < 0)
		goto done;
	p[0] = RAS_DB_TEXT(what);
	if ((err = ras_db_query(db, &res, SQL_FIND_REFERRAL, 1, p)) < 0)
		goto done;
	if (ras_db_res_rows(res) != 1) {
		err = ras_error_code(RAS_ENOTFOUND, "no stored referral \"%.40s\"", what);
		goto done;
	}
	/* copies: the result is freed before the insert */
	service = ras_arena_strdup(a, ras_db_res_get(res, 0, 1));
	if (*service == '\0' && ras_db_res_get(res, 0, 4))
		service = ras_arena_strdup(a, ras_db_res_get(res, 0, 4));
	referral_id = ras_arena_strdup(a, ras_db_res_get(res, 0, 0));
	if (service == NULL || referral_id == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	if ((prof = profile(o, *service ? service : NULL)) == NULL) {
		err = RAS_EINVALID;
		goto done;
	}
	dk = ras_docprofile_kind(prof, doc_kind);
	if (dk == NULL) {
		err = ras_error_code(RAS_EINVALID, "the %s specification calls for no %s", service, doc_kind);
		goto done;
	}
	if ((err = ras_json_parse_arena(a, ras_db_res_get(res, 0, 2), ras_db_res_len(res, 0, 2),
	    RAS_PAYLOAD_MAX, &rj)) < 0 || (err = ras_referral_json_load(a, rj, &ref)) < 0)
		goto done;
	/* The same checks the render stage will make, now, while the EPR (or
	 * the operator) can still fix the summary. */
	di.kind = ras_document_kind_parse(doc_kind);
	di.profile = prof;
	di.referral = &ref;
	di.episode = &ep;
	di.at = now;
	if (ras_db_res_get(res, 0, 3) && ras_date_parse(ras_db_res_get(res, 0, 3), &di.accepted_date) == 0)
		di.has_accepted_date = true;
	if ((err = ras_document_build(a, &di, &bundle, &missing)) < 0)
		goto done;
	if (strcmp(kind, "discharge") == 0) {
		if (!ep.has_discharge_date) {
			err = ras_error_code(RAS_EINVALID, "a discharge episode needs discharge-date");
			goto done;
		}
		event = ep.discharge_date;
	} else {
		ras_time_uk_date(now, &event, NULL);
	}
	ras_date_format(&event, event_s);
	if (dk->has_deadline) {
		/* The triage calendar's working days (bank holidays skipped); the
		 * day of the event is day 0. */
		if ((err = ras_calendar_add_working_days(o->cal, &event, dk->same_day ? 0 : dk->working_days,
		    &due, NULL)) < 0)
			goto done;
		ras_date_format(&due, due_s);
	}
	qr = json_dumps(in.json, JSON_COMPACT);
	if (qr == NULL || ras_arena_defer(a, free, (void *)qr) < 0) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	p[0] = RAS_DB_TEXT(referral_id);
	p[1] = RAS_DB_TEXT(service);
	p[2] = RAS_DB_TEXT(kind);
	p[3] = RAS_DB_TEXT(event_s);
	p[4] = RAS_DB_TEXT(qr);
	p[5] = RAS_DB_TEXT(dk->has_deadline ? due_s : NULL);
	p[6] = RAS_DB_TEXT(dk->deadline_clause ? dk->deadline_clause : dk->clause);
	p[7] = RAS_DB_TEXT(strcmp(kind, "discharge") == 0 && ras_docprofile_kind(prof, "patient-copy") ?
	    "true" : "false");
	p[8] = RAS_DB_TEXT(actor ? actor : "rasd");
	p[9] = RAS_DB_TEXT(ts(a, now));
	ras_db_res_free(res);
	res = NULL;
	if ((err = ras_db_query(db, &res, SQL_EPISODE, 10, p)) < 0)
		goto done;
	if (episode_id && !ras_db_res_int(res, 0, 0, episode_id))
		err = ras_error_set("could not store the episode");
done:
	ras_db_res_free(res);
	ras_arena_free(a);
	return err;
}

bool
ras_outbox_has_document(struct ras_outbox *o, const char *service, const char *doc_kind)
{
	const struct ras_docprofile *prof = profile(o, service);

	return prof && ras_docprofile_kind(prof, doc_kind) != NULL;
}

/* --- operations ---------------------------------------------------------- */

static const char SQL_LIST[] =
	"SELECT coalesce(jsonb_agg(x ORDER BY (x->>'id')::bigint DESC), '[]')::text FROM ("
	"SELECT jsonb_build_object('id', id, 'referral_key', referral_key, 'service', service, "
	"'kind', kind, 'version', doc_version, 'recipient', recipient_role, 'ods', recipient_ods, "
	"'state', state, 'transport', transport, "
	"'address', CASE WHEN address LIKE 'GPPROVIDER\\_%' THEN 'GPPROVIDER_(patient)' ELSE address END, "
	"'workflow', workflow, 'attempts', attempts, 'next_attempt_at', next_attempt_at, "
	"'last_error', last_error, 'document_id', document_id, 'local_id', local_id, "
	"'mesh_message_id', mesh_message_id, 'delivered_at', delivered_at, "
	"'acknowledged_at', acknowledged_at) AS x "
	"FROM outbox WHERE $1::text IS NULL OR state = $1 ORDER BY id DESC LIMIT $2) s";

int
ras_outbox_list(struct ras_db *db, const char *state, int limit, json_t **out)
{
	struct ras_db_res *res = NULL;
	struct ras_db_param p[2];
	char lim[32];
	int err;

	snprintf(lim, sizeof(lim), "%d", limit);
	p[0] = RAS_DB_TEXT(state);
	p[1] = RAS_DB_TEXT(lim);
	if ((err = ras_db_query(db, &res, SQL_LIST, 2, p)) < 0)
		return err;
	err = ras_json_parse(ras_db_res_get(res, 0, 0), ras_db_res_len(res, 0, 0), RAS_HTTP_BODY_MAX, out);
	ras_db_res_free(res);
	return err;
}

int
ras_outbox_retry(struct ras_db *db, int64_t id, int64_t now)
{
	struct ras_db_res *res = NULL;
	struct ras_db_param p[2];
	char ids[32], at[RAS_TIME_STR_MAX];
	const char *state;
	int err;

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	ras_time_format_utc(now, at);
	p[0] = RAS_DB_TEXT(ids);
	p[1] = RAS_DB_TEXT(at);
	if ((err = ras_db_begin(db)) < 0)
		return err;
	if ((err = ras_db_query(db, &res, "SELECT state FROM outbox WHERE id = $1 FOR UPDATE", 1, p)) < 0)
		goto fail;
	if (ras_db_res_rows(res) != 1) {
		err = ras_error_code(RAS_ENOTFOUND, "no outbox row %lld", (long long)id);
		goto fail;
	}
	state = ras_db_res_get(res, 0, 0);
	if (strcmp(state, "dead") != 0) {
		err = ras_error_code(RAS_ECONFLICT, "outbox row %lld is %s, not dead%s", (long long)id, state,
		    strcmp(state, "unknown") == 0 ? " (its send is being checked by MESH tracking)" : "");
		goto fail;
	}
	ras_db_res_free(res);
	res = NULL;
	/* Re-render: the routing table, the profile or the episode may have
	 * been fixed since. */
	if ((err = ras_db_query(db, NULL, "UPDATE outbox SET state = 'pending', attempts = 0, "
	    "next_attempt_at = $2, last_error = NULL, mesh_message_id = NULL, mesh_chunks_done = 0, "
	    "updated_at = $2 WHERE id = $1", 2, p)) < 0)
		goto fail;
	if ((err = ras_db_query(db, NULL, "INSERT INTO events (referral_id, kind, actor, detail) "
	    "SELECT referral_id, 'document-requeued', 'rasctl', jsonb_build_object('outbox_id', id) "
	    "FROM outbox WHERE id = $1", 1, p)) < 0)
		goto fail;
	return ras_db_commit(db);
fail:
	ras_db_res_free(res);
	ras_db_rollback(db);
	return err;
}

/* --- recovery ----------------------------------------------------------- */

/* 'sending' rows whose claiming session (schema/005) is gone.  A session
 * whose start time is hidden (another role) counts as alive: such rows
 * wait for the lease instead. */
static const char SQL_RECOVER[] =
	"UPDATE outbox o SET state = 'unknown', next_attempt_at = $1, updated_at = $1, "
	"last_error = 'the rasd that was sending it stopped before the answer: checked before any resend' "
	"WHERE o.state = 'sending' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a "
	"WHERE a.pid = o.claimed_pid AND (a.backend_start IS NULL OR a.backend_start <= o.claimed_txn_at)) "
	"RETURNING o.id";

int
ras_outbox_recover(struct ras_db *db, int64_t now, int *n)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_db_res *res = NULL;
	int err;

	*n = 0;
	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = ras_db_query(db, &res, SQL_RECOVER, 1, &RAS_DB_TEXT(ts(a, now)))) == 0)
		*n = ras_db_res_rows(res);
	ras_db_res_free(res);
	ras_arena_free(a);
	return err;
}
