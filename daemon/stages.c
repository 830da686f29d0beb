/*
 * stages: the registry of rasd's stages and pollers, in pipeline order
 * (see stage.h for the interface).
 *
 *   normalise    inbox rows "received" -> referrals (foundation); installs
 *                the XML form maps intake reads (mappings/form-maps)
 *   demographics referrals "new" lacking name, birth date or practice (all
 *                with [pds] verify) -> PDS lookups, stored and applied,
 *                back to "new" (needs [pds] base_url; pds_store.h)
 *   triage       referrals "new" -> decisions with reasons and deadlines
 *   ers-outcome  decisions -> A029/A028 on e-RS (needs [ers] base_url)
 *   render       outbox "pending" -> documents built and routed
 *   deliver      outbox "ready"/"unknown" -> MESH, FHIR REST, patient copies
 *                (render and deliver need a delivery route: [mesh] enabled,
 *                [routing] table or gp_auto_routing, or [outbox] print_dir)
 *   ers-fetch    failed e-RS fetches and PENDING attachments, again (own
 *                pace: every ERS_FETCH_INTERVAL_S seconds)
 *
 *   ers:<id>     poller, one per [ers] service_ids entry, on [ers] schedule
 *                (working days of the bank-holiday calendar, or every day
 *                with [ers] poll_days = all); the e-RS client enforces the
 *                A008 budget itself and triages what it stores
 *   mesh:<box>   poller of rasd's MESH inbox, every 5 minutes (MESH asks
 *                for no more)
 *
 * Everything these units share is one runtime per configuration
 * (runtime.h): the triage engine (rule sets, calendar), the e-RS client,
 * the outbox (with its MESH session) and the form maps, loaded and checked
 * as one.  A reload builds a whole new one; if any part fails, the
 * configuration is refused with every problem and the running one stays
 * (stage.h).  The EPR route (receive.c) borrows the same runtime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/ers.h"
#include "ras/ers_outcome.h"
#include "ras/ers_poll.h"
#include "ras/intake.h"
#include "ras/log.h"
#include "ras/mesh_inbox.h"
#include "ras/outbox.h"
#include "ras/pds.h"
#include "ras/pds_store.h"
#include "ras/runtime.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "stage.h"
#include "stages.h"

/* How often the MESH inbox is polled: MESH asks clients to poll no more
 * often than every five minutes. */
#define MESH_POLL_SCHEDULE "every 5m"
/* Retry sweep of e-RS fetches (failed A005s, PENDING attachments). */
#define ERS_FETCH_INTERVAL_S 60

/* ---- what the units of one configuration share ------------------------ */

struct pipeline {
	struct ras_runtime *rt;         /* NULL when it failed to load (problems reported) */
	bool documents;                 /* a delivery route is configured */
};

static void
pipeline_free(void *v)
{
	struct pipeline *p = v;

	if (p == NULL)
		return;
	ras_runtime_free(p->rt);
	free(p);
}

/* The configuration's pipeline: normalise, the first stage, loads the
 * runtime (every problem into `problems`); the later stages find it. */
static struct pipeline *
pipeline_of(const struct ras_config *cfg, struct ras_unit_sink *sink, struct ras_buf *problems)
{
	struct pipeline *p = ras_unit_sink_shared(sink);
	int err;

	if (p)
		return p;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	ras_unit_sink_set_shared(sink, p, pipeline_free);
	if ((err = ras_runtime_new(cfg, &p->rt, problems)) == RAS_ENOMEM)
		return NULL;
	return p;
}

const struct ras_runtime *
ras_stages_runtime(const struct ras_units *u)
{
	const struct pipeline *p = ras_units_shared(u);

	return p ? p->rt : NULL;
}

/* [ers] poll_days = all: a service that triages at weekends too. */
static bool
every_day(const struct ras_date *d, void *ctx)
{
	(void)d;
	(void)ctx;
	return true;
}

/* ---- normalise ------------------------------------------------------- */

/* One payload's report.  The UBRN and correlation id come with each report:
 * no lookup. */
