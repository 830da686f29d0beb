/* pds_store: PDS answers in the database and the demographics stage (see include/ras/pds_store.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/decision.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/pds.h"
#include "ras/pds_store.h"
#include "ras/referral.h"
#include "ras/date.h"
#include "ras/time.h"

/* A lookup PDS did not answer is tried again after this, doubling up to
 * the cap; the lease keeps two rasd processes off the same check. */
#define WAIT_FIRST_S 60
#define WAIT_CAP_S 3600
#define LEASE_S 300
/* A stored answer younger than this is used again instead of a new call
 * for the same NHS number (a batch of referrals for one patient). */
#define REUSE_S 3600

static const char SQL_STORE_LOOKUP[] =
    "INSERT INTO pds_lookups (nhs_number, answered_id, referral_id, request_id, correlation_id,"
    " attempts, status, result, code, etag, version_id, content_type, body, summary, error, actor)"
    " VALUES ($1, $2, $3::bigint, $4, $5, $6::int, nullif($7, '0')::int, $8, nullif($9, ''),"
    "  nullif($10, ''), $11, nullif($12, ''), $13::bytea, $14::jsonb, nullif($15, ''), $16)"
    " RETURNING id";

int
ras_pds_store_lookup(struct ras_db *db, const struct ras_pds_lookup *l, int64_t referral_id,
    const char *actor, int64_t *id)
{
	struct ras_db_res *res = NULL;
	struct ras_buf sum = RAS_BUF_INIT(0);
	char rid[24], att[16], st[16];
	json_t *j = NULL;
	int err;

	snprintf(rid, sizeof(rid), "%lld", (long long)referral_id);
	snprintf(att, sizeof(att), "%d", l->attempts);
	snprintf(st, sizeof(st), "%ld", l->status);
	if (l->have_patient) {
		if ((j = ras_pds_patient_to_json(&l->patient, l->asked)) == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		err = ras_json_dump(j, RAS_JSON_COMPACT, &sum);
		json_decref(j);
		if (err < 0)
			return err;
	}
	err = ras_db_query(db, &res, SQL_STORE_LOOKUP, 16, (struct ras_db_param[]){
	    RAS_DB_TEXT(l->asked), RAS_DB_TEXT(l->have_patient ? l->patient.id : NULL),
	    RAS_DB_TEXT(referral_id ? rid : NULL), RAS_DB_TEXT(l->request_id[0] ? l->request_id : NULL),
	    RAS_DB_TEXT(l->correlation_id[0] ? l->correlation_id : NULL), RAS_DB_TEXT(att), RAS_DB_TEXT(st),
	    RAS_DB_TEXT(ras_pds_result_name(l->result)), RAS_DB_TEXT(l->code), RAS_DB_TEXT(l->etag),
	    RAS_DB_TEXT(l->have_patient ? l->patient.version : NULL), RAS_DB_TEXT(l->content_type),
	    l->attempts ? RAS_DB_BYTES(l->body.data ? l->body.data : "", l->body.len) : RAS_DB_TEXT(NULL),
	    RAS_DB_TEXT(sum.data), RAS_DB_TEXT(l->error), RAS_DB_TEXT(actor) });
	ras_buf_free(&sum);
	if (err < 0) {
		ras_error_context("storing a PDS response");
		return err;
	}
	(void)ras_db_res_int(res, 0, 0, id);
	ras_db_res_free(res);
	return 0;
}

int
ras_pds_store_apply(struct ras_db *db, int64_t lookup_id, int64_t referral_id, const char *actor,
    const char *differences, bool retriage)
{
	char lid[24], rid[24];
	int err;

	snprintf(lid, sizeof(lid), "%lld", (long long)lookup_id);
	snprintf(rid, sizeof(rid), "%lld", (long long)referral_id);
	err = ras_db_query(db, NULL, "SELECT ras_pds_apply($1::bigint, $2::bigint, $3, $4::jsonb, $5::boolean)",
	    5, (struct ras_db_param[]){ RAS_DB_TEXT(lid), RAS_DB_TEXT(referral_id ? rid : NULL),
	    RAS_DB_TEXT(actor), RAS_DB_TEXT(differences), RAS_DB_TEXT(retriage ? "true" : "false") });
	if (err < 0)
		ras_error_context("applying PDS lookup %s", lid);
	return err;
}

/* ---- differences (verify) --------------------------------------------------- */

/* {"birth_date": {"referral", "pds"}, "practice_ods": {…}} for what the
 * referral sent that PDS contradicts; NULL when nothing differs. */
static json_t *
differences(const json_t *ref_patient, const json_t *summary)
{
	json_t *d = json_object();
	const char *rb = ras_json_str(ref_patient, "birth_date"), *pb = ras_json_str(summary, "birth_date");
	const char *rp = ras_json_str(ref_patient, "practice_ods"), *pp = ras_json_str(summary, "practice_ods");

	if (d == NULL)
		return NULL;
	if (rb && pb && strlen(pb) == 10 && strcmp(rb, pb) != 0)
		(void)ras_json_set_new(d, "birth_date", json_pack("{s:s, s:s}", "referral", rb, "pds", pb));
	if (rp && pp && strcasecmp(rp, pp) != 0)
		(void)ras_json_set_new(d, "practice_ods", json_pack("{s:s, s:s}", "referral", rp, "pds", pp));
	if (json_object_size(d) == 0) {
		json_decref(d);
		return NULL;
	}
	return d;
}

static char *
differences_text(const char *ref_patient, const json_t *summary)
{
	json_t *rp = NULL, *d;
	struct ras_buf b = RAS_BUF_INIT(0);
	char *s = NULL;

	if (ref_patient == NULL || summary == NULL ||
	    ras_json_parse(ref_patient, strlen(ref_patient), RAS_PAYLOAD_MAX, &rp) < 0)
		return NULL;
	d = differences(rp, summary);
	json_decref(rp);
	if (d && ras_json_dump(d, RAS_JSON_COMPACT, &b) == 0)
		s = ras_buf_detach(&b, NULL);
	json_decref(d);
	ras_buf_free(&b);
	return s;
}

/* ---- the stage ------------------------------------------------------------------ */

static const char SQL_QUEUE[] =
    "WITH c AS ("
    "  SELECT r.id, r.received_at, r.doc -> 'patient' ->> 'nhs_number' AS nhs FROM referrals r"
    "  WHERE r.state = 'new' AND r.doc -> 'patient' ->> 'nhs_number_status' = 'valid'"
    "   AND ($1::boolean OR r.doc -> 'patient' ->> 'birth_date' IS NULL"
    "        OR r.doc -> 'patient' ->> 'family' IS NULL OR r.doc -> 'patient' ->> 'practice_ods' IS NULL)"
    "   AND NOT EXISTS (SELECT 1 FROM pds_checks k WHERE k.referral_id = r.id)"
    "  ORDER BY r.id LIMIT $2::int FOR UPDATE OF r SKIP LOCKED),"
    " q AS (INSERT INTO pds_checks (referral_id, nhs_number, state, waiting_since, next_attempt_at)"
    "  SELECT c.id, coalesce((SELECT p.superseded_by FROM patients p WHERE p.nhs_number = c.nhs), c.nhs),"
    "   'waiting', c.received_at, to_timestamp($3::bigint) FROM c"
    "  ON CONFLICT (referral_id) DO NOTHING RETURNING referral_id)"
    " UPDATE referrals r SET state = 'demographics', updated_at = now() FROM q"
    " WHERE r.id = q.referral_id RETURNING r.id";

static const char SQL_LEASE[] =
    "WITH c AS (SELECT k.referral_id FROM pds_checks k"
    "  WHERE k.state = 'waiting' AND k.next_attempt_at <= to_timestamp($1::bigint)"
    "  ORDER BY k.next_attempt_at, k.referral_id LIMIT $2::int FOR UPDATE SKIP LOCKED)"
    " UPDATE pds_checks k SET next_attempt_at = to_timestamp($1::bigint) + make_interval(secs => $3::int),"
    "  attempts = k.attempts + 1, updated_at = now()"
    " FROM c WHERE k.referral_id = c.referral_id"
    " RETURNING k.referral_id::text, k.nhs_number, k.attempts::text,"
    "  (SELECT r.doc -> 'patient' FROM referrals r WHERE r.id = k.referral_id)::text,"
    "  (SELECT l.id FROM pds_lookups l WHERE l.result = 'found'"
    "    AND (l.nhs_number = k.nhs_number OR l.answered_id = k.nhs_number)"
    "    AND l.looked_up_at > to_timestamp($1::bigint) - make_interval(secs => $4::int)"
    "    ORDER BY l.id DESC LIMIT 1)::text";

static const char SQL_SUMMARY[] =
    "SELECT summary::text FROM pds_lookups WHERE id = $1::bigint";

static const char SQL_WAIT[] =
    "WITH k AS (UPDATE pds_checks SET result = $2, lookup_id = $3::bigint,"
    "  next_attempt_at = to_timestamp($4::bigint), updated_at = now()"
    "  WHERE referral_id = $1::bigint RETURNING referral_id, attempts)"
    " INSERT INTO events (referral_id, ubrn, kind, actor, detail)"
    " SELECT k.referral_id, r.ubrn, 'pds-waiting', 'rasd',"
    "  jsonb_build_object('lookup', $3::bigint, 'result', $2, 'attempts', k.attempts,"
    "   'next_attempt_at', to_timestamp($4::bigint))"
    " FROM k JOIN referrals r ON r.id = k.referral_id WHERE k.attempts = 1";

static int64_t
wait_s(int64_t attempts)
{
	int64_t d = WAIT_FIRST_S;

	for (int64_t i = 1; i < attempts && d < WAIT_CAP_S; i++)
		d *= 2;
	return d > WAIT_CAP_S ? WAIT_CAP_S : d;
}

static void
count(struct ras_pds_stage_report *rep, const struct ras_pds_lookup *l)
{
	rep->looked_up++;
	if (l->result >= RAS_PDS_FOUND && l->result <= RAS_PDS_UNAVAILABLE)
		rep->by_result[l->result]++;
	if (l->have_patient) {
		rep->restricted += l->patient.restricted;
		rep->superseded += l->patient.superseded;
		rep->deceased += l->patient.deceased != NULL;
	}
	if (l->result != RAS_PDS_FOUND && l->error[0] && rep->first_error[0] == '\0')
		snprintf(rep->first_error, sizeof(rep->first_error), "%s", l->error);
}

/* One leased check: reuse a fresh stored answer, or look up, store, apply. */
static int
check_one(struct ras_db *db, struct ras_pds *c, int64_t now, const char *rid_text,
    const char *nhs, int64_t attempts, const char *ref_patient, const char *reuse,
    bool *down, struct ras_pds_stage_report *rep)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_date today;
	int64_t rid = 0, lid = 0;
	json_t *sum = NULL;
	char *diff = NULL;
	int err = 0, secs;

	memset(&l, 0, sizeof(l));
	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	(void)sscanf(rid_text, "%lld", (long long *)&rid);
	ras_time_uk_date(now, &today, &secs);
	if (reuse) {
		struct ras_db_res *res = NULL;

		(void)sscanf(reuse, "%lld", (long long *)&lid);
		if ((err = ras_db_query(db, &res, SQL_SUMMARY, 1, &RAS_DB_TEXT(reuse))) < 0)
			goto done;
		if (ras_db_res_rows(res) == 1 && !ras_db_res_isnull(res, 0, 0))
			(void)ras_json_parse(ras_db_res_get(res, 0, 0), ras_db_res_len(res, 0, 0), RAS_PAYLOAD_MAX, &sum);
		ras_db_res_free(res);
	} else if (*down) {
		/* PDS failed a lookup of this run already: do not spend the
		 * back-off on every one of the batch; they wait too */
		char next[24];

		snprintf(next, sizeof(next), "%lld", (long long)(now + wait_s(attempts)));
		err = ras_db_query(db, NULL, SQL_WAIT, 4, (struct ras_db_param[]){ RAS_DB_TEXT(rid_text),
		    RAS_DB_TEXT("unavailable"), RAS_DB_TEXT(NULL), RAS_DB_TEXT(next) });
		goto done;
	} else {
		if ((err = ras_pds_get(c, a, nhs, &today, &l)) < 0)
			goto done;
		count(rep, &l);
		/* verbatim, before anything uses it */
		if ((err = ras_pds_store_lookup(db, &l, rid, "rasd", &lid)) < 0)
			goto done;
		if (l.result == RAS_PDS_UNAVAILABLE || l.result == RAS_PDS_REFUSED) {
			char lids[24], next[24];

			*down = true;
			snprintf(lids, sizeof(lids), "%lld", (long long)lid);
			snprintf(next, sizeof(next), "%lld", (long long)(now + wait_s(attempts)));
			err = ras_db_query(db, NULL, SQL_WAIT, 4, (struct ras_db_param[]){ RAS_DB_TEXT(rid_text),
			    RAS_DB_TEXT(ras_pds_result_name(l.result)), RAS_DB_TEXT(lids), RAS_DB_TEXT(next) });
			goto done;
		}
		if (l.have_patient)
			sum = ras_pds_patient_to_json(&l.patient, l.asked);
	}
	if (sum && (diff = differences_text(ref_patient, sum)) != NULL)
		rep->differing++;
	err = ras_pds_store_apply(db, lid, rid, "rasd", diff, true);
done:
	free(diff);
	json_decref(sum);
	ras_pds_lookup_release(&l);
	ras_arena_free(a);
	return err;
}

