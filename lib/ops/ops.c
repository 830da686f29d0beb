/* ops: status, queues and the audit trail (see include/ras/ops.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/ops.h"

/* Work waiting per stage: one row of (count, age of the oldest in seconds). */
static const struct {
	const char *stage;
	const char *sql;
} queues[] = {
	{ "normalise", "SELECT count(*), coalesce(extract(epoch FROM now() - min(received_at)), 0)"
	  " FROM inbox WHERE state = 'received'" },
	/* PDS (issue 10): referrals waiting for their demographics; the age is
	 * their triage clock (from receipt), which keeps running while PDS is down */
	{ "demographics", "SELECT count(*), coalesce(extract(epoch FROM now() - min(received_at)), 0)"
	  " FROM referrals WHERE state = 'demographics'" },
	{ "triage", "SELECT count(*), coalesce(extract(epoch FROM now() - min(received_at)), 0)"
	  " FROM referrals WHERE state = 'new'" },
	/* a person's turn: recommendations and reviews awaiting a clinician's decision */
	{ "clinician-review", "SELECT count(*), coalesce(extract(epoch FROM now() - min(d.decided_at)), 0)"
	  " FROM referrals r JOIN current_decisions d ON d.referral_id = r.id WHERE r.state = 'review'" },
	/* e-RS (issue 4): record-outcome intents waiting (in flight and due retries included) */
	{ "ers-outcome", "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
	  " FROM ers_outcomes WHERE state IN ('pending', 'retry', 'unknown', 'sending')" },

	/* documents and delivery (issue 5): render and deliver queues */
	{ "render", "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0)"
	  " FROM outbox WHERE state = 'pending'" },
	{ "deliver", "SELECT count(*), coalesce(extract(epoch FROM now() - min(coalesce(rendered_at,"
	  " created_at))), 0) FROM outbox WHERE state IN ('ready', 'sending', 'unknown')" },

	{ NULL, NULL },
};

int
ras_ops_queues(struct ras_db *db, struct ras_ops_queue *out, size_t max)
{
	size_t n = 0;
	int err;

	for (int i = 0; queues[i].stage && n < max; i++) {
		struct ras_db_res *res = NULL;

		if ((err = ras_db_query(db, &res, queues[i].sql, 0, NULL)) < 0)
			return err;
		out[n].stage = queues[i].stage;
		out[n].depth = 0;
		(void)ras_db_res_int(res, 0, 0, &out[n].depth);
		out[n].oldest_seconds = strtod(ras_db_res_get(res, 0, 1), NULL);
		ras_db_res_free(res);
		n++;
	}
	return (int)n;
}

static int
query_json(struct ras_db *db, const char *sql, int n, const struct ras_db_param *p, json_t **out)
{
	struct ras_db_res *res = NULL;
	const char *v;
	int err;

	*out = NULL;
	if ((err = ras_db_query(db, &res, sql, n, p)) < 0)
		return err;
	v = ras_db_res_get(res, 0, 0);
	err = v ? ras_json_parse(v, strlen(v), 0, out) : ras_error_code(RAS_ERROR, "no result");
	ras_db_res_free(res);
	return err;
}

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
#define TODAY_UK "(now() AT TIME ZONE 'Europe/London')::date"


/* Open same-day GP notification clocks nothing met yet (see ops.h). */
#define SQL_GP_NOTICE_ROWS \
    "SELECT d.id AS deadline_id, coalesce(r.ubrn, r.referral_key) AS ubrn, " TS("d.due_at") " AS due," \
    "  coalesce((SELECT o.state FROM outbox o WHERE o.referral_id = d.referral_id" \
    "            AND o.kind IN ('gp-2ww-notice', 'triage-outcome')" \
    "            ORDER BY (o.kind = 'gp-2ww-notice') DESC, o.id DESC LIMIT 1), 'none') AS notice_state" \
    " FROM deadlines d JOIN referrals r ON r.id = d.referral_id" \
    " WHERE d.kind = 'gp-notification' AND d.met_at IS NULL AND d.cancelled_at IS NULL" \
    "   AND d.due_date <= " TODAY_UK \
    "   AND ((now() AT TIME ZONE 'Europe/London')::time >= $1::time OR d.due_at <= now()" \
    "        OR EXISTS (SELECT 1 FROM outbox o WHERE o.referral_id = d.referral_id" \
    "                   AND o.kind = 'gp-2ww-notice' AND o.state = 'dead'))"

