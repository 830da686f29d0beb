/* outbox_render: pending -> ready, the document built and its route resolved
 * (see include/ras/outbox.h). */
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/decision.h"
#include "ras/docprofile.h"
#include "ras/document.h"
#include "ras/episode.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/itk3.h"
#include "ras/pdf.h"
#include "ras/limits.h"
#include "ras/mesh.h"
#include "ras/outbox.h"
#include "ras/pds_store.h"
#include "ras/referral_json.h"
#include "ras/routing.h"
#include "ras/xml.h"

#define MAX_PROFILES 32

#include "outbox_impl.h"

/*
 * A batch is claimed as ids (and the stored size of what each letter is
 * rendered from), then worked a chunk at a time in the one transaction:
 * each chunk's context read by one statement (SQL_CONTEXT), its letters
 * rendered with buffers reused from letter to letter (the copies of one
 * letter sharing one document), and its results written by at most three
 * statements whatever their number (SQL_READY; SQL_FAILED and
 * SQL_DEADLINES_CHECK for letters that fail), the columns sent as binary
 * arrays; the statements go in one pipeline (struct pipe).  What a
 * batch holds in memory is bounded by RAS_RENDER_CHUNK_BYTES of context
 * and RAS_RENDER_WRITE_BYTES of rendered payloads, whatever [outbox]
 * batch_size is.
 */
static const char SQL_CLAIM_PENDING[] =
	"SELECT o.id, pg_column_size(r.doc) + coalesce(pg_column_size(e.doc), 0) "
	"FROM outbox o JOIN referrals r ON r.id = o.referral_id LEFT JOIN episodes e ON e.id = o.episode_id "
	"WHERE o.state = 'pending' "
	/* PDS (issue 10): a letter waits while its patient's PDS record is older
	 * than [pds] max_age; the demographics stage reads it again */
	"AND NOT ($2::bigint > 0 AND EXISTS (SELECT 1 FROM pds_checks k "
	"JOIN pds_lookups l ON l.id = k.lookup_id WHERE k.referral_id = o.referral_id "
	"AND k.state = 'done' AND l.result = 'found' "
	"AND l.looked_up_at < to_timestamp($3::bigint) - $2::bigint * interval '1 second')) "
	"ORDER BY o.id LIMIT $1 FOR UPDATE OF o SKIP LOCKED";

/* What a chunk of claimed letters is rendered from, in the order given.
 * The decision without its facts, and the referral's form with only the
 * answer a document shows ($2, RAS_DOC_FORM_ANSWER; the form was ~70% of a
 * stored referral, and reading it the largest part of parsing one): no
 * document shows the others.  An answer without a string link_id is kept,
 * so that a damaged form still fails as it did (ras_form_from_json). */
static const char SQL_CONTEXT[] =
	"SELECT o.id, o.kind, o.doc_version, o.recipient_role, o.recipient_ods, o.service, "
	"o.referral_key, o.local_id, "
	"(CASE WHEN jsonb_typeof(r.doc->'form'->'answers') = 'array' THEN jsonb_set(r.doc, '{form,answers}', "
	"(SELECT coalesce(jsonb_agg(a.v ORDER BY a.n), '[]') FROM jsonb_array_elements(r.doc->'form'->'answers') "
	"WITH ORDINALITY AS a(v, n) WHERE jsonb_typeof(a.v->'link_id') IS DISTINCT FROM 'string' "
	"OR a.v->>'link_id' = $2)) ELSE r.doc END)::text, "
	/* the decision as doc(decisions) (schema 014) prints it, but for its
	 * facts, which no letter shows: not built only to be dropped */
	"CASE WHEN d.id IS NOT NULL THEN jsonb_build_object('service', d.service, 'outcome', d.outcome, "
	"'onward_target', d.onward_target, 'final', d.final, 'reasons', d.reasons, 'deadlines', d.deadlines, "
	"'ruleset_version', d.ruleset_version, 'decided_by', d.decided_by, "
	"'decided_at', to_char(d.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
	"'received_at', to_char(d.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))::text END, "
	"e.doc::text, "
	"to_char((SELECT max(a.decided_at) FROM decisions a WHERE a.referral_id = o.referral_id "
	"AND a.outcome = 'accept') AT TIME ZONE 'Europe/London', 'YYYY-MM-DD'), "
	/* PDS (issue 10): the referral's PDS answer (pds_store.h) */
	"(SELECT jsonb_build_object('result', k.result, 'version', l.version_id, 'summary', l.summary) "
	"FROM pds_checks k LEFT JOIN pds_lookups l ON l.id = k.lookup_id "
	"WHERE k.referral_id = o.referral_id AND k.state = 'done')::text "
	"FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n) JOIN outbox o ON o.id = x.id "
	"JOIN referrals r ON r.id = o.referral_id "
	"LEFT JOIN decisions d ON d.id = o.decision_id LEFT JOIN episodes e ON e.id = o.episode_id "
	"ORDER BY x.n";

/* The rendered letters of a chunk: ready, with their route, headers and
 * exact payload (the document Bundle only where a reader needs it: the
 * printed copies, whose PDF delivery makes from it), and the clause of
 * the clock each meets, set on that clock where it has none (the first
 * letter's, in claim order). */