static const char SQL_STALE[] =
    "SELECT k.referral_id::text, k.nhs_number FROM pds_checks k JOIN pds_lookups l ON l.id = k.lookup_id"
    " WHERE k.state = 'done' AND l.result = 'found'"
    "  AND l.looked_up_at < to_timestamp($1::bigint) - $2::bigint * interval '1 second'"
    "  AND EXISTS (SELECT 1 FROM outbox o WHERE o.referral_id = k.referral_id AND o.state = 'pending')"
    " ORDER BY k.referral_id LIMIT $3::int";

/* Letters wait while their patient's PDS record is older than max_age
 * (outbox_render.c): read those records again, without re-triage. */
static int
refresh_stale(struct ras_db *db, struct ras_pds *c, int64_t now, int64_t max_age_s, const char *lim,
    struct ras_pds_stage_report *rep)
{
	struct ras_db_res *res = NULL;
	struct ras_date today;
	char nowb[24], age[24];
	int err, secs;

	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	snprintf(age, sizeof(age), "%lld", (long long)max_age_s);
	if ((err = ras_db_query(db, &res, SQL_STALE, 3, (struct ras_db_param[]){ RAS_DB_TEXT(nowb),
	    RAS_DB_TEXT(age), RAS_DB_TEXT(lim) })) < 0)
		return err;
	ras_time_uk_date(now, &today, &secs);
	for (int i = 0; i < ras_db_res_rows(res) && err == 0; i++) {
		struct ras_arena *a = ras_arena_new();
		struct ras_pds_lookup l;
		int64_t rid = 0, lid = 0;

		if (a == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			break;
		}
		(void)ras_db_res_int(res, i, 0, &rid);
		if ((err = ras_pds_get(c, a, ras_db_res_get(res, i, 1), &today, &l)) == 0) {
			count(rep, &l);
			rep->refreshed++;
			if ((err = ras_pds_store_lookup(db, &l, rid, "rasd", &lid)) == 0 &&
			    l.result != RAS_PDS_UNAVAILABLE && l.result != RAS_PDS_REFUSED)
				err = ras_pds_store_apply(db, lid, rid, "rasd", NULL, false);
		}
		ras_pds_lookup_release(&l);
		ras_arena_free(a);
		if (err == 0 && (l.result == RAS_PDS_UNAVAILABLE || l.result == RAS_PDS_REFUSED))
			break;   /* the letters wait; try again next run */
	}
	ras_db_res_free(res);
	return err;
}

