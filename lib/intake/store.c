/* store: inbox and referral persistence in batches (see include/ras/store.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/form.h"
#include "ras/intake.h"
#include "ras/limits.h"
#include "ras/referral_json.h"
#include "ras/store.h"

/* ---- inbox ---------------------------------------------------------------- */

/* A batch of payloads in one statement: the columns as binary arrays
 * (bodies go as they are, no escaping), inserted in order; each row says
 * what became of it.  A payload already in the inbox (or earlier in the
 * same batch: the insert skips the later one) is a duplicate, answered
 * with the stored id.  A duplicate has the same bytes and the same
 * referral given by the route (ubrn_hint, or none: schema 020), so an
 * e-RS attachment byte-identical to another referral's is kept for its
 * own.  The lookup of older rows reads the statement's snapshot, which
 * holds the rows stored before it and not the ones it inserts.  The
 * statement is ras_inbox_put (schema 022), which keeps its plan for the
 * session. */
static const char SQL_INBOX_PUT[] =
    "SELECT * FROM ras_inbox_put($1::text[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bigint[],"
    " $7::text[], $8::text[], $9::text[], $10::text[])";

enum { P_SHA, P_SOURCE, P_REF, P_TYPE, P_BODY, P_SIZE, P_TRUNC, P_SERVICE, P_UBRN, P_CORR, P_COLS };

/* One statement for items[0..n) (a chunk of the batch); out[i] answers
 * items[i].  The arrays are the caller's, emptied here. */
static int
inbox_put_chunk(struct ras_db *db, struct ras_db_array *col, const struct ras_inbox_item *items, size_t n,
    struct ras_inbox_put_result *out)
{
	struct ras_db_param p[P_COLS];
	struct ras_db_res *res = NULL;
	int err = 0;

	for (int c = 0; c < P_COLS; c++)
		ras_db_array_reset(&col[c]);
	for (size_t i = 0; i < n; i++) {
		const struct ras_inbox_item *it = &items[i];
		char sha[RAS_SHA256_HEX_LEN];

		if (it->sha256)
			snprintf(sha, sizeof(sha), "%s", it->sha256);
		else
			ras_crypto_sha256_hex(it->data, it->len, sha);
		ras_db_array_add_str(&col[P_SHA], sha);
		ras_db_array_add_str(&col[P_SOURCE], it->source ? it->source : "unknown");
		ras_db_array_add_str(&col[P_REF], it->source_ref);
		ras_db_array_add_str(&col[P_TYPE], it->content_type);
		ras_db_array_add(&col[P_BODY], it->data ? it->data : "", it->len);
		ras_db_array_add_int(&col[P_SIZE], (int64_t)(it->full_size ? it->full_size : it->len));
		ras_db_array_add_str(&col[P_TRUNC], it->full_size > it->len ? "true" : "false");
		ras_db_array_add_str(&col[P_SERVICE], it->service_hint);
		ras_db_array_add_str(&col[P_UBRN], it->ubrn_hint);
		ras_db_array_add_str(&col[P_CORR], it->correlation_id);
	}
	for (int c = 0; c < P_COLS; c++) {
		if (col[c].err < 0 && err == 0)
			err = col[c].err;
		p[c] = ras_db_array_param(&col[c]);
	}
	if (err == 0)
		err = ras_db_query(db, &res, SQL_INBOX_PUT, P_COLS, p);
	if (err == 0 && ras_db_res_rows(res) != (int)n)
		err = ras_error_set("could not store %zu payload(s) in the inbox (%d answered)", n,
		    ras_db_res_rows(res));
	for (size_t i = 0; err == 0 && i < n; i++) {
		int64_t ord = 0, id = 0;
		bool inserted = !ras_db_res_isnull(res, (int)i, 1);

		if (!ras_db_res_int(res, (int)i, 0, &ord) || ord != (int64_t)i + 1 ||
		    !ras_db_res_int(res, (int)i, inserted ? 1 : 2, &id)) {
			err = ras_error_set("could not store payload %zu in the inbox", i + 1);
			break;
		}
		out[i].id = id;
		/* new only where it was inserted, and only its first copy in the chunk
		 * (a copy in an earlier chunk is a row stored before) */
		out[i].duplicate = !(inserted && strcmp(ras_db_res_get(res, (int)i, 3), "t") == 0);
		out[i].received = 0;
		if (!out[i].duplicate &&
		    (!ras_db_res_int(res, (int)i, 4, &out[i].received) || out[i].received <= 0)) {
			err = ras_error_set("could not store payload %zu in the inbox (no time kept)", i + 1);
			break;
		}
	}
	ras_db_res_free(res);
	return err;
}

/* Where the chunk starting at items[s] ends: RAS_INBOX_PUT_CHUNK_BYTES of
 * payloads, at least one. */
static size_t
chunk_end(const struct ras_inbox_item *items, size_t n, size_t s)
{
	size_t e = s + 1, bytes = items[s].len;

	while (e < n && bytes + items[e].len <= RAS_INBOX_PUT_CHUNK_BYTES)
		bytes += items[e++].len;
	return e;
}

int
ras_store_inbox_put(struct ras_db *db, const struct ras_inbox_item *items, size_t n,
    struct ras_inbox_put_result *out)
{
	struct ras_db_array col[P_COLS];
	bool one = n > 0 && chunk_end(items, n, 0) == n;
	int err = 0;

	if (n == 0)
		return 0;
	if (n > INT32_MAX)
		return ras_error_code(RAS_EINVALID, "too many payloads for one batch");
	for (int c = 0; c < P_COLS; c++)
		ras_db_array_init(&col[c], c == P_BODY ? RAS_DB_ELEM_BYTEA :
		    c == P_SIZE ? RAS_DB_ELEM_INT8 : RAS_DB_ELEM_TEXT);
	/* One statement is atomic alone (and inside a caller's hold a failure
	 * is the caller's to roll back: ras_receive abandons the group); a
	 * batch of several chunks is one transaction of its own. */
	if (!one && (err = ras_db_begin(db)) < 0)
		goto done;
	for (size_t s = 0, e; err == 0 && s < n; s = e) {
		e = chunk_end(items, n, s);
		err = inbox_put_chunk(db, col, items + s, e - s, out + s);
	}
	if (!one) {
		if (err == 0)
			err = ras_db_commit(db);
		if (err < 0)
			ras_db_rollback(db);
	}
done:
	for (int c = 0; c < P_COLS; c++)
		ras_db_array_free(&col[c]);
	return err;
}

int
ras_store_read_payload(int fd, struct ras_buf *data, uint64_t *size, char *sha256_hex)
{
	struct ras_sha256 *h;
	char chunk[65536];
	struct stat st;
	int err = 0;

	ras_buf_init(data, RAS_PAYLOAD_KEEP_MAX);
	*size = 0;
	/* Held at its size (a spool pass holds up to 200 files at once; grown
	 * by doubling, a 5 KB file took 8 KB).  A file that grows meanwhile
	 * is still read whole: the appends below grow the buffer. */
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    (err = ras_buf_reserve(data, (uint64_t)st.st_size < RAS_PAYLOAD_KEEP_MAX ?
	    (size_t)st.st_size : RAS_PAYLOAD_KEEP_MAX)) < 0)
		return err;
	if ((h = ras_crypto_sha256_new()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = ras_error_code(RAS_EIO, "cannot read: %s", strerror(errno));
			break;
		}
		if (n == 0)
			break;
		ras_crypto_sha256_update(h, chunk, (size_t)n);
		*size += (uint64_t)n;
		if (data->len < RAS_PAYLOAD_KEEP_MAX) {
			size_t room = RAS_PAYLOAD_KEEP_MAX - data->len;

			if ((err = ras_buf_append(data, chunk, (size_t)n < room ? (size_t)n : room)) < 0)
				break;
		}
	}
	ras_crypto_sha256_final(h, sha256_hex);
	return err;
}

/* ---- normalise --------------------------------------------------------- */

/* One statement of a payload's plan. */
enum step_kind {
	STEP_REFERRAL,   /* a referral: ras_store_referral(…), or with others of its run
	                  * ras_store_referrals(…) */
	STEP_OTHER,      /* anything whose result is only checked for success */
};

struct step {
	enum step_kind kind;
	const char *sql;
	int nparams;
	struct ras_db_param params[6];
	const char *label;   /* "referral 000000070000 v5" for messages */
	const char *ubrn;    /* STEP_REFERRAL: its UBRN (NULL: a local key) */
	/* STEP_REFERRAL: what the store made of it */
	int64_t referral_id;
	const char *outcome; /* created, merged, revised, duplicate (static) */
	/* STEP_REFERRAL, when a handover is filled: the document as sent (the
	 * chunk's arena holds the reference) and the length of its text */
	json_t *doc;
	size_t doc_len;
};

/* One statement of a chunk as sent: a step on its own, or a run of
 * consecutive referral steps stored by one ras_store_referrals call. */
struct call {
	struct step *one;     /* a step on its own */
	struct step **run;    /* or a run of referral steps, in batch order */
	size_t nrun;
};

struct plan {
	int64_t id;
	const char *kind;
	const char *state;       /* final inbox state, before store outcomes */
	const char *error;       /* rejection reason */
	struct ras_buf notes;    /* extra message text (skipped, refused) */
	struct step *steps;
	size_t nsteps, capsteps;
	struct ras_normalise_report *report;
	const char *id_text;
	const char *service_hint;
	int64_t received;        /* inbox.received_at, whole seconds */
	/* a handover is filled: referral steps keep their trees while this
	 * many bytes of their text are left of its bound (NULL: none kept) */
	size_t *keep_budget;
};