static void
log_normalised(const struct ras_normalise_report *r, void *ctx)
{
	char pid[24];
	struct ras_log_field f[] = { { "STAGE", "normalise" }, { "PAYLOAD_ID", pid },
		{ "UBRN", r->ubrn[0] ? r->ubrn : NULL },
		{ "CORRELATION_ID", r->correlation_id[0] ? r->correlation_id : NULL },
		{ NULL, NULL } };

	(void)ctx;
	snprintf(pid, sizeof(pid), "%lld", (long long)r->payload_id);
	if (strcmp(r->state, "rejected") == 0 || strcmp(r->state, "partial") == 0)
		ras_log_fields(RAS_LOG_WARNING, f, "payload #%s %s (%s): %s", pid, r->state,
		    r->kind, r->message);
	else if (strcmp(r->state, "received") != 0)
		ras_log_fields(RAS_LOG_INFO, f, "payload #%s %s (%s): %s", pid, r->state,
		    r->kind, r->message);
}

void
ras_stages_log_normalised(const struct ras_normalise_report *rep, size_t n)
{
	for (size_t i = 0; i < n; i++)
		log_normalised(&rep[i], NULL);
}

/* The stage logs each report as the batch hands it over (store.h): a batch
 * of batch_size payloads keeps no array of reports. */
static int
normalise_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	size_t n = 0;
	int err;

	(void)now;
	/* XML referral forms are read through the configuration's maps */
	if ((err = ras_store_normalise_each(db, ras_runtime_form_maps(p->rt), NULL, 0, limit,
	    log_normalised, NULL, &n)) < 0)
		return err;
	return (int)n;
}

static int
normalise_configure(const struct ras_config *cfg, struct ras_unit_sink *sink,
    struct ras_buf *problems)
{
	struct pipeline *p = pipeline_of(cfg, sink, problems);
	struct ras_unit_spec spec = { .name = "normalise", .run = normalise_run };

	if (p == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (p->rt == NULL)
		return RAS_EINVALID;   /* every problem is in `problems` already */
	spec.state = p;
	return ras_unit_add(sink, &spec);
}

/* ---- demographics -------------------------------------------------------- */

static int
demographics_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	struct ras_pds_settings set;
	struct ras_pds *c = ras_runtime_pds(p->rt, &set);
	struct ras_pds_stage_report rep;
	int err;

	err = ras_pds_store_demographics(db, c, set.verify, set.max_age_s, now, limit, &rep);
	if (rep.queued || rep.looked_up) {
		struct ras_log_field f[] = { { "STAGE", "demographics" }, { NULL, NULL } };
		bool bad = rep.by_result[RAS_PDS_UNAVAILABLE] || rep.by_result[RAS_PDS_REFUSED];

		/* counts and the error of a failed call: never patient data */
		ras_log_fields(bad ? RAS_LOG_WARNING : RAS_LOG_INFO, f,
		    "%d referral(s) wait for demographics; %d PDS lookup(s) (%d for letters): %d found (%d restricted,"
		    " %d superseded, %d deceased, %d differing), %d not found, %d invalidated, %d invalid,"
		    " %d refused, %d unavailable%s%s", rep.queued, rep.looked_up, rep.refreshed, rep.by_result[RAS_PDS_FOUND],
		    rep.restricted, rep.superseded, rep.deceased, rep.differing, rep.by_result[RAS_PDS_NOT_FOUND],
		    rep.by_result[RAS_PDS_INVALIDATED], rep.by_result[RAS_PDS_INVALID],
		    rep.by_result[RAS_PDS_REFUSED], rep.by_result[RAS_PDS_UNAVAILABLE],
		    rep.first_error[0] ? ": " : "", rep.first_error);
	}
	if (err < 0)
		return err;
	return rep.looked_up - rep.by_result[RAS_PDS_UNAVAILABLE] - rep.by_result[RAS_PDS_REFUSED];
}