static const char SQL_GP_NOTICE_ALERTS[] =
    "SELECT coalesce(jsonb_agg(x ORDER BY x.due, x.deadline_id), '[]')::text FROM (" SQL_GP_NOTICE_ROWS ") x";

int
ras_ops_gp_notice_alerts(struct ras_db *db, const char *alert_from, json_t **out)
{
	return query_json(db, SQL_GP_NOTICE_ALERTS, 1,
	    (struct ras_db_param[]){ RAS_DB_TEXT(alert_from ? alert_from : RAS_OPS_GP_NOTICE_ALERT_FROM) },
	    out);
}

static const char SQL_STATUS[] =
    "SELECT jsonb_build_object("
    " 'instances', (SELECT coalesce(jsonb_agg(jsonb_build_object('instance', instance, 'host', host,"
    "     'pid', pid, 'version', version, 'started_at', " TS("started_at") ","
    "     'heartbeat_age_seconds', round(extract(epoch FROM now() - heartbeat_at)),"
    "     'heartbeat_seconds', heartbeat_seconds, 'running', running)"
    "     ORDER BY instance, started_at), '[]')"
    "   FROM daemon_instances_live WHERE stopped_at IS NULL OR stopped_at > now() - interval '1 day'),"
    " 'pollers', (SELECT coalesce(jsonb_agg(jsonb_build_object('source', source,"
    "     'last_success_at', " TS("last_success_at") ", 'last_attempt_at', " TS("last_attempt_at") ","
    "     'last_error', last_error) ORDER BY source), '[]') FROM pollers),"
    " 'deadlines', jsonb_build_object("
    "   'breached', (SELECT count(*) FROM deadlines WHERE met_at IS NULL AND cancelled_at IS NULL"
    "                AND due_at < now()),"
    "   'due_today', (SELECT count(*) FROM deadlines WHERE met_at IS NULL AND cancelled_at IS NULL"
    "                AND due_date = (now() AT TIME ZONE 'Europe/London')::date),"
    "   'at_risk', (SELECT coalesce(jsonb_agg(x ORDER BY x.due), '[]') FROM ("
    "     SELECT coalesce(r.ubrn, r.referral_key) AS ubrn, d.kind, d.clause, " TS("d.due_at") " AS due,"
    "       round(extract(epoch FROM d.due_at - now()) / 3600.0, 1) AS hours_left"
    "     FROM deadlines d JOIN referrals r ON r.id = d.referral_id"
    "     WHERE d.met_at IS NULL AND d.cancelled_at IS NULL"
    "       AND d.due_at < now() + make_interval(hours => $1::int)"
    "     ORDER BY d.due_at LIMIT 50) x)),"
    " 'dead_letters', jsonb_build_object("
    "   'inbox_rejected_7d', (SELECT count(*) FROM inbox WHERE state = 'rejected'"
    "                         AND received_at > now() - interval '7 days'),"
    "   'inbox_partial_7d', (SELECT count(*) FROM inbox WHERE state = 'partial'"
    "                        AND received_at > now() - interval '7 days'),"
    "   'inbox_received_over_1h', (SELECT count(*) FROM inbox WHERE state = 'received'"
    "                              AND received_at < now() - interval '1 hour'),"
    "   'outbox_dead', (SELECT count(*) FROM outbox WHERE state = 'dead'),"
    "   'ers_parked', (SELECT count(*) FROM ers_outcomes WHERE state = 'parked')"
    " ),"
    " 'budgets', (SELECT coalesce(jsonb_agg(jsonb_build_object('service', s.service_id,"
    "     'rasd_service', s.rasd_service, 'day', " TODAY_UK ","
    "     'used', (SELECT count(*) FROM ers_worklist_calls c WHERE c.service_id = s.service_id"
    "              AND c.day = " TODAY_UK " AND c.slot IS NOT NULL),"
    "     'calls', (SELECT count(*) FROM ers_worklist_calls c WHERE c.service_id = s.service_id"
    "               AND c.day = " TODAY_UK "),"
    "     'failed_today', (SELECT count(*) FROM ers_worklist_calls c WHERE c.service_id ="
    " s.service_id AND c.day = " TODAY_UK " AND c.outcome = 'failed'),"
    "     'last_poll_at', " TS("s.last_poll_at") ", 'last_poll_outcome', s.last_poll_outcome)"
    "     ORDER BY s.service_id), '[]') FROM ers_services s),"
    " 'deliveries', (SELECT coalesce(jsonb_agg(x ORDER BY x.transport, x.destination), '[]') FROM ("
    "     SELECT transport, destination, sum(delivered) AS delivered, sum(waiting) AS waiting,"
    "       sum(dead) AS dead, sum(failed) AS failed_attempts FROM ("
    "       SELECT o.transport, " RAS_OPS_DESTINATION("o") " AS destination,"
    "         (o.state = 'delivered')::int AS delivered,"
    "         (o.state IN ('ready', 'sending', 'unknown'))::int AS waiting, (o.state = 'dead')::int AS dead,"
    "         (SELECT count(*) FROM deliveries v WHERE v.outbox_id = o.id"
    "           AND v.outcome IN ('retry', 'unknown', 'dead')) AS failed"
    "       FROM outbox o WHERE o.transport IS NOT NULL) y GROUP BY 1, 2) x)"
    ")::text";