static const char SQL_READY[] =
	"WITH x AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], "
	"$6::text[], $7::text[], $8::text[], $9::bytea[], $10::text[], $11::text[], $12::text[], $13::text[], "
	"$14::text[], $15::text[]) WITH ORDINALITY AS x(id, transport, address, workflow, fhir_mode, "
	"document_id, message_id, content_type, payload, doc, message_format, mex_subject, mex_local_id, "
	"itk3_header_id, clause, n)), "
	"c AS (UPDATE deadlines d SET clause = c.clause FROM (SELECT DISTINCT ON (o.deadline_id) "
	"o.deadline_id, x.clause FROM x JOIN outbox o ON o.id = x.id WHERE x.clause IS NOT NULL "
	"ORDER BY o.deadline_id, x.n) c WHERE d.id = c.deadline_id AND d.clause IS NULL) "
	"UPDATE outbox o SET state = 'ready', transport = x.transport, address = x.address, "
	"workflow = x.workflow, fhir_mode = x.fhir_mode, document_id = x.document_id, "
	"message_id = x.message_id, content_type = x.content_type, payload = x.payload, "
	"doc = x.doc::jsonb, message_format = x.message_format, mex_subject = x.mex_subject, "
	"mex_local_id = x.mex_local_id, itk3_header_id = x.itk3_header_id, ack_state = NULL, "
	"rendered_at = $16, next_attempt_at = $16, updated_at = $16 FROM x WHERE o.id = x.id";

/* The letters of a chunk that cannot be sent: dead (for a person to see
 * to) or cancelled, with the reason, and an event each, in claim order. */
static const char SQL_FAILED[] =
	"WITH x AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY "
	"AS x(id, state, why, n)), "
	"u AS (UPDATE outbox o SET state = x.state, last_error = x.why, updated_at = $4 FROM x "
	"WHERE o.id = x.id) "
	"INSERT INTO events (referral_id, kind, actor, detail) "
	"SELECT o.referral_id, CASE x.state WHEN 'cancelled' THEN 'document-cancelled' "
	"ELSE 'document-dead' END, 'rasd', jsonb_build_object('outbox_id', o.id, 'kind', o.kind, "
	"'recipient', o.recipient_role, 'detail', x.why) FROM x JOIN outbox o ON o.id = x.id ORDER BY x.n";

/* ... and then the clocks they were to meet (ras_outbox_deadlines_check),
 * once their new state is written. */
static const char SQL_DEADLINES_CHECK[] =
	"SELECT ras_outbox_deadlines_check(x.id, $2) FROM unnest($1::bigint[]) WITH ORDINALITY AS x(id, n) "
	"ORDER BY x.n";

struct rendered {
	const char *transport, *address, *workflow, *fhir_mode, *document_id, *message_id;
	const char *content_type;
	const struct ras_buf *payload;   /* the exact bytes to send */
	const char *doc;                 /* the document Bundle, kept for a printed copy only */
	/* 008: the message and its MESH headers */
	const char *message_format, *mex_subject, *mex_local_id, *itk3_header_id;
};

/* GPPROVIDER_<NHS number>_<date of birth>_<surname> (NOTES §1.9): the date
 * YYYYMMDD by default, DDMMYYYY by [routing] gpprovider_dob_format. */
static const char *
gpprovider(struct ras_arena *a, const struct ras_referral *r, bool ddmmyyyy)
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
	if (ddmmyyyy)
		return ras_arena_printf(a, "GPPROVIDER_%s_%.2s%.2s%.4s_%s", r->patient.nhs_number, dob + 8,
		    dob + 5, dob, sur);
	return ras_arena_printf(a, "GPPROVIDER_%s_%.4s%.2s%.2s_%s", r->patient.nhs_number, dob, dob + 5,
	    dob + 8, sur);
}

/* The buffers a batch renders its letters into, reused from letter to
 * letter (emptied, never freed, until the batch ends). */
struct render_bufs {
	struct ras_buf body;   /* the payload */
	struct ras_buf doc;    /* a printed copy's document Bundle */
	struct ras_buf pdf;    /* an ITK3 message's letter */
	struct ras_xhtml_saver *saver;   /* the documents' narratives */
};

/* What one outbox row renders from: its columns, the referral (with the PDS
 * overlay), the decision and episode, and the document built from them. */
struct render_in {
	const char *kind_s, *role, *ods, *service, *local_id, *ddoc;
	const struct ras_docprofile *prof;
	struct ras_doc_input in;
	struct ras_referral ref;
	struct ras_decision dec;
	struct ras_episode ep;
	json_t *bundle;
	/* the route chosen (NULL: none, or GP auto-routing), and the message */
	const struct ras_route *route;
	enum ras_itk3_kind itk3;
	bool gp;
};

/* Never a patient copy for a deceased or restricted patient (PDS). */
static int
check_patient(const struct render_in *ri, const struct ras_pds_findings *pf, bool *cancel)
{
	if (strcmp(ri->role, "patient") == 0 && (pf->deceased || pf->restricted)) {
		*cancel = true;
		return ras_error_code(RAS_EINVALID, "no patient copy: PDS records the patient as %s",
		    pf->deceased ? "deceased" : "restricted (a person decides where letters go)");
	}
	return 0;
}

