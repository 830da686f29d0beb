/* metrics: Prometheus text exposition (see metrics.h). */
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "metrics.h"
#include "ras/buf.h"
#include "ras/ops.h"
#include "ras/outbox.h"
#include "ras/runtime.h"
#include "ras_config.h"
#include "stages.h"

static void
unit_series(struct ras_buf *b, const struct ras_daemon *d, const char *name, const char *type,
    const char *help, int which)
{
	ras_ops_prom_head(b, name, type, help);
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
		ras_ops_prom_sample(b, name, "unit", u->name, num);
	}
}

static void
process_metrics(struct ras_daemon *d, struct ras_buf *b, bool db_up)
{
	const struct ras_stats *s = &d->stats;

	ras_ops_prom_head(b, "rasd_info", "gauge", "This rasd process (value 1).");
	(void)ras_buf_printf(b, "rasd_info{instance=\"");
	ras_ops_prom_escaped(b, d->instance);
	(void)ras_buf_printf(b, "\",version=\"%s\"} 1\n", RAS_VERSION);
	ras_ops_prom_head(b, "rasd_start_time_seconds", "gauge", "When this process started (Unix time).");
	(void)ras_buf_printf(b, "rasd_start_time_seconds %lld\n", (long long)d->started_at);
	ras_ops_prom_head(b, "rasd_ready", "gauge", "1 when serving (configuration, database and schema checked).");
	(void)ras_buf_printf(b, "rasd_ready %d\n", d->ready && !d->stopping ? 1 : 0);
	ras_ops_prom_head(b, "rasd_database_up", "gauge", "1 when the database answered this scrape.");
	(void)ras_buf_printf(b, "rasd_database_up %d\n", db_up ? 1 : 0);
	unit_series(b, d, "rasd_stage_runs_total", "counter", "Batches (stages) and polls (pollers) run.", 0);
	unit_series(b, d, "rasd_stage_rows_total", "counter", "Rows processed by each stage or poller.", 1);
	unit_series(b, d, "rasd_stage_errors_total", "counter", "Failed batches or polls.", 2);
	unit_series(b, d, "rasd_stage_last_success_timestamp_seconds", "gauge",
	    "When each stage or poller last ran without error (Unix time).", 3);
	ras_ops_prom_head(b, "rasd_http_responses_total", "counter", "HTTP responses by status class.");
	for (int c = 1; c <= 5; c++)
		(void)ras_buf_printf(b, "rasd_http_responses_total{class=\"%dxx\"} %llu\n", c,
		    (unsigned long long)s->http[c]);
	ras_ops_prom_head(b, "rasd_http_received_bytes_total", "counter", "Request body bytes taken in by intake.");
	(void)ras_buf_printf(b, "rasd_http_received_bytes_total %llu\n", (unsigned long long)s->http_bytes);
	ras_ops_prom_head(b, "rasd_payloads_received_total", "counter",
	    "Referral payloads this process put in the inbox (HTTP and spool).");
	(void)ras_buf_printf(b, "rasd_payloads_received_total %llu\n", (unsigned long long)s->received);
	ras_ops_prom_head(b, "rasd_epr_messages_recorded_total", "counter", "EPR messages this process recorded.");
	(void)ras_buf_printf(b, "rasd_epr_messages_recorded_total %llu\n",
	    (unsigned long long)s->epr_recorded);
	ras_ops_prom_head(b, "rasd_spool_files_total", "counter", "Spool files handled, by result.");
	(void)ras_buf_printf(b, "rasd_spool_files_total{result=\"done\"} %llu\n"
	    "rasd_spool_files_total{result=\"rejected\"} %llu\n"
	    "rasd_spool_files_total{result=\"unreadable\"} %llu\n", (unsigned long long)s->spool_done,
	    (unsigned long long)s->spool_rejected, (unsigned long long)s->spool_failed);
	ras_ops_prom_head(b, "rasd_config_reloads_total", "counter", "SIGHUP reloads by result.");
	(void)ras_buf_printf(b, "rasd_config_reloads_total{result=\"ok\"} %llu\n"
	    "rasd_config_reloads_total{result=\"failed\"} %llu\n", (unsigned long long)s->reload_ok,
	    (unsigned long long)s->reload_failed);
	{
		const struct ras_runtime *rt = ras_stages_runtime(d->units);
		const struct ras_outbox *o = rt ? ras_runtime_outbox(rt) : NULL;
		struct ras_outbox_held h;
		size_t held = 0;

		while (o && ras_outbox_deliver_held(o, held, &h))
			held++;
		ras_ops_prom_head(b, "rasd_outbox_endpoints_held", "gauge",
		    "FHIR endpoints refusing connections whose letters this process holds back "
		    "(one letter probes each).");
		(void)ras_buf_printf(b, "rasd_outbox_endpoints_held %zu\n", held);
	}
	ras_ops_prom_head(b, "rasd_config_last_reload_success_timestamp_seconds", "gauge",
	    "When the configuration in use was loaded (Unix time).");
	(void)ras_buf_printf(b, "rasd_config_last_reload_success_timestamp_seconds %lld\n",
	    (long long)s->reload_last_ok);
}

int
ras_metrics_render(struct ras_daemon *d, struct ras_buf *out)
{
	struct ras_buf dbpart = RAS_BUF_INIT(0);
	struct ras_db *db = ras_daemon_db(d);
	bool up = false;

	if (db && ras_ops_metrics(db, &dbpart) == 0)
		up = true;
	process_metrics(d, out, up);
	if (up && dbpart.data)
		(void)ras_buf_append(out, dbpart.data, dbpart.len);
	ras_buf_free(&dbpart);
	return 0;
}