static int
demographics_configure(const struct ras_config *cfg, struct ras_unit_sink *sink,
    struct ras_buf *problems)
{
	struct pipeline *p = pipeline_of(cfg, sink, problems);
	/* 20 lookups a run: 4 s at PDS's 5 a second, so the loop stays lively */
	struct ras_unit_spec spec = { .name = "demographics", .run = demographics_run, .limit = 20 };

	if (p == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (p->rt == NULL || ras_runtime_pds(p->rt, NULL) == NULL)
		return 0;   /* reported by normalise, or [pds] base_url unset: PDS is off */
	spec.state = p;
	return ras_unit_add(sink, &spec);
}

/* ---- triage ------------------------------------------------------------ */

/* One referral's report (r->referral is "UBRN vN" or the storage key,
 * r->message rules, clauses and dates: no patient data). */
static void
log_triaged(const struct ras_triage_report *r, void *ctx)
{
	int *moved = ctx;
	char rid[24], did[24];
	bool bad = strcmp(r->state, "triage-failed") == 0 || strcmp(r->state, "unassigned") == 0;
	struct ras_log_field f[] = { { "STAGE", "triage" }, { "REFERRAL_ID", rid },
		{ "DECISION_ID", r->decision_id ? did : NULL }, { "SERVICE", r->service[0] ? r->service : NULL },
		{ NULL, NULL } };

	snprintf(rid, sizeof(rid), "%lld", (long long)r->referral_id);
	snprintf(did, sizeof(did), "%lld", (long long)r->decision_id);
	if (strcmp(r->state, "new") != 0)
		(*moved)++;
	ras_log_fields(bad ? RAS_LOG_WARNING : RAS_LOG_INFO, f, "referral %s %s: %s", r->referral,
	    r->state, r->message);
}

int
ras_stages_log_triaged(const struct ras_triage_report *rep, size_t n)
{
	int moved = 0;

	for (size_t i = 0; i < n; i++)
		log_triaged(&rep[i], &moved);
	return moved;
}

/* Each report logged as the batch hands it over (triage.h): no array of a
 * batch's reports is kept. */
static int
triage_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	size_t n = 0;
	int err, moved = 0;

	if ((err = ras_triage_pending_each(db, ras_runtime_triage(p->rt), now, limit, NULL, 0,
	    log_triaged, &moved, &n)) < 0)
		return err;
	return moved;
}

static int
triage_configure(const struct ras_config *cfg, struct ras_unit_sink *sink,
    struct ras_buf *problems)
{
	struct pipeline *p = pipeline_of(cfg, sink, problems);
	struct ras_unit_spec spec = { .name = "triage", .run = triage_run };

	if (p == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (p->rt == NULL)
		return 0;   /* reported by normalise */
	spec.state = p;
	return ras_unit_add(sink, &spec);
}

/* ---- e-RS ---------------------------------------------------------------- */

struct ers_poller {
	struct pipeline *p;
	char service[RAS_ID_MAX + 1];
};

static int
ers_poll_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct ers_poller *x = state;
	struct ras_ers_poll_report rep;
	char src[RAS_ID_MAX + 8];
	int err, n;