/* An e-RS referrer hears a final accept or return through e-RS itself:
 * the review outcome (A028) carries the advice to their worklist, and
 * schema 003 queues it for exactly these decisions.  A letter would
 * repeat it, and could not be built anyway: e-RS gives rasd the NHS
 * number only, not the name and birth date a letter needs.  (If e-RS
 * refuses the outcome, `rasctl ers pending` lists it for a person.) */
static int
check_ers_referrer(const struct render_in *ri, bool *cancel)
{
	if (ri->in.kind == RAS_DOC_TRIAGE_OUTCOME && strcmp(ri->role, "referrer") == 0 && ri->ddoc &&
	    ri->ref.ubrn && (ri->ref.source == RAS_PAYLOAD_ERS_REFERRAL ||
	    ri->ref.source == RAS_PAYLOAD_ERS_WORKLIST) && ri->dec.final &&
	    (ri->dec.outcome == RAS_OUTCOME_ACCEPT || ri->dec.outcome == RAS_OUTCOME_RETURN)) {
		*cancel = true;
		return ras_error_code(RAS_EINVALID,
		    "the referrer is answered through e-RS (review outcome recorded by A028)");
	}
	return 0;
}

/* The row's recipient: who, where, and its own local id. */
static void
recipient(struct ras_db_res *res, int row, struct render_in *ri)
{
	ri->role = ras_db_res_get(res, row, 3);
	ri->ods = ras_db_res_get(res, row, 4);
	ri->local_id = ras_db_res_get(res, row, 7);
}

/* The row's inputs: its document profile and kind, the referral, decision
 * and episode; *cancel when the letter is not to be sent at all. */
static int
render_inputs(struct ras_outbox *o, struct ras_arena *a, struct ras_db_res *res, int row,
    struct render_in *ri, struct ras_pds_findings *pf, bool *cancel)
{
	const char *rdoc = ras_db_res_get(res, row, 8), *edoc = ras_db_res_get(res, row, 10);
	const char *accepted = ras_db_res_get(res, row, 11);
	json_t *j;
	int err;

	ri->kind_s = ras_db_res_get(res, row, 1);
	recipient(res, row, ri);
	ri->service = ras_db_res_get(res, row, 5);
	ri->ddoc = ras_db_res_get(res, row, 9);
	if ((ri->prof = ras_outbox_profile(o, ri->service)) == NULL)
		return RAS_EINVALID;
	ri->in.kind = ras_document_kind_parse(ri->kind_s);
	if (ras_docprofile_kind(ri->prof, ri->kind_s) == NULL) {
		*cancel = true;
		return ras_error_code(RAS_EINVALID, "the %s specification calls for no %s", ri->service,
		    ri->kind_s);
	}
	if ((err = ras_json_parse_arena(a, rdoc, strlen(rdoc), RAS_PAYLOAD_MAX, &j)) < 0 ||
	    (err = ras_referral_json_load(a, j, &ri->ref)) < 0)
		return err;
	/* PDS demographics: name, birth date, address, practice (pds_store.h) */
	if ((err = ras_pds_store_overlay(a, ras_db_res_get(res, row, 12), &ri->ref, pf)) < 0 ||
	    (err = check_patient(ri, pf, cancel)) < 0)
		return err;
	if (ri->ddoc) {
		if ((err = ras_json_parse_arena(a, ri->ddoc, strlen(ri->ddoc), RAS_PAYLOAD_MAX, &j)) < 0 ||
		    (err = ras_decision_from_json(a, j, &ri->dec)) < 0)
			return err;
		ri->in.decision = &ri->dec;
	}
	if (edoc) {
		struct ras_form form;

		if ((err = ras_json_parse_arena(a, edoc, strlen(edoc), RAS_PAYLOAD_MAX, &j)) < 0 ||
		    (err = ras_intake_fhir_form(a, j, &form)) < 0 ||
		    (err = ras_episode_from_form(a, &form, &ri->ep)) < 0)
			return err;
		ri->in.episode = &ri->ep;
	}
	if (accepted && ras_date_parse(accepted, &ri->in.accepted_date) == 0)
		ri->in.has_accepted_date = true;
	return check_ers_referrer(ri, cancel);
}

/* The document itself (the FHIR document bundle).  It is serialised once,
 * as (or into) the payload it is sent as. */
static int
render_document(struct ras_arena *a, struct ras_db_res *res, int row, int64_t now,
    struct ras_xhtml_saver *saver, struct render_in *ri)
{
	struct ras_doc_missing missing;
	int64_t ver = 1;

	(void)ras_db_res_int(res, row, 2, &ver);
	ri->in.profile = ri->prof;
	ri->in.referral = &ri->ref;
	ri->in.referral_key = ras_db_res_get(res, row, 6);
	ri->in.version = (int)ver;
	ri->in.at = now;
	ri->in.saver = saver;
	return ras_document_build(a, &ri->in, &ri->bundle, &missing);
}

/*
 * The copies of one letter (to the referrer and to the GP) are one
 * document: built once.  The last document built is kept, in an arena of
 * its own, while the rows after it have the same inputs (kind, version,
 * service, referral key, and the very same referral, decision, episode,
 * acceptance date and PDS answer), which claim order puts next to each
 * other; each copy still gets its own recipient checks, route and payload.
 */