/* ITK3 letters by acknowledgement state (schema 008): its own query, the
 * status one being at the length a C string may have. */
static const char SQL_STATUS_ACKS[] =
    "SELECT coalesce(jsonb_object_agg(ack_state, n), '{}')::text FROM (SELECT ack_state, count(*) n"
    " FROM outbox WHERE ack_state IS NOT NULL GROUP BY 1) k";

int
ras_ops_status(struct ras_db *db, int risk_hours, json_t **out)
{
	struct ras_ops_queue q[16];
	json_t *st = NULL, *arr;
	char hours[16];
	int n, err;

	snprintf(hours, sizeof(hours), "%d", risk_hours > 0 ? risk_hours : 24);
	if ((err = query_json(db, SQL_STATUS, 1, &RAS_DB_TEXT(hours), &st)) < 0)
		return err;
	{
		json_t *acks = NULL;

		if ((err = query_json(db, SQL_STATUS_ACKS, 0, NULL, &acks)) < 0 ||
		    (err = ras_json_set_new(ras_json_obj(st, "dead_letters"), "itk3_acks", acks)) < 0) {
			json_decref(st);
			return err;
		}
	}
	if ((n = ras_ops_queues(db, q, 16)) < 0) {
		json_decref(st);
		return n;
	}
	arr = json_array();
	for (int i = 0; arr && i < n; i++)
		(void)ras_json_append_new(arr, json_pack("{s:s, s:I, s:f}", "stage", q[i].stage,
		    "depth", (json_int_t)q[i].depth, "oldest_seconds", q[i].oldest_seconds));
	if ((err = ras_json_set_new(st, "queues", arr)) < 0) {
		json_decref(st);
		return err;
	}
	{
		json_t *alerts = NULL;

		if ((err = ras_ops_gp_notice_alerts(db, NULL, &alerts)) < 0 ||
		    (err = ras_json_set_new(st, "alerts", json_pack("{s:o}", "gp_notice_undelivered",
		    alerts))) < 0) {
			json_decref(st);
			return err;
		}
	}
	*out = st;
	return 0;
}