int
ras_pds_store_demographics(struct ras_db *db, struct ras_pds *c, bool verify, int64_t max_age_s,
    int64_t now, size_t limit, struct ras_pds_stage_report *rep)
{
	struct ras_db_res *res = NULL;
	char lim[24], nowb[24], lease[16], reuse[16];
	bool down = false;
	int err;

	memset(rep, 0, sizeof(*rep));
	snprintf(lim, sizeof(lim), "%zu", limit ? limit : 50);
	snprintf(nowb, sizeof(nowb), "%lld", (long long)now);
	snprintf(lease, sizeof(lease), "%d", LEASE_S);
	snprintf(reuse, sizeof(reuse), "%d", REUSE_S);
	if ((err = ras_db_query(db, &res, SQL_QUEUE, 3, (struct ras_db_param[]){
	    RAS_DB_TEXT(verify ? "true" : "false"), RAS_DB_TEXT(lim), RAS_DB_TEXT(nowb) })) < 0)
		return err;
	rep->queued = ras_db_res_rows(res);
	ras_db_res_free(res);
	res = NULL;
	if ((err = ras_db_query(db, &res, SQL_LEASE, 4, (struct ras_db_param[]){
	    RAS_DB_TEXT(nowb), RAS_DB_TEXT(lim), RAS_DB_TEXT(lease), RAS_DB_TEXT(reuse) })) < 0)
		return err;
	for (int i = 0; i < ras_db_res_rows(res) && err == 0; i++) {
		int64_t attempts = 1;

		(void)ras_db_res_int(res, i, 2, &attempts);
		err = check_one(db, c, now, ras_db_res_get(res, i, 0), ras_db_res_get(res, i, 1), attempts,
		    ras_db_res_isnull(res, i, 3) ? NULL : ras_db_res_get(res, i, 3),
		    ras_db_res_isnull(res, i, 4) ? NULL : ras_db_res_get(res, i, 4), &down, rep);
	}
	ras_db_res_free(res);
	if (err == 0 && !down && max_age_s > 0)
		err = refresh_stale(db, c, now, max_age_s, lim, rep);
	return err;
}