struct doc_cache {
	struct ras_arena *a;
	struct ras_db_res *res;
	int row;                       /* -1: none */
	struct render_in ri;
	struct ras_pds_findings pf;
};

static bool
same_cell(struct ras_db_res *res, int r1, int r2, int col)
{
	const char *x = ras_db_res_get(res, r1, col), *y = ras_db_res_get(res, r2, col);

	return x == y || (x && y && strcmp(x, y) == 0);
}

static bool
same_document(const struct doc_cache *c, struct ras_db_res *res, int row)
{
	static const int cols[] = { 1, 2, 5, 6, 8, 9, 10, 11, 12 };

	if (c->row < 0 || c->res != res)
		return false;
	for (size_t i = 0; i < sizeof(cols) / sizeof(cols[0]); i++)
		if (!same_cell(res, c->row, row, cols[i]))
			return false;
	return true;
}

static void
doc_cache_clear(struct doc_cache *c)
{
	ras_arena_free(c->a);
	memset(c, 0, sizeof(*c));
	c->row = -1;
}

/* ri: the row's inputs and document, built now (into the cache) or kept
 * from the copy before it. */
static int
row_document(struct ras_outbox *o, struct doc_cache *c, struct ras_db_res *res, int row, int64_t now,
    struct ras_xhtml_saver *saver, struct render_in *ri, bool *cancel, struct ras_outbox_stats *st)
{
	int err;

	if (same_document(c, res, row)) {
		*ri = c->ri;
		recipient(res, row, ri);
		ri->route = NULL;
		ri->itk3 = 0;
		ri->gp = false;
		if ((err = check_patient(ri, &c->pf, cancel)) < 0 || (err = check_ers_referrer(ri, cancel)) < 0)
			return err;
		return 0;
	}
	doc_cache_clear(c);
	if ((c->a = ras_arena_new()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = render_inputs(o, c->a, res, row, &c->ri, &c->pf, cancel)) < 0 ||
	    (err = render_document(c->a, res, row, now, saver, &c->ri)) < 0) {
		doc_cache_clear(c);
		return err;
	}
	c->res = res;
	c->row = row;
	*ri = c->ri;
	if (st)
		st->built++;
	return 0;
}

/* The patient's copy: printed, as HTML into [outbox] print_dir; the
 * document Bundle is kept beside it, for the PDF delivery makes. */
static int
render_patient_copy(struct ras_outbox *o, struct ras_arena *a, const struct render_in *ri,
    struct rendered *out, struct render_bufs *bufs, bool *cancel)
{
	int err;

	if (o->print_dir == NULL) {
		*cancel = true;
		return ras_error_code(RAS_EINVALID,
		    "patients' copies are not printed here ([outbox] print_dir is not set)");
	}
	if ((err = ras_document_html(a, ri->bundle, ri->prof, true, &bufs->body)) < 0 ||
	    (err = ras_json_dump(ri->bundle, RAS_JSON_COMPACT, &bufs->doc)) < 0)
		return err;
	out->transport = "file";
	out->address = o->print_dir;
	out->content_type = "text/html; charset=utf-8";
	out->payload = &bufs->body;
	out->doc = bufs->doc.data;
	return 0;
}

/* The route: the routing table's entry for the recipient's ODS code, else
 * GP auto-routing to GPPROVIDER_..., and with it the transport, address,
 * MESH workflow id and ITK3 message kind. */
static int
render_route(struct ras_outbox *o, struct ras_arena *a, struct render_in *ri, struct rendered *out)
{
	const struct ras_route *route;

	route = ri->route = ras_routing_find(&o->routing, ri->ods);
	ri->gp = strcmp(ri->role, "gp") == 0 || (ri->ods && ri->ref.patient.practice_ods &&
	    strcmp(ri->ods, ri->ref.patient.practice_ods) == 0);
	if (route == NULL) {
		if (!(ri->gp && o->gp_auto && o->mesh))
			return ras_error_code(RAS_EINVALID, "no route for %s %s in the routing table%s", ri->role,
			    ri->ods ? ri->ods : "(no ODS code)", ri->gp && !o->gp_auto ?
			    " (GP auto-routing is off)" : "");
		out->transport = "mesh";
		out->address = gpprovider(a, &ri->ref, o->gpprovider_ddmmyyyy);
		if (out->address == NULL)
			return ras_error_code(RAS_EINVALID, "GP auto-routing needs the patient's NHS number, "
			    "date of birth and surname");
		/* what GP practice systems file: GP Connect Send Document */
		ri->itk3 = RAS_ITK3_SEND_DOCUMENT;
		out->workflow = ras_itk3_workflow(ri->itk3);
	} else if (strcmp(route->transport, "mesh") == 0) {
		out->transport = "mesh";
		/* "lookup:<ODS>": the delivery asks MESH endpoint lookup first */
		out->address = route->lookup ? ras_arena_printf(a, "lookup:%s", route->ods) : route->mailbox;
		if (route->message)
			ri->itk3 = ras_itk3_kind_parse(route->message);
		else if (ri->gp)
			ri->itk3 = RAS_ITK3_SEND_DOCUMENT;
		out->workflow = route->workflow ? route->workflow : ri->itk3 ? ras_itk3_workflow(ri->itk3) :
		    o->workflow[ri->in.kind];
	} else {
		out->transport = "fhir";
		out->address = route->endpoint;
		out->fhir_mode = route->mode;
	}
	if (strcmp(out->transport, "mesh") == 0) {
		if (o->mesh == NULL)
			return ras_error_code(RAS_EINVALID, "the route is MESH but [mesh] is not enabled");
		if (out->workflow == NULL)
			return ras_error_code(RAS_EINVALID, "no MESH workflow id for %s ([mesh] workflow_%s)",
			    ri->kind_s, ri->kind_s);
	}
	out->message_format = ri->itk3 ? ras_itk3_kind_name(ri->itk3) : "fhir-r4";
	return 0;
}

