/* outbox_deliver: ready -> delivered over FHIR, MESH or to a print directory
 * (see include/ras/outbox.h). */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ras/arena.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/fhir_client.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras/mesh.h"
#include "ras/json.h"
#include "ras/outbox.h"
#include "ras/pdf.h"

#define MAX_PROFILES 32

#include "outbox_impl.h"

/* The claim of a delivery round, in one short transaction: the due rows'
 * ids and payload sizes first (oldest due first, locked, SKIP LOCKED), then
 * as many of them as RAS_DELIVER_BATCH_BYTES of payloads allow (at least
 * one) are marked 'sending' and read whole.  The sizes are the stored
 * lengths (octet_length reads a toasted value's header, not the value);
 * a printed copy's document counts too, since it is read with it. */
static const char SQL_CLAIM_SIZES[] =
	"SELECT id::text, (coalesce(octet_length(payload), 0)"
	" + CASE WHEN transport = 'file' THEN coalesce(pg_column_size(doc), 0) * 4 ELSE 0 END)::text"
	" FROM outbox WHERE ((state IN ('ready', 'unknown') AND next_attempt_at <= $1) "
	"OR (state = 'sending' AND claimed_at < $1::timestamptz - make_interval(secs => $3))) "
	/* held endpoints ($4): none of their letters; endpoints due a probe
	 * ($5): only the earliest due letter of each (the subquery runs only
	 * when a row of such an endpoint is due) */
	"AND NOT coalesce(transport = 'fhir' AND address = ANY ($4::text[]), false) "
	"AND (NOT coalesce(transport = 'fhir' AND address = ANY ($5::text[]), false) "
	"OR id IN (SELECT DISTINCT ON (p.address) p.id FROM outbox p WHERE p.transport = 'fhir' "
	"AND p.address = ANY ($5::text[]) AND p.state IN ('ready', 'unknown') AND p.next_attempt_at <= $1 "
	"ORDER BY p.address, p.next_attempt_at, p.id)) "
	"ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED";

static const char SQL_CLAIM_READY[] =
	"WITH c AS (SELECT id, state AS prev FROM outbox WHERE id = ANY ($2::bigint[])) "
	"UPDATE outbox o SET state = 'sending', claimed_at = $1, attempts = o.attempts + 1, "
	"updated_at = $1 FROM c WHERE o.id = c.id "
	"RETURNING o.id, c.prev, o.transport, "
	"o.address, o.workflow, o.fhir_mode, o.document_id, o.local_id, o.content_type, "
	"convert_from(o.payload, 'UTF8'), o.attempts, o.mesh_message_id, o.mesh_chunks_done, o.kind, "
	"o.message_id, o.mex_subject, o.mex_local_id, o.service, "
	"CASE WHEN o.transport = 'file' THEN o.doc::text END";

/* Claim a round's rows (the transaction is open): *res the claimed rows,
 * *cut whether due rows were left for the next round by the byte bound. */
static int
claim_round(struct ras_outbox *o, struct ras_db *db, struct ras_arena *a, int64_t now, const char *at,
    struct ras_db_res **res, bool *cut)
{
	struct ras_db_res *sizes = NULL;
	struct ras_db_array held, probe;
	struct ras_buf ids = RAS_BUF_INIT(0);
	size_t bytes = 0;
	int err, n, k;

