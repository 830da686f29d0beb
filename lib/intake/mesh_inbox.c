/* mesh_inbox: rasd's MESH mailbox as an intake source (see include/ras/mesh_inbox.h). */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras/mesh.h"
#include "ras/mesh_inbox.h"
#include "ras/store.h"
#include "ras/time.h"

struct ras_mesh_inbox {
	struct ras_mesh *mesh;        /* NULL: [mesh] is not enabled */
	struct ras_http *mesh_http;
	bool mesh_owned;              /* ras_mesh_inbox_new made them (else borrowed) */
	int64_t handshake_interval;
	int batch;
};

/* The GPPROVIDER auto-routing errors MESH reports asynchronously
 * (reference/fhir/itk3-stu3/itk3-events-and-mesh-workflows.json). */
static const char *
epl_meaning(const char *code)
{
	static const struct { const char *code, *meaning; } epl[] = {
		{ "EPL-150", "GPPROVIDER routing: several mailboxes match the patient's GP practice" },
		{ "EPL-151", "GPPROVIDER routing: no mailbox matches the patient's GP practice" },
		{ "EPL-152", "GPPROVIDER routing: invalid NHS number" },
		{ "EPL-153", "GPPROVIDER routing: NHS number not found" },
		{ "EPL-154", "GPPROVIDER routing: the NHS number does not match the date of birth and surname" },
	};

	for (size_t i = 0; code && i < sizeof(epl) / sizeof(epl[0]); i++)
		if (strcmp(code, epl[i].code) == 0)
			return epl[i].meaning;
	return NULL;
}

int
ras_mesh_inbox_new_shared(const struct ras_config *cfg, struct ras_mesh *mesh, struct ras_http *http,
    struct ras_mesh_inbox **out)
{
	struct ras_mesh_inbox *in = calloc(1, sizeof(*in));