/* ---- rasctl pds refresh --------------------------------------------------------- */

static const char SQL_REFERRAL[] =
    "SELECT r.id::text, coalesce(k.nhs_number, r.doc -> 'patient' ->> 'nhs_number'),"
    "  (r.doc -> 'patient')::text"
    " FROM referrals r LEFT JOIN pds_checks k ON k.referral_id = r.id"
    " WHERE (r.ubrn = $1 OR r.id::text = $1) AND r.doc -> 'patient' ->> 'nhs_number_status' = 'valid'"
    " ORDER BY (r.state = 'superseded'), r.version DESC, r.id DESC LIMIT 1";

int
ras_pds_store_refresh(struct ras_db *db, struct ras_pds *c, struct ras_arena *a, const char *ref,
    const char *actor, int64_t *referral_id, int64_t *lookup_id, struct ras_pds_lookup *l)
{
	struct ras_db_res *res = NULL;
	struct ras_date today;
	json_t *sum = NULL;
	char *diff = NULL, *nhs = NULL, *pat = NULL;
	int err, secs;

	memset(l, 0, sizeof(*l));
	if ((err = ras_db_query(db, &res, SQL_REFERRAL, 1, &RAS_DB_TEXT(ref))) < 0)
		return err;
	if (ras_db_res_rows(res) != 1) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOTFOUND, "no referral \"%s\" with a valid NHS number", ref);
	}
	(void)ras_db_res_int(res, 0, 0, referral_id);
	nhs = ras_arena_strdup(a, ras_db_res_get(res, 0, 1));
	pat = ras_arena_strdup(a, ras_db_res_get(res, 0, 2));
	ras_db_res_free(res);
	if (nhs == NULL || pat == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_time_uk_date(ras_time_now(), &today, &secs);
	if ((err = ras_pds_get(c, a, nhs, &today, l)) < 0)
		return err;
	if ((err = ras_pds_store_lookup(db, l, *referral_id, actor, lookup_id)) < 0)
		return err;
	if (l->result == RAS_PDS_UNAVAILABLE || l->result == RAS_PDS_REFUSED)
		return 0;   /* stored; the referral keeps what it had */
	if (l->have_patient && (sum = ras_pds_patient_to_json(&l->patient, l->asked)) != NULL)
		diff = differences_text(pat, sum);
	err = ras_pds_store_apply(db, *lookup_id, *referral_id, actor, diff, true);
	free(diff);
	json_decref(sum);
	return err;
}