	*cut = false;
	ras_db_array_init(&held, RAS_DB_ELEM_TEXT);
	ras_db_array_init(&probe, RAS_DB_ELEM_TEXT);
	for (size_t i = 0; i < RAS_DELIVER_HELD_ROUTES_MAX; i++)
		if (o->held[i].used)
			ras_db_array_add_str(o->held[i].next_try > now ? &held : &probe, o->held[i].address);
	if ((err = held.err) < 0 || (err = probe.err) < 0)
		goto out;
	if ((err = ras_db_query(db, &sizes, SQL_CLAIM_SIZES, 5, (struct ras_db_param[]){
	    RAS_DB_TEXT(at), RAS_DB_TEXT(ras_outbox_num(a, o->batch)),
	    RAS_DB_TEXT(ras_outbox_num(a, o->lease)), ras_db_array_param(&held),
	    ras_db_array_param(&probe) })) < 0)
		goto out;
	n = ras_db_res_rows(sizes);
	(void)ras_buf_putc(&ids, '{');
	for (k = 0; k < n; k++) {
		int64_t len = 0;

		(void)ras_db_res_int(sizes, k, 1, &len);
		if (k > 0 && bytes + (size_t)len > RAS_DELIVER_BATCH_BYTES)
			break;
		bytes += (size_t)len;
		(void)ras_buf_printf(&ids, "%s%s", k ? "," : "", ras_db_res_get(sizes, k, 0));
	}
	*cut = k < n;
	ras_db_res_free(sizes);
	if (ras_buf_putc(&ids, '}') < 0)
		err = ras_error_code(RAS_ENOMEM, "out of memory");
	else
		err = ras_db_query(db, res, SQL_CLAIM_READY, 2,
		    (struct ras_db_param[]){ RAS_DB_TEXT(at), RAS_DB_TEXT(ids.data) });
out:
	ras_db_array_free(&held);
	ras_db_array_free(&probe);
	ras_buf_free(&ids);
	return err;
}

enum step { STEP_NONE, STEP_SEND, STEP_TRACK, STEP_LOOKUP, STEP_POST, STEP_WRITE };