/* ITK3 (STU3 XML) with the letter as PDF; mex-Subject in the Send
 * Document format, mex-LocalID the sender's ODS code (as that
 * specification asks); rasd's local id goes as SenderReference,
 * which the acknowledgements echo, and as mex-FileName */
static int
render_itk3(struct ras_outbox *o, struct ras_arena *a, int64_t now, const struct render_in *ri,
    struct rendered *out, struct render_bufs *bufs)
{
	const struct ras_docprofile *prof = ri->prof;
	struct ras_itk3_msg m = { .kind = ri->itk3, .message_id = out->message_id,
		.sender_reference = ri->local_id, .at = now, .sender_ods = prof->provider.ods,
		.sender_name = prof->provider.name, .source_mailbox = ras_mesh_mailbox(o->mesh) };
	char hdr[RAS_UUID_STR_LEN];
	int err;

	/* no destination with GPPROVIDER routing (GPCM-SD-049), nor before a
	 * lookup has named the mailbox */
	if (strncmp(out->address, "GPPROVIDER_", 11) != 0 && strncmp(out->address, "lookup:", 7) != 0) {
		m.dest_mailbox = out->address;
		m.receiver_ods = ri->ods;
	}
	if ((err = ras_pdf_document(a, ri->bundle, prof, &(struct ras_pdf_opts){ .recipient =
	    ri->gp && ri->ref.patient.practice_name ? ri->ref.patient.practice_name : NULL }, &bufs->pdf)) == 0) {
		m.pdf = bufs->pdf.data;
		m.pdf_len = bufs->pdf.len;
		err = ras_itk3_message(a, ri->bundle, &m, &bufs->body);
	}
	if (err < 0)
		return err;
	ras_itk3_header_id(hdr, out->message_id);
	out->itk3_header_id = ras_arena_strdup(a, hdr);
	out->mex_subject = ras_itk3_subject(a, ri->bundle, prof->provider.name, prof->provider.ods,
	    ri->in.version);
	out->mex_local_id = prof->provider.ods;
	out->content_type = "application/fhir+xml";
	out->payload = &bufs->body;
	return err;
}

/* FHIR R4: the document bundle as it is ([routing] mode document) or in a
 * message bundle with its MESH or ODS addressing, as JSON or XML. */
static int
render_fhir(struct ras_outbox *o, struct ras_arena *a, int64_t now, const struct render_in *ri,
    struct rendered *out, struct ras_buf *body)
{
	const struct ras_docprofile *prof = ri->prof;
	json_t *wrapped = NULL;
	int err;

	if (out->fhir_mode && strcmp(out->fhir_mode, "document") == 0) {
		wrapped = json_incref(ri->bundle);
	} else {
		struct ras_doc_message m = { .message_id = out->message_id, .at = now,
			.sender_ods = prof->provider.ods, .sender_name = prof->provider.name };

		if (strcmp(out->transport, "mesh") == 0) {
			m.source_endpoint = ras_arena_printf(a, "urn:nhs-uk:addressing:mesh:%s",
			    ras_mesh_mailbox(o->mesh));
			if (strncmp(out->address, "GPPROVIDER_", 11) != 0 && strncmp(out->address, "lookup:", 7) != 0) {
				m.dest_endpoint = ras_arena_printf(a, "urn:nhs-uk:addressing:mesh:%s", out->address);
				m.receiver_ods = ri->ods;
			}
		} else {
			m.source_endpoint = ras_arena_printf(a, "urn:nhs-uk:addressing:ods:%s",
			    prof->provider.ods);
			m.dest_endpoint = out->address;
			m.receiver_ods = ri->ods;
		}
		if ((err = ras_document_message(ri->bundle, &m, &wrapped)) < 0)
			return err;
	}
	if (ri->route && strcmp(ri->route->format, "xml") == 0) {
		err = ras_xml_fhir_from_json(wrapped, body);
		out->content_type = "application/fhir+xml";
	} else {
		err = ras_json_dump(wrapped, RAS_JSON_COMPACT, body);
		out->content_type = "application/fhir+json";
	}
	json_decref(wrapped);
	if (err == 0)
		out->payload = body;
	return err;
}