/* ---- status and metrics ----------------------------------------------------------- */

int
ras_pds_store_waiting(struct ras_db *db, int64_t *n, int64_t *oldest_received)
{
	struct ras_db_res *res = NULL;
	int err;

	*n = *oldest_received = 0;
	if ((err = ras_db_query(db, &res, "SELECT count(*),"
	    " coalesce(floor(extract(epoch FROM min(waiting_since)))::bigint, 0)"
	    " FROM pds_checks WHERE state = 'waiting'", 0, NULL)) < 0)
		return err;
	(void)ras_db_res_int(res, 0, 0, n);
	(void)ras_db_res_int(res, 0, 1, oldest_received);
	ras_db_res_free(res);
	return 0;
}

int
ras_pds_store_counts(struct ras_db *db, int64_t counts[RAS_PDS_UNAVAILABLE + 1])
{
	struct ras_db_res *res = NULL;
	int err;

	memset(counts, 0, sizeof(int64_t) * (RAS_PDS_UNAVAILABLE + 1));
	if ((err = ras_db_query(db, &res, "SELECT result, count(*) FROM pds_lookups GROUP BY result",
	    0, NULL)) < 0)
		return err;
	for (int i = 0; i < ras_db_res_rows(res); i++)
		for (int r = RAS_PDS_FOUND; r <= RAS_PDS_UNAVAILABLE; r++)
			if (strcmp(ras_db_res_get(res, i, 0), ras_pds_result_name((enum ras_pds_result)r)) == 0)
				(void)ras_db_res_int(res, i, 1, &counts[r]);
	ras_db_res_free(res);
	return 0;
}