struct job {
	const char *id, *transport, *address, *workflow, *fhir_mode, *document_id, *local_id;
	const char *content_type, *payload, *kind, *message_id;
	const char *mex_subject, *mex_local_id;   /* 008: ITK3 rows' MESH headers (NULL: kind, local id) */
	const char *resolved;       /* the mailbox an endpoint lookup found (address "lookup:<ODS>") */
	const char *service, *doc;  /* a patient's copy: its PDF is made from the document */
	bool unknown;               /* the last attempt's outcome is not known */
	bool unreached;             /* FHIR: no connection was made (nothing sent) */
	bool answered;              /* FHIR: the endpoint answered (any status) */
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

/* Write data to <print_dir>/<local id>-<kind>.<ext> (tmp, fsync, rename). */
static int
write_one(struct ras_outbox *o, struct job *j, struct ras_arena *a, const char *ext, const char *data,
    size_t len)
{
	const char *path = ras_arena_printf(a, "%s/%s-%s.%s", o->print_dir, j->local_id, j->kind, ext);
	const char *tmp = ras_arena_printf(a, "%s.tmp", path);
	size_t off = 0;
	int fd;

	if (path == NULL || tmp == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return ras_error_code(RAS_EIO, "could not write to %s: %s", o->print_dir, strerror(errno));
	while (off < len) {
		ssize_t n = write(fd, data + off, len - off);

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

/* A patient's copy: the printable page and the letter as PDF (the same
 * layout GP practices get), both from the stored document. */
static int
write_file(struct ras_outbox *o, struct job *j, struct ras_arena *a)
{
	const struct ras_docprofile *prof;
	struct ras_buf pdf = RAS_BUF_INIT(0);
	json_t *doc;
	int err;

	if ((err = write_one(o, j, a, "html", j->payload, strlen(j->payload))) < 0)
		return err;
	if (j->doc == NULL || j->service == NULL)
		return 0;
	if ((prof = ras_outbox_profile(o, j->service)) == NULL ||
	    (err = ras_json_parse_arena(a, j->doc, strlen(j->doc), RAS_PAYLOAD_MAX, &doc)) < 0 ||
	    (err = ras_pdf_document(a, doc, prof, &(struct ras_pdf_opts){ .patient_copy = true }, &pdf)) < 0)
		return err < 0 ? err : RAS_EINVALID;
	err = write_one(o, j, a, "pdf", pdf.data, pdf.len);
	ras_buf_free(&pdf);
	return err;
}

/* The transfers of a round, in two groups whose results are committed
 * separately: files and FHIR posts first, then MESH (whose answers can take
 * long), so that a crash while MESH answers never repeats a FHIR post that
 * had already been answered. */
enum group { GROUP_DIRECT, GROUP_MESH };

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
		} else if (strncmp(j->address, "lookup:", 7) == 0 && j->resolved == NULL) {
			/* MESH endpoint lookup names the mailbox, then it is sent */
			j->step = STEP_LOOKUP;
			if ((err = ras_mesh_prep_lookup(o->mesh, a, now, j->address + 7, j->workflow, &mreq[nm])) < 0) {
				outcome(o, j, RAS_EINVALID, "lookup", 0, 0);
				continue;
			}
			mmap[nm++] = i;
		} else if (j->unknown && j->mesh_id[0] == '\0') {
			j->step = STEP_TRACK;
			if ((err = ras_mesh_prep_track_local(o->mesh, a, now, j->mex_local_id ? j->mex_local_id :
			    j->local_id, &mreq[nm])) < 0) {
				outcome(o, j, RAS_EINVALID, "track", 0, 0);
				continue;
			}
			mmap[nm++] = i;
		} else {
			struct ras_mesh_send s = { .to = j->resolved ? j->resolved : j->address, .workflow = j->workflow,
				.local_id = j->mex_local_id ? j->mex_local_id : j->local_id,
				.subject = j->mex_subject ? j->mex_subject : j->kind, .content_type = j->content_type,
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
		j->unreached = freq[k].err != 0 && freq[k].unreached;
		j->answered = freq[k].status > 0;
		outcome(o, j, err, "post", freq[k].status, freq[k].seconds);
		if (j->error)
			j->error = ras_arena_strdup(a, j->error);
		ras_http_request_release(&freq[k]);
	}
	for (size_t k = 0; k < nm; k++) {
		struct job *j = &jobs[mmap[k]];
		struct ras_http_request *r = &mreq[k];

		if (j->step == STEP_LOOKUP) {
			char mb[RAS_MESH_ID_MAX];

			err = ras_mesh_lookup_result(r, mb, sizeof(mb));
			if (err == 0) {
				/* found: sent in the next round of this pass */
				j->resolved = ras_arena_strdup(a, mb);
				j->action = "lookup";
			} else {
				ras_error_context("MESH endpoint lookup for %s, workflow %s", j->address + 7, j->workflow);
				/* none or several mailboxes: a person decides */
				outcome(o, j, err == RAS_ENOTFOUND || err == RAS_ECONFLICT ? RAS_EINVALID : err, "lookup",
				    r->status, r->seconds);
			}
		} else if (j->step == STEP_TRACK) {
			struct ras_mesh_tracking t;

			/* an ITK3 row's mex-LocalID is the sender's ODS code, shared by
			 * every letter: its own is the one with its file name */
			err = j->mex_local_id ? ras_mesh_track_result_file(r, mesh_filename(a, j), &t) :
			    ras_mesh_track_result(r, &t);
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

/* The outcomes of a round's finished jobs, one statement for them all
 * (the columns as binary arrays, ras_db_array): each row's new state,
 * error, next attempt, MESH id and chunks, the mailbox a lookup found,
 * and an ITK3 letter delivered now awaits its acknowledgements; then one
 * deliveries row per attempt, in the jobs' order. */
static const char SQL_RESULTS[] =
	"UPDATE outbox o SET state = x.state, last_error = x.error, "
	"next_attempt_at = $8::timestamptz + make_interval(secs => x.delay::double precision), "
	"mesh_message_id = x.mesh_id, mesh_chunks_done = x.chunks::int, "
	"delivered_at = CASE WHEN x.state = 'delivered' THEN $8::timestamptz END, "
	"address = coalesce(x.resolved, o.address), "
	"ack_state = CASE WHEN x.state = 'delivered' AND o.message_format IN ('gp-connect-send-document', "
	"'toc-outpatient-letter') THEN 'awaiting' ELSE o.ack_state END, "
	"updated_at = $8 "
	"FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[]) "
	"AS x(id, state, error, delay, mesh_id, chunks, resolved) WHERE o.id = x.id";

static const char SQL_DELIVERIES[] =
	"INSERT INTO deliveries (outbox_id, attempt, at, transport, action, http_status, outcome, detail, "
	"mesh_message_id, seconds) "
	"SELECT x.id, x.attempt::int, $10::timestamptz, x.transport, x.action, x.http_status::int, x.outcome, "
	"x.detail, x.mesh_id, x.seconds::double precision "
	"FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], "
	"$8::text[], $9::text[]) WITH ORDINALITY AS x(id, attempt, transport, action, http_status, outcome, "
	"detail, mesh_id, seconds, n) ORDER BY x.n";

enum { J_ID, J_STATE, J_ERROR, J_DELAY, J_MESH_ID, J_CHUNKS, J_RESOLVED, J_COLS };
enum { D_ID, D_ATTEMPT, D_TRANSPORT, D_ACTION, D_HTTP_STATUS, D_OUTCOME, D_DETAIL, D_MESH_ID,
	D_SECONDS, D_COLS };

/* Commit the outcome of every finished job not yet recorded, in one
 * transaction. */
static int
write_results(struct ras_outbox *o, struct ras_db *db, struct ras_arena *a, struct job *jobs,
    size_t n, const char *at, struct ras_outbox_stats *st)
{
	struct ras_db_writes w = { .a = a };
	struct ras_db_array u[J_COLS], d[D_COLS];
	struct ras_db_param p[D_COLS + 1];
	size_t todo = 0;
	int err = 0;

	(void)o;
	for (size_t i = 0; i < n; i++)
		if (jobs[i].finished && !jobs[i].written)
			todo++;
	if (todo == 0)
		return 0;
	for (int c = 0; c < J_COLS; c++)
		ras_db_array_init(&u[c], c == J_ID ? RAS_DB_ELEM_INT8 : RAS_DB_ELEM_TEXT);
	for (int c = 0; c < D_COLS; c++)
		ras_db_array_init(&d[c], c == D_ID ? RAS_DB_ELEM_INT8 : RAS_DB_ELEM_TEXT);
	for (size_t i = 0; i < n; i++) {
		struct job *j = &jobs[i];
		const char *outc = j->state;
		int64_t id = 0;

		if (!j->finished || j->written)
			continue;
		if (j->gave_up)
			j->error = ras_arena_printf(a, "gave up after %lld attempts: %s", (long long)j->attempts,
			    j->error ? j->error : "unknown error");
		if (sscanf(j->id, "%" SCNd64, &id) != 1) {
			err = ras_error_code(RAS_EIO, "outbox id \"%.40s\" is not a number", j->id);
			break;
		}
		ras_db_array_add_int(&u[J_ID], id);
		ras_db_array_add_str(&u[J_STATE], j->state);
		ras_db_array_add_str(&u[J_ERROR], j->error);
		ras_db_array_add_str(&u[J_DELAY], ras_outbox_num(a, strcmp(j->state, "delivered") == 0 ||
		    strcmp(j->state, "dead") == 0 ? 0 : j->delay));
		ras_db_array_add_str(&u[J_MESH_ID], j->mesh_id[0] ? j->mesh_id : NULL);
		ras_db_array_add_str(&u[J_CHUNKS], ras_outbox_num(a, (int64_t)j->chunks_done));
		ras_db_array_add_str(&u[J_RESOLVED], j->mesh_id[0] ? j->resolved : NULL);
		if (strcmp(outc, "ready") == 0)
			outc = "retry";
		ras_db_array_add_int(&d[D_ID], id);
		ras_db_array_add_str(&d[D_ATTEMPT], ras_outbox_num(a, j->attempts));
		ras_db_array_add_str(&d[D_TRANSPORT], j->transport);
		ras_db_array_add_str(&d[D_ACTION], j->action ? j->action : "send");
		ras_db_array_add_str(&d[D_HTTP_STATUS], j->http_status ? ras_outbox_num(a, j->http_status) : NULL);
		ras_db_array_add_str(&d[D_OUTCOME], outc);
		ras_db_array_add_str(&d[D_DETAIL], j->error);
		ras_db_array_add_str(&d[D_MESH_ID], j->mesh_id[0] ? j->mesh_id : NULL);
		ras_db_array_add_str(&d[D_SECONDS], ras_arena_printf(a, "%.3f", j->seconds));
		/* the clocks the letter meets (or met), and the event, after its
		 * state is written */
		if (strcmp(j->state, "delivered") == 0 || strcmp(j->state, "dead") == 0) {
			ras_db_writes_add(&w, ras_outbox_sql_deadline, 2, j->id, at);
			ras_db_writes_add(&w, ras_outbox_sql_event, 3, j->id, strcmp(j->state, "delivered") == 0 ?
			    "document-delivered" : "document-dead", j->error);
		}
	}
	for (int c = 0; c < J_COLS && err == 0; c++)
		err = u[c].err;
	for (int c = 0; c < D_COLS && err == 0; c++)
		err = d[c].err;
	if (err == 0 && (err = ras_db_begin(db)) == 0) {
		for (int c = 0; c < J_COLS; c++)
			p[c] = ras_db_array_param(&u[c]);
		p[J_COLS] = RAS_DB_TEXT(at);
		err = ras_db_query(db, NULL, SQL_RESULTS, J_COLS + 1, p);
		if (err == 0) {
			for (int c = 0; c < D_COLS; c++)
				p[c] = ras_db_array_param(&d[c]);
			p[D_COLS] = RAS_DB_TEXT(at);
			err = ras_db_query(db, NULL, SQL_DELIVERIES, D_COLS + 1, p);
		}
		if (err == 0)
			err = ras_db_writes_run(db, &w);
		if (err < 0)
			ras_db_rollback(db);
	}
	for (int c = 0; c < J_COLS; c++)
		ras_db_array_free(&u[c]);
	for (int c = 0; c < D_COLS; c++)
		ras_db_array_free(&d[c]);
	if (err < 0)
		return err;
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

/* ---- endpoints that refuse connections (include/ras/outbox.h) ---------- */

static struct held_route *
held_find(struct ras_outbox *o, const char *address)
{
	for (size_t i = 0; i < RAS_DELIVER_HELD_ROUTES_MAX; i++)
		if (o->held[i].used && strcmp(o->held[i].address, address) == 0)
			return &o->held[i];
	return NULL;
}

/* Any answer from an endpoint releases it (its letters follow at once:
 * st->cut); a round whose letters to an endpoint were all refused a
 * connection holds it, or holds it longer (one back-off step per round). */
static void
held_update(struct ras_outbox *o, const struct job *jobs, size_t n, int64_t now,
    struct ras_outbox_stats *st)
{
	bool stepped[RAS_DELIVER_HELD_ROUTES_MAX] = { false };

	for (size_t i = 0; i < n; i++) {
		struct held_route *h;

		if (!jobs[i].answered || (h = held_find(o, jobs[i].address)) == NULL)
			continue;
		h->used = false;
		if (st) {
			st->routes_back++;
			st->cut = true;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const struct job *j = &jobs[i];
		struct held_route *h;
		bool answered = false;

		if (!j->unreached || strlen(j->address) >= RAS_DELIVER_HELD_URL_MAX)
			continue;
		for (size_t k = 0; k < n && !answered; k++)
			answered = jobs[k].answered && strcmp(jobs[k].address, j->address) == 0;
		if (answered)
			continue;
		if ((h = held_find(o, j->address)) == NULL) {
			for (size_t k = 0; k < RAS_DELIVER_HELD_ROUTES_MAX && h == NULL; k++)
				if (!o->held[k].used)
					h = &o->held[k];
			if (h == NULL)
				continue;   /* full: this one is not held (each letter its own back-off) */
			memset(h, 0, sizeof(*h));
			h->used = true;
			snprintf(h->address, sizeof(h->address), "%s", j->address);
			h->since = now;
			if (st)
				st->routes_held++;
		}
		if (stepped[h - o->held])
			continue;
		stepped[h - o->held] = true;
		h->refusals++;
		h->next_try = now + ras_outbox_backoff(h->refusals, o->backoff_base, o->backoff_max);
	}
}

bool
ras_outbox_deliver_held(const struct ras_outbox *o, size_t i, struct ras_outbox_held *out)
{
	for (size_t k = 0; k < RAS_DELIVER_HELD_ROUTES_MAX; k++) {
		if (!o->held[k].used || i-- > 0)
			continue;
		out->address = o->held[k].address;
		out->since = o->held[k].since;
		out->next_try = o->held[k].next_try;
		out->refusals = o->held[k].refusals;
		return true;
	}
	return false;
}

int
ras_outbox_deliver_pending(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_stats *st)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_db_res *res = NULL;
	struct job *jobs = NULL;
	const char *at;
	bool mesh_ok = true, more, cut = false;
	size_t n = 0;
	int err;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	at = ras_outbox_ts(a, now);
	/* Claim and mark 'sending' in one short transaction: the transfers run
	 * outside it, and a crash leaves 'sending' rows that the lease turns
	 * into 'unknown' (checked, never blindly resent).  What a round holds
	 * is bounded by bytes as well as by [outbox] batch_size. */
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = claim_round(o, db, a, now, at, &res, &cut)) < 0) {
		ras_db_rollback(db);
		goto done;
	}
	if ((err = ras_db_commit(db)) < 0)
		goto done;
	n = (size_t)ras_db_res_rows(res);
	if (st) {
		st->claimed += (int)n;
		st->cut = st->cut || cut;
	}
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
		j->mex_subject = ras_db_res_get(res, (int)i, 15) ? ras_arena_strdup(a, ras_db_res_get(res, (int)i, 15)) : NULL;
		j->mex_local_id = ras_db_res_get(res, (int)i, 16) ? ras_arena_strdup(a, ras_db_res_get(res, (int)i, 16)) : NULL;
		j->service = ras_db_res_get(res, (int)i, 17) ? ras_arena_strdup(a, ras_db_res_get(res, (int)i, 17)) : NULL;
		j->doc = ras_db_res_get(res, (int)i, 18) ? ras_arena_strdup(a, ras_db_res_get(res, (int)i, 18)) : NULL;
		if (j->transport == NULL || j->payload == NULL)
			outcome(o, j, ras_error_code(RAS_EINVALID, "row has no rendered payload"), "send", 0, 0);
		if (strcmp(j->transport ? j->transport : "", "mesh") != 0)
			j->unknown = false;   /* FHIR and files are safe to repeat */
	}
	if (o->mesh) {
		for (size_t i = 0; i < n; i++)
			if (!jobs[i].finished && strcmp(jobs[i].transport, "mesh") == 0) {
				if (ras_mesh_handshake_if_due(o->mesh, o->mesh_http, a, now,
				    o->handshake_interval) < 0)
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
	held_update(o, jobs, n, now, st);
done:
	ras_db_res_free(res);
	ras_arena_free(a);
	return err;
}

size_t
ras_outbox_deliver_work(const struct ras_outbox_stats *st, size_t limit)
{
	size_t n = st->claimed > 0 ? (size_t)st->claimed : 0;

	return st->cut && n < limit ? limit : n;
}