	(void)limit;
	memset(&rep, 0, sizeof(rep));
	snprintf(src, sizeof(src), "ers:%s", x->service);
	err = ras_ers_poll_service(ras_runtime_ers(x->p->rt), db, x->service, now, RAS_ERS_POLL_SCHEDULED, &rep);
	{
		struct ras_log_field f[] = { { "STAGE", "ers-poll" }, { "SOURCE", src },
			{ "CORRELATION_ID", rep.correlation_id[0] ? rep.correlation_id : NULL },
			{ "ERS_REQUEST_ID", rep.request_id[0] ? rep.request_id : NULL }, { NULL, NULL } };

		if (err == 0 && strcmp(rep.outcome ? rep.outcome : "", "polled") == 0)
			ras_log_fields(RAS_LOG_INFO, f, "e-RS service %s: worklist of %d, %d kept, %d fetched,"
			    " %d unchanged, %d failed, %d parked, %d related; attachments %d fetched, %d pending,"
			    " %d forms; budget left %d", x->service, rep.entries, rep.kept, rep.fetched,
			    rep.unchanged, rep.failed, rep.parked, rep.related, rep.files.fetched,
			    rep.files.pending, rep.files.forms, rep.budget_left);
		else if (err == 0)
			ras_log_fields(RAS_LOG_DEBUG, f, "e-RS service %s: %s", x->service,
			    rep.outcome ? rep.outcome : "nothing to do");
		for (size_t i = 0; i < rep.nitems; i++) {
			const struct ras_ers_poll_item *it = &rep.items[i];
			struct ras_log_field g[] = { { "STAGE", "ers-poll" }, { "SOURCE", src },
				{ "UBRN", it->ubrn }, { NULL, NULL } };

			if (strcmp(it->state, "failed") == 0 || strcmp(it->state, "parked") == 0)
				ras_log_fields(RAS_LOG_WARNING, g, "referral %s %s: %s", it->ubrn, it->state,
				    it->error);
		}
	}
	n = rep.fetched + rep.related;
	ras_ers_poll_report_free(&rep);
	if (err == RAS_ECONFLICT)
		return 0;   /* another rasd polls this service right now */
	return err < 0 ? err : n;
}

static int
ers_fetch_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	struct ras_ers_fetch_report rep;
	int err;

	memset(&rep, 0, sizeof(rep));
	err = ras_ers_poll_fetch_due(ras_runtime_ers(p->rt), db, now, limit, &rep);
	if (rep.referrals_fetched || rep.referrals_failed || rep.fetched || rep.failed || rep.blocked ||
	    rep.too_big) {
		struct ras_log_field f[] = { { "STAGE", "ers-fetch" }, { NULL, NULL } };

		ras_log_fields(rep.referrals_failed || rep.failed ? RAS_LOG_WARNING : RAS_LOG_INFO, f,
		    "e-RS fetches again: %d referral(s) fetched, %d failed; attachments %d fetched,"
		    " %d still pending, %d blocked, %d failed, %d too big, %d forms", rep.referrals_fetched,
		    rep.referrals_failed, rep.fetched, rep.pending, rep.blocked, rep.failed, rep.too_big,
		    rep.forms);
	}
	if (err < 0)
		return err;
	return rep.referrals_fetched + rep.fetched;
}

static void
log_outcomes(const struct ras_ers_outcome_report *rep)
{
	for (size_t i = 0; i < rep->n; i++) {
		const struct ras_ers_outcome_result *r = &rep->v[i];
		char iid[24];
		struct ras_log_field f[] = { { "STAGE", "ers-outcome" }, { "UBRN", r->ubrn },
			{ "INTENT_ID", iid }, { NULL, NULL } };
		bool bad = strcmp(r->state, "parked") == 0 || strcmp(r->state, "overtaken") == 0 ||
		    strcmp(r->state, "not-offered") == 0 || strcmp(r->state, "unknown") == 0 ||
		    strcmp(r->state, "retry") == 0;

		snprintf(iid, sizeof(iid), "%lld", (long long)r->intent_id);
		ras_log_fields(bad ? RAS_LOG_WARNING : RAS_LOG_INFO, f, "e-RS outcome %s for %s: %s (%s)",
		    r->review_outcome, r->ubrn, r->state, r->message);
	}
}

static int
ers_outcome_recover(struct ras_db *db, int64_t now, void *state)
{
	int n = 0, err;

	(void)state;
	if ((err = ras_ers_outcome_recover(db, now, &n)) < 0)
		return err;
	if (n) {
		struct ras_log_field f[] = { { "STAGE", "ers-outcome" }, { NULL, NULL } };

		ras_log_fields(RAS_LOG_NOTICE, f, "%d e-RS outcome(s) left in flight by a stopped rasd:"
		    " e-RS is read before anything is sent again", n);
	}
	return 0;
}