/* ---- triage ------------------------------------------------------------------------ */

static const char *
jstr(struct ras_arena *a, const json_t *o, const char *k)
{
	const char *s = ras_json_str(o, k);

	return s ? ras_arena_strdup(a, s) : NULL;
}

int
ras_pds_store_overlay(struct ras_arena *a, const char *check_json, struct ras_referral *r,
    struct ras_pds_findings *f)
{
	json_t *j = NULL, *s, *name, *ad;
	struct ras_patient *p = &r->patient;
	const char *v;
	struct ras_date d;
	int err;

	memset(f, 0, sizeof(*f));
	if (check_json == NULL)
		return 0;
	if ((err = ras_json_parse_arena(a, check_json, strlen(check_json), RAS_PAYLOAD_MAX, &j)) < 0)
		return err;
	f->have = true;
	f->result = jstr(a, j, "result");
	f->version = jstr(a, j, "version");
	s = ras_json_obj(j, "summary");
	if (f->result == NULL || strcmp(f->result, "found") != 0 || s == NULL)
		return 0;
	f->restricted = !json_is_false(json_object_get(s, "restricted"));
	f->deceased = ras_json_str(s, "deceased") != NULL;
	f->superseded = ras_json_str(s, "superseded_from") != NULL;
	if ((v = jstr(a, s, "nhs_number")) != NULL)
		p->nhs_number = v;
	name = ras_json_obj(s, "name");
	if (p->family == NULL)
		p->family = jstr(a, name, "family");
	if (p->given == NULL)
		p->given = jstr(a, name, "given");
	if (p->prefix == NULL)
		p->prefix = jstr(a, name, "prefix");
	if (p->gender == NULL)
		p->gender = jstr(a, s, "gender");
	v = ras_json_str(s, "birth_date");
	if (v && strlen(v) == 10 && ras_date_parse(v, &d) == 0) {
		if (p->has_birth_date && ras_date_cmp(&d, &p->birth_date) != 0)
			f->differs_birth_date = true;
		p->has_birth_date = true;
		p->birth_date = d;
	}
	if (f->restricted) {
		/* NOTES §7: no location data, not even what the referral sent */
		p->postcode = NULL;
		return 0;
	}
	v = ras_json_str(s, "practice_ods");
	if (v) {
		if (p->practice_ods && strcasecmp(p->practice_ods, v) != 0)
			f->differs_practice = true;
		p->practice_ods = ras_arena_strdup(a, v);
	}
	ad = ras_json_obj(s, "address");
	if (ad && p->n_address_lines == 0) {
		/* the correspondence address, lines and postcode together */
		size_t i;
		json_t *l;

		json_array_foreach(ras_json_arr(ad, "lines"), i, l)
			if (json_is_string(l) && p->n_address_lines < 5)
				p->address_lines[p->n_address_lines++] = ras_arena_strdup(a, json_string_value(l));
		if (ras_json_str(ad, "postcode"))
			p->postcode = jstr(a, ad, "postcode");
	}
	return 0;
}