static const char SQL_TRAIL[] =
    "WITH v AS (SELECT * FROM referrals WHERE referral_key = $1 OR ubrn = $1)"
    " SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM v) THEN NULL ELSE jsonb_build_object("
    " 'referral_key', (SELECT referral_key FROM v LIMIT 1),"
    " 'ubrn', (SELECT ubrn FROM v LIMIT 1),"
    " 'versions', (SELECT jsonb_agg(jsonb_build_object('id', id, 'version', version, 'state', state,"
    "     'service', service, 'source', source, 'payload_id', payload_id,"
    "     'received_at', " TS("received_at") ") ORDER BY version) FROM v),"
    " 'events', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', e.id, 'at', " TS("e.at") ","
    "     'kind', e.kind, 'actor', e.actor, 'payload_id', e.payload_id, 'detail', e.detail)"
    "     ORDER BY e.at, e.id), '[]') FROM events e"
    "     WHERE e.referral_id IN (SELECT id FROM v) OR (e.referral_id IS NULL AND e.ubrn = $1)),"
    " 'decisions', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', d.id, 'at', " TS("d.decided_at") ","
    "     'outcome', d.outcome, 'onward_target', d.onward_target, 'final', d.final,"
    "     'decided_by', d.decided_by, 'ruleset_version', d.ruleset_version,"
    "     'reasons', (SELECT jsonb_agg(jsonb_build_object('rule', x ->> 'rule', 'clause', x ->> 'clause',"
    "                  'stage', x ->> 'stage')) FROM jsonb_array_elements(d.reasons) x))"
    "     ORDER BY d.id), '[]') FROM decisions d WHERE d.referral_id IN (SELECT id FROM v)),"
    " 'deadlines', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', dl.id, 'kind', dl.kind,"
    "     'clause', dl.clause, 'due', " TS("dl.due_at") ", 'met_at', " TS("dl.met_at") ","
    "     'met_by', dl.met_by, 'cancelled_at', " TS("dl.cancelled_at") ","
    "     'late', dl.met_at > dl.due_at OR (dl.met_at IS NULL AND dl.cancelled_at IS NULL"
    "                                       AND dl.due_at < now()))"
    "     ORDER BY dl.due_at, dl.id), '[]') FROM deadlines dl WHERE dl.referral_id IN (SELECT id FROM v)),"
    " 'epr_events', (SELECT coalesce(jsonb_agg(jsonb_build_object('id', p.id, 'kind', p.kind,"
    "     'at', " TS("p.occurred_at") ", 'mode', p.mode, 'first_appointment', p.first_appointment,"
    "     'patient_choice', p.patient_choice, 'target', p.target, 'actor', p.actor,"
    "     'message_id', p.message_id, 'decision_id', p.decision_id)"
    "     ORDER BY p.occurred_at, p.id), '[]') FROM epr_events p WHERE p.referral_id IN (SELECT id FROM v))"
    ") END::text";

int
ras_ops_trail(struct ras_db *db, const char *what, json_t **out)
{
	struct ras_db_res *res = NULL;
	const char *v;
	int err;

	*out = NULL;
	if ((err = ras_db_query(db, &res, SQL_TRAIL, 1, &RAS_DB_TEXT(what))) < 0)
		return err;
	v = ras_db_res_get(res, 0, 0);
	if (v == NULL)
		err = ras_error_code(RAS_ENOTFOUND, "no referral with UBRN or key \"%.60s\"", what);
	else
		err = ras_json_parse(v, strlen(v), 0, out);
	ras_db_res_free(res);
	return err;
}

/* --- metrics (Prometheus text, rasd's /metrics) -------------------------- */

/* A gauge family read from the database. */
struct family {
	const char *name;
	const char *type;        /* gauge, counter */
	const char *help;
	const char *labels[3];   /* label names, NULL-terminated; the SQL returns these columns first */
	const char *sql;         /* … then the value */
};