static int
ers_outcome_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	struct ras_ers_outcome_report rep;
	int err, n;

	/* Another instance may have died mid-write since we started. */
	if ((err = ers_outcome_recover(db, now, state)) < 0)
		return err;
	memset(&rep, 0, sizeof(rep));
	err = ras_ers_outcome_pending(ras_runtime_ers(p->rt), db, now, limit, &rep);
	log_outcomes(&rep);
	n = (int)rep.n;
	ras_ers_outcome_report_free(&rep);
	return err < 0 ? err : n;
}

static void
ers_poller_free(void *v)
{
	free(v);
}

static int
ers_configure(const struct ras_config *cfg, struct ras_unit_sink *sink, struct ras_buf *problems)
{
	struct pipeline *p = pipeline_of(cfg, sink, problems);
	const struct ras_ers_service *svcs = NULL;
	struct ras_ers *ers;
	ras_unit_workday_fn workday = ras_calendar_workday;
	void *cal;
	size_t nsvc;
	int err;

	if (p == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (p->rt == NULL || (ers = ras_runtime_ers(p->rt)) == NULL)
		return 0;   /* reported by normalise, or [ers] base_url unset: e-RS is off */
	/* The pollers' slots fall on the days the client polls: the triage
	 * calendar's working days (the runtime gave it to the client), or
	 * every day with [ers] poll_days = all. */
	cal = (void *)ras_runtime_calendar(p->rt);
	if (ras_ers_every_day(ers))
		workday = every_day;
	{
		struct ras_unit_spec o = { .name = "ers-outcome", .run = ers_outcome_run,
			.recover = ers_outcome_recover, .state = p };

		if ((err = ras_unit_add(sink, &o)) < 0)
			return err;
	}
	nsvc = ras_ers_services(ers, &svcs);
	for (size_t i = 0; i < nsvc; i++) {
		struct ers_poller *x = calloc(1, sizeof(*x));
		char src[RAS_ID_MAX + 8];
		struct ras_unit_spec s = { .name = "ers-poll", .source = src,
			.schedule = ras_config_get(cfg, "ers", NULL, "schedule"), .run = ers_poll_run,
			.workday = workday, .workday_ctx = cal, .free_state = ers_poller_free };

		if (x == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		x->p = p;
		snprintf(x->service, sizeof(x->service), "%s", svcs[i].id);
		snprintf(src, sizeof(src), "ers:%s", svcs[i].id);
		s.state = x;
		if ((err = ras_unit_add(sink, &s)) < 0)
			return err;
	}
	return 0;
}

/* The retry sweep of fetches comes last in the pipeline: it runs at its own
 * pace, and what it brings in wakes every stage. */
static int
ers_fetch_configure(const struct ras_config *cfg, struct ras_unit_sink *sink,
    struct ras_buf *problems)
{
	struct pipeline *p = pipeline_of(cfg, sink, problems);
	struct ras_unit_spec s = { .name = "ers-fetch", .run = ers_fetch_run, .own_pace = true,
		.interval_s = ERS_FETCH_INTERVAL_S };

	if (p == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (p->rt == NULL || ras_runtime_ers(p->rt) == NULL)
		return 0;
	s.state = p;
	return ras_unit_add(sink, &s);
}

/* ---- documents and delivery ----------------------------------------------- */

static const char SQL_DEAD_NOW[] =
    "SELECT o.id::text, o.kind, o.recipient_role, coalesce(o.transport, '-'),"
    " coalesce(r.ubrn, ''), coalesce(o.last_error, '')"
    " FROM outbox o JOIN referrals r ON r.id = o.referral_id"
    " WHERE o.state = 'dead' AND o.updated_at = to_timestamp($1::bigint) ORDER BY o.id LIMIT 100";

/* One line per document that went to the dead letters in this run. */
static void
log_dead(struct ras_db *db, int64_t now, const char *stage)
{
	struct ras_db_res *res = NULL;
	char nowb[24];

	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	if (ras_db_query(db, &res, SQL_DEAD_NOW, 1, &RAS_DB_TEXT(nowb)) < 0)
		return;
	for (int i = 0; i < ras_db_res_rows(res); i++) {
		const char *ubrn = ras_db_res_get(res, i, 4);
		struct ras_log_field f[] = { { "STAGE", stage }, { "OUTBOX_ID", ras_db_res_get(res, i, 0) },
			{ "UBRN", *ubrn ? ubrn : NULL }, { NULL, NULL } };

		ras_log_fields(RAS_LOG_WARNING, f, "document #%s (%s to the %s, %s) is a dead letter: %s"
		    " (rasctl outbox dead; rasctl outbox retry %s)", ras_db_res_get(res, i, 0),
		    ras_db_res_get(res, i, 1), ras_db_res_get(res, i, 2), ras_db_res_get(res, i, 3),
		    ras_db_res_get(res, i, 5), ras_db_res_get(res, i, 0));
	}
	ras_db_res_free(res);
}

static int
render_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	struct ras_outbox_stats st;
	int err;

	(void)limit;
	memset(&st, 0, sizeof(st));
	if ((err = ras_outbox_render_pending(ras_runtime_outbox(p->rt), db, now, &st)) < 0)
		return err;
	if (st.claimed) {
		struct ras_log_field f[] = { { "STAGE", "render" }, { NULL, NULL } };

		ras_log_fields(RAS_LOG_INFO, f, "%d document(s): %d rendered, %d dead, %d cancelled",
		    st.claimed, st.rendered, st.dead, st.cancelled);
	}
	if (st.dead)
		log_dead(db, now, "render");
	return st.claimed;
}

static int
deliver_recover(struct ras_db *db, int64_t now, void *state)
{
	int n = 0, err;

	(void)state;
	if ((err = ras_outbox_recover(db, now, &n)) < 0)
		return err;
	if (n) {
		struct ras_log_field f[] = { { "STAGE", "deliver" }, { NULL, NULL } };

		ras_log_fields(RAS_LOG_NOTICE, f, "%d document(s) left in flight by a stopped rasd:"
		    " checked before any resend", n);
	}
	return 0;
}

static int
deliver_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	struct ras_outbox_stats st;
	int err;

	if ((err = deliver_recover(db, now, state)) < 0)
		return err;
	memset(&st, 0, sizeof(st));
	if ((err = ras_outbox_deliver_pending(ras_runtime_outbox(p->rt), db, now, &st)) < 0)
		return err;
	if (st.claimed) {
		struct ras_log_field f[] = { { "STAGE", "deliver" }, { NULL, NULL } };

		ras_log_fields(st.retried || st.unknown ? RAS_LOG_WARNING : RAS_LOG_INFO, f,
		    "%d document(s): %d delivered, %d to retry, %d unknown (checked next), %d dead",
		    st.claimed, st.delivered, st.retried, st.unknown, st.dead);
	}
	if (st.routes_held || st.routes_back) {
		struct ras_log_field f[] = { { "STAGE", "deliver" }, { NULL, NULL } };
		struct ras_outbox_held h;

		/* the endpoints' addresses are configuration (routes), not
		 * patient data */
		for (size_t i = 0; ras_outbox_deliver_held(ras_runtime_outbox(p->rt), i, &h); i++)
			if (h.since == now && h.refusals == 1)
				ras_log_fields(RAS_LOG_WARNING, f, "endpoint %s refuses connections: its other letters "
				    "wait (their deadlines still run); one tries it again in %lld s",
				    h.address, (long long)(h.next_try - now));
		if (st.routes_back)
			ras_log_fields(RAS_LOG_NOTICE, f, "%d held endpoint(s) answered again: their letters follow",
			    st.routes_back);
	}
	if (st.dead)
		log_dead(db, now, "deliver");
	/* a round cut short by bytes leaves due letters, and a probe that went
	 * through leaves its endpoint's: run again at once */
	return (int)ras_outbox_deliver_work(&st, limit);
}

static int
mesh_poll_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct pipeline *p = state;
	struct ras_mesh_inbox_stats st;
	int err;

	(void)limit;
	memset(&st, 0, sizeof(st));
	err = ras_mesh_inbox_poll(ras_runtime_mesh_inbox(p->rt), db, now, &st);
	if (st.reports || st.received || st.acknowledged) {
		struct ras_log_field f[] = { { "STAGE", "mesh-poll" }, { NULL, NULL } };

		ras_log_fields(st.dead ? RAS_LOG_WARNING : RAS_LOG_INFO, f,
		    "MESH inbox: %d report(s), %d message(s) into intake, %d acknowledged, "
		    "%d document(s) dead", st.reports, st.received, st.acknowledged, st.dead);
	}
	if (st.dead)
		log_dead(db, now, "mesh-poll");
	if (err < 0)
		return err;
	/* ITK3 acknowledgements the poll kept, and overdue ones */
	{
		struct ras_outbox_ack_stats as;

		memset(&as, 0, sizeof(as));
		if ((err = ras_outbox_acks(ras_runtime_outbox(p->rt), db, now, &as)) < 0)
			return err;
		if (as.responses || as.missing) {
			struct ras_log_field f[] = { { "STAGE", "mesh-poll" }, { NULL, NULL } };

			ras_log_fields(as.negative || as.missing || as.unmatched ? RAS_LOG_WARNING : RAS_LOG_INFO,
			    f, "ITK3 acknowledgements: %d response(s), %d matched, %d negative, %d unmatched, "
			    "%d letter(s) without one in time", as.responses, as.matched, as.negative,
			    as.unmatched, as.missing);
		}
		if (as.negative || as.missing)
			log_dead(db, now, "itk3-acks");
		return st.reports + st.received + as.responses;
	}
}