static void
add_reason(struct ras_arena *a, struct ras_decision *d, const char *rule, const char *advice)
{
	struct ras_reason *v = ras_arena_calloc(a, d->n_reasons + 1, sizeof(*v));

	if (v == NULL)
		return;
	if (d->n_reasons)
		memcpy(v, d->reasons, d->n_reasons * sizeof(*v));
	v[d->n_reasons].rule = rule;
	v[d->n_reasons].clause = "pds NOTES";
	v[d->n_reasons].advice = advice;
	v[d->n_reasons].stage = "identity";
	d->reasons = v;
	d->n_reasons++;
}

bool
ras_pds_store_findings_apply(struct ras_arena *a, const struct ras_pds_findings *f,
    struct ras_decision *d)
{
	bool review = false;

	if (!f->have)
		return false;
	if (d->facts) {
		json_t *o = json_pack("{s:s?, s:s?, s:b, s:b, s:b}", "result", f->result, "version", f->version,
		    "restricted", f->restricted, "deceased", f->deceased, "superseded", f->superseded);

		if (o)
			(void)ras_json_set_new(d->facts, "pds", o);
	}
	if (strcmp(f->result ? f->result : "", "found") != 0) {
		add_reason(a, d, ras_arena_printf(a, "pds.%s", f->result ? f->result : "unknown"),
		    "PDS could not confirm the patient's NHS number: check it with the referrer");
		review = true;
	}
	if (f->restricted) {
		add_reason(a, d, "pds.restricted", "restricted patient record: location data withheld; "
		    "area and practice eligibility cannot be checked; letters only where a person decides");
		review = true;
	}
	if (f->deceased) {
		add_reason(a, d, "pds.deceased", "PDS records the patient as deceased: no patient letters");
		review = true;
	}
	if (f->differs_birth_date) {
		add_reason(a, d, "pds.differs.birth-date", "the birth date on the referral differs from PDS");
		review = true;
	}
	if (f->differs_practice) {
		add_reason(a, d, "pds.differs.practice", "the registered practice on the referral differs from PDS");
		review = true;
	}
	if (review) {
		d->outcome = RAS_OUTCOME_REVIEW;
		d->onward_target = NULL;
		d->final = false;
	}
	return review;
}

