/* ers_outcome: A029/A028 review outcomes from intents (see include/ras/ers_outcome.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/ers.h"
#include "ras/ers_outcome.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/json.h"
#include "ras/limits.h"

#define ERS_SD "https://fhir.nhs.uk/STU3/StructureDefinition/"
#define REVIEW_OUTCOME_SYS "https://fhir.nhs.uk/STU3/CodeSystem/eRS-ReviewOutcome-1"
#define PRIORITY_SYS "https://fhir.nhs.uk/STU3/CodeSystem/eRS-Priority-1"
/* A 'sending' intent older than this belongs to an instance that died. */
#define SENDING_LEASE_S 900

void
ras_ers_outcome_report_free(struct ras_ers_outcome_report *rep)
{
	if (rep == NULL)
		return;
	free(rep->v);
	rep->v = NULL;
	rep->n = 0;
}

int
ras_ers_outcome_review_body(const char *review_outcome, const char *comments, const char *priority,
    char **out)
{
	bool ret = strcmp(review_outcome, "RETURN_TO_REFERRER_WITH_ADVICE") == 0;
	json_t *params = json_array(), *j = NULL;
	struct ras_buf b = RAS_BUF_INIT(0);
	int err = 0;

	*out = NULL;
	if (comments == NULL || *comments == '\0') {
		json_decref(params);
		return ras_error_code(RAS_EINVALID, "reviewComments must not be empty");
	}
	if (params == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	/* The order of the official examples (a JSON-equal request is what the
	 * sandbox matches): priority first on an acceptance. */
	if (!ret && priority && (err = ras_json_append_new(params, json_pack("{s:s, s:{s:s, s:s}}",
	    "name", "reviewPriority", "valueCoding", "system", PRIORITY_SYS, "code", priority))) < 0)
		goto done;
	if ((err = ras_json_append_new(params, json_pack("{s:s, s:{s:s, s:s}}", "name", "reviewOutcome",
	    "valueCoding", "system", REVIEW_OUTCOME_SYS, "code", review_outcome))) < 0 ||
	    (err = ras_json_append_new(params, json_pack("{s:s, s:s}", "name", "reviewComments",
	    "valueString", comments))) < 0)
		goto done;
	j = json_pack("{s:{s:[s]}, s:s, s:O}", "meta", "profile",
	    ERS_SD "eRS-RecordReviewOutcome-Parameters-1", "resourceType", "Parameters",
	    "parameter", params);
	if (j == NULL) {
		err = ras_error_code(RAS_EINVALID, "cannot build the review outcome (invalid text)");
		goto done;
	}
	if ((err = ras_json_dump(j, RAS_JSON_COMPACT, &b)) == 0)
		*out = ras_buf_detach(&b, NULL);
done:
	json_decref(params);
	json_decref(j);
	ras_buf_free(&b);
	return err;
}

/* ---- reading A005 -------------------------------------------------------- */

struct ers_view {
	int64_t version;
	char state[64];
	char reason[64];
	char comments[RAS_ERS_COMMENTS_MAX + 1];
	bool has_comments;
	char priority[32];
	char etag[32];
};

static int
read_view(const struct ras_ers_call *k, const char *ubrn, struct ers_view *v)
{
	json_t *j = NULL, *x, *st, *rs, *cm;
	const char *ver, *id;
	int err = 0;

	memset(v, 0, sizeof(*v));
	if ((err = ras_json_parse(k->http.body_out.data, k->http.body_out.len, RAS_PAYLOAD_MAX, &j)) < 0)
		return err;
	id = ras_json_str(j, "id");
	ver = ras_json_str(ras_json_obj(j, "meta"), "versionId");
	if (id == NULL || strcmp(id, ubrn) != 0 || ver == NULL) {
		err = ras_error_code(RAS_EINVALID, "A005 for %s is not that referral (id or versionId)", ubrn);
		goto done;
	}
	{
		char *end;
		long long n = strtoll(ver, &end, 10);

		if (*ver == '\0' || *end != '\0' || n < 1) {
			err = ras_error_code(RAS_EINVALID, "A005 for %s has an invalid versionId", ubrn);
			goto done;
		}
		v->version = n;
	}
	(void)ras_http_response_header(&k->http, "ETag", v->etag, sizeof(v->etag));
	if ((x = ras_fhir_extension(j, ERS_SD "Extension-eRS-ReferralState-1")) != NULL) {
		st = ras_fhir_extension(x, "state");
		rs = ras_fhir_extension(x, "reason");
		cm = ras_fhir_extension(x, "comments");
		if (ras_json_str(ras_json_obj(st, "valueCoding"), "code"))
			snprintf(v->state, sizeof(v->state), "%s", ras_json_str(ras_json_obj(st, "valueCoding"), "code"));
		if (ras_json_str(ras_json_obj(rs, "valueCoding"), "code"))
			snprintf(v->reason, sizeof(v->reason), "%s", ras_json_str(ras_json_obj(rs, "valueCoding"), "code"));
		if (ras_json_str(cm, "valueString")) {
			snprintf(v->comments, sizeof(v->comments), "%s", ras_json_str(cm, "valueString"));
			v->has_comments = true;
		}
	}
	if ((x = ras_fhir_extension(j, ERS_SD "Extension-eRS-ReferralPriority-1")) != NULL) {
		const char *p = ras_fhir_cc_code(ras_json_obj(x, "valueCodeableConcept"), NULL);

		if (p && (strcmp(p, "ROUTINE") == 0 || strcmp(p, "URGENT") == 0 ||
		    strcmp(p, "TWO_WEEK_WAIT") == 0))
			snprintf(v->priority, sizeof(v->priority), "%s", p);
	}
done:
	json_decref(j);
	return err;
}

static bool
is_review_code(const char *reason)
{
	return strcmp(reason, "ACCEPT_REFER_BOOK_LATER") == 0 ||
	    strcmp(reason, "RETURN_TO_REFERRER_WITH_ADVICE") == 0 ||
	    strcmp(reason, "CANCEL_APPOINTMENT_ACTION_LATER") == 0 ||
	    strcmp(reason, "PROVIDER_CONVERTED_ADVICE_AND_GUIDANCE_ADMIN_TO_REFER") == 0;
}

/* Compare comments ignoring surrounding whitespace (e-RS may trim). */
static bool
same_text(const char *a, const char *b)
{
	size_t la, lb;

	while (*a == ' ' || *a == '\n' || *a == '\r' || *a == '\t')
		a++;
	while (*b == ' ' || *b == '\n' || *b == '\r' || *b == '\t')
		b++;
	la = strlen(a);
	lb = strlen(b);
	while (la && (a[la - 1] == ' ' || a[la - 1] == '\n' || a[la - 1] == '\r' || a[la - 1] == '\t'))
		la--;
	while (lb && (b[lb - 1] == ' ' || b[lb - 1] == '\n' || b[lb - 1] == '\r' || b[lb - 1] == '\t'))
		lb--;
	return la == lb && memcmp(a, b, la) == 0;
}

/* ---- intents --------------------------------------------------------------- */

static int
q_count(struct ras_db *db, const char *sql, const char *a, const char *b, int64_t *out)
{
	struct ras_db_res *res = NULL;
	int err;

	*out = 0;
	if ((err = ras_db_query(db, &res, sql, 2, (struct ras_db_param[]){ RAS_DB_TEXT(a),
	    RAS_DB_TEXT(b) })) < 0)
		return err;
	(void)ras_db_res_int(res, 0, 0, out);
	ras_db_res_free(res);
	return 0;
}

struct intent {
	int64_t id, decision_id, referral_id, version;
	char ubrn[RAS_ID_MAX + 1];
	char outcome[40];
	char *comments;            /* malloc'd, NULL when none */
	char state[16];
	int attempts;
};

static void
intent_free(struct intent *t)
{
	free(t->comments);
	t->comments = NULL;
}

static const char SQL_INTENT_COLS[] =
    "o.id, o.decision_id, o.referral_id, o.version, o.ubrn, o.review_outcome, o.comments, o.state,"
    " o.attempts";

static void
intent_from_row(const struct ras_db_res *res, int i, struct intent *t)
{
	int64_t a = 0;

	memset(t, 0, sizeof(*t));
	(void)ras_db_res_int(res, i, 0, &t->id);
	(void)ras_db_res_int(res, i, 1, &t->decision_id);
	(void)ras_db_res_int(res, i, 2, &t->referral_id);
	(void)ras_db_res_int(res, i, 3, &t->version);
	snprintf(t->ubrn, sizeof(t->ubrn), "%s", ras_db_res_get(res, i, 4));
	snprintf(t->outcome, sizeof(t->outcome), "%s", ras_db_res_get(res, i, 5));
	if (!ras_db_res_isnull(res, i, 6))
		t->comments = strdup(ras_db_res_get(res, i, 6));
	snprintf(t->state, sizeof(t->state), "%s", ras_db_res_get(res, i, 7));
	(void)ras_db_res_int(res, i, 8, &a);
	t->attempts = (int)a;
}

struct run {
	struct ras_ers *c;
	struct ras_db *db;
	int64_t now;
	struct ras_ers_outcome_report *rep;
	bool ignore_time;
};

static struct ras_ers_outcome_result *
add_result(struct run *r, const struct intent *t)
{
	struct ras_ers_outcome_result *v = realloc(r->rep->v, (r->rep->n + 1) * sizeof(*v));

	if (v == NULL)
		return NULL;
	r->rep->v = v;
	v = &r->rep->v[r->rep->n++];
	memset(v, 0, sizeof(*v));
	v->intent_id = t->id;
	v->decision_id = t->decision_id;
	snprintf(v->ubrn, sizeof(v->ubrn), "%s", t->ubrn);
	snprintf(v->review_outcome, sizeof(v->review_outcome), "%s", t->outcome);
	v->state = t->state;
	return v;
}

/* Record the intent's new state; `next_in` seconds until the next attempt
 * (< 0: none).  Events carry no free text: codes, versions and states. */
static int
set_state(struct run *r, struct intent *t, struct ras_ers_outcome_result *res, const char *state,
    int64_t next_in, const struct ers_view *v, const struct ras_ers_call *k, const char *msg)
{
	static const char sql[] =
	    "UPDATE ers_outcomes SET state = $2, updated_at = now(),"
	    " next_attempt_at = CASE WHEN $3::bigint >= 0 THEN to_timestamp($4::bigint + $3::bigint) END,"
	    " ers_state = coalesce(nullif($5::text, ''), ers_state),"
	    " ers_reason = coalesce(nullif($6::text, ''), ers_reason),"
	    " result_version = CASE WHEN $2 = 'done' THEN nullif($7::bigint, 0) ELSE result_version END,"
	    " last_status = coalesce(nullif($8::int, 0), last_status),"
	    " error_code = CASE WHEN $2 = 'done' THEN NULL ELSE coalesce(nullif($9::text, ''), error_code) END,"
	    " error = CASE WHEN $2 = 'done' THEN NULL ELSE $10::text END,"
	    " request_id = coalesce(nullif($11::text, ''), request_id),"
	    " done_at = CASE WHEN $2 = 'done' THEN to_timestamp($4::bigint) ELSE done_at END"
	    " WHERE id = $1::bigint";
	static const char event[] =
	    "INSERT INTO events (referral_id, ubrn, kind, actor, detail) VALUES ($1::bigint, $2, $3, 'rasd',"
	    " jsonb_strip_nulls(jsonb_build_object('intent', $4::bigint, 'decision', $5::bigint,"
	    "  'outcome', $6::text, 'version', nullif($7::bigint, 0), 'ers_state', nullif($8::text, ''),"
	    "  'ers_reason', nullif($9::text, ''), 'status', nullif($10::int, 0),"
	    "  'error_code', nullif($11::text, ''), 'request_id', nullif($12::text, ''))))";
	char id[24], in[24], nowb[24], ver[24], st[16], rid[24], did[24];
	const char *kind = NULL;
	int err;

	snprintf(id, sizeof(id), "%lld", (long long)t->id);
	snprintf(in, sizeof(in), "%lld", (long long)next_in);
	snprintf(nowb, sizeof(nowb), "%lld", (long long)r->now);
	snprintf(ver, sizeof(ver), "%lld", (long long)(v ? v->version : 0));
	snprintf(st, sizeof(st), "%ld", k ? k->http.status : 0L);
	snprintf(rid, sizeof(rid), "%lld", (long long)t->referral_id);
	snprintf(did, sizeof(did), "%lld", (long long)t->decision_id);
	if ((err = ras_db_query(r->db, NULL, sql, 11, (struct ras_db_param[]){ RAS_DB_TEXT(id),
	    RAS_DB_TEXT(state), RAS_DB_TEXT(in), RAS_DB_TEXT(nowb), RAS_DB_TEXT(v ? v->state : ""),
	    RAS_DB_TEXT(v ? v->reason : ""), RAS_DB_TEXT(ver), RAS_DB_TEXT(st),
	    RAS_DB_TEXT(k ? k->error_code : ""), RAS_DB_TEXT(msg),
	    RAS_DB_TEXT(k ? k->request_id : "") })) < 0)
		return err;
	snprintf(t->state, sizeof(t->state), "%s", state);
	if (strcmp(state, "done") == 0) {
		kind = "ers-outcome-recorded";
		r->rep->done++;
	} else if (strcmp(state, "overtaken") == 0) {
		kind = "ers-outcome-overtaken";
		r->rep->overtaken++;
	} else if (strcmp(state, "stale") == 0) {
		kind = "ers-outcome-stale";
		r->rep->stale++;
	} else if (strcmp(state, "not-offered") == 0) {
		kind = "ers-outcome-not-offered";
		r->rep->not_offered++;
	} else if (strcmp(state, "parked") == 0) {
		kind = "ers-outcome-parked";
		r->rep->parked++;
	} else if (strcmp(state, "superseded") == 0) {
		kind = "ers-outcome-superseded";
		r->rep->superseded++;
	} else if (strcmp(state, "unknown") == 0) {
		r->rep->unknown++;
	} else if (strcmp(state, "retry") == 0 || strcmp(state, "pending") == 0) {
		r->rep->retry++;
	}
	if (res) {
		res->state = t->state;
		if (strcmp(state, "done") == 0 && v)
			res->result_version = v->version;
		snprintf(res->message, sizeof(res->message), "%s", msg ? msg : state);
	}
	if (kind && (err = ras_db_query(r->db, NULL, event, 12, (struct ras_db_param[]){
	    RAS_DB_TEXT(rid), RAS_DB_TEXT(t->ubrn), RAS_DB_TEXT(kind), RAS_DB_TEXT(id), RAS_DB_TEXT(did),
	    RAS_DB_TEXT(t->outcome), RAS_DB_TEXT(ver), RAS_DB_TEXT(v ? v->state : ""),
	    RAS_DB_TEXT(v ? v->reason : ""), RAS_DB_TEXT(st), RAS_DB_TEXT(k ? k->error_code : ""),
	    RAS_DB_TEXT(k ? k->request_id : "") })) < 0)
		return err;
	return 0;
}

/* ---- one intent ------------------------------------------------------------- */

/* A failed read (A005, A029): park a refusal, otherwise keep the intent for
 * a later run.  Returns 1 when the intent was handled (caller stops). */
static int
read_failed(struct run *r, struct intent *t, struct ras_ers_outcome_result *res,
    const struct ras_ers_call *k)
{
	char msg[400];
	long st = k->http.status;
	bool refusal = !k->http.err && st >= 400 && st < 500 && st != 429 && st != 401 && st != 408;
	const char *keep = strcmp(t->state, "unknown") == 0 || strcmp(t->state, "sending") == 0 ?
	    "unknown" : "retry";
	int err;

	ras_ers_call_error(k, msg, sizeof(msg));
	if (refusal)
		err = set_state(r, t, res, "parked", -1, NULL, k, msg);
	else if (t->attempts >= ras_ers_max_attempts(r->c) && strcmp(keep, "retry") == 0)
		err = set_state(r, t, res, "parked", -1, NULL, k, msg);
	else
		err = set_state(r, t, res, keep,
		    ras_ers_backoff_ms(t->attempts + 1, 60000, 3600000) / 1000, NULL, k, msg);
	return err < 0 ? err : 1;
}

static int
get_view(struct run *r, struct intent *t, struct ras_ers_outcome_result *res, struct ers_view *v)
{
	struct ras_ers_call k;
	int err;

	ras_ers_call_init(&k, "A005", "GET", 0);
	k.ubrn = t->ubrn;
	snprintf(k.url, sizeof(k.url), "/STU3/ReferralRequest/%s", t->ubrn);
	if ((err = ras_ers_perform(r->c, r->now, &k, 1)) < 0)
		goto done;
	if (k.http.err || k.http.status != 200) {
		err = read_failed(r, t, res, &k);
		goto done;
	}
	if (read_view(&k, t->ubrn, v) < 0) {
		char msg[300];

		snprintf(msg, sizeof(msg), "%s", ras_error_last());
		err = set_state(r, t, res, "parked", -1, NULL, &k, msg);
		err = err < 0 ? err : 1;
	}
done:
	ras_ers_call_release(&k, 1);
	return err;
}

static int
offered(struct run *r, struct intent *t, struct ras_ers_outcome_result *res,
    const struct ers_view *v, bool *yes)
{
	struct ras_ers_call k;
	json_t *j = NULL, *e;
	size_t i;
	int err;

	*yes = false;
	ras_ers_call_init(&k, "A029", "GET", 0);
	k.ubrn = t->ubrn;
	snprintf(k.url, sizeof(k.url),
	    "/STU3/Task?focus=ReferralRequest/%s/_history/%lld&intent=proposal&status=ready",
	    t->ubrn, (long long)v->version);
	if ((err = ras_ers_perform(r->c, r->now, &k, 1)) < 0)
		goto done;
	if (k.http.err || k.http.status != 200) {
		err = read_failed(r, t, res, &k);
		goto done;
	}
	if ((err = ras_json_parse(k.http.body_out.data, k.http.body_out.len, RAS_PAYLOAD_MAX, &j)) < 0) {
		char msg[300];

		snprintf(msg, sizeof(msg), "A029 answer is not JSON: %s", ras_error_last());
		err = set_state(r, t, res, "retry", 3600, NULL, &k, msg);
		err = err < 0 ? err : 1;
		goto done;
	}
	json_array_foreach(ras_json_arr(j, "entry"), i, e) {
		json_t *task = ras_json_obj(e, "resource");

		if (ras_fhir_cc_code(ras_json_obj(task, "code"), NULL) &&
		    strcmp(ras_fhir_cc_code(ras_json_obj(task, "code"), NULL), "RECORD_REVIEW_OUTCOME") == 0)
			*yes = true;
	}
done:
	json_decref(j);
	ras_ers_call_release(&k, 1);
	return err;
}

/* Has a newer decision replaced this intent's? */
static int
replaced(struct run *r, const struct intent *t, bool *yes)
{
	static const char sql[] =
	    "SELECT count(*) FROM decisions d JOIN referrals f ON f.id = d.referral_id"
	    " WHERE f.ubrn = $1 AND d.id > $2::bigint";
	char did[24];
	int64_t n = 0;
	int err;

	snprintf(did, sizeof(did), "%lld", (long long)t->decision_id);
	err = q_count(r->db, sql, t->ubrn, did, &n);
	*yes = n > 0;
	return err;
}

/* What e-RS shows decides the intent's fate before any write.  Returns 1
 * when the intent is settled (done, overtaken, stale, superseded), 0 when
 * it should be sent. */
static int
judge(struct run *r, struct intent *t, struct ras_ers_outcome_result *res, const struct ers_view *v,
    const struct ras_ers_call *k)
{
	char msg[400];
	bool newer = false;
	int err;

	if (strcmp(v->reason, t->outcome) == 0 && v->has_comments && same_text(v->comments, t->comments)) {
		snprintf(msg, sizeof(msg), "e-RS already shows %s with these comments (version %lld, %s)",
		    t->outcome, (long long)v->version, v->state);
		err = set_state(r, t, res, "done", -1, v, k, msg);
		return err < 0 ? err : 1;
	}
	if (strcmp(t->state, "unknown") == 0 || strcmp(t->state, "sending") == 0) {
		if ((err = replaced(r, t, &newer)) < 0)
			return err;
		if (newer) {
			err = set_state(r, t, res, "superseded", -1, v, k,
			    "a later decision replaced this one; the earlier A028 was not applied");
			return err < 0 ? err : 1;
		}
	}
	if (strcmp(v->state, "AWAITING_TRIAGE") != 0 && is_review_code(v->reason)) {
		snprintf(msg, sizeof(msg),
		    "someone else recorded %s on e-RS (state %s, version %lld): not overwritten",
		    v->reason, v->state, (long long)v->version);
		err = set_state(r, t, res, "overtaken", -1, v, k, msg);
		return err < 0 ? err : 1;
	}
	if (v->version != t->version) {
		snprintf(msg, sizeof(msg),
		    "the referral changed on e-RS (version %lld, decision made on %lld): it must be triaged again",
		    (long long)v->version, (long long)t->version);
		err = set_state(r, t, res, "stale", -1, v, k, msg);
		return err < 0 ? err : 1;
	}
	return 0;
}

/* reviewComments: the advice, never empty, never cut.  An intent without
 * it takes [ers] accept_comment (an accept) or is parked (a return).
 * 1 when the intent was parked, 0 to go on, < 0 on error. */
static int
ready_comments(struct run *r, struct intent *t, struct ras_ers_outcome_result *res, const char *id)
{
	static const char fix_comments[] =
	    "UPDATE ers_outcomes SET comments = $2, updated_at = now() WHERE id = $1::bigint";
	char msg[512];
	int err;

	if (t->comments == NULL || same_text(t->comments, "")) {
		if (strcmp(t->outcome, "RETURN_TO_REFERRER_WITH_ADVICE") == 0) {
			err = set_state(r, t, res, "parked", -1, NULL, NULL,
			    "a return to the referrer needs advice, and the decision gives none");
			return err < 0 ? err : 1;
		}
		free(t->comments);
		t->comments = strdup(ras_ers_accept_comment(r->c));
		if (t->comments == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		if ((err = ras_db_query(r->db, NULL, fix_comments, 2, (struct ras_db_param[]){
		    RAS_DB_TEXT(id), RAS_DB_TEXT(t->comments) })) < 0)
			return err;
	}
	if (strlen(t->comments) > RAS_ERS_COMMENTS_MAX) {
		snprintf(msg, sizeof(msg), "the advice is longer than %d characters: shorten it and record it again",
		    RAS_ERS_COMMENTS_MAX);
		err = set_state(r, t, res, "parked", -1, NULL, NULL, msg);
		return err < 0 ? err : 1;
	}
	return 0;
}

/* Send A028 for version v of the referral, the intent persisted as in
 * flight ('sending') before the write.  0 when it was sent (k holds the
 * answer); 1 when it was not and there is nothing more to do (the state
 * is set, or another intent of the UBRN is in flight); < 0 on error. */
static int
send_a028(struct run *r, struct intent *t, struct ras_ers_outcome_result *res,
    const struct ers_view *v, const char *id, struct ras_ers_call *k, char **body, char *ifm,
    size_t ifmsize)
{
	static const char sending[] =
	    "UPDATE ers_outcomes SET state = 'sending', sent_version = $2::bigint, attempts = attempts + 1,"
	    " correlation_id = $3, next_attempt_at = to_timestamp($4::bigint + $5::bigint),"
	    " updated_at = now() WHERE id = $1::bigint";
	char ver[24], nowb[24], lease[16], msg[512];
	int err;

	free(*body);
	*body = NULL;
	if ((err = ras_ers_outcome_review_body(t->outcome, t->comments, v->priority[0] ? v->priority : NULL,
	    body)) < 0) {
		(void)ras_buf_format(msg, sizeof(msg), "%s", ras_error_last());
		err = set_state(r, t, res, "parked", -1, v, NULL, msg);
		return err < 0 ? err : 1;
	}
	ras_ers_call_release(k, 1);
	ras_ers_call_init(k, "A028", "POST", RAS_ERS_CALL_WRITE);
	k->ubrn = t->ubrn;
	snprintf(k->url, sizeof(k->url), "/STU3/ReferralRequest/%s/$ers.recordReviewOutcome", t->ubrn);
	k->body = *body;
	k->body_len = strlen(*body);
	snprintf(ifm, ifmsize, "W/\"%lld\"", (long long)v->version);
	k->if_match = ifm;
	if ((err = ras_crypto_uuid(k->correlation_id)) < 0)
		return err;
	snprintf(ver, sizeof(ver), "%lld", (long long)v->version);
	snprintf(nowb, sizeof(nowb), "%lld", (long long)r->now);
	snprintf(lease, sizeof(lease), "%d", SENDING_LEASE_S);
	if ((err = ras_db_query(r->db, NULL, sending, 5, (struct ras_db_param[]){ RAS_DB_TEXT(id),
	    RAS_DB_TEXT(ver), RAS_DB_TEXT(k->correlation_id), RAS_DB_TEXT(nowb),
	    RAS_DB_TEXT(lease) })) < 0) {
		if (err != RAS_ECONFLICT)
			return err;
		/* another intent of this UBRN is in flight */
		r->rep->busy++;
		return 1;
	}
	snprintf(t->state, sizeof(t->state), "sending");
	t->attempts++;
	if ((err = ras_ers_perform(r->c, r->now, k, 1)) < 0) {
		/* the batch could not start (no token): nothing was sent */
		(void)ras_buf_format(msg, sizeof(msg), "%s", ras_error_last());
		err = set_state(r, t, res, "retry", ras_ers_backoff_ms(t->attempts, 60000, 3600000) / 1000,
		    NULL, NULL, msg);
		return err < 0 ? err : 1;
	}
	res->a028_calls++;
	return 0;
}

/* What e-RS's answer to A028 means for the intent.  1 when the referral
 * must be read again and the outcome sent again (a 409 in the first
 * round), 0 when the intent's state is set, < 0 on error. */
static int
settle_answer(struct run *r, struct intent *t, struct ras_ers_outcome_result *res,
    const struct ers_view *v, struct ras_ers_call *k, int round)
{
	struct ers_view after;
	char msg[512];
	int err;

	ras_ers_call_error(k, msg, sizeof(msg));
	if (!k->http.err && k->http.status == 200) {
		memset(&after, 0, sizeof(after));
		if (read_view(k, t->ubrn, &after) < 0) {
			/* recorded (200) but the answer is not the referral: keep
			 * what the ETag says */
			char et[32] = "";

			(void)ras_http_response_header(&k->http, "ETag", et, sizeof(et));
			after.version = 0;
			if (strncmp(et, "W/\"", 3) == 0)
				after.version = strtoll(et + 3, NULL, 10);
		}
		snprintf(msg, sizeof(msg), "recorded on e-RS (version %lld -> %lld)",
		    (long long)v->version, (long long)after.version);
		return set_state(r, t, res, "done", -1, &after, k, msg);
	}
	if (k->http.err == RAS_EIO || k->http.err == RAS_EINVALID) {
		/* certainly not sent */
		return set_state(r, t, res, "retry", ras_ers_backoff_ms(t->attempts, 60000, 3600000) / 1000,
		    NULL, k, msg);
	}
	if (k->http.err || k->http.status >= 500) {
		/* outcome unknown: the next run reads A005 before anything */
		return set_state(r, t, res, t->attempts >= ras_ers_max_attempts(r->c) ? "parked" : "unknown",
		    t->attempts >= ras_ers_max_attempts(r->c) ? -1 : 0, NULL, k, msg);
	}
	switch (k->http.status) {
	case 409:
		/* the version moved: read again and judge afresh (someone
		 * else's review is recorded, not overwritten) */
		if (round == 0) {
			err = set_state(r, t, res, "retry", 0, NULL, k, msg);
			return err < 0 ? err : 1;
		}
		return set_state(r, t, res, "retry", ras_ers_backoff_ms(t->attempts, 60000, 3600000) / 1000,
		    NULL, k, msg);
	case 423:
	case 429:
	case 401:
		/* locked by a concurrent update / throttled / token: later */
		return set_state(r, t, res, t->attempts >= ras_ers_max_attempts(r->c) ? "parked" : "retry",
		    t->attempts >= ras_ers_max_attempts(r->c) ? -1 :
		    ras_ers_backoff_ms(t->attempts, 60000, 3600000) / 1000, NULL, k, msg);
	default:
		/* 412 precondition, 422 PATIENT_ERROR and the other business
		 * rules, 400/403/404: a person must look */
		return set_state(r, t, res, "parked", -1, NULL, k, msg);
	}
}

/* One intent: its comments, then (at most twice, when the version moved
 * under it) read the referral, judge whether the outcome still applies
 * and is offered, send A028, and settle the answer. */
static int
process(struct run *r, struct intent *t, struct ras_ers_outcome_result *res)
{
	struct ers_view v;
	struct ras_ers_call k;
	char id[24], ifm[40], msg[512];
	char *body = NULL;
	bool yes = false;
	int err;

	ras_ers_call_init(&k, "A028", "POST", RAS_ERS_CALL_WRITE);
	snprintf(id, sizeof(id), "%lld", (long long)t->id);
	if ((err = ready_comments(r, t, res, id)) != 0)
		goto done;
	for (int round = 0; round < 2; round++) {
		if ((err = get_view(r, t, res, &v)) != 0)
			goto done;
		if ((err = judge(r, t, res, &v, NULL)) != 0)
			goto done;
		if ((err = offered(r, t, res, &v, &yes)) != 0)
			goto done;
		if (!yes) {
			snprintf(msg, sizeof(msg),
			    "e-RS does not offer RECORD_REVIEW_OUTCOME for version %lld (state %s): a person must act in e-RS",
			    (long long)v.version, v.state);
			err = set_state(r, t, res, "not-offered", -1, &v, NULL, msg);
			goto done;
		}
		if ((err = send_a028(r, t, res, &v, id, &k, &body, ifm, sizeof(ifm))) != 0)
			goto done;
		if ((err = settle_answer(r, t, res, &v, &k, round)) != 1)
			goto done;
	}
done:
	ras_ers_call_release(&k, 1);
	free(body);
	return err < 0 ? err : 0;
}

/* ---- claiming -------------------------------------------------------------- */

static int
write_lock(struct ras_db *db, const char *ubrn, bool lock, bool *got)
{
	static const char try_sql[] =
	    "SELECT pg_try_advisory_lock(hashtextextended('rasd-ers-write:' || $1, 0))::text";
	static const char un_sql[] =
	    "SELECT pg_advisory_unlock(hashtextextended('rasd-ers-write:' || $1, 0))";
	struct ras_db_res *res = NULL;
	int err;

	if (!lock)
		return ras_db_query(db, NULL, un_sql, 1, &RAS_DB_TEXT(ubrn));
	if ((err = ras_db_query(db, &res, try_sql, 1, &RAS_DB_TEXT(ubrn))) < 0)
		return err;
	*got = strcmp(ras_db_res_get(res, 0, 0), "true") == 0;
	ras_db_res_free(res);
	return 0;
}

/* Lock the UBRN, re-read the intent (another instance may have settled it
 * meanwhile) and process it. */
static int
run_one(struct run *r, int64_t intent_id, const char *ubrn)
{
	char sql[512], id[24], nowb[24];
	struct ras_db_res *res = NULL;
	struct intent t;
	struct ras_ers_outcome_result *out;
	bool got = false;
	int err;

	if ((err = write_lock(r->db, ubrn, true, &got)) < 0)
		return err;
	if (!got) {
		r->rep->busy++;
		return 0;
	}
	snprintf(sql, sizeof(sql), "SELECT %s FROM ers_outcomes o WHERE o.id = $1::bigint"
	    " AND o.state IN ('pending', 'retry', 'unknown', 'sending')"
	    " AND ($3::boolean OR o.state <> 'sending' OR o.next_attempt_at <= to_timestamp($2::bigint))"
	    " AND ($3::boolean OR o.next_attempt_at IS NULL OR o.next_attempt_at <= to_timestamp($2::bigint))",
	    SQL_INTENT_COLS);
	snprintf(id, sizeof(id), "%lld", (long long)intent_id);
	snprintf(nowb, sizeof(nowb), "%lld", (long long)r->now);
	if ((err = ras_db_query(r->db, &res, sql, 3, (struct ras_db_param[]){ RAS_DB_TEXT(id),
	    RAS_DB_TEXT(nowb), RAS_DB_TEXT(r->ignore_time ? "true" : "false") })) < 0)
		goto done;
	if (ras_db_res_rows(res) == 1) {
		intent_from_row(res, 0, &t);
		out = add_result(r, &t);
		if (out == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		else
			err = process(r, &t, out);
		/* the result's state points into t: copy it to a static name */
		if (out)
			out->state = strcmp(t.state, "done") == 0 ? "done" :
			    strcmp(t.state, "retry") == 0 ? "retry" :
			    strcmp(t.state, "unknown") == 0 ? "unknown" :
			    strcmp(t.state, "parked") == 0 ? "parked" :
			    strcmp(t.state, "overtaken") == 0 ? "overtaken" :
			    strcmp(t.state, "stale") == 0 ? "stale" :
			    strcmp(t.state, "not-offered") == 0 ? "not-offered" :
			    strcmp(t.state, "superseded") == 0 ? "superseded" :
			    strcmp(t.state, "sending") == 0 ? "sending" : "pending";
		intent_free(&t);
	}
done:
	ras_db_res_free(res);
	(void)write_lock(r->db, ubrn, false, &got);
	return err;
}

int
ras_ers_outcome_pending(struct ras_ers *c, struct ras_db *db, int64_t now, size_t limit,
    struct ras_ers_outcome_report *rep)
{
	static const char sql[] =
	    "SELECT o.id, o.ubrn FROM ers_outcomes o"
	    " WHERE o.state IN ('pending', 'retry', 'unknown', 'sending')"
	    "   AND (o.next_attempt_at IS NULL OR o.next_attempt_at <= to_timestamp($1::bigint))"
	    "   AND NOT EXISTS (SELECT 1 FROM ers_outcomes p WHERE p.ubrn = o.ubrn AND p.id < o.id"
	    "                   AND p.state IN ('pending', 'retry', 'unknown', 'sending'))"
	    " ORDER BY o.id LIMIT $2::int";
	struct run r = { .c = c, .db = db, .now = now, .rep = rep };
	struct ras_db_res *res = NULL;
	char nowb[24], lim[24];
	int err, rows;

	memset(rep, 0, sizeof(*rep));
	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	snprintf(lim, sizeof(lim), "%zu", limit ? limit : 100);
	if ((err = ras_db_query(db, &res, sql, 2, (struct ras_db_param[]){ RAS_DB_TEXT(nowb),
	    RAS_DB_TEXT(lim) })) < 0)
		return err;
	rows = ras_db_res_rows(res);
	for (int i = 0; i < rows && err == 0; i++) {
		int64_t id = 0;

		(void)ras_db_res_int(res, i, 0, &id);
		err = run_one(&r, id, ras_db_res_get(res, i, 1));
	}
	ras_db_res_free(res);
	(void)ras_ers_flush_calls(c, db);
	return err;
}

int
ras_ers_outcome_recover(struct ras_db *db, int64_t now, int *n)
{
	static const char sql[] =
	    "SELECT id::text, ubrn FROM ers_outcomes WHERE state = 'sending' ORDER BY id";
	static const char settle[] =
	    "UPDATE ers_outcomes SET state = 'unknown', next_attempt_at = to_timestamp($2::bigint),"
	    " error = 'the rasd that was recording it stopped before the answer: e-RS is read before"
	    " anything is sent again', updated_at = now()"
	    " WHERE id = $1::bigint AND state = 'sending'";
	struct ras_db_res *res = NULL;
	char nowb[24];
	int err, count = 0;

	*n = 0;
	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	if ((err = ras_db_query(db, &res, sql, 0, NULL)) < 0)
		return err;
	for (int i = 0; i < ras_db_res_rows(res) && err == 0; i++) {
		const char *ubrn = ras_db_res_get(res, i, 1);
		bool got = false;

		/* The writer holds the UBRN's lock for the whole A005-A029-A028
		 * exchange: a lock we can take is one nobody holds, so the intent
		 * was left behind by a process that is gone. */
		if ((err = write_lock(db, ubrn, true, &got)) < 0 || !got)
			continue;
		err = ras_db_query(db, NULL, settle, 2, (struct ras_db_param[]){
		    RAS_DB_TEXT(ras_db_res_get(res, i, 0)), RAS_DB_TEXT(nowb) });
		if (err == 0)
			count++;
		(void)write_lock(db, ubrn, false, &got);
	}
	ras_db_res_free(res);
	if (err == 0)
		*n = count;
	return err;
}

int
ras_ers_outcome_record(struct ras_ers *c, struct ras_db *db, const char *ubrn, int64_t now,
    struct ras_ers_outcome_report *rep)
{
	static const char latest[] =
	    "SELECT d.id, d.outcome, d.final::text, d.decided_by,"
	    " (SELECT o.id FROM ers_outcomes o WHERE o.decision_id = d.id),"
	    " (SELECT o.state FROM ers_outcomes o WHERE o.decision_id = d.id)"
	    " FROM decisions d JOIN referrals f ON f.id = d.referral_id"
	    " WHERE f.ubrn = $1 ORDER BY d.id DESC LIMIT 1";
	static const char make[] = "SELECT ras_ers_make_intent($1::bigint)";
	static const char requeue[] =
	    "UPDATE ers_outcomes SET state = 'pending', next_attempt_at = NULL, updated_at = now()"
	    " WHERE id = $1::bigint AND state IN ('parked', 'not-offered', 'retry')";
	struct run r = { .c = c, .db = db, .now = now, .rep = rep, .ignore_time = true };
	struct ras_db_res *res = NULL;
	int64_t did = 0, iid = 0;
	char outcome[16], final[8], by[RAS_ID_MAX + 1], state[16] = "", idb[24];
	int err;

	memset(rep, 0, sizeof(*rep));
	if ((err = ras_db_query(db, &res, latest, 1, &RAS_DB_TEXT(ubrn))) < 0)
		return err;
	if (ras_db_res_rows(res) == 0) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOTFOUND, "no decision is stored for UBRN %.40s", ubrn);
	}
	(void)ras_db_res_int(res, 0, 0, &did);
	snprintf(outcome, sizeof(outcome), "%s", ras_db_res_get(res, 0, 1));
	snprintf(final, sizeof(final), "%s", ras_db_res_get(res, 0, 2));
	snprintf(by, sizeof(by), "%s", ras_db_res_get(res, 0, 3));
	(void)ras_db_res_int(res, 0, 4, &iid);
	if (!ras_db_res_isnull(res, 0, 5))
		snprintf(state, sizeof(state), "%s", ras_db_res_get(res, 0, 5));
	ras_db_res_free(res);
	res = NULL;
	if (strcmp(outcome, "onward") == 0 || strcmp(outcome, "review") == 0)
		return ras_error_code(RAS_EINVALID,
		    "the current decision for %.40s is \"%s\": e-RS has no call for it, a person acts in e-RS",
		    ubrn, outcome);
	if (strcmp(final, "true") != 0 && strcmp(by, "rules") == 0)
		return ras_error_code(RAS_EINVALID,
		    "the current decision for %.40s is a recommendation (%s) awaiting a clinician's decision",
		    ubrn, outcome);
	snprintf(idb, sizeof(idb), "%lld", (long long)did);
	if (iid == 0) {
		if ((err = ras_db_query(db, &res, make, 1, &RAS_DB_TEXT(idb))) < 0)
			return err;
		(void)ras_db_res_int(res, 0, 0, &iid);
		ras_db_res_free(res);
		if (iid == 0)
			return ras_error_code(RAS_EINVALID, "the decision for %.40s cannot be recorded on e-RS "
			    "(not an e-RS referral)", ubrn);
		snprintf(state, sizeof(state), "pending");
	}
	if (strcmp(state, "done") == 0 || strcmp(state, "overtaken") == 0 ||
	    strcmp(state, "superseded") == 0 || strcmp(state, "stale") == 0)
		return ras_error_code(RAS_EINVALID, "the outcome for %.40s is already settled (%s): see rasctl ers pending",
		    ubrn, state);
	snprintf(idb, sizeof(idb), "%lld", (long long)iid);
	if ((err = ras_db_query(db, NULL, requeue, 1, &RAS_DB_TEXT(idb))) < 0)
		return err;
	err = run_one(&r, iid, ubrn);
	(void)ras_ers_flush_calls(c, db);
	if (err == 0 && rep->n == 0 && rep->busy)
		return ras_error_code(RAS_ECONFLICT, "another rasd is writing to e-RS for %.40s", ubrn);
	return err;
}