	*out = NULL;
	if (in == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	in->batch = (int)ras_config_int(cfg, "outbox", NULL, "batch_size");
	in->handshake_interval = ras_config_int(cfg, "mesh", NULL, "handshake_interval");
	in->mesh = mesh;
	in->mesh_http = http;
	*out = in;
	return 0;
}

int
ras_mesh_inbox_new(const struct ras_config *cfg, struct ras_mesh_inbox **out)
{
	struct ras_mesh_inbox *in;
	int err;

	if ((err = ras_mesh_inbox_new_shared(cfg, NULL, NULL, &in)) < 0)
		return err;
	in->mesh_owned = true;
	if ((err = ras_mesh_new_config(cfg, &in->mesh, &in->mesh_http)) < 0) {
		ras_error_context("MESH inbox configuration");
		ras_mesh_inbox_free(in);
		return err;
	}
	*out = in;
	return 0;
}

void
ras_mesh_inbox_free(struct ras_mesh_inbox *in)
{
	if (in == NULL)
		return;
	if (in->mesh_owned) {
		ras_mesh_free(in->mesh);
		ras_http_free(in->mesh_http);
	}
	free(in);
}

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

/* An ITK3 response (*_ACK workflow): kept until the delivery stage has
 * matched it to its letter (ras_outbox_acks). */
static const char SQL_MESH_ITK3_ACK[] =
	"INSERT INTO mesh_inbox (message_id, mailbox, message_type, workflow, local_id, payload, "
	"received_at) VALUES ($1, $2, 'DATA', $3, $4, convert_to($5, 'UTF8'), $6) "
	"ON CONFLICT (message_id) DO NOTHING";

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
ras_mesh_inbox_poll(struct ras_mesh_inbox *in, struct ras_db *db, int64_t now,
    struct ras_mesh_inbox_stats *st)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_db_writes w = { .a = a };
	struct ras_http_request lr, *dl = NULL, *ack = NULL;
	const char **ids = NULL;
	char at[RAS_TIME_STR_MAX];
	struct ras_mesh_meta *meta = NULL;
	bool *keep = NULL;
	struct ras_inbox_item *items = NULL;
	struct ras_inbox_put_result *put = NULL;
	size_t *data = NULL;                 /* the message index of each item */
	size_t n = 0, nack = 0, nitems = 0;
	int err;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	memset(&lr, 0, sizeof(lr));
	if (in->mesh == NULL) {
		ras_arena_free(a);
		return 0;
	}
	ras_time_format_utc(now, at);
	if ((err = ras_mesh_handshake_if_due(in->mesh, in->mesh_http, a, now, in->handshake_interval)) < 0)
		goto done;
	if ((err = ras_mesh_prep_inbox(in->mesh, a, now, &lr)) < 0 ||
	    (err = ras_http_perform(in->mesh_http, &lr, 1)) < 0 ||
	    (err = ras_mesh_inbox_result(a, &lr, &ids, &n)) < 0)
		goto done;
	if (n > (size_t)in->batch)
		n = (size_t)in->batch;
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
		if ((err = ras_mesh_prep_download(in->mesh, a, now, ids[i], 1, &dl[i])) < 0)
			goto done;
	if ((err = ras_http_perform(in->mesh_http, dl, n)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		ras_mesh_meta(&dl[i], &meta[i]);
		keep[i] = dl[i].err == 0 && (dl[i].status == 200 || dl[i].status == 206);
		/* further chunks, one after another (rare for rasd's inbox) */
		for (size_t c = 2; keep[i] && c <= meta[i].nchunks; c++) {
			struct ras_http_request cr;

			if ((err = ras_mesh_prep_download(in->mesh, a, now, ids[i], c, &cr)) < 0 ||
			    (err = ras_http_perform(in->mesh_http, &cr, 1)) < 0)
				goto done;
			if (cr.err || (cr.status != 200 && cr.status != 206) ||
			    ras_buf_append(&dl[i].body_out, cr.body_out.data, cr.body_out.len) < 0)
				keep[i] = false;
			ras_http_request_release(&cr);
		}
	}
	/* Data messages into the intake inbox first, all of this poll's in one
	 * transaction (one commit, not one per message; the inbox
	 * de-duplicates by hash if we see one again). */
	items = ras_arena_calloc(a, n, sizeof(*items));
	put = ras_arena_calloc(a, n, sizeof(*put));
	data = ras_arena_calloc(a, n, sizeof(*data));
	if (!items || !put || !data) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		size_t wl = strlen(meta[i].workflow);
		struct ras_inbox_item *item = &items[nitems];

		if (!keep[i] || strcmp(meta[i].message_type, "REPORT") == 0)
			continue;
		if (wl > 4 && strcmp(meta[i].workflow + wl - 4, "_ACK") == 0) {
			/* ITK3 acknowledgements: not referrals; kept for the delivery
			 * stage to match to their letters (bounded like any payload) */
			if (dl[i].body_out.len > RAS_PAYLOAD_MAX || memchr(dl[i].body_out.data ? dl[i].body_out.data :
			    "", '\0', dl[i].body_out.len))
				ras_db_writes_add(&w, SQL_MESH_DATA, 6, ids[i], ras_mesh_mailbox(in->mesh),
				    meta[i].workflow, meta[i].local_id, NULL, at);
			else
				ras_db_writes_add(&w, SQL_MESH_ITK3_ACK, 6, ids[i], ras_mesh_mailbox(in->mesh),
				    meta[i].workflow, meta[i].local_id, dl[i].body_out.data ? dl[i].body_out.data : "",
				    at);
			if (st)
				st->itk3_responses++;
			continue;
		}
		item->data = dl[i].body_out.data ? dl[i].body_out.data : "";
		item->len = dl[i].body_out.len;
		item->full_size = dl[i].body_out.len;
		item->source = "mesh";
		item->source_ref = ids[i];
		item->content_type = meta[i].content_type[0] ? meta[i].content_type : NULL;
		data[nitems++] = i;
	}
	if (nitems && (err = ras_store_inbox_put(db, items, nitems, put)) < 0)
		goto done;
	for (size_t k = 0; k < nitems; k++) {
		size_t i = data[k];

		ras_db_writes_add(&w, SQL_MESH_DATA, 6, ids[i], ras_mesh_mailbox(in->mesh),
		    meta[i].workflow, meta[i].local_id, ras_arena_printf(a, "%lld", (long long)put[k].id), at);
		if (st)
			st->received++;
	}
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = ras_db_writes_run(db, &w)) < 0) {
		ras_db_rollback(db);
		goto done;
	}
	/* Reports one by one: each says how many documents it killed, and
	 * those are counted (and logged by the caller) as dead letters. */
	for (size_t i = 0; i < n; i++) {
		struct ras_db_param rp[11], fp[2];
		struct ras_db_res *rr = NULL;
		bool error;

		if (!keep[i] || strcmp(meta[i].message_type, "REPORT") != 0)
			continue;
		error = strcmp(meta[i].status_success, "SUCCESS") != 0 ||
		    (meta[i].status_code[0] && strcmp(meta[i].status_code, "00") != 0);
		rp[0] = RAS_DB_TEXT(ids[i]);
		rp[1] = RAS_DB_TEXT(ras_mesh_mailbox(in->mesh));
		rp[2] = RAS_DB_TEXT(meta[i].workflow);
		rp[3] = RAS_DB_TEXT(meta[i].local_id);
		rp[4] = RAS_DB_TEXT(meta[i].linked_id);
		rp[5] = RAS_DB_TEXT(meta[i].status_code);
		rp[6] = RAS_DB_TEXT(meta[i].status_event);
		rp[7] = RAS_DB_TEXT(meta[i].status_success);
		/* an EPL-15x report says why GPPROVIDER routing failed: its meaning goes
		 * into the dead letter beside MESH's own words */
		rp[8] = RAS_DB_TEXT(epl_meaning(meta[i].status_code) ? ras_arena_printf(a, "%s%s%s",
		    epl_meaning(meta[i].status_code), meta[i].status_description[0] ? " - " : "",
		    meta[i].status_description) : meta[i].status_description);
		rp[9] = RAS_DB_TEXT(at);
		rp[10] = RAS_DB_TEXT(error ? "true" : "false");
		fp[0] = RAS_DB_TEXT(ids[i]);
		fp[1] = RAS_DB_TEXT(at);
		if ((err = ras_db_query(db, &rr, SQL_REPORT, 11, rp)) < 0 ||
		    (err = ras_db_query(db, NULL, SQL_REPORT_FOLLOWUP, 2, fp)) < 0) {
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
		if (keep[i] && (err = ras_mesh_prep_ack(in->mesh, a, now, ids[i], &ack[nack++])) < 0)
			goto done;
	if (nack && (err = ras_http_perform(in->mesh_http, ack, nack)) < 0)
		goto done;
	w.n = 0;
	for (size_t i = 0, k = 0; i < n; i++) {
		if (!keep[i])
			continue;
		if (ack[k].err == 0 && ack[k].status == 200) {
			ras_db_writes_add(&w, SQL_MESH_ACKED, 2, ids[i], at);
			if (st)
				st->acknowledged++;
		}
		ras_http_request_release(&ack[k++]);
	}
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = ras_db_writes_run(db, &w)) < 0) {
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