static int
render_row(struct ras_outbox *o, struct ras_arena *a, struct doc_cache *c, struct ras_db_res *res, int row,
    int64_t now, struct render_bufs *bufs, struct rendered *out, bool *cancel, struct ras_outbox_stats *st)
{
	struct render_in ri = { 0 };
	char *mid;
	int err;

	memset(out, 0, sizeof(*out));
	*cancel = false;
	ras_buf_reset(&bufs->body);
	ras_buf_reset(&bufs->doc);
	ras_buf_reset(&bufs->pdf);
	if ((err = row_document(o, c, res, row, now, bufs->saver, &ri, cancel, st)) < 0)
		return err;
	out->document_id = ras_document_identifier(ri.bundle);
	if ((mid = ras_arena_alloc(a, RAS_UUID_STR_LEN)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_document_uuid(mid, "rasd:message|%s", ri.local_id);
	out->message_id = mid;
	if (strcmp(ri.role, "patient") == 0)
		err = render_patient_copy(o, a, &ri, out, bufs, cancel);
	else if ((err = render_route(o, a, &ri, out)) == 0)
		err = ri.itk3 ? render_itk3(o, a, now, &ri, out, bufs) : render_fhir(o, a, now, &ri, out, &bufs->body);
	if (err == 0 && (out->payload == NULL || out->payload->data == NULL))
		err = ras_error_code(RAS_ENOMEM, "out of memory");
	return err;
}

/* A chunk's results, column by column, until they are written. */
enum { R_ID, R_TRANSPORT, R_ADDRESS, R_WORKFLOW, R_FHIR_MODE, R_DOCUMENT_ID, R_MESSAGE_ID,
	R_CONTENT_TYPE, R_PAYLOAD, R_DOC, R_MESSAGE_FORMAT, R_MEX_SUBJECT, R_MEX_LOCAL_ID, R_ITK3_HEADER_ID,
	R_CLAUSE, R_COLS };
enum { F_ID, F_STATE, F_WHY, F_COLS };

struct results {
	struct ras_db_array ready[R_COLS];
	struct ras_db_array failed[F_COLS];
	size_t bytes;                      /* payloads held */
};

static void
results_init(struct results *r)
{
	for (int c = 0; c < R_COLS; c++)
		ras_db_array_init(&r->ready[c], c == R_ID ? RAS_DB_ELEM_INT8 : c == R_PAYLOAD ?
		    RAS_DB_ELEM_BYTEA : RAS_DB_ELEM_TEXT);
	for (int c = 0; c < F_COLS; c++)
		ras_db_array_init(&r->failed[c], c == F_ID ? RAS_DB_ELEM_INT8 : RAS_DB_ELEM_TEXT);
	r->bytes = 0;
}

static void
results_free(struct results *r)
{
	for (int c = 0; c < R_COLS; c++)
		ras_db_array_free(&r->ready[c]);
	for (int c = 0; c < F_COLS; c++)
		ras_db_array_free(&r->failed[c]);
}

static int
results_err(const struct results *r)
{
	for (int c = 0; c < R_COLS; c++)
		if (r->ready[c].err)
			return r->ready[c].err;
	for (int c = 0; c < F_COLS; c++)
		if (r->failed[c].err)
			return r->failed[c].err;
	return 0;
}

static void
results_ready(struct results *r, int64_t id, const struct rendered *x, const char *clause)
{
	struct ras_db_array *v = r->ready;

	ras_db_array_add_int(&v[R_ID], id);
	ras_db_array_add_str(&v[R_TRANSPORT], x->transport);
	ras_db_array_add_str(&v[R_ADDRESS], x->address);
	ras_db_array_add_str(&v[R_WORKFLOW], x->workflow);
	ras_db_array_add_str(&v[R_FHIR_MODE], x->fhir_mode);
	ras_db_array_add_str(&v[R_DOCUMENT_ID], x->document_id);
	ras_db_array_add_str(&v[R_MESSAGE_ID], x->message_id);
	ras_db_array_add_str(&v[R_CONTENT_TYPE], x->content_type);
	ras_db_array_add(&v[R_PAYLOAD], x->payload->data, x->payload->len);
	ras_db_array_add_str(&v[R_DOC], x->doc);
	ras_db_array_add_str(&v[R_MESSAGE_FORMAT], x->message_format);
	ras_db_array_add_str(&v[R_MEX_SUBJECT], x->mex_subject);
	ras_db_array_add_str(&v[R_MEX_LOCAL_ID], x->mex_local_id);
	ras_db_array_add_str(&v[R_ITK3_HEADER_ID], x->itk3_header_id);
	ras_db_array_add_str(&v[R_CLAUSE], clause);
	r->bytes += x->payload->len + (x->doc ? strlen(x->doc) : 0);
}

static void
results_failed(struct results *r, int64_t id, bool cancel, const char *why)
{
	ras_db_array_add_int(&r->failed[F_ID], id);
	ras_db_array_add_str(&r->failed[F_STATE], cancel ? "cancelled" : "dead");
	ras_db_array_add_str(&r->failed[F_WHY], why);
	r->bytes += strlen(why);
}

/* One claimed letter. */
struct claimed {
	int64_t id;
	int64_t size;     /* of the stored documents it is rendered from */
};

/*
 * The batch's statements go in one pipeline, so that PostgreSQL works
 * while rasd renders: the context of the chunk after next is asked for,
 * and a chunk's results are sent, before rasd reads what it needs next.
 * Results come back in the order sent; this remembers which are which.
 */
#define PIPE_DEPTH 1024

struct pipe {
	bool ctx[PIPE_DEPTH];   /* a context (else a write), oldest first */
	size_t head, n;
};

static int
pipe_send(struct ras_db *db, struct pipe *q, bool ctx, const char *sql, int nparams,
    const struct ras_db_param *p)
{
	int err;

	if (q->n == PIPE_DEPTH)
		return ras_error_code(RAS_ETOOBIG, "more than %d statements in flight", PIPE_DEPTH);
	if ((err = ras_db_pipeline_send(db, sql, nparams, p)) < 0)
		return err;
	q->ctx[(q->head + q->n++) % PIPE_DEPTH] = ctx;
	return 0;
}

/* Read the results in flight up to and including the next context (all
 * of them when `upto_ctx` is false); *res gets that context. */
static int
pipe_read(struct ras_db *db, struct pipe *q, bool upto_ctx, struct ras_db_res **res)
{
	int err;

	while (q->n) {
		bool ctx = q->ctx[q->head];
		struct ras_db_res *r = NULL;

		q->head = (q->head + 1) % PIPE_DEPTH;
		q->n--;
		if ((err = ras_db_pipeline_result(db, &r)) < 0) {
			ras_db_res_free(r);
			return err;
		}
		if (ctx && upto_ctx) {
			*res = r;
			return 0;
		}
		ras_db_res_free(r);
	}
	return upto_ctx ? ras_error_code(RAS_EIO, "no context in flight") : 0;
}

/* Ask for the context of claimed[0..n) (SQL_CONTEXT). */
static int
context_send(struct ras_db *db, struct pipe *q, const struct claimed *claimed, size_t n)
{
	struct ras_db_array ids;
	struct ras_db_param p[2];
	int err;

	ras_db_array_init(&ids, RAS_DB_ELEM_INT8);
	for (size_t i = 0; i < n; i++)
		ras_db_array_add_int(&ids, claimed[i].id);
	p[0] = ras_db_array_param(&ids);
	p[1] = RAS_DB_TEXT(RAS_DOC_FORM_ANSWER);
	err = ids.err ? ids.err : pipe_send(db, q, true, SQL_CONTEXT, 2, p);
	ras_db_array_free(&ids);
	return err;
}

/* Write what the chunk rendered (a constant number of statements), then
 * empty the arrays for the next. */
static int
results_write(struct ras_db *db, struct pipe *q, struct results *r, const char *at,
    struct ras_outbox_stats *st)
{
	struct ras_db_param p[R_COLS + 1];
	int err;

	if ((err = results_err(r)) < 0)
		return err;
	if (st && (r->ready[R_ID].n || r->failed[F_ID].n))
		st->writes++;
	if (r->ready[R_ID].n) {
		for (int c = 0; c < R_COLS; c++)
			p[c] = ras_db_array_param(&r->ready[c]);
		p[R_COLS] = RAS_DB_TEXT(at);
		if ((err = pipe_send(db, q, false, SQL_READY, R_COLS + 1, p)) < 0)
			return err;
	}
	if (r->failed[F_ID].n) {
		for (int c = 0; c < F_COLS; c++)
			p[c] = ras_db_array_param(&r->failed[c]);
		p[F_COLS] = RAS_DB_TEXT(at);
		if ((err = pipe_send(db, q, false, SQL_FAILED, F_COLS + 1, p)) < 0)
			return err;
		p[1] = RAS_DB_TEXT(at);
		if ((err = pipe_send(db, q, false, SQL_DEADLINES_CHECK, 2, p)) < 0)
			return err;
	}
	/* the arrays are in libpq's buffer now: they can be reused */
	if ((err = ras_db_pipeline_flush(db)) < 0)
		return err;
	for (int c = 0; c < R_COLS; c++)
		ras_db_array_reset(&r->ready[c]);
	for (int c = 0; c < F_COLS; c++)
		ras_db_array_reset(&r->failed[c]);
	r->bytes = 0;
	return results_err(r);
}

/* Render claimed[0..n) from their context (res, read by one statement):
 * a letter that fails is kept with its reason; the results are sent
 * whenever they reach RAS_RENDER_WRITE_BYTES, and at the end. */
static int
render_chunk(struct ras_outbox *o, struct ras_db *db, struct pipe *q, struct ras_db_res *res,
    const struct claimed *claimed, size_t n, int64_t now, const char *at, struct render_bufs *bufs,
    struct results *out, struct ras_outbox_stats *st)
{
	struct doc_cache cache = { .row = -1 };
	int err = 0, rows = ras_db_res_rows(res);

	if ((size_t)rows != n)
		return ras_error_code(RAS_EIO, "%zu letter(s) claimed but %d read", n, rows);
	if (st)
		st->chunks++;
	for (int i = 0; i < rows && err == 0; i++) {
		struct ras_arena *ra = ras_arena_new();
		const struct ras_docprofile *pr;
		const struct ras_dockind *k;
		struct rendered r;
		int64_t id = 0;
		bool cancel;
		int rerr;

		if (ra == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			break;
		}
		if (!ras_db_res_int(res, i, 0, &id) || id != claimed[i].id) {
			ras_arena_free(ra);
			err = ras_error_code(RAS_EIO, "outbox %lld was claimed but %lld read in its place",
			    (long long)claimed[i].id, (long long)id);
			break;
		}
		rerr = render_row(o, ra, &cache, res, i, now, bufs, &r, &cancel, st);
		if (rerr == RAS_ENOMEM) {
			err = rerr;
		} else if (rerr < 0) {
			results_failed(out, claimed[i].id, cancel, ras_error_last());
			if (st && cancel)
				st->cancelled++;
			else if (st)
				st->dead++;
		} else {
			pr = ras_outbox_profile(o, ras_db_res_get(res, i, 5));
			k = pr ? ras_docprofile_kind(pr, ras_db_res_get(res, i, 1)) : NULL;
			results_ready(out, claimed[i].id, &r, k ? k->deadline_clause : NULL);
			if (st)
				st->rendered++;
		}
		ras_arena_free(ra);
		if (err == 0 && out->bytes >= RAS_RENDER_WRITE_BYTES)
			err = results_write(db, q, out, at, st);
	}
	doc_cache_clear(&cache);
	if (err == 0)
		err = results_write(db, q, out, at, st);
	return err;
}

/* The end of the chunk starting at s: at most RAS_RENDER_CHUNK_BYTES of
 * stored documents, at least one letter. */
static size_t
chunk_end(const struct claimed *claimed, size_t rows, size_t s)
{
	int64_t bytes = claimed[s].size;
	size_t e;

	for (e = s + 1; e < rows && bytes + claimed[e].size <= (int64_t)RAS_RENDER_CHUNK_BYTES; e++)
		bytes += claimed[e].size;
	return e;
}

int
ras_outbox_render_pending(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_stats *st)
{
	struct ras_arena *a = ras_arena_new();
	struct render_bufs bufs = { RAS_BUF_INIT(0), RAS_BUF_INIT(0), RAS_BUF_INIT(0), NULL };
	struct ras_db_res *res = NULL;
	struct ras_db_param p[3];
	struct claimed *claimed = NULL;
	struct results out;
	struct pipe q = { .n = 0 };
	bool piped = false;
	const char *at;
	int err, rows;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	results_init(&out);
	if ((err = ras_xml_xhtml_saver_new(a, &bufs.saver)) < 0)
		goto done;
	at = ras_outbox_ts(a, now);
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	p[0] = RAS_DB_TEXT(ras_outbox_num(a, o->batch));
	p[1] = RAS_DB_TEXT(ras_outbox_num(a, o->pds_max_age));
	p[2] = RAS_DB_TEXT(ras_outbox_num(a, now));
	if ((err = ras_db_query(db, &res, SQL_CLAIM_PENDING, 3, p)) < 0)
		goto fail;
	rows = ras_db_res_rows(res);
	if ((claimed = ras_arena_calloc(a, rows ? (size_t)rows : 1, sizeof(*claimed))) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	for (int i = 0; i < rows; i++) {
		(void)ras_db_res_int(res, i, 0, &claimed[i].id);
		(void)ras_db_res_int(res, i, 1, &claimed[i].size);
	}
	ras_db_res_free(res);
	res = NULL;
	if (st)
		st->claimed += rows;
	/* a chunk at a time, in one pipeline: while rasd renders chunk k,
	 * PostgreSQL writes chunk k-1 and reads the context of chunk k+1 */
	if (rows > 0) {
		size_t s = 0, e = chunk_end(claimed, (size_t)rows, 0), e1, e2;

		if ((err = ras_db_pipeline_enter(db)) < 0)
			goto fail;
		piped = true;
		e1 = e < (size_t)rows ? chunk_end(claimed, (size_t)rows, e) : e;
		if ((err = context_send(db, &q, claimed, e)) < 0 ||
		    (e1 > e && (err = context_send(db, &q, claimed + e, e1 - e)) < 0) ||
		    (err = ras_db_pipeline_flush(db)) < 0 || (err = pipe_read(db, &q, true, &res)) < 0)
			goto fail;
		for (;;) {
			err = render_chunk(o, db, &q, res, claimed + s, e - s, now, at, &bufs, &out, st);
			ras_db_res_free(res);
			res = NULL;
			if (err < 0)
				goto fail;
			if (e == (size_t)rows)
				break;
			/* the chunk after next, then the next one's context */
			e2 = e1 < (size_t)rows ? chunk_end(claimed, (size_t)rows, e1) : e1;
			if ((e2 > e1 && (err = context_send(db, &q, claimed + e1, e2 - e1)) < 0) ||
			    (err = ras_db_pipeline_flush(db)) < 0 || (err = pipe_read(db, &q, true, &res)) < 0)
				goto fail;
			s = e;
			e = e1;
			e1 = e2;
		}
		if ((err = ras_db_pipeline_sync(db)) < 0 || (err = pipe_read(db, &q, false, NULL)) < 0)
			goto fail;
		piped = false;
		if ((err = ras_db_pipeline_exit(db)) < 0)
			goto fail;
	}
	err = ras_db_commit(db);
	goto done;
fail:
	if (piped) {
		/* draining the pipeline reads the statements the failure skipped:
		 * keep the message of the one that failed */
		char why[1024];

		(void)ras_buf_format(why, sizeof(why), "%s", ras_error_last());
		(void)ras_db_pipeline_exit(db);
		(void)ras_error_code(err, "%s", why);
	}
	ras_db_rollback(db);
done:
	ras_db_res_free(res);
	results_free(&out);
	ras_buf_free(&bufs.body);
	ras_buf_free(&bufs.doc);
	ras_buf_free(&bufs.pdf);
	ras_arena_free(a);
	return err;
}