/* ---- rasctl show ---------------------------------------------------------------- */

static const char SQL_DEMOGRAPHICS[] =
    "SELECT jsonb_strip_nulls(jsonb_build_object("
    "  'source', CASE WHEN l.result = 'found' THEN 'pds' ELSE 'referral' END,"
    "  'pds_result', k.result, 'pds_check', k.state, 'pds_attempts', k.attempts,"
    "  'pds_next_attempt_at', CASE WHEN k.state = 'waiting' THEN k.next_attempt_at END,"
    "  'pds_version', l.version_id, 'pds_checked_at', l.looked_up_at, 'pds_lookup_id', l.id,"
    "  'pds_request_id', l.request_id,"
    "  'nhs_number', coalesce(l.summary ->> 'nhs_number', r.doc -> 'patient' ->> 'nhs_number'),"
    "  'superseded_from', l.summary ->> 'superseded_from',"
    "  'restricted', (l.summary ->> 'restricted')::boolean, 'security', l.summary ->> 'security',"
    "  'name', CASE WHEN l.result = 'found' THEN l.summary -> 'name' ELSE jsonb_build_object("
    "    'family', r.doc -> 'patient' ->> 'family', 'given', r.doc -> 'patient' ->> 'given') END,"
    "  'birth_date', CASE WHEN l.result = 'found' THEN l.summary ->> 'birth_date'"
    "    ELSE r.doc -> 'patient' ->> 'birth_date' END,"
    "  'gender', CASE WHEN l.result = 'found' THEN l.summary ->> 'gender' ELSE r.doc -> 'patient' ->> 'gender' END,"
    "  'address', CASE WHEN (l.summary ->> 'restricted')::boolean THEN NULL ELSE l.summary -> 'address' END,"
    "  'practice_ods', CASE WHEN l.result = 'found' THEN l.summary ->> 'practice_ods'"
    "    ELSE r.doc -> 'patient' ->> 'practice_ods' END,"
    "  'deceased', l.summary ->> 'deceased',"
    "  'referral', jsonb_build_object('family', r.doc -> 'patient' ->> 'family',"
    "    'given', r.doc -> 'patient' ->> 'given', 'birth_date', r.doc -> 'patient' ->> 'birth_date',"
    "    'practice_ods', r.doc -> 'patient' ->> 'practice_ods',"
    "    'postcode', CASE WHEN (l.summary ->> 'restricted')::boolean THEN NULL"
    "      ELSE r.doc -> 'patient' ->> 'postcode' END),"
    "  'differences', CASE WHEN k.differences = '{}' THEN NULL ELSE k.differences END))::text"
    " FROM referrals r LEFT JOIN pds_checks k ON k.referral_id = r.id"
    " LEFT JOIN pds_lookups l ON l.id = k.lookup_id"
    " WHERE r.ubrn = $1 OR r.id::text = $1"
    " ORDER BY (r.state = 'superseded'), r.version DESC, r.id DESC LIMIT 1";

int
ras_pds_store_show(struct ras_db *db, const char *ref, json_t **out)
{
	struct ras_db_res *res = NULL;
	int err;

	*out = NULL;
	if ((err = ras_db_query(db, &res, SQL_DEMOGRAPHICS, 1, &RAS_DB_TEXT(ref))) < 0)
		return err;
	if (ras_db_res_rows(res) == 1)
		err = ras_json_parse(ras_db_res_get(res, 0, 0), ras_db_res_len(res, 0, 0), RAS_PAYLOAD_MAX, out);
	else
		err = ras_error_code(RAS_ENOTFOUND, "no referral \"%s\"", ref);
	ras_db_res_free(res);
	return err;
}
