/*
 * stages: the registry of rasd's stages and pollers, in pipeline order
 * (see stage.h for the interface).
 *
 *   normalise   inbox rows in state "received" -> referrals (foundation)
 *
 * The triage, e-RS (poll, record outcome) and documents (render, deliver,
 * MESH inbox) stages register here as they land, each with its own
 * configure() reading its own configuration section.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/log.h"
#include "ras/store.h"
#include "stage.h"
#include "stages.h"

/* ---- normalise ------------------------------------------------------- */

static const char SQL_REPORT_CONTEXT[] =
    "SELECT i.id::text, i.correlation_id,"
    " (SELECT r.ubrn FROM referrals r WHERE r.payload_id = i.id ORDER BY r.id LIMIT 1)"
    " FROM inbox i WHERE i.id = ANY ($1::bigint[])";

void
ras_stages_log_normalised(struct ras_db *db, const struct ras_normalise_report *rep, size_t n)
{
	struct ras_buf ids = RAS_BUF_INIT(0);
	struct ras_db_res *res = NULL;

	(void)ras_buf_putc(&ids, '{');
	for (size_t i = 0; i < n; i++)
		(void)ras_buf_printf(&ids, "%s%lld", i ? "," : "", (long long)rep[i].payload_id);
	(void)ras_buf_putc(&ids, '}');
	/* Correlation ids and UBRNs for the log fields; a failure here only
	 * costs the fields. */
	if (ids.data == NULL || ras_db_query(db, &res, SQL_REPORT_CONTEXT, 1, &RAS_DB_TEXT(ids.data)) < 0)
		res = NULL;
	for (size_t i = 0; i < n; i++) {
		const struct ras_normalise_report *r = &rep[i];
		const char *corr = NULL, *ubrn = NULL;
		char pid[24];

		snprintf(pid, sizeof(pid), "%lld", (long long)r->payload_id);
		for (int k = 0; res && k < ras_db_res_rows(res); k++)
			if (strcmp(ras_db_res_get(res, k, 0), pid) == 0) {
				corr = ras_db_res_get(res, k, 1);
				ubrn = ras_db_res_get(res, k, 2);
			}
		{
			struct ras_log_field f[] = { { "STAGE", "normalise" }, { "PAYLOAD_ID", pid },
				{ "UBRN", ubrn }, { "CORRELATION_ID", corr }, { NULL, NULL } };

			if (strcmp(r->state, "rejected") == 0 || strcmp(r->state, "partial") == 0)
				ras_log_fields(RAS_LOG_WARNING, f, "payload #%s %s (%s): %s", pid, r->state,
				    r->kind, r->message);
			else if (strcmp(r->state, "received") != 0)
				ras_log_fields(RAS_LOG_INFO, f, "payload #%s %s (%s): %s", pid, r->state,
				    r->kind, r->message);
		}
	}
	ras_db_res_free(res);
	ras_buf_free(&ids);
}

static int
normalise_run(struct ras_db *db, int64_t now, size_t limit, void *state)
{
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;
	int err;

	(void)now;
	(void)state;
	if ((err = ras_store_normalise(db, NULL, 0, limit, &rep, &n)) < 0)
		return err;
	if (n)
		ras_stages_log_normalised(db, rep, n);
	free(rep);
	return (int)n;
}

static int
normalise_configure(const struct ras_config *cfg, struct ras_unit_sink *sink,
    struct ras_buf *problems)
{
	struct ras_unit_spec spec = { .name = "normalise", .run = normalise_run };

	(void)cfg;
	(void)problems;
	return ras_unit_add(sink, &spec);
}

/* ---- the registry ------------------------------------------------------ */

const struct ras_stage_def ras_stage_defs[] = {
	{ "normalise", normalise_configure },
	/* triage (issue 3): the batch stage that triages referrals in state "new" */

	/* e-RS (issue 4): the worklist poller, the record-outcome stage */

	/* documents and delivery (issue 5): render, deliver, the MESH inbox poller */

	{ NULL, NULL },
};