static const char SQL_STORE_REFERRAL[] =
    "SELECT referral_id, outcome FROM ras_store_referral($1::bigint, $2::jsonb, $3, $4,"
    " (SELECT received_at FROM inbox WHERE id = $1::bigint))";

/* A run of referrals (schema/013): one row per item, by ordinal. */
static const char SQL_STORE_REFERRALS[] =
    "SELECT ordinal, referral_id, outcome FROM ras_store_referrals($1::jsonb)";

static const char SQL_STORE_DOCREF[] =
    "INSERT INTO attachments AS t (referral_id, ubrn, url, title, content_type, declared_size,"
    "  availability, type, attached_by, attached_by_org)"
    " SELECT (SELECT id FROM referrals WHERE ubrn = $1"
    "   ORDER BY (state = 'superseded'), version DESC LIMIT 1), $1,"
    "  d ->> 'url', d ->> 'title', d ->> 'content_type', (d ->> 'size')::bigint,"
    "  d ->> 'availability', d ->> 'type', d ->> 'attached_by', d ->> 'attached_by_org'"
    " FROM (SELECT $2::jsonb AS d) x"
    " ON CONFLICT (ubrn, url) WHERE ubrn IS NOT NULL DO UPDATE SET"
    "  availability = EXCLUDED.availability,"
    "  referral_id = coalesce(EXCLUDED.referral_id, t.referral_id)";

static const char SQL_STORE_FORM[] =
    "SELECT ras_store_referral_form($1, $2::jsonb, $3::bigint)";

static const char SQL_STORE_OTHER_FORM[] =
    "SELECT ras_store_other_form($1, $2::jsonb, $3::bigint)";

static const char SQL_EVENT[] =
    "INSERT INTO events (referral_id, ubrn, payload_id, kind, actor, detail)"
    " VALUES ($1::bigint, $2, $3::bigint, $4, $5, coalesce($6::jsonb, '{}'::jsonb))";

static const char SQL_INBOX_DONE[] =
    "UPDATE inbox SET state = $2, kind = $3, error = $4, processed_at = now() WHERE id = $1::bigint";

static struct step *
add_step(struct ras_arena *a, struct plan *p, enum step_kind kind, const char *sql)
{
	struct step *s;

	if (p->nsteps == p->capsteps) {
		size_t cap = p->capsteps ? p->capsteps * 2 : 4;
		struct step *ns = ras_arena_calloc(a, cap, sizeof(*ns));

		if (ns == NULL)
			return NULL;
		if (p->nsteps)
			memcpy(ns, p->steps, p->nsteps * sizeof(*ns));
		p->steps = ns;
		p->capsteps = cap;
	}
	s = &p->steps[p->nsteps++];
	memset(s, 0, sizeof(*s));
	s->kind = kind;
	s->sql = sql;
	return s;
}

static const char *
dump_compact(struct ras_arena *a, const json_t *j)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	const char *s = NULL;

	if (ras_json_dump(j, RAS_JSON_COMPACT, &b) == 0)
		s = ras_arena_strndup(a, b.data, b.len);
	ras_buf_free(&b);
	return s;
}