static int
documents_configure(const struct ras_config *cfg, struct ras_unit_sink *sink,
    struct ras_buf *problems)
{
	struct pipeline *p = pipeline_of(cfg, sink, problems);
	int64_t batch = ras_config_int(cfg, "outbox", NULL, "batch_size");
	bool mesh = ras_config_bool(cfg, "mesh", NULL, "enabled");
	int err;

	if (p == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (p->rt == NULL)
		return 0;
	p->documents = mesh || ras_config_get(cfg, "routing", NULL, "table") ||
	    ras_config_bool(cfg, "routing", NULL, "gp_auto_routing") ||
	    ras_config_get(cfg, "outbox", NULL, "print_dir");
	if (!p->documents)
		return 0;   /* no delivery route: letters wait in the outbox (docs/design/delivery.md) */
	{
		struct ras_unit_spec r = { .name = "render", .run = render_run, .state = p,
			.limit = (size_t)batch };
		struct ras_unit_spec d = { .name = "deliver", .run = deliver_run, .recover = deliver_recover,
			.state = p, .limit = (size_t)batch };

		if ((err = ras_unit_add(sink, &r)) < 0 || (err = ras_unit_add(sink, &d)) < 0)
			return err;
	}
	if (mesh) {
		char src[96];
		struct ras_unit_spec m = { .name = "mesh-poll", .source = src, .schedule = MESH_POLL_SCHEDULE,
			.run = mesh_poll_run, .state = p };

		snprintf(src, sizeof(src), "mesh:%s", ras_config_get(cfg, "mesh", NULL, "mailbox") ?
		    ras_config_get(cfg, "mesh", NULL, "mailbox") : "inbox");
		if ((err = ras_unit_add(sink, &m)) < 0)
			return err;
	}
	return 0;
}

/* ---- the registry ------------------------------------------------------ */

const struct ras_stage_def ras_stage_defs[] = {
	{ "normalise", normalise_configure },
	/* PDS (issue 10): demographics for referrals that lack them */
	{ "demographics", demographics_configure },
	/* triage (issue 3): the batch stage that triages referrals in state "new" */
	{ "triage", triage_configure },
	/* e-RS (issue 4): the record-outcome stage and the worklist pollers */
	{ "ers", ers_configure },
	/* documents and delivery (issue 5): render, deliver, the MESH inbox poller */
	{ "documents", documents_configure },
	/* e-RS (issue 4): fetches retried at their own pace */
	{ "ers-fetch", ers_fetch_configure },
	{ NULL, NULL },
};