static const struct family families[] = {
	{ "rasd_referrals", "gauge", "Stored referral versions by state.", { "state", NULL },
	  "SELECT state, count(*) FROM referrals GROUP BY state ORDER BY state" },
	{ "rasd_inbox_payloads", "gauge",
	  "Received payloads by state (rejected and partial ones are intake's dead letters).",
	  { "state", NULL }, "SELECT state, count(*) FROM inbox GROUP BY state ORDER BY state" },
	{ "rasd_decisions", "gauge", "Current decisions by outcome and whether final.",
	  { "outcome", "final", NULL },
	  "SELECT outcome, final::text, count(*) FROM current_decisions GROUP BY 1, 2 ORDER BY 1, 2" },
	{ "rasd_deadlines_due_today", "gauge", "Open deadlines due today (UK civil date) by kind.",
	  { "kind", NULL },
	  "SELECT kind, count(*) FROM deadlines WHERE met_at IS NULL AND cancelled_at IS NULL"
	  " AND due_date = (now() AT TIME ZONE 'Europe/London')::date GROUP BY kind ORDER BY kind" },
	{ "rasd_deadlines_breached", "gauge", "Open deadlines already past due, by kind.",
	  { "kind", NULL },
	  "SELECT kind, count(*) FROM deadlines WHERE met_at IS NULL AND cancelled_at IS NULL"
	  " AND due_at < now() GROUP BY kind ORDER BY kind" },
	{ "rasd_gp_notice_undelivered", "gauge",
	  "Two-week-wait GP notices due today (or overdue) that nothing has delivered, from "
	  RAS_OPS_GP_NOTICE_ALERT_FROM " UK time or once dead: act before the working day ends.",
	  { NULL },
	  "SELECT count(*) FROM deadlines d"
	  " WHERE d.kind = 'gp-notification' AND d.met_at IS NULL AND d.cancelled_at IS NULL"
	  "   AND d.due_date <= (now() AT TIME ZONE 'Europe/London')::date"
	  "   AND ((now() AT TIME ZONE 'Europe/London')::time >= '" RAS_OPS_GP_NOTICE_ALERT_FROM "'::time"
	  "        OR d.due_at <= now() OR EXISTS (SELECT 1 FROM outbox o WHERE o.referral_id = d.referral_id"
	  "                   AND o.kind = 'gp-2ww-notice' AND o.state = 'dead'))" },
	{ "rasd_deadlines_met_late", "gauge", "Deadlines met after they fell due, by kind.",
	  { "kind", NULL },
	  "SELECT kind, count(*) FROM deadlines WHERE met_at > due_at GROUP BY kind ORDER BY kind" },
	{ "rasd_epr_events", "gauge", "EPR events recorded, by kind.", { "kind", NULL },
	  "SELECT kind, count(*) FROM epr_events GROUP BY kind ORDER BY kind" },
	{ "rasd_poll_last_success_timestamp_seconds", "gauge",
	  "When each source was last polled successfully (Unix time).", { "source", NULL },
	  "SELECT source, extract(epoch FROM last_success_at) FROM pollers"
	  " WHERE last_success_at IS NOT NULL ORDER BY source" },
	{ "rasd_poll_failures", "gauge", "Failed polls per source since it was first polled.",
	  { "source", NULL },
	  "SELECT source, attempts - successes FROM pollers ORDER BY source" },
	{ "rasd_decisions_made", "gauge",
	  "Decisions recorded (every version, never overwritten) by outcome and who made them.",
	  { "outcome", "decided_by", NULL },
	  "SELECT outcome, CASE WHEN decided_by = 'rules' THEN 'rules' ELSE 'clinician' END, count(*)"
	  " FROM decisions GROUP BY 1, 2 ORDER BY 1, 2" },
	/* e-RS (issue 4) */
	{ "rasd_ers_budget_used", "gauge",
	  "A008 worklist calls today (UK date) that took one of the service's two budget slots.",
	  { "service", NULL },
	  "SELECT s.service_id, (SELECT count(*) FROM ers_worklist_calls c WHERE c.service_id = s.service_id"
	  " AND c.day = (now() AT TIME ZONE 'Europe/London')::date AND c.slot IS NOT NULL)"
	  " FROM ers_services s ORDER BY 1" },
	{ "rasd_ers_last_worklist_timestamp_seconds", "gauge",
	  "When each e-RS service's worklist was last fetched successfully (Unix time).", { "service", NULL },
	  "SELECT service_id, extract(epoch FROM max(finished_at)) FROM ers_worklist_calls"
	  " WHERE outcome = 'ok' GROUP BY 1 ORDER BY 1" },
	{ "rasd_ers_worklist_calls_failed", "gauge",
	  "A008 worklist calls that failed, or were left unanswered by a rasd that stopped, per service"
	  " (today, UK date; each one cost a budget slot).",
	  { "service", "reason", NULL },
	  "SELECT service_id, CASE WHEN error LIKE 'left unanswered%' THEN 'unanswered' ELSE 'failed' END,"
	  " count(*) FROM ers_worklist_calls WHERE outcome = 'failed'"
	  " AND day = (now() AT TIME ZONE 'Europe/London')::date GROUP BY 1, 2 ORDER BY 1, 2" },
	{ "rasd_ers_outcomes", "gauge", "e-RS review-outcome intents by state.", { "state", NULL },
	  "SELECT state, count(*) FROM ers_outcomes GROUP BY 1 ORDER BY 1" },

	/* PDS (issue 10) */
	{ "rasd_pds_lookups", "gauge", "PDS lookups made (every one stored), by result.", { "result", NULL },
	  "SELECT result, count(*) FROM pds_lookups GROUP BY 1 ORDER BY 1" },
	{ "rasd_pds_waiting_referrals", "gauge",
	  "Referrals waiting for PDS (PDS unavailable or refusing): their triage clocks keep running.",
	  { NULL }, "SELECT count(*) FROM pds_checks WHERE state = 'waiting'" },
	{ "rasd_pds_oldest_waiting_seconds", "gauge",
	  "Age (from receipt) of the oldest referral waiting for PDS, 0 when none.",
	  { NULL }, "SELECT coalesce(extract(epoch FROM now() - min(waiting_since)), 0) FROM pds_checks"
	  " WHERE state = 'waiting'" },

	/* documents and delivery (issue 5) */
	{ "rasd_documents", "gauge", "Outbox documents by kind and state.", { "kind", "state", NULL },
	  "SELECT kind, state, count(*) FROM outbox GROUP BY 1, 2 ORDER BY 1, 2" },
	{ "rasd_documents_delivered", "gauge", "Documents delivered, per transport and destination.",
	  { "transport", "destination", NULL },
	  "SELECT o.transport, " RAS_OPS_DESTINATION("o") ", count(*) FROM outbox o"
	  " WHERE o.state = 'delivered' GROUP BY 1, 2 ORDER BY 1, 2" },
	{ "rasd_delivery_failures", "gauge",
	  "Failed delivery attempts (retried, outcome unknown, or given up), per transport and destination.",
	  { "transport", "destination", NULL },
	  "SELECT o.transport, " RAS_OPS_DESTINATION("o") ", count(*) FROM deliveries v"
	  " JOIN outbox o ON o.id = v.outbox_id WHERE v.outcome IN ('retry', 'unknown', 'dead')"
	  " GROUP BY 1, 2 ORDER BY 1, 2" },
	/* ITK3 (issue 11): acknowledgements of the letters GP systems file */
	{ "rasd_documents_acknowledgement", "gauge",
	  "ITK3 letters by acknowledgement state (awaiting, acknowledged, negative, missing).",
	  { "state", NULL },
	  "SELECT ack_state, count(*) FROM outbox WHERE ack_state IS NOT NULL GROUP BY 1 ORDER BY 1" },
	{ "rasd_documents_ack_codes", "gauge",
	  "ITK3 acknowledgements received, by kind (infrastructure, business) and ITK response code.",
	  { "ack", "code", NULL },
	  "SELECT 'infrastructure', inf_ack_code, count(*) FROM outbox WHERE inf_ack_code IS NOT NULL"
	  " GROUP BY 2 UNION ALL SELECT 'business', bus_ack_code, count(*) FROM outbox"
	  " WHERE bus_ack_code IS NOT NULL GROUP BY 2 ORDER BY 1, 2" },
	{ "rasd_dead_letters", "gauge",
	  "Items that need a person: dead documents, parked e-RS outcomes, rejected or partial payloads.",
	  { "queue", NULL },
	  "SELECT 'outbox', count(*) FROM outbox WHERE state = 'dead'"
	  " UNION ALL SELECT 'ers-outcome', count(*) FROM ers_outcomes WHERE state = 'parked'"
	  " UNION ALL SELECT 'inbox', count(*) FROM inbox WHERE state IN ('rejected', 'partial')" },

	{ NULL, NULL, NULL, { NULL }, NULL },
};