static int
plan_event(struct ras_arena *a, struct plan *p, const char *ubrn, const char *kind,
    const json_t *detail)
{
	struct step *s = add_step(a, p, STEP_OTHER, SQL_EVENT);

	if (s == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	s->nparams = 6;
	s->params[0] = RAS_DB_TEXT(NULL);
	s->params[1] = RAS_DB_TEXT(ubrn);
	s->params[2] = RAS_DB_TEXT(p->id_text);
	s->params[3] = RAS_DB_TEXT(kind);
	s->params[4] = RAS_DB_TEXT("rasd");
	s->params[5] = RAS_DB_TEXT(detail ? dump_compact(a, detail) : NULL);
	return 0;
}

static int
plan_referral(struct ras_arena *a, struct plan *p, const struct ras_referral *r,
    const char *state)
{
	const char *key = ras_referral_key(a, r);
	struct step *s;
	json_t *doc;
	const char *text;
	int err;

	if ((err = ras_referral_json_dump(r, key, &doc)) < 0)
		return err;
	text = dump_compact(a, doc);
	if (p->keep_budget && text && strlen(text) <= *p->keep_budget) {
		/* handed to triage if the store creates it (handover_collect);
		 * within the handover's bound, so that a chunk does not hold the
		 * trees of all its referrals */
		*p->keep_budget -= strlen(text);
		if ((err = ras_json_arena_own(a, doc)) < 0)
			return err;
	} else {
		json_decref(doc);
		doc = NULL;
	}
	if (text == NULL || (s = add_step(a, p, STEP_REFERRAL, SQL_STORE_REFERRAL)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	s->doc = doc;
	s->doc_len = strlen(text);
	s->nparams = 4;
	s->params[0] = RAS_DB_TEXT(p->id_text);
	s->params[1] = RAS_DB_TEXT(text);
	s->params[2] = RAS_DB_TEXT(state);
	s->params[3] = RAS_DB_TEXT(p->service_hint);
	s->ubrn = r->ubrn;
	s->label = ras_arena_printf(a, "referral %s v%lld", r->ubrn ? r->ubrn : key,
	    (long long)(r->version ? r->version : 1));
	return 0;
}

/* Identity checks that make a referral unusable as received. */
static const char *
identity_problem(const struct ras_referral *r)
{
	if (r->patient.nhs_number_status != RAS_NHSNO_OK)
		return ras_nhsno_reason(r->patient.nhs_number_status);
	return NULL;
}

/* What a rejection of a payload that reports danger says (rasctl status,
 * the OperationOutcome and the log show it): a person acts today. */
#define URGENT_REJECTION "URGENT: the referral reports a red flag, suspected cancer or a " \
	"two-week-wait priority: a person must act on it today"

/* Does the referral itself say it is urgent (whatever else is wrong)? */
static bool
urgent_content(const struct ras_referral *r)
{
	if (r->priority == RAS_PRIORITY_TWO_WEEK_WAIT)
		return true;
	if (!r->has_form)
		return false;
	return ras_form_count(&r->form, "red-flags") > 0 ||
	    ras_form_bool(&r->form, "suspected-cancer") == 1;
}

static void
reject(struct plan *p, struct ras_arena *a, const char *reason)
{
	p->state = "rejected";
	p->error = ras_arena_strdup(a, reason);
	p->nsteps = 0;
}

/* Parse one payload and build its statements; never fails for bad input
 * (that becomes a rejection), only for out-of-memory. */
static int
plan_payload(struct ras_arena *a, const struct ras_xmlform_maps *form_maps, struct plan *p,
    const char *body, size_t len, bool truncated, const char *ubrn_hint)
{
	struct ras_intake in;
	int err;

	p->state = "stored";
	if (truncated) {
		reject(p, a, ras_arena_printf(a,
		    "payload is larger than %u bytes; only the first %u bytes were kept",
		    RAS_PAYLOAD_KEEP_MAX, RAS_PAYLOAD_KEEP_MAX));
		return 0;
	}
	ras_error_clear();
	if ((err = ras_intake_parse(a, form_maps, body, len, &in)) < 0) {
		if (err == RAS_ENOMEM)
			return err;
		p->kind = in.kind != RAS_PAYLOAD_UNKNOWN ? ras_referral_payload_kind_name(in.kind) : NULL;
		if (ras_intake_reports_danger(body, len))
			reject(p, a, ras_arena_printf(a, "%s; " URGENT_REJECTION, ras_error_last()));
		else
			reject(p, a, ras_error_last());
		return 0;
	}
	p->kind = ras_referral_payload_kind_name(in.kind);

	switch (in.kind) {
	case RAS_PAYLOAD_FHIR_BUNDLE:
	case RAS_PAYLOAD_ERS_REFERRAL: {
		const struct ras_referral *r = &in.referrals[0];
		const char *why = identity_problem(r);

		if (why) {
			/* A referral that cannot be stored may still be urgent: say so
			 * in the reason, so the person who picks up rejected payloads
			 * (rasctl status, the OperationOutcome, the log) acts today. */
			if (urgent_content(r) || ras_intake_reports_danger(body, len))
				why = ras_arena_printf(a, "%s; " URGENT_REJECTION, why);
			reject(p, a, why);
			return 0;
		}
		return plan_referral(a, p, r, "new");
	}
	case RAS_PAYLOAD_ERS_WORKLIST: {
		int skipped = 0, refused = 0;

		for (size_t i = 0; i < in.n_referrals; i++) {
			const struct ras_referral *r = &in.referrals[i];
			const char *why;

			if (r->ers_referral_type == NULL || strcmp(r->ers_referral_type, "TRIAGE_DEFERRAL") != 0) {
				skipped++;
				continue;
			}
			if (r->version == 0)
				why = "worklist item has no referralRequestVersion";
			else
				why = identity_problem(r);
			if (why) {
				json_t *d = json_pack("{s:i, s:s}", "item", (int)i, "reason", why);

				refused++;
				(void)ras_buf_printf(&p->notes, "; item %zu (UBRN %s) refused: %s", i, r->ubrn, why);
				err = plan_event(a, p, r->ubrn, "worklist-item-refused", d);
				json_decref(d);
				if (err < 0)
					return err;
				continue;
			}
			if ((err = plan_referral(a, p, r, "awaiting-details")) < 0)
				return err;
		}
		p->report->skipped = skipped;
		p->report->refused = refused;
		if (skipped)
			(void)ras_buf_printf(&p->notes, "; %d item(s) skipped (not TRIAGE_DEFERRAL)", skipped);
		if (refused) {
			p->state = refused == (int)in.n_referrals - skipped ? "rejected" : "partial";
			p->error = ras_arena_printf(a, "%d worklist item(s) refused%s", refused,
			    p->notes.data ? p->notes.data : "");
		}
		return 0;
	}
	case RAS_PAYLOAD_ERS_DOCREF: {
		json_t *doc = json_object(), *x;
		struct step *s;
		const struct ras_attachment *at = in.attachment;

		if (doc == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		(void)ras_json_set_str(doc, "url", at->url);
		(void)ras_json_set_str(doc, "title", at->title);
		(void)ras_json_set_str(doc, "content_type", at->content_type);
		(void)ras_json_set_str(doc, "availability", at->availability);
		(void)ras_json_set_str(doc, "type", at->type);
		(void)ras_json_set_str(doc, "attached_by", at->attached_by);
		(void)ras_json_set_str(doc, "attached_by_org", at->attached_by_org);
		if (at->size >= 0 && (x = json_integer(at->size)) != NULL)
			(void)json_object_set_new(doc, "size", x);
		if ((s = add_step(a, p, STEP_OTHER, SQL_STORE_DOCREF)) == NULL) {
			json_decref(doc);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		s->nparams = 2;
		s->params[0] = RAS_DB_TEXT(ubrn_hint);
		s->params[1] = RAS_DB_TEXT(dump_compact(a, doc));
		s->label = ras_arena_printf(a, "attachment %s", at->url);
		json_decref(doc);
		if (ubrn_hint == NULL)
			(void)ras_buf_puts(&p->notes, "; not linked to a referral (no UBRN given)");
		return 0;
	}
	case RAS_PAYLOAD_FORM: {
		json_t *fj;
		struct step *s;

		if (ubrn_hint == NULL) {
			reject(p, a, "a QuestionnaireResponse on its own needs the UBRN of its referral");
			return 0;
		}
		if ((err = ras_form_to_json(in.form, &fj)) < 0)
			return err;
		/* Only a response to rasd's referral form is the referral form; any
		 * other questionnaire (a PHQ-9, say) is kept beside it, never read
		 * as the form (and seen by the safety net). */
		s = add_step(a, p, STEP_OTHER, ras_referral_is_rasd_form(in.form->questionnaire) ?
		    SQL_STORE_FORM : SQL_STORE_OTHER_FORM);
		if (s == NULL) {
			json_decref(fj);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		s->nparams = 3;
		s->params[0] = RAS_DB_TEXT(ubrn_hint);
		s->params[1] = RAS_DB_TEXT(dump_compact(a, fj));
		s->params[2] = RAS_DB_TEXT(p->id_text);
		s->label = ras_arena_printf(a, "form for referral %s", ubrn_hint);
		json_decref(fj);
		return 0;
	}
	case RAS_PAYLOAD_UNKNOWN:
		break;
	}
	reject(p, a, "unsupported payload");
	return 0;
}

/* The JSON items of a run for ras_store_referrals: the documents are the
 * planned text as it is (no second serialisation), the rest escaped. */
static const char *
run_items(struct ras_arena *a, struct step **run, size_t n)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	const char *out = NULL;
	int err = ras_buf_putc(&b, '[');

	for (size_t i = 0; i < n && err == 0; i++) {
		struct step *s = run[i];
		json_t *svc = s->params[3].value ? json_string(s->params[3].value) : json_null();

		if (svc == NULL) {
			err = RAS_ENOMEM;
			break;
		}
		err = ras_buf_printf(&b, "%s{\"payload\":%s,\"state\":\"%s\",\"service\":", i ? "," : "",
		    s->params[0].value, s->params[2].value);
		if (err == 0)
			err = ras_json_dump(svc, RAS_JSON_COMPACT, &b);
		json_decref(svc);
		if (err == 0)
			err = ras_buf_puts(&b, ",\"doc\":");
		if (err == 0)
			err = ras_buf_puts(&b, s->params[1].value);
		if (err == 0)
			err = ras_buf_putc(&b, '}');
	}
	if (err == 0 && ras_buf_putc(&b, ']') == 0)
		out = ras_arena_strndup(a, b.data, b.len);
	ras_buf_free(&b);
	return out;
}

/* Send a call: a run of more than one referral as one ras_store_referrals
 * call, anything else as its own statement. */
static int
send_call(struct ras_db *db, struct ras_arena *a, struct call *c)
{
	const char *items;

	if (c->one)
		return ras_db_pipeline_send(db, c->one->sql, c->one->nparams, c->one->params);
	if ((items = run_items(a, c->run, c->nrun)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	return ras_db_pipeline_send(db, SQL_STORE_REFERRALS, 1, &RAS_DB_TEXT(items));
}

/* Send every step of the chunk in batch order, consecutive referral steps
 * (of one payload or of many) as one call: a chunk of referral Bundles is
 * one statement.  Other steps (a form, an attachment, an event) end a run
 * and keep their place, so a payload still sees every one before it. */
static int
send_steps(struct ras_db *db, struct ras_arena *a, struct plan *plans, size_t n,
    struct call **calls, size_t *ncalls)
{
	size_t nsteps = 0, nc = 0, used = 0;
	struct step **slots;
	struct call *cs;
	int err;

	*ncalls = 0;
	for (size_t i = 0; i < n; i++)
		nsteps += plans[i].nsteps;
	cs = ras_arena_calloc(a, nsteps ? nsteps : 1, sizeof(*cs));
	slots = ras_arena_calloc(a, nsteps ? nsteps : 1, sizeof(*slots));
	if (cs == NULL || slots == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	/* A run's steps are consecutive, so each run takes the next slots. */
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < plans[i].nsteps; k++) {
			struct step *s = &plans[i].steps[k];

			if (s->kind != STEP_REFERRAL) {
				cs[nc++].one = s;
				continue;
			}
			if (nc == 0 || cs[nc - 1].run == NULL)
				cs[nc++].run = &slots[used];
			slots[used++] = s;
			cs[nc - 1].nrun++;
		}
	for (size_t i = 0; i < nc; i++) {
		if (cs[i].run && cs[i].nrun == 1) {   /* on its own: ras_store_referral */
			cs[i].one = cs[i].run[0];
			cs[i].run = NULL;
			cs[i].nrun = 0;
		}
		if ((err = send_call(db, a, &cs[i])) < 0)
			return err;
	}
	*calls = cs;
	*ncalls = nc;
	return 0;
}

static const char *
static_outcome(const char *o)
{
	static const char *const known[] = { "created", "merged", "revised", "duplicate" };

	for (size_t i = 0; o && i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(o, known[i]) == 0)
			return known[i];
	return "duplicate";
}

/* Note the outcome of a referral step from row `row` of a result whose
 * columns `col` and `col + 1` are the referral id and the outcome. */
static void
note_outcome(struct step *s, struct ras_db_res *res, int row, int col)
{
	(void)ras_db_res_int(res, row, col, &s->referral_id);
	s->outcome = static_outcome(ras_db_res_get(res, row, col + 1));
}

/* The ordinals ras_store_referrals answered, each once, for every item. */
static int
note_run(struct call *c, struct ras_db_res *res)
{
	int rows = ras_db_res_rows(res);

	for (size_t k = 0; k < c->nrun; k++)
		c->run[k]->outcome = NULL;
	for (int row = 0; row < rows; row++) {
		int64_t ord = 0;

		if (!ras_db_res_int(res, row, 0, &ord) || ord < 1 || (uint64_t)ord > c->nrun ||
		    c->run[ord - 1]->outcome != NULL)
			return ras_error_code(RAS_ERROR, "ras_store_referrals answered item %lld wrongly",
			    (long long)ord);
		note_outcome(c->run[ord - 1], res, row, 1);
	}
	for (size_t k = 0; k < c->nrun; k++)
		if (c->run[k]->outcome == NULL)
			return ras_error_code(RAS_ERROR, "ras_store_referrals did not answer for %s",
			    c->run[k]->label);
	return 0;
}

static int
collect_calls(struct ras_db *db, struct call *calls, size_t n)
{
	int err = 0, first_err = 0;

	for (size_t i = 0; i < n; i++) {
		struct call *c = &calls[i];
		struct ras_db_res *res = NULL;

		if ((err = ras_db_pipeline_result(db, &res)) < 0) {
			if (first_err == 0) {
				first_err = err;
				if (c->one)
					ras_error_context("%s", c->one->label ? c->one->label : "store");
				else
					ras_error_context("%s and %zu more referral(s) stored as a set",
					    c->run[0]->label, c->nrun - 1);
			}
			continue;
		}
		if (first_err == 0 && c->one && c->one->kind == STEP_REFERRAL)
			note_outcome(c->one, res, 0, 0);
		else if (first_err == 0 && c->run && (err = note_run(c, res)) < 0)
			first_err = err;
		ras_db_res_free(res);
	}
	return first_err;
}

/* A payload's referral outcomes, in the order of its steps. */
static void
tally(struct plan *p)
{
	struct ras_normalise_report *rep = p->report;

	for (size_t k = 0; k < p->nsteps; k++) {
		const struct step *s = &p->steps[k];

		if (s->kind != STEP_REFERRAL)
			continue;
		if (rep->first_referral_id == 0)
			rep->first_referral_id = s->referral_id;
		/* the referral row that now names this payload (payload_id) */
		if (rep->ubrn[0] == '\0' && s->ubrn &&
		    (strcmp(s->outcome, "created") == 0 || strcmp(s->outcome, "revised") == 0))
			snprintf(rep->ubrn, sizeof(rep->ubrn), "%s", s->ubrn);
		if (strcmp(s->outcome, "created") == 0)
			rep->created++;
		else if (strcmp(s->outcome, "merged") == 0)
			rep->merged++;
		else if (strcmp(s->outcome, "revised") == 0)
			rep->revised++;
		else
			rep->duplicates++;
	}
}

static void
finish_report(struct plan *p)
{
	struct ras_normalise_report *rep = p->report;
	int nref = rep->created + rep->merged + rep->revised + rep->duplicates;
	char *m = rep->message;
	size_t sz = sizeof(rep->message);

	rep->state = p->state;
	rep->kind = p->kind ? p->kind : "unknown";
	if (strcmp(p->state, "rejected") == 0 && p->error) {
		snprintf(m, sz, "%s", p->error);
		return;
	}
	if (strcmp(p->state, "stored") == 0 && nref > 0 && rep->duplicates == nref)
		rep->state = p->state = "duplicate";
	if (strcmp(rep->kind, "ers-worklist") == 0)
		snprintf(m, sz, "%d RAS referral(s): %d new, %d merged, %d already stored%s", nref,
		    rep->created, rep->merged, rep->duplicates, p->notes.data ? p->notes.data : "");
	else if (nref == 1)
		snprintf(m, sz, "%s #%lld %s%s", p->steps[0].label, (long long)rep->first_referral_id,
		    rep->created ? "created" : rep->merged ? "merged with the stored version" :
		    rep->revised ? "revised: different content under the same version, the old revision "
		    "kept, triaged again" : "already stored", p->notes.data ? p->notes.data : "");
	else if (p->nsteps > 0)
		snprintf(m, sz, "%s stored%s", p->steps[0].label ? p->steps[0].label : "payload",
		    p->notes.data ? p->notes.data : "");
	else
		snprintf(m, sz, "nothing to store%s", p->notes.data ? p->notes.data : "");
}

/* A JSON string of s; bytes that are not UTF-8 (a reason quoting a
 * malformed payload) become '?' rather than lose the whole reason. */
static json_t *
json_text(const char *s)
{
	json_t *j;
	char *copy;

	if (s == NULL)
		return json_null();
	if ((j = json_string(s)) != NULL)
		return j;
	if ((copy = strdup(s)) == NULL)
		return NULL;
	for (char *c = copy; *c; c++)
		if ((unsigned char)*c >= 0x80)
			*c = '?';
	j = json_string(copy);
	free(copy);
	return j;
}

/* Every payload of the chunk marked, and a payload-rejected event for each
 * rejected one, by one statement (ras_inbox_mark, schema 022).  $2 (the ids
 * again) makes the plan fetch the rows by their key, never scan the inbox,
 * whatever it guesses of the JSON's length. */
static const char SQL_INBOX_DONE_SET[] =
    "SELECT ras_inbox_mark($1::jsonb, $2::bigint[])";

/* The marks of a batch, gathered chunk by chunk (their strings live in the
 * chunks' arenas, freed before the statement): a JSON array for $1 of
 * SQL_INBOX_DONE_SET and the ids' array for $2. */
struct marks {
	struct ras_buf json, ids;
	size_t n;
};

static int
marks_add(struct marks *m, struct plan *plans, size_t n)
{
	json_t *arr = json_array();
	struct ras_buf b = RAS_BUF_INIT(0);
	int err = arr ? 0 : RAS_ENOMEM;

	for (size_t i = 0; i < n && err == 0; i++) {
		const struct plan *p = &plans[i];
		json_t *o = json_object();

		if (o == NULL || ras_json_append_new(arr, o) < 0 ||
		    ras_json_set_new(o, "id", json_integer(p->id)) < 0 ||
		    ras_json_set_new(o, "state", json_text(p->state)) < 0 ||
		    ras_json_set_new(o, "kind", json_text(p->kind)) < 0 ||
		    ras_json_set_new(o, "error", json_text(p->error)) < 0)
			err = RAS_ENOMEM;
	}
	if (err == 0)
		err = ras_json_dump(arr, RAS_JSON_COMPACT, &b);
	json_decref(arr);
	/* "[a,b]" then "[c]": m->json is "[a,b,c" (marks_write closes it) */
	if (err == 0 && n > 0 && b.len >= 2) {
		err = ras_buf_puts(&m->json, m->json.len ? "," : "[");
		if (err == 0)
			err = ras_buf_append(&m->json, b.data + 1, b.len - 2);
	}
	for (size_t i = 0; i < n && err == 0; i++)
		err = ras_buf_printf(&m->ids, "%s%lld", m->n++ ? "," : "{", (long long)plans[i].id);
	ras_buf_free(&b);
	return err == RAS_ENOMEM ? ras_error_code(RAS_ENOMEM, "out of memory") : err;
}

/* Every payload marked, and a payload-rejected event for each rejected one,
 * by one statement. */
static int
marks_write(struct ras_db *db, struct marks *m)
{
	int err;

	if (m->n == 0)
		return 0;
	if ((err = ras_buf_putc(&m->ids, '}')) < 0 || (err = ras_buf_putc(&m->json, ']')) < 0)
		return err;
	return ras_db_query(db, NULL, SQL_INBOX_DONE_SET, 2,
	    (struct ras_db_param[]){ RAS_DB_TEXT(m->json.data), RAS_DB_TEXT(m->ids.data) });
}

static void
marks_free(struct marks *m)
{
	ras_buf_free(&m->json);
	ras_buf_free(&m->ids);
	m->n = 0;
}

static int
mark_inbox(struct ras_db *db, struct plan *plans, size_t n)
{
	struct marks m = { RAS_BUF_INIT(RAS_NORMALISE_MARKS_BYTES), RAS_BUF_INIT(RAS_NORMALISE_MARKS_BYTES),
		0 };
	int err = marks_add(&m, plans, n);

	if (err == 0)
		err = marks_write(db, &m);
	marks_free(&m);
	return err;
}

struct claimed {
	int64_t id;
	int64_t received;        /* received_at, whole seconds (as the triage step reads it) */
	const char *body;
	size_t len;
	bool truncated;
	const char *service_hint, *ubrn_hint, *correlation_id;
};

static const char SQL_CLAIM[] =
    "SELECT id::text, body, truncated::text, service_hint, ubrn_hint, correlation_id,"
    "  floor(extract(epoch FROM received_at))::bigint::text FROM inbox"
    " WHERE state = 'received' AND ($1::bigint[] IS NULL OR id = ANY ($1::bigint[]))"
    " ORDER BY inbox.id LIMIT $2::int FOR UPDATE SKIP LOCKED";

/* What the claims share: $1 the ids (NULL: any row received), $2 the
 * limit; *out gets a row for each row of *res, which the caller reads. */
static int
claim_rows(struct ras_db *db, struct ras_arena *a, const char *sql, bool binary, const int64_t *ids,
    size_t n, size_t limit, struct ras_db_res **res, struct claimed **out, int *rows)
{
	struct ras_buf arr = RAS_BUF_INIT(0);
	struct ras_db_param p[2];
	char lim[24];
	int err = 0;

	*res = NULL;
	*rows = 0;
	if (ids) {
		(void)ras_buf_putc(&arr, '{');
		for (size_t i = 0; i < n; i++)
			(void)ras_buf_printf(&arr, "%s%lld", i ? "," : "", (long long)ids[i]);
		if ((err = ras_buf_putc(&arr, '}')) < 0)
			goto done;
		limit = n;
	}
	snprintf(lim, sizeof(lim), "%zu", limit);
	p[0] = RAS_DB_TEXT(ids ? arr.data : NULL);
	p[1] = RAS_DB_TEXT(lim);
	if ((err = binary ? ras_db_query_binary(db, res, sql, 2, p) : ras_db_query(db, res, sql, 2, p)) < 0)
		goto done;
	*rows = ras_db_res_rows(*res);
	if ((*out = ras_arena_calloc(a, *rows ? (size_t)*rows : 1, sizeof(**out))) == NULL)
		err = ras_error_code(RAS_ENOMEM, "out of memory");
done:
	ras_buf_free(&arr);
	return err;
}

/* Columns 3 to 5 of a claim's row (as text in either format): the hints
 * and the correlation id. */
static void
claimed_hints(struct ras_arena *a, const struct ras_db_res *res, int i, struct claimed *c)
{
	const char **dst[3] = { &c->service_hint, &c->ubrn_hint, &c->correlation_id };

	for (int k = 0; k < 3; k++)
		if (!ras_db_res_isnull(res, i, 3 + k))
			*dst[k] = ras_arena_strndup(a, ras_db_res_get(res, i, 3 + k), ras_db_res_len(res, i, 3 + k));
}

static int
claim(struct ras_db *db, struct ras_arena *a, const int64_t *ids, size_t n, size_t limit,
    struct claimed **out, size_t *nout)
{
	struct ras_db_res *res = NULL;
	int err, rows = 0;

	*nout = 0;
	/* Binary results: the body comes back as raw bytes, the rest as text. */
	if ((err = claim_rows(db, a, SQL_CLAIM, true, ids, n, limit, &res, out, &rows)) < 0)
		goto done;
	for (int i = 0; i < rows; i++) {
		struct claimed *c = &(*out)[i];
		const char *idtxt = ras_arena_strndup(a, ras_db_res_get(res, i, 0), ras_db_res_len(res, i, 0));
		const char *rt = ras_arena_strndup(a, ras_db_res_get(res, i, 6), ras_db_res_len(res, i, 6));

		c->id = idtxt ? strtoll(idtxt, NULL, 10) : 0;
		c->len = ras_db_res_len(res, i, 1);
		c->body = ras_arena_strndup(a, ras_db_res_get(res, i, 1), c->len);
		c->truncated = ras_db_res_get(res, i, 2)[0] == 't';
		claimed_hints(a, res, i, c);
		c->received = rt ? strtoll(rt, NULL, 10) : 0;
		if (c->body == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
	}
	*nout = (size_t)rows;
done:
	ras_db_res_free(res);
	return err;
}

/* The batch's rows as claim() reads them, but not their bodies: the caller
 * has them (known[i] is what ids[i] was kept from, in this transaction:
 * ras_receive, rasctl ingest).  A payload's row is its bytes (a copy found
 * by its SHA-256 is the same bytes, truncated the same way); its length is
 * checked, and a row whose length differs is read back as before.  The
 * statement is ras_inbox_claim_known (schema 022). */
static const char SQL_CLAIM_KNOWN[] =
    "SELECT * FROM ras_inbox_claim_known($1::bigint[], $2::int)";

static int
cmp_claimed(const void *x, const void *y)
{
	const struct claimed *a = x, *b = y;

	return (a->id > b->id) - (a->id < b->id);
}

static int
claim_known(struct ras_db *db, struct ras_arena *a, const int64_t *ids, const struct ras_inbox_item *known,
    const struct ras_inbox_put_result *kept, size_t n, struct claimed **out, size_t *nout)
{
	struct ras_db_res *res = NULL;
	struct claimed *fresh, *got = NULL;
	int64_t *ask;
	size_t nfresh = 0, nask = 0;
	int err = 0, rows = 0;

	*nout = 0;
	fresh = ras_arena_calloc(a, n ? n : 1, sizeof(*fresh));
	ask = ras_arena_calloc(a, n ? n : 1, sizeof(*ask));
	if (fresh == NULL || ask == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	/* A row the caller's ras_store_inbox_put inserted (kept[k]) is this
	 * transaction's own: still received, seen by nobody else, its columns
	 * what the caller gave.  It is taken as it is, without a claim. */
	for (size_t k = 0; kept && k < n; k++)
		if (!kept[k].duplicate && kept[k].received > 0 && kept[k].id == ids[k] && known[k].data) {
			struct claimed *c = &fresh[nfresh++];

			c->id = ids[k];
			c->len = known[k].len;
			c->body = known[k].data;
			c->truncated = known[k].full_size > known[k].len;
			c->service_hint = known[k].service_hint;
			c->ubrn_hint = known[k].ubrn_hint;
			c->correlation_id = known[k].correlation_id;
			c->received = kept[k].received;
		}
	/* the others (kept before, or by another route) are claimed; n is an
	 * HTTP group, a spool pass or a batch of rasctl ingest: 500 at most */
	for (size_t k = 0; k < n; k++) {
		bool have = false;

		for (size_t f = 0; f < nfresh && !have; f++)
			have = fresh[f].id == ids[k];
		for (size_t q = 0; q < nask && !have; q++)
			have = ask[q] == ids[k];
		if (!have)
			ask[nask++] = ids[k];
	}
	if (nask > 0) {
		if ((err = claim_rows(db, a, SQL_CLAIM_KNOWN, false, ask, nask, nask, &res, &got, &rows)) < 0)
			goto done;
		for (int i = 0; i < rows; i++) {
			struct claimed *c = &got[i];
			int64_t len = -1, at = 0;

			(void)ras_db_res_int(res, i, 0, &c->id);
			(void)ras_db_res_int(res, i, 1, &len);
			c->len = len > 0 ? (size_t)len : 0;
			c->truncated = ras_db_res_get(res, i, 2)[0] == 't';
			claimed_hints(a, res, i, c);
			(void)ras_db_res_int(res, i, 6, &at);
			c->received = at;
			for (size_t k = 0; k < n; k++)
				if (ids[k] == c->id && known[k].data && known[k].len == c->len) {
					c->body = known[k].data;
					break;
				}
		}
	}
	/* the batch in id order, as a claim gives it */
	if ((*out = ras_arena_calloc(a, nfresh + (size_t)rows + 1, sizeof(**out))) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	memcpy(*out, fresh, nfresh * sizeof(**out));
	if (rows > 0)
		memcpy(*out + nfresh, got, (size_t)rows * sizeof(**out));
	qsort(*out, nfresh + (size_t)rows, sizeof(**out), cmp_claimed);
	*nout = nfresh + (size_t)rows;
done:
	ras_db_res_free(res);
	return err;
}

/* The batch's ids and sizes only (the bodies are read a chunk at a time,
 * by claim() again: rows this transaction has locked are not skipped). */
static const char SQL_CLAIM_IDS[] =
    "SELECT id::text, octet_length(body)::text FROM inbox"
    " WHERE state = 'received' AND ($1::bigint[] IS NULL OR id = ANY ($1::bigint[]))"
    " ORDER BY inbox.id LIMIT $2::int FOR UPDATE SKIP LOCKED";

static int
claim_ids(struct ras_db *db, struct ras_arena *a, const int64_t *ids, size_t n, size_t limit,
    struct claimed **out, size_t *nout)
{
	struct ras_db_res *res = NULL;
	int err, rows = 0;

	*nout = 0;
	if ((err = claim_rows(db, a, SQL_CLAIM_IDS, false, ids, n, limit, &res, out, &rows)) < 0)
		goto done;
	for (int i = 0; i < rows; i++) {
		int64_t len = 0;

		(void)ras_db_res_int(res, i, 0, &(*out)[i].id);
		(void)ras_db_res_int(res, i, 1, &len);
		(*out)[i].len = (size_t)len;
	}
	*nout = (size_t)rows;
done:
	ras_db_res_free(res);
	return err;
}

/* Each claimed row's plan (rasd's work alone: parsed, checked, its
 * statements built; nothing sent). */
static int
plan_chunk(const struct ras_xmlform_maps *form_maps, struct ras_arena *a, struct claimed *rows, size_t n,
    struct ras_normalise_report *reports, struct plan *plans, size_t *keep_budget)
{
	int err;

	for (size_t i = 0; i < n; i++) {
		struct plan *p = &plans[i];

		memset(p, 0, sizeof(*p));
		ras_buf_init(&p->notes, 4096);
		memset(&reports[i], 0, sizeof(reports[i]));
		reports[i].payload_id = rows[i].id;
		if (rows[i].correlation_id)
			snprintf(reports[i].correlation_id, sizeof(reports[i].correlation_id), "%s",
			    rows[i].correlation_id);
		p->report = &reports[i];
		p->id = rows[i].id;
		p->id_text = ras_arena_printf(a, "%lld", (long long)rows[i].id);
		p->service_hint = rows[i].service_hint;
		p->received = rows[i].received;
		p->keep_budget = keep_budget;
		if ((err = plan_payload(a, form_maps, p, rows[i].body, rows[i].len, rows[i].truncated,
		    rows[i].ubrn_hint)) < 0)
			return err;
	}
	return 0;
}

/* Process claimed rows as one transaction (already begun). */
static int
run_batch(struct ras_db *db, const struct ras_xmlform_maps *form_maps, struct ras_arena *a,
    struct claimed *rows, size_t n, struct ras_normalise_report *reports, struct plan *plans,
    size_t *keep_budget)
{
	struct call *calls = NULL;
	size_t ncalls = 0;
	int err;

	if ((err = plan_chunk(form_maps, a, rows, n, reports, plans, keep_budget)) < 0)
		return err;
	if ((err = ras_db_pipeline_enter(db)) < 0)
		return err;
	if ((err = send_steps(db, a, plans, n, &calls, &ncalls)) < 0 ||
	    (err = ras_db_pipeline_sync(db)) < 0) {
		(void)ras_db_pipeline_exit(db);
		return err;
	}
	err = collect_calls(db, calls, ncalls);
	{
		int e2 = ras_db_pipeline_exit(db);

		if (err == 0)
			err = e2;
	}
	if (err < 0)
		return err;
	for (size_t i = 0; i < n; i++) {
		tally(&plans[i]);
		finish_report(&plans[i]);
	}
	return mark_inbox(db, plans, n);
}

static void
free_plans(struct plan *plans, size_t n)
{
	for (size_t i = 0; plans && i < n; i++)
		ras_buf_free(&plans[i].notes);
}

/* ---- the handover to triage (store.h, struct ras_store_handed) ----------- */

struct payload_ix {
	int64_t payload_id;
	size_t i;                  /* its entry */
};

struct ras_store_handover {
	struct ras_arena *a;       /* the entries' strings and document references */
	struct ras_buf entries;    /* struct ras_store_handed, by referral id once finished */
	struct ras_buf by_payload; /* struct payload_ix, by payload id once finished */
	struct ras_buf touched;    /* int64_t: the referral of every referral step of the batch */
	size_t n, with_doc, doc_bytes;
	bool other;                /* the batch had a step that is not a referral or an event */
};

int
ras_store_handover_new(struct ras_store_handover **out)
{
	struct ras_store_handover *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_buf_init(&h->entries, 0);
	ras_buf_init(&h->by_payload, 0);
	ras_buf_init(&h->touched, 0);
	*out = h;
	return 0;
}

/* Empty it (NULL: nothing to do). */
static void
handover_clear(struct ras_store_handover *h)
{
	if (h == NULL)
		return;
	ras_arena_free(h->a);
	h->a = NULL;
	ras_buf_reset(&h->entries);
	ras_buf_reset(&h->by_payload);
	ras_buf_reset(&h->touched);
	h->n = h->with_doc = h->doc_bytes = 0;
	h->other = false;
}

void
ras_store_handover_free(struct ras_store_handover *h)
{
	if (h == NULL)
		return;
	handover_clear(h);
	ras_buf_free(&h->entries);
	ras_buf_free(&h->by_payload);
	ras_buf_free(&h->touched);
	free(h);
}

static struct ras_store_handed *
handover_at(const struct ras_store_handover *h, size_t i)
{
	return (struct ras_store_handed *)(void *)h->entries.data + i;
}

/* Does the database's jsonb give j back as the same JSON?  Objects lose
 * their key order (the triage step looks keys up, never walks them) and
 * keep everything else, but a decimal that jansson writes with a positive
 * exponent (1e+17 and up) comes back as an integer with all its digits, of
 * another type and perhaps too large for jansson: such a document is read
 * back rather than handed over. */
static bool
jsonb_stable(const json_t *j, int depth)
{
	const char *k;
	json_t *v;
	size_t i;

	if (depth > RAS_JSON_DEPTH_MAX)
		return false;
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		json_object_foreach((json_t *)j, k, v)
			if (!jsonb_stable(v, depth + 1))
				return false;
		return true;
	case JSON_ARRAY:
		json_array_foreach(j, i, v)
			if (!jsonb_stable(v, depth + 1))
				return false;
		return true;
	case JSON_REAL:
		return fabs(json_real_value(j)) < 1e15;
	default:
		return true;
	}
}

/* doc ->> name as the database reads it: *out the string, NULL when absent
 * or null; false when it is of another type (the text the database would
 * give is not at hand). */
static bool
doc_text(const json_t *obj, const char *name, const char **out)
{
	json_t *x = json_is_object(obj) ? json_object_get(obj, name) : NULL;

	*out = NULL;
	if (x == NULL || json_is_null(x))
		return true;
	if (!json_is_string(x))
		return false;
	*out = json_string_value(x);
	return true;
}

/* One created referral of a written chunk as an entry (not yet checked
 * against the rest of the batch: handover_finish): with its document and
 * details when its step kept the tree, else only what receipts use (its
 * UBRN is the document's: ras_referral_json_dump writes r->ubrn). */
static int
handover_add(struct ras_store_handover *h, const struct plan *p, const struct step *s)
{
	struct ras_store_handed e;
	const char *ubrn, *key, *sid;
	json_t *ver = s->doc ? json_object_get(s->doc, "version") : NULL;

	memset(&e, 0, sizeof(e));
	e.referral_id = s->referral_id;
	e.payload_id = p->id;
	e.received = p->received;
	e.kind = p->kind;
	e.whole_payload = p->nsteps == 1 && strcmp(p->state, "stored") == 0 && p->error == NULL;
	if (s->ubrn && (e.ubrn = ras_arena_strdup(h->a, s->ubrn)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (s->doc && doc_text(s->doc, "ubrn", &ubrn) && doc_text(s->doc, "key", &key) && key != NULL &&
	    doc_text(json_object_get(s->doc, "ers"), "service_id", &sid) && json_is_integer(ver) &&
	    h->doc_bytes + s->doc_len <= RAS_HANDOVER_DOC_BYTES && jsonb_stable(s->doc, 0)) {
		e.version = (int64_t)json_integer_value(ver);
		e.key = ras_arena_strdup(h->a, key);
		e.ers_service_id = sid ? ras_arena_strdup(h->a, sid) : NULL;
		e.service = p->service_hint ? ras_arena_strdup(h->a, p->service_hint) : NULL;
		if (e.key == NULL || (sid && e.ers_service_id == NULL) || (p->service_hint && e.service == NULL))
			return ras_error_code(RAS_ENOMEM, "out of memory");
		json_incref(s->doc);
		if (ras_json_arena_own(h->a, s->doc) < 0)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		e.doc = s->doc;
		h->doc_bytes += s->doc_len;
	}
	if (ras_buf_append(&h->entries, &e, sizeof(e)) < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	h->n++;
	return 0;
}

/* The referrals a written chunk created, and every referral it named. */
static int
handover_collect(struct ras_store_handover *h, struct plan *plans, size_t n)
{
	int err;

	if (h->a == NULL && (h->a = ras_arena_new()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < plans[i].nsteps; k++) {
			const struct step *s = &plans[i].steps[k];

			if (s->kind != STEP_REFERRAL) {
				/* a form or an attachment may change a referral of the
				 * batch; an event (a refused worklist item) names none */
				if (s->sql != SQL_EVENT)
					h->other = true;
				continue;
			}
			if (ras_buf_append(&h->touched, &s->referral_id, sizeof(s->referral_id)) < 0)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			if (strcmp(s->outcome, "created") != 0 || strcmp(s->params[2].value, "new") != 0)
				continue;
			if ((err = handover_add(h, &plans[i], s)) < 0)
				return err;
		}
	return 0;
}

static int
cmp_i64(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return a < b ? -1 : a > b;
}

static int
cmp_handed(const void *x, const void *y)
{
	const struct ras_store_handed *a = x, *b = y;

	return a->referral_id < b->referral_id ? -1 : a->referral_id > b->referral_id;
}

static int
cmp_by_payload(const void *x, const void *y)
{
	const struct payload_ix *a = x, *b = y;

	return a->payload_id < b->payload_id ? -1 : a->payload_id > b->payload_id;
}

/* The batch is written and committed: keep the entries nothing else in it
 * named, sorted for the look-ups. */
static int
handover_finish(struct ras_store_handover *h)
{
	const int64_t *t;
	size_t nt, k = 0;

	if (h == NULL)
		return 0;
	if (h->other) {
		handover_clear(h);
		return 0;
	}
	t = (const int64_t *)(void *)h->touched.data;
	nt = h->touched.len / sizeof(*t);
	if (nt > 1)
		qsort((void *)t, nt, sizeof(*t), cmp_i64);
	h->with_doc = 0;
	for (size_t i = 0; i < h->n; i++) {
		struct ras_store_handed *e = handover_at(h, i);
		const int64_t *at = bsearch(&e->referral_id, t, nt, sizeof(*t), cmp_i64);
		bool once = at != NULL && (at == t || at[-1] != e->referral_id) &&
		    (at + 1 == t + nt || at[1] != e->referral_id);

		if (!once)
			continue;   /* another step merged, revised or met it: read back */
		if (k != i)
			*handover_at(h, k) = *e;
		if (handover_at(h, k)->doc)
			h->with_doc++;
		k++;
	}
	h->n = k;
	h->entries.len = k * sizeof(struct ras_store_handed);
	ras_buf_reset(&h->touched);
	if (k > 1)
		qsort(h->entries.data, k, sizeof(struct ras_store_handed), cmp_handed);
	ras_buf_reset(&h->by_payload);
	for (size_t i = 0; i < k; i++) {
		struct payload_ix x = { handover_at(h, i)->payload_id, i };

		if (ras_buf_append(&h->by_payload, &x, sizeof(x)) < 0) {
			handover_clear(h);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
	}
	if (k > 1)
		qsort(h->by_payload.data, k, sizeof(struct payload_ix), cmp_by_payload);
	return 0;
}

const struct ras_store_handed *
ras_store_handover_find(const struct ras_store_handover *h, int64_t referral_id)
{
	const struct ras_store_handed key = { .referral_id = referral_id };

	if (h == NULL || h->n == 0)
		return NULL;
	return bsearch(&key, h->entries.data, h->n, sizeof(key), cmp_handed);
}

const struct ras_store_handed *
ras_store_handover_payload(const struct ras_store_handover *h, int64_t payload_id)
{
	struct payload_ix key = { payload_id, 0 };
	const struct payload_ix *x;
	const struct ras_store_handed *e;

	if (h == NULL || h->n == 0)
		return NULL;
	x = bsearch(&key, h->by_payload.data, h->n, sizeof(key), cmp_by_payload);
	if (x == NULL)
		return NULL;
	e = handover_at(h, x->i);
	return e->whole_payload ? e : NULL;
}

size_t
ras_store_handover_count(const struct ras_store_handover *h, size_t *with_doc)
{
	if (with_doc)
		*with_doc = h ? h->with_doc : 0;
	return h ? h->n : 0;
}

/* A batch's reports are kept, until it commits, packed (ras_buf_pack): the
 * fixed part, then the three strings at their length (~120 bytes a payload
 * instead of the ~830 of a struct ras_normalise_report), so that the
 * reports of a batch of 10,000 take ~1.2 MB whatever batch_size is. */
struct packed_report {
	int64_t payload_id, first_referral_id;
	const char *state, *kind;   /* static strings */
	int created, merged, duplicates, refused, skipped, revised;
};

static int
pack_report(struct ras_buf *pool, const struct ras_normalise_report *r)
{
	const char *str[3] = { r->message, r->ubrn, r->correlation_id };
	struct packed_report pk = { r->payload_id, r->first_referral_id, r->state, r->kind, r->created,
		r->merged, r->duplicates, r->refused, r->skipped, r->revised };

	return ras_buf_pack(pool, &pk, sizeof(pk), str, 3);
}

static size_t
unpack_reports(const struct ras_buf *pool, ras_normalise_report_fn *fn, void *ctx)
{
	struct ras_normalise_report r;
	struct packed_report pk;
	char *const dst[3] = { r.message, r.ubrn, r.correlation_id };
	static const size_t cap[3] = { sizeof(r.message), sizeof(r.ubrn), sizeof(r.correlation_id) };
	size_t off = 0, n = 0;

	memset(&r, 0, sizeof(r));
	while (ras_buf_unpack(pool, &off, &pk, sizeof(pk), dst, cap, 3)) {
		r.payload_id = pk.payload_id;
		r.first_referral_id = pk.first_referral_id;
		r.state = pk.state;
		r.kind = pk.kind;
		r.created = pk.created;
		r.merged = pk.merged;
		r.duplicates = pk.duplicates;
		r.refused = pk.refused;
		r.skipped = pk.skipped;
		r.revised = pk.revised;
		fn(&r, ctx);
		n++;
	}
	return n;
}

/*
 * The chunks of a batch whose bytes the caller has (claim_known: nothing to
 * read between chunks), written with rasd and the server working at once:
 * chunk k+1 is planned while the server stores chunk k (its statements are
 * in the pipeline, not waited for), then chunk k's answers are read.  A
 * spool pass spent half its time with one of the two idle.  At most two
 * chunks' plans are held; the inbox is marked for the whole batch by one
 * statement at the end.  The server runs the statements in batch order, as
 * before, so a payload still sees every one before it.  An error anywhere
 * fails the whole batch, as one chunk's did (the caller rolls back and
 * takes the payloads one at a time).
 */
struct slot {
	struct ras_arena *a;
	struct plan *plans;
	struct ras_normalise_report *reps;
	struct call *calls;
	size_t n, ncalls;
};

static void
slot_free(struct slot *sl)
{
	free_plans(sl->plans, sl->n);
	ras_arena_free(sl->a);
	sl->a = NULL;
	sl->n = sl->ncalls = 0;
	sl->calls = NULL;
}

/* A sent chunk's answers read, its reports packed and marks gathered, what
 * it created handed over; then its memory freed. */
static int
slot_finish(struct ras_db *db, struct slot *sl, struct ras_store_handover *h, struct ras_buf *pool,
    struct marks *m)
{
	int err = collect_calls(db, sl->calls, sl->ncalls);

	for (size_t i = 0; i < sl->n && err == 0; i++) {
		tally(&sl->plans[i]);
		finish_report(&sl->plans[i]);
	}
	if (err == 0)
		err = marks_add(m, sl->plans, sl->n);
	if (err == 0 && h)
		err = handover_collect(h, sl->plans, sl->n);
	for (size_t i = 0; i < sl->n && err == 0; i++)
		err = pack_report(pool, &sl->reps[i]);
	slot_free(sl);
	return err;
}

static int
write_overlapped(struct ras_db *db, const struct ras_xmlform_maps *form_maps, struct claimed *rows,
    size_t nrows, size_t cap, struct ras_normalise_report *reports, struct plan *plans,
    struct ras_store_handover *h, struct ras_buf *pool)
{
	struct slot sl[2] = {
		{ .plans = plans, .reps = reports },
		{ .plans = plans + cap, .reps = reports + cap },
	};
	struct marks m = { RAS_BUF_INIT(RAS_NORMALISE_MARKS_BYTES), RAS_BUF_INIT(RAS_NORMALISE_MARKS_BYTES),
		0 };
	/* the handover's bound, for the whole batch (h was emptied) */
	size_t budget = RAS_HANDOVER_DOC_BYTES;
	int cur = 0, err, e2;
	bool pending = false;

	if ((err = ras_db_pipeline_enter(db)) < 0)
		return err;
	for (size_t s = 0, e; s < nrows && err == 0; s = e) {
		struct slot *x = &sl[cur];
		size_t bytes = rows[s].len;

		for (e = s + 1; e < nrows && e - s < cap && bytes + rows[e].len <= RAS_NORMALISE_CHUNK_BYTES; e++)
			bytes += rows[e].len;
		x->n = e - s;
		if ((x->a = ras_arena_new()) == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		if (err == 0)   /* (the server stores the chunk before meanwhile) */
			err = plan_chunk(form_maps, x->a, rows + s, x->n, x->reps, x->plans, h ? &budget : NULL);
		if (err == 0)
			err = send_steps(db, x->a, x->plans, x->n, &x->calls, &x->ncalls);
		/* sent, and the server asked to send its answers as they come (one
		 * sync for the batch, at the end: an error skips the rest) */
		if (err == 0)
			err = ras_db_pipeline_flush(db);
		if (pending && (e2 = slot_finish(db, &sl[1 - cur], h, pool, &m)) < 0 && err == 0)
			err = e2;
		pending = true;
		cur = 1 - cur;
	}
	if (err == 0)
		err = ras_db_pipeline_sync(db);
	if (err == 0 && pending)
		err = slot_finish(db, &sl[1 - cur], h, pool, &m);
	/* (after an error: the answers still to come are read and dropped) */
	e2 = ras_db_pipeline_exit(db);
	slot_free(&sl[0]);
	slot_free(&sl[1]);
	if (err == 0)
		err = e2;
	if (err == 0)
		err = marks_write(db, &m);
	marks_free(&m);
	return err;
}

static int
normalise_each(struct ras_db *db, const struct ras_xmlform_maps *form_maps, const int64_t *ids,
    const struct ras_inbox_item *known, const struct ras_inbox_put_result *kept, size_t n, size_t limit,
    struct ras_store_handover *h, ras_normalise_report_fn *fn, void *ctx, size_t *nout)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_normalise_report *reports = NULL;
	struct ras_buf pool = RAS_BUF_INIT(0);
	struct plan *plans = NULL;
	struct claimed *rows = NULL;
	size_t nrows = 0, cap = 0, nslots = 0;
	bool overlap;
	int err;

	*nout = 0;
	handover_clear(h);
	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = (ids && known ? claim_known(db, a, ids, known, kept, n, &rows, &nrows) :
	    claim_ids(db, a, ids, n, limit, &rows, &nrows))) < 0)
		goto fail;
	if (nrows == 0) {
		ras_db_rollback(db);
		goto done;
	}
	cap = nrows < RAS_NORMALISE_CHUNK_ROWS ? nrows : RAS_NORMALISE_CHUNK_ROWS;
	/* the caller's bytes for every row: two chunks at once (write_overlapped) */
	overlap = known != NULL;
	for (size_t i = 0; overlap && i < nrows; i++)
		overlap = rows[i].body != NULL;
	nslots = overlap ? 2 * cap : cap;
	reports = calloc(nslots, sizeof(*reports));
	plans = calloc(nslots, sizeof(*plans));
	if (reports == NULL || plans == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	if (overlap) {
		err = write_overlapped(db, form_maps, rows, nrows, cap, reports, plans, h, &pool);
		goto written;
	}
	/* Read, planned and written a chunk at a time (RAS_NORMALISE_CHUNK_BYTES
	 * of payloads, at most RAS_NORMALISE_CHUNK_ROWS, at least one), in the
	 * one transaction, each chunk's memory freed before the next and its
	 * reports packed: what a batch holds is its claimed ids and packed
	 * reports, whatever batch_size is.  Chunks are written in claim order,
	 * so a payload may still depend on one before it in the batch. */
	err = 0;
	for (size_t s = 0, e; s < nrows && err == 0; s = e) {
		struct ras_arena *ca = ras_arena_new();
		struct claimed *chunk = NULL;
		size_t bytes = rows[s].len, got = 0;
		bool have;
		/* what is left of the handover's bound (handover_add checks it again) */
		size_t budget = h && h->doc_bytes < RAS_HANDOVER_DOC_BYTES ? RAS_HANDOVER_DOC_BYTES - h->doc_bytes : 0;
		int64_t *cids;

		for (e = s + 1; e < nrows && e - s < cap && bytes + rows[e].len <= RAS_NORMALISE_CHUNK_BYTES; e++)
			bytes += rows[e].len;
		cids = ca ? ras_arena_calloc(ca, e - s, sizeof(*cids)) : NULL;
		if (cids == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		for (size_t i = s; cids && i < e; i++)
			cids[i - s] = rows[i].id;
		/* the caller's bytes where it has them all (claim_known), else
		 * the chunk is read */
		have = known != NULL;
		for (size_t i = s; have && i < e; i++)
			have = rows[i].body != NULL;
		if (err == 0 && have) {
			chunk = rows + s;
			got = e - s;
		} else if (err == 0) {
			err = claim(db, ca, cids, e - s, e - s, &chunk, &got);
		}
		if (err == 0 && got != e - s)
			err = ras_error_code(RAS_EIO, "payloads of the batch changed under it (%zu of %zu read)",
			    got, e - s);
		if (err == 0)
			err = run_batch(db, form_maps, ca, chunk, got, reports, plans, h ? &budget : NULL);
		if (err == 0 && h)
			err = handover_collect(h, plans, got);
		for (size_t i = 0; i < e - s && err == 0; i++)
			err = pack_report(&pool, &reports[i]);
		free_plans(plans, e - s);
		ras_arena_free(ca);
	}
written:
	if (err == 0 && (err = ras_db_commit(db)) == 0) {
		if ((err = handover_finish(h)) < 0)
			goto done;
		goto report;
	}
	ras_db_rollback(db);
	/* nothing of the batch as first written is stored: nothing handed over */
	handover_clear(h);
	if (err == RAS_EIO || err == RAS_ENOMEM)
		goto done;

	/* The batch failed in the database: take the payloads one at a time so
	 * that one bad payload does not hold up the others.  What they store is
	 * not handed over: the triage step reads it back. */
	pool.len = 0;
	for (size_t i = 0; i < nrows; i++) {
		struct ras_normalise_report *rep = &reports[0];
		struct ras_arena *oa = ras_arena_new();   /* this payload's, freed after it */
		struct claimed *one = NULL;
		size_t got = 0;

		if (oa == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		if ((err = ras_db_begin(db)) < 0 || (err = claim(db, oa, &rows[i].id, 1, 1, &one, &got)) < 0) {
			ras_db_rollback(db);
			ras_arena_free(oa);
			goto done;
		}
		if (got == 0) {
			ras_db_rollback(db);
			ras_arena_free(oa);
			memset(rep, 0, sizeof(*rep));
			rep->payload_id = rows[i].id;
			rep->state = "received";
			rep->kind = "unknown";
			snprintf(rep->message, sizeof(rep->message), "taken by another process");
			if ((err = pack_report(&pool, rep)) < 0)
				goto done;
			continue;
		}
		err = run_batch(db, form_maps, oa, one, 1, rep, &plans[0], NULL);
		free_plans(&plans[0], 1);
		if (err == 0 && (err = ras_db_commit(db)) == 0) {
			ras_arena_free(oa);
			if ((err = pack_report(&pool, rep)) < 0)
				goto done;
			continue;
		}
		ras_db_rollback(db);
		ras_arena_free(oa);
		if (err == RAS_EIO || err == RAS_ENOMEM)
			goto done;
		/* Keep the payload, marked with the database's reason. */
		{
			char reason[400], pid[24];

			snprintf(reason, sizeof(reason), "could not store: %s", ras_error_last());
			snprintf(pid, sizeof(pid), "%lld", (long long)rows[i].id);
			memset(rep, 0, sizeof(*rep));
			rep->payload_id = rows[i].id;
			rep->state = "rejected";
			rep->kind = "unknown";
			snprintf(rep->message, sizeof(rep->message), "%s", reason);
			if ((err = ras_db_query(db, NULL, SQL_INBOX_DONE, 4, (struct ras_db_param[]){
			    RAS_DB_TEXT(pid), RAS_DB_TEXT("rejected"), RAS_DB_TEXT(NULL), RAS_DB_TEXT(reason) })) < 0)
				goto done;
			if ((err = pack_report(&pool, rep)) < 0)
				goto done;
		}
	}
report:
	*nout = unpack_reports(&pool, fn, ctx);
	err = 0;
	goto done;
fail:
	ras_db_rollback(db);
done:
	if (err < 0)
		handover_clear(h);
	/* ras_buf_free leaves an empty buffer, so freeing twice is harmless. */
	free_plans(plans, plans ? nslots : 0);
	free(plans);
	free(reports);
	ras_buf_free(&pool);
	ras_arena_free(a);
	return err;
}

int
ras_store_normalise_each(struct ras_db *db, const struct ras_xmlform_maps *form_maps, const int64_t *ids,
    size_t n, size_t limit, ras_normalise_report_fn *fn, void *ctx, size_t *nout)
{
	return normalise_each(db, form_maps, ids, NULL, NULL, n, limit, NULL, fn, ctx, nout);
}

/* The array form: the reports appended to a buffer as they come, which
 * becomes the caller's array. */
struct report_array {
	struct ras_buf b;
	int err;
};

static void
collect_report(const struct ras_normalise_report *r, void *ctx)
{
	struct report_array *x = ctx;

	if (x->err == 0)
		x->err = ras_buf_append(&x->b, r, sizeof(*r));
}

int
ras_store_normalise_handed(struct ras_db *db, const struct ras_xmlform_maps *form_maps,
    const int64_t *ids, const struct ras_inbox_item *known, const struct ras_inbox_put_result *kept,
    size_t n, size_t limit, struct ras_store_handover *h, struct ras_normalise_report **out, size_t *nout)
{
	struct report_array x = { RAS_BUF_INIT(0), 0 };
	size_t got = 0;
	int err;

	*out = NULL;
	*nout = 0;
	err = normalise_each(db, form_maps, ids, known, known ? kept : NULL, n, limit, h, collect_report, &x,
	    &got);
	if (err == 0)
		err = x.err;   /* out of memory for the reports of a stored batch */
	if (err < 0) {
		ras_buf_free(&x.b);
		handover_clear(h);
		return err;
	}
	*nout = x.b.len / sizeof(**out);
	*out = (struct ras_normalise_report *)(void *)ras_buf_detach(&x.b, NULL);
	return 0;
}

int
ras_store_normalise(struct ras_db *db, const struct ras_xmlform_maps *form_maps, const int64_t *ids,
    size_t n, size_t limit, struct ras_normalise_report **out, size_t *nout)
{
	struct report_array x = { RAS_BUF_INIT(0), 0 };
	size_t got = 0;
	int err;

	*out = NULL;
	*nout = 0;
	err = ras_store_normalise_each(db, form_maps, ids, n, limit, collect_report, &x, &got);
	if (err == 0)
		err = x.err;   /* out of memory for the reports of a stored batch */
	if (err < 0) {
		ras_buf_free(&x.b);
		return err;
	}
	*nout = x.b.len / sizeof(**out);
	*out = (struct ras_normalise_report *)(void *)ras_buf_detach(&x.b, NULL);
	return 0;
}

/* ---- show ---------------------------------------------------------------- */

static int
query_json(struct ras_db *db, const char *sql, const char *arg, json_t **out)
{
	struct ras_db_res *res = NULL;
	const char *v;
	int err;

	*out = NULL;
	if ((err = ras_db_query(db, &res, sql, 1, &RAS_DB_TEXT(arg))) < 0)
		return err;
	v = ras_db_res_get(res, 0, 0);
	if (v != NULL)
		err = ras_json_parse(v, strlen(v), 0, out);
	ras_db_res_free(res);
	return err;
}

int
ras_store_show(struct ras_db *db, const char *what, json_t **out)
{
	static const char find[] =
	    "SELECT coalesce("
	    " (SELECT id FROM referrals WHERE ubrn = $1"
	    "   ORDER BY (state = 'superseded'), version DESC LIMIT 1),"
	    " (SELECT id FROM referrals WHERE referral_key = $1"
	    "   ORDER BY (state = 'superseded'), version DESC LIMIT 1),"
	    " (SELECT id FROM referrals WHERE $1 ~ '^[0-9]{1,18}$' AND id = $1::bigint))::text";
	static const char show[] =
	    "SELECT jsonb_build_object("
	    " 'id', r.id, 'referral_key', r.referral_key, 'ubrn', r.ubrn, 'version', r.version,"
	    " 'state', r.state, 'service', r.service, 'source', r.source,"
	    " 'received_at', to_char(r.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
	    " 'payload_id', r.payload_id,"
	    " 'versions', (SELECT jsonb_agg(jsonb_build_object('id', v.id, 'version', v.version,"
	    "     'state', v.state) ORDER BY v.version) FROM referrals v"
	    "     WHERE v.referral_key = r.referral_key),"
	    " 'attachments', (SELECT coalesce(jsonb_agg(jsonb_build_object('url', t.url,"
	    "     'title', t.title, 'content_type', t.content_type, 'availability', t.availability,"
	    "     'state', t.state, 'content_size', t.content_size) ORDER BY t.id), '[]')"
	    "     FROM attachments t WHERE t.referral_id = r.id),"
	    " 'events', (SELECT coalesce(jsonb_agg(jsonb_build_object('at',"
	    "     to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'kind', e.kind,"
	    "     'actor', e.actor, 'detail', e.detail) ORDER BY e.id), '[]')"
	    "     FROM events e WHERE e.referral_id = r.id),"
	    " 'referral', r.doc)::text"
	    " FROM referrals r WHERE r.id = $1::bigint";
	struct ras_db_res *res = NULL;
	const char *id;
	char idbuf[32];
	int err;

	if ((err = ras_db_query(db, &res, find, 1, &RAS_DB_TEXT(what))) < 0)
		return err;
	id = ras_db_res_get(res, 0, 0);
	if (id == NULL) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOTFOUND, "no referral with UBRN or id \"%.40s\"", what);
	}
	snprintf(idbuf, sizeof(idbuf), "%s", id);
	ras_db_res_free(res);
	return query_json(db, show, idbuf, out);
}

int
ras_store_event(struct ras_db *db, int64_t referral_id, const char *ubrn, int64_t payload_id,
    const char *kind, const char *actor, const json_t *detail)
{
	struct ras_buf d = RAS_BUF_INIT(0);
	char rid[24], pid[24];
	int err;

	snprintf(rid, sizeof(rid), "%lld", (long long)referral_id);
	snprintf(pid, sizeof(pid), "%lld", (long long)payload_id);
	if (detail && (err = ras_json_dump(detail, RAS_JSON_COMPACT, &d)) < 0)
		return err;
	err = ras_db_query(db, NULL, SQL_EVENT, 6, (struct ras_db_param[]){
	    RAS_DB_TEXT(referral_id ? rid : NULL), RAS_DB_TEXT(ubrn),
	    RAS_DB_TEXT(payload_id ? pid : NULL), RAS_DB_TEXT(kind),
	    RAS_DB_TEXT(actor ? actor : "rasd"), RAS_DB_TEXT(d.data) });
	ras_buf_free(&d);
	return err;
}

int
ras_store_inbox_state(struct ras_db *db, int64_t id, char *state, size_t state_size,
    char *error, size_t error_size)
{
	struct ras_db_res *res = NULL;
	char idt[24];
	int err;

	snprintf(idt, sizeof(idt), "%lld", (long long)id);
	if ((err = ras_db_query(db, &res, "SELECT state, coalesce(error, '') FROM inbox WHERE id = $1::bigint",
	    1, &RAS_DB_TEXT(idt))) < 0)
		return err;
	if (ras_db_res_rows(res) != 1) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOTFOUND, "no payload #%lld", (long long)id);
	}
	snprintf(state, state_size, "%s", ras_db_res_get(res, 0, 0));
	snprintf(error, error_size, "%s", ras_db_res_get(res, 0, 1));
	ras_db_res_free(res);
	return 0;
}

int
ras_store_list(struct ras_db *db, const char *state, int limit, json_t **out)
{
	static const char sql[] =
	    "SELECT coalesce(jsonb_agg(x ORDER BY x.id DESC), '[]')::text FROM ("
	    " SELECT r.id, r.referral_key, r.ubrn, r.version, r.state, r.service, r.priority,"
	    "  r.source, r.registered_practice AS practice,"
	    "  to_char(r.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS received_at"
	    " FROM referrals r WHERE ($1::text IS NULL OR r.state = $1)"
	    " ORDER BY r.id DESC LIMIT $2::int) x";
	struct ras_db_res *res = NULL;
	char lim[16];
	const char *v;
	int err;

	snprintf(lim, sizeof(lim), "%d", limit > 0 ? limit : 100);
	if ((err = ras_db_query(db, &res, sql, 2,
	    (struct ras_db_param[]){ RAS_DB_TEXT(state), RAS_DB_TEXT(lim) })) < 0)
		return err;
	v = ras_db_res_get(res, 0, 0);
	err = ras_json_parse(v, strlen(v), 0, out);
	ras_db_res_free(res);
	return err;
}
