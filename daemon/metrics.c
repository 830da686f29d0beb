/* metrics: Prometheus text exposition (see metrics.h). */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "metrics.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/ops.h"
#include "ras/timeutil.h"
#include "ras_config.h"

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
	{ "rasd_ers_outcomes", "gauge", "e-RS review-outcome intents by state.", { "state", NULL },
	  "SELECT state, count(*) FROM ers_outcomes GROUP BY 1 ORDER BY 1" },

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
	{ "rasd_dead_letters", "gauge",
	  "Items that need a person: dead documents, parked e-RS outcomes, rejected or partial payloads.",
	  { "queue", NULL },
	  "SELECT 'outbox', count(*) FROM outbox WHERE state = 'dead'"
	  " UNION ALL SELECT 'ers-outcome', count(*) FROM ers_outcomes WHERE state = 'parked'"
	  " UNION ALL SELECT 'inbox', count(*) FROM inbox WHERE state IN ('rejected', 'partial')" },

	{ NULL, NULL, NULL, { NULL }, NULL },
};

static void
put_escaped(struct ras_buf *b, const char *v)
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

static void
head(struct ras_buf *b, const char *name, const char *type, const char *help)
{
	(void)ras_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void
sample1(struct ras_buf *b, const char *name, const char *label, const char *value, const char *num)
{
	(void)ras_buf_printf(b, "%s{%s=\"", name, label);
	put_escaped(b, value);
	(void)ras_buf_printf(b, "\"} %s\n", num);
}

static void
unit_series(struct ras_buf *b, const struct ras_daemon *d, const char *name, const char *type,
    const char *help, int which)
{
	head(b, name, type, help);
	for (size_t i = 0; i < d->stats.nunits; i++) {
		const struct ras_unit_stats *u = &d->stats.units[i];
		char num[32];

		switch (which) {
		case 0: snprintf(num, sizeof(num), "%llu", (unsigned long long)u->runs); break;
		case 1: snprintf(num, sizeof(num), "%llu", (unsigned long long)u->rows); break;
		case 2: snprintf(num, sizeof(num), "%llu", (unsigned long long)u->errors); break;
		default:
			if (u->last_ok == 0)
				continue;
			snprintf(num, sizeof(num), "%lld", (long long)u->last_ok);
			break;
		}
		sample1(b, name, "unit", u->name, num);
	}
}

static void
process_metrics(struct ras_daemon *d, struct ras_buf *b, bool db_up)
{
	const struct ras_stats *s = &d->stats;

	head(b, "rasd_info", "gauge", "This rasd process (value 1).");
	(void)ras_buf_printf(b, "rasd_info{instance=\"");
	put_escaped(b, d->instance);
	(void)ras_buf_printf(b, "\",version=\"%s\"} 1\n", RAS_VERSION);
	head(b, "rasd_start_time_seconds", "gauge", "When this process started (Unix time).");
	(void)ras_buf_printf(b, "rasd_start_time_seconds %lld\n", (long long)d->started_at);
	head(b, "rasd_ready", "gauge", "1 when serving (configuration, database and schema checked).");
	(void)ras_buf_printf(b, "rasd_ready %d\n", d->ready && !d->stopping ? 1 : 0);
	head(b, "rasd_database_up", "gauge", "1 when the database answered this scrape.");
	(void)ras_buf_printf(b, "rasd_database_up %d\n", db_up ? 1 : 0);
	unit_series(b, d, "rasd_stage_runs_total", "counter", "Batches (stages) and polls (pollers) run.", 0);
	unit_series(b, d, "rasd_stage_rows_total", "counter", "Rows processed by each stage or poller.", 1);
	unit_series(b, d, "rasd_stage_errors_total", "counter", "Failed batches or polls.", 2);
	unit_series(b, d, "rasd_stage_last_success_timestamp_seconds", "gauge",
	    "When each stage or poller last ran without error (Unix time).", 3);
	head(b, "rasd_http_responses_total", "counter", "HTTP responses by status class.");
	for (int c = 1; c <= 5; c++)
		(void)ras_buf_printf(b, "rasd_http_responses_total{class=\"%dxx\"} %llu\n", c,
		    (unsigned long long)s->http[c]);
	head(b, "rasd_http_received_bytes_total", "counter", "Request body bytes taken in by intake.");
	(void)ras_buf_printf(b, "rasd_http_received_bytes_total %llu\n", (unsigned long long)s->http_bytes);
	head(b, "rasd_payloads_received_total", "counter",
	    "Referral payloads this process put in the inbox (HTTP and spool).");
	(void)ras_buf_printf(b, "rasd_payloads_received_total %llu\n", (unsigned long long)s->received);
	head(b, "rasd_epr_messages_recorded_total", "counter", "EPR messages this process recorded.");
	(void)ras_buf_printf(b, "rasd_epr_messages_recorded_total %llu\n",
	    (unsigned long long)s->epr_recorded);
	head(b, "rasd_spool_files_total", "counter", "Spool files handled, by result.");
	(void)ras_buf_printf(b, "rasd_spool_files_total{result=\"done\"} %llu\n"
	    "rasd_spool_files_total{result=\"rejected\"} %llu\n"
	    "rasd_spool_files_total{result=\"unreadable\"} %llu\n", (unsigned long long)s->spool_done,
	    (unsigned long long)s->spool_rejected, (unsigned long long)s->spool_failed);
	head(b, "rasd_config_reloads_total", "counter", "SIGHUP reloads by result.");
	(void)ras_buf_printf(b, "rasd_config_reloads_total{result=\"ok\"} %llu\n"
	    "rasd_config_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)s->reload_ok,
	    (unsigned long long)s->reload_failed);
	head(b, "rasd_config_last_reload_success_timestamp_seconds", "gauge",
	    "When the configuration in use was loaded (Unix time).");
	(void)ras_buf_printf(b, "rasd_config_last_reload_success_timestamp_seconds %lld\n",
	    (long long)s->reload_last_ok);
}

static int
db_metrics(struct ras_db *db, struct ras_buf *b)
{
	struct ras_db_res *res = NULL;
	int err;

	{
		struct ras_ops_queue q[16];
		int n = ras_ops_queues(db, q, 16);

		if (n < 0)
			return n;
		head(b, "rasd_queue_depth", "gauge", "Items waiting for each stage.");
		for (int i = 0; i < n; i++) {
			char num[32];

			snprintf(num, sizeof(num), "%lld", (long long)q[i].depth);
			sample1(b, "rasd_queue_depth", "stage", q[i].stage, num);
		}
		head(b, "rasd_queue_oldest_seconds", "gauge", "Age of the oldest item waiting for each stage.");
		for (int i = 0; i < n; i++) {
			char num[32];

			snprintf(num, sizeof(num), "%.3f", q[i].oldest_seconds);
			sample1(b, "rasd_queue_oldest_seconds", "stage", q[i].stage, num);
		}
	}
	for (const struct family *f = families; f->name; f++) {
		int nl = 0;

		while (f->labels[nl])
			nl++;
		if ((err = ras_db_query(db, &res, f->sql, 0, NULL)) < 0)
			return err;
		head(b, f->name, f->type, f->help);
		for (int r = 0; r < ras_db_res_rows(res); r++) {
			(void)ras_buf_puts(b, f->name);
			if (nl) {
				(void)ras_buf_putc(b, '{');
				for (int l = 0; l < nl; l++) {
					(void)ras_buf_printf(b, "%s%s=\"", l ? "," : "", f->labels[l]);
					put_escaped(b, ras_db_res_get(res, r, l));
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

int
ras_metrics_render(struct ras_daemon *d, struct ras_buf *out)
{
	struct ras_buf dbpart = RAS_BUF_INIT(0);
	struct ras_db *db = ras_daemon_db(d);
	bool up = false;

	if (db && db_metrics(db, &dbpart) == 0)
		up = true;
	process_metrics(d, out, up);
	if (up && dbpart.data)
		(void)ras_buf_append(out, dbpart.data, dbpart.len);
	ras_buf_free(&dbpart);
	return 0;
}