void
ras_ops_prom_escaped(struct ras_buf *b, const char *v)
{
	for (const char *p = v ? v : ""; *p; p++) {
		if (*p == '\\' || *p == '"')
			(void)ras_buf_putc(b, '\\');
		if (*p == '\n') {
			(void)ras_buf_puts(b, "\\n");
			continue;
		}
		(void)ras_buf_putc(b, *p);
	}
}

void
ras_ops_prom_head(struct ras_buf *b, const char *name, const char *type, const char *help)
{
	(void)ras_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void
ras_ops_prom_sample(struct ras_buf *b, const char *name, const char *label, const char *value, const char *num)
{
	(void)ras_buf_printf(b, "%s{%s=\"", name, label);
	ras_ops_prom_escaped(b, value);
	(void)ras_buf_printf(b, "\"} %s\n", num);
}

int
ras_ops_metrics(struct ras_db *db, struct ras_buf *b)
{
	struct ras_db_res *res = NULL;
	int err;

	{
		struct ras_ops_queue q[16];
		int n = ras_ops_queues(db, q, 16);

		if (n < 0)
			return n;
		ras_ops_prom_head(b, "rasd_queue_depth", "gauge", "Items waiting for each stage.");
		for (int i = 0; i < n; i++) {
			char num[32];

			snprintf(num, sizeof(num), "%lld", (long long)q[i].depth);
			ras_ops_prom_sample(b, "rasd_queue_depth", "stage", q[i].stage, num);
		}
		ras_ops_prom_head(b, "rasd_queue_oldest_seconds", "gauge", "Age of the oldest item waiting for each stage.");
		for (int i = 0; i < n; i++) {
			char num[32];

			snprintf(num, sizeof(num), "%.3f", q[i].oldest_seconds);
			ras_ops_prom_sample(b, "rasd_queue_oldest_seconds", "stage", q[i].stage, num);
		}
	}
	for (const struct family *f = families; f->name; f++) {
		int nl = 0;

		while (f->labels[nl])
			nl++;
		if ((err = ras_db_query(db, &res, f->sql, 0, NULL)) < 0)
			return err;
		ras_ops_prom_head(b, f->name, f->type, f->help);
		for (int r = 0; r < ras_db_res_rows(res); r++) {
			(void)ras_buf_puts(b, f->name);
			if (nl) {
				(void)ras_buf_putc(b, '{');
				for (int l = 0; l < nl; l++) {
					(void)ras_buf_printf(b, "%s%s=\"", l ? "," : "", f->labels[l]);
					ras_ops_prom_escaped(b, ras_db_res_get(res, r, l));
					(void)ras_buf_putc(b, '"');
				}
				(void)ras_buf_putc(b, '}');
			}
			(void)ras_buf_printf(b, " %s\n", ras_db_res_get(res, r, nl) ?
			    ras_db_res_get(res, r, nl) : "0");
		}
		ras_db_res_free(res);
		res = NULL;
	}
	return 0;
}
