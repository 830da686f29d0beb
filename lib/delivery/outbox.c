/* outbox: the delivery context, episodes and operations (see include/ras/outbox.h;
 * the stages are outbox_render.c and outbox_deliver.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/calendar.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/document.h"
#include "ras/episode.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/intake.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/mesh.h"
#include "ras/outbox.h"
#include "ras/referral_json.h"
#include "ras/routing.h"
#include "outbox_impl.h"

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

const char *
ras_outbox_ts(struct ras_arena *a, int64_t t)
{
	char buf[RAS_TIME_STR_MAX];

	ras_time_format_utc(t, buf);
	return ras_arena_strdup(a, buf);
}

const char *
ras_outbox_num(struct ras_arena *a, int64_t v)
{
	return ras_arena_printf(a, "%lld", (long long)v);
}

int
ras_outbox_new(const struct ras_config *cfg, const char *mappings, struct ras_outbox **out)
{
	struct ras_outbox *o;
	int err;

	if ((err = ras_outbox_new_shared(cfg, mappings, NULL, NULL, &o)) < 0)
		return err;
	o->mesh_owned = true;
	if ((err = ras_mesh_new_config(cfg, &o->mesh, &o->mesh_http)) < 0) {
		ras_error_context("outbox configuration");
		ras_outbox_free(o);
		return err;
	}
	*out = o;
	return 0;
}

int
ras_outbox_new_shared(const struct ras_config *cfg, const char *mappings, struct ras_mesh *mesh,
    struct ras_http *http, struct ras_outbox **out)
{
	struct ras_outbox *o = calloc(1, sizeof(*o));
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
	if (ras_config_get(cfg, "pds", NULL, "base_url"))
		o->pds_max_age = ras_config_int(cfg, "pds", NULL, "max_age") * 3600;
	if (ras_config_get(cfg, "outbox", NULL, "print_dir"))
		o->print_dir = ras_arena_strdup(o->a, ras_config_get(cfg, "outbox", NULL, "print_dir"));
	o->gp_auto = ras_config_bool(cfg, "routing", NULL, "gp_auto_routing");
	o->gpprovider_ddmmyyyy = ras_config_get(cfg, "routing", NULL, "gpprovider_dob_format") &&
	    strcmp(ras_config_get(cfg, "routing", NULL, "gpprovider_dob_format"), "DDMMYYYY") == 0;
	o->ack_inf_timeout = ras_config_int(cfg, "outbox", NULL, "ack_infrastructure_timeout");
	o->ack_bus_days = (int)ras_config_int(cfg, "outbox", NULL, "ack_business_working_days");
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
	if ((err = ras_config_secret_string(cfg, o->a, "fhir", "token", &o->fhir_token)) < 0)
		goto fail;
	{
		struct ras_http_opts ho = { .ca_file = ras_config_get(cfg, "fhir", NULL, "ca_file"),
			.client_cert = ras_config_get(cfg, "fhir", NULL, "client_cert"),
			.client_key = ras_config_secret_path(cfg, o->a, "fhir", "client_key"),
			.allow_http_loopback = ras_config_bool(cfg, "outbox", NULL,
			    "allow_http_loopback") };

		if ((err = ras_http_new(&ho, &o->fhir_http)) < 0)
			goto fail;
	}
	o->mesh = mesh;
	o->mesh_http = http;
	*out = o;
	return 0;
fail:
	ras_error_context("outbox configuration");
	ras_outbox_free(o);
	return err;
}

void
ras_outbox_mesh_client(const struct ras_outbox *o, struct ras_mesh **mesh, struct ras_http **http)
{
	*mesh = o->mesh;
	*http = o->mesh_http;
}

void
ras_outbox_free(struct ras_outbox *o)
{
	if (o == NULL)
		return;
	ras_calendar_free(o->cal);
	if (o->mesh_owned) {
		ras_mesh_free(o->mesh);
		ras_http_free(o->mesh_http);
	}
	ras_http_free(o->fhir_http);
	ras_arena_free(o->a);
	free(o);
}

const struct ras_docprofile *
ras_outbox_profile(struct ras_outbox *o, const char *service)
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

const char ras_outbox_sql_event[] =
	"INSERT INTO events (referral_id, kind, actor, detail) "
	"SELECT referral_id, $2, 'rasd', jsonb_build_object('outbox_id', id, 'kind', kind, "
	"'recipient', recipient_role, 'detail', $3::text) FROM outbox WHERE id = $1";

const char ras_outbox_sql_deadline[] =
	"SELECT ras_outbox_deadlines_check($1, $2)";

/* --- episodes ------------------------------------------------------------- */

static const char SQL_FIND_REFERRAL[] =
	"SELECT r.id, coalesce(r.service, ''), r.doc::text, "
	"to_char((SELECT max(a.decided_at) FROM decisions a WHERE a.referral_id = r.id "
	"AND a.outcome = 'accept') AT TIME ZONE 'Europe/London', 'YYYY-MM-DD'), "
	"(SELECT d.service FROM decisions d WHERE d.referral_id = r.id ORDER BY d.id DESC LIMIT 1) "
	"FROM referrals r WHERE r.ubrn = $1 OR r.referral_key = $1 OR r.id::text = $1 "
	"ORDER BY (r.state = 'superseded'), r.version DESC LIMIT 1";

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
	if ((err = ras_intake_parse(a, o->form_maps, data, len, &in)) < 0)
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
	if ((prof = ras_outbox_profile(o, *service ? service : NULL)) == NULL) {
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
	p[9] = RAS_DB_TEXT(ras_outbox_ts(a, now));
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

void
ras_outbox_set_form_maps(struct ras_outbox *o, const struct ras_xmlform_maps *maps)
{
	o->form_maps = maps;
}

bool
ras_outbox_has_document(struct ras_outbox *o, const char *service, const char *doc_kind)
{
	const struct ras_docprofile *prof = ras_outbox_profile(o, service);

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
	"'acknowledged_at', acknowledged_at, 'message', message_format, 'ack', ack_state, "
	"'inf_ack', inf_ack_code, 'bus_ack', bus_ack_code, 'inf_ack_at', inf_ack_at, 'bus_ack_at', bus_ack_at) AS x "
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
	    "ack_state = NULL, inf_ack_code = NULL, inf_ack_at = NULL, inf_ack_text = NULL, "
	    "bus_ack_code = NULL, bus_ack_at = NULL, bus_ack_text = NULL, "
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
	if ((err = ras_db_query(db, &res, SQL_RECOVER, 1, &RAS_DB_TEXT(ras_outbox_ts(a, now)))) == 0)
		*n = ras_db_res_rows(res);
	ras_db_res_free(res);
	ras_arena_free(a);
	return err;
}
