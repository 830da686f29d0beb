/* ers_poll: worklist polling, referral and attachment retrieval, A008 budget (see include/ras/ers_poll.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/ers.h"
#include "ras/ers_poll.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/log.h"
#include "ras/store.h"
#include "ras/triage.h"

/* e-RS says a PENDING attachment may be fetched again after 5 minutes. */
#define PENDING_RETRY_S 300
/* Give up on an attachment that is still PENDING after this many tries
 * (5, 10, 20 … minutes, then every 4 hours: about a day). */
#define PENDING_TRIES_MAX 12
/* A lease: how long a claimed fetch is reserved for the instance that took
 * it (longer than any single call can take). */
#define LEASE_S 900
/* Attachments downloaded at once (each up to RAS_ATTACHMENT_MAX in memory). */
#define ATTACH_BATCH 8
/* Referrals fetched at once. */
#define REFERRAL_BATCH 50
/* Referrals one triage batch takes (one transaction, pipelined). */
#define TRIAGE_BATCH 500
/* Rounds of related-UBRN fetching (a pathway rarely spans more). */
#define RELATED_DEPTH 3

#define ERS_SD "https://fhir.nhs.uk/STU3/StructureDefinition/"

/* ---- small database helpers -------------------------------------------- */

static int
q_int(struct ras_db *db, const char *sql, int np, const struct ras_db_param *p, int64_t *out)
{
	struct ras_db_res *res = NULL;
	int err;

	*out = 0;
	if ((err = ras_db_query(db, &res, sql, np, p)) < 0)
		return err;
	if (ras_db_res_rows(res) > 0)
		(void)ras_db_res_int(res, 0, 0, out);
	ras_db_res_free(res);
	return 0;
}

static void
fmt_i64(char *buf, size_t size, int64_t v)
{
	snprintf(buf, size, "%lld", (long long)v);
}

/* UBRNs and attachment ids go into URL paths: only plain characters. */
static bool
path_safe(const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) > RAS_ID_MAX)
		return false;
	for (const char *p = s; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    *p == '-' || *p == '.' || *p == '_'))
			return false;
	return true;
}

/* JSON array of strings (for "IN (SELECT jsonb_array_elements_text($1))"). */
static char *
json_strings(const char *const *v, size_t n)
{
	json_t *a = json_array();
	struct ras_buf b = RAS_BUF_INIT(0);
	char *s = NULL;

	if (a == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) < 0)
			goto done;
	if (ras_json_dump(a, RAS_JSON_COMPACT, &b) == 0)
		s = ras_buf_detach(&b, NULL);
done:
	json_decref(a);
	ras_buf_free(&b);
	return s;
}

void
ras_ers_poll_report_free(struct ras_ers_poll_report *rep)
{
	if (rep == NULL)
		return;
	free(rep->items);
	rep->items = NULL;
	rep->nitems = 0;
}

static struct ras_ers_poll_item *
add_item(struct ras_ers_poll_report *rep, const char *ubrn)
{
	struct ras_ers_poll_item *it;

	for (size_t i = 0; i < rep->nitems; i++)
		if (strcmp(rep->items[i].ubrn, ubrn) == 0)
			return &rep->items[i];
	it = realloc(rep->items, (rep->nitems + 1) * sizeof(*it));
	if (it == NULL)
		return NULL;
	rep->items = it;
	it = &rep->items[rep->nitems++];
	memset(it, 0, sizeof(*it));
	snprintf(it->ubrn, sizeof(it->ubrn), "%s", ubrn);
	it->state = "unchanged";
	return it;
}

/* ---- storing payloads through the inbox ------------------------------- */

/* Keep n payloads in the inbox and normalise them.  ids[i] answers
 * items[i]; states[i] (when not NULL) gets the payload's final state and
 * msgs[i] its report line. */
static int
store_payloads(struct ras_db *db, const struct ras_xmlform_maps *maps,
    const struct ras_inbox_item *items, size_t n, int64_t *ids, char (*states)[16], char (*msgs)[256])
{
	struct ras_inbox_put_result *put = calloc(n ? n : 1, sizeof(*put));
	struct ras_normalise_report *reps = NULL;
	size_t nrep = 0;
	int err;

	if (put == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = ras_store_inbox_put(db, items, n, put)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++)
		ids[i] = put[i].id;
	/* Duplicates too: a crash between put and normalise leaves them
	 * "received", and normalise skips rows already processed. */
	if ((err = ras_store_normalise(db, maps, ids, n, n, &reps, &nrep)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		char state[16] = "duplicate", msg[256] = "";

		for (size_t k = 0; k < nrep; k++)
			if (reps[k].payload_id == ids[i]) {
				(void)ras_buf_format(state, sizeof(state), "%s", reps[k].state);
				(void)ras_buf_format(msg, sizeof(msg), "%s", reps[k].message);
			}
		if (strcmp(state, "duplicate") == 0 && put[i].duplicate) {
			char st[16], e[256];

			if (ras_store_inbox_state(db, ids[i], st, sizeof(st), e, sizeof(e)) == 0) {
				snprintf(state, sizeof(state), "%s", st);
				snprintf(msg, sizeof(msg), "%s", e);
			}
		}
		if (states)
			snprintf(states[i], sizeof(states[i]), "%s", state);
		if (msgs)
			snprintf(msgs[i], sizeof(msgs[i]), "%s", msg);
	}
done:
	free(put);
	free(reps);
	return err;
}

/* ---- budget ------------------------------------------------------------ */

struct claim {
	bool due;
	bool exhausted;
	bool missed;        /* exhausted, and a call of today failed: the poll was lost */
	int slot;
	int used;
	int failed;         /* failed (or abandoned) calls since the latest schedule time */
	int64_t call_id;
};

/* The latest schedule time of `day` that is not after `now` (0 = none). */
static int64_t
latest_schedule(const struct ras_ers *c, const struct ras_date *day, int64_t now)
{
	const int *sched;
	size_t n = ras_ers_schedule(c, &sched);
	int64_t latest = 0, midnight = ras_time_uk_midnight(day);

	for (size_t i = 0; i < n; i++)
		if (midnight + (int64_t)sched[i] * 60 <= now)
			latest = midnight + (int64_t)sched[i] * 60;
	return latest;
}

static int
claim_slot(struct ras_ers *c, struct ras_db *db, const struct ras_ers_service *s, int64_t now,
    unsigned flags, struct claim *cl)
{
	static const char upsert[] =
	    "INSERT INTO ers_services (service_id, rasd_service) VALUES ($1, nullif($2, ''))"
	    " ON CONFLICT (service_id) DO UPDATE SET rasd_service = EXCLUDED.rasd_service";
	static const char lock[] = "SELECT 1 FROM ers_services WHERE service_id = $1 FOR UPDATE";
	/* A call still 'claimed' while we hold the service's poll lock was made
	 * by a rasd that stopped (or was killed) before the answer: it failed. */
	static const char abandon[] =
	    "UPDATE ers_worklist_calls SET outcome = 'failed', finished_at = to_timestamp($2::bigint),"
	    " error = 'left unanswered: the rasd that made it (' || coalesce(instance, 'unknown') ||"
	    " ') stopped before e-RS answered'"
	    " WHERE service_id = $1 AND outcome = 'claimed'"
	    " RETURNING id::text, to_char(started_at AT TIME ZONE 'Europe/London', 'YYYY-MM-DD HH24:MI'),"
	    " coalesce(instance, 'unknown')";
	/* Only a successful call answers a schedule time: one that failed, or
	 * was left unanswered, is retried while the budget allows. */
	static const char used[] =
	    "SELECT count(*) FILTER (WHERE slot IS NOT NULL), count(*),"
	    " coalesce(bool_or(slot = 1), false)::text,"
	    " coalesce(extract(epoch FROM max(started_at) FILTER (WHERE outcome = 'ok'))::bigint, 0),"
	    " count(*) FILTER (WHERE outcome = 'failed' AND started_at >= to_timestamp($3::bigint)),"
	    " count(*) FILTER (WHERE outcome = 'failed')"
	    " FROM ers_worklist_calls WHERE service_id = $1 AND day = $2::date";
	static const char ins[] =
	    "INSERT INTO ers_worklist_calls (service_id, day, slot, mode, forced, base_url, started_at,"
	    " instance) VALUES ($1, $2::date, $3::smallint, $4, $5::boolean, $6,"
	    " to_timestamp($7::bigint), $8) RETURNING id";
	struct ras_date day;
	char dbuf[RAS_DATE_STR_MAX], nowb[24], slotb[8], latestb[24];
	struct ras_db_res *res = NULL;
	bool limited = ras_ers_mode(c) == RAS_ERS_APPLICATION && !(flags & RAS_ERS_POLL_FORCE);
	bool slot1 = false;
	int64_t nbudget = 0, ncalls = 0, last_ok = 0, nfailed = 0, nfailed_day = 0, latest = 0;
	int secs, err;

	memset(cl, 0, sizeof(*cl));
	ras_time_uk_date(now, &day, &secs);
	ras_date_format(&day, dbuf);
	fmt_i64(nowb, sizeof(nowb), now);
	if (ras_ers_working_day(c, &day))
		latest = latest_schedule(c, &day, now);
	fmt_i64(latestb, sizeof(latestb), latest);
	if ((err = ras_db_begin(db)) < 0)
		return err;
	if ((err = ras_db_query(db, NULL, upsert, 2, (struct ras_db_param[]){ RAS_DB_TEXT(s->id),
	    RAS_DB_TEXT(s->rasd_service) })) < 0 ||
	    (err = ras_db_query(db, NULL, lock, 1, &RAS_DB_TEXT(s->id))) < 0 ||
	    (err = ras_db_query(db, &res, abandon, 2, (struct ras_db_param[]){ RAS_DB_TEXT(s->id),
	    RAS_DB_TEXT(nowb) })) < 0)
		goto fail;
	for (int i = 0; i < ras_db_res_rows(res); i++)
		ras_log(RAS_LOG_WARNING, "e-RS service %s: the worklist call #%s of %s (UK) was left "
		    "unanswered by a rasd that stopped (%s): counted as failed, and retried if the "
		    "budget allows", s->id, ras_db_res_get(res, i, 0), ras_db_res_get(res, i, 1),
		    ras_db_res_get(res, i, 2));
	ras_db_res_free(res);
	res = NULL;
	if ((err = ras_db_query(db, &res, used, 3, (struct ras_db_param[]){ RAS_DB_TEXT(s->id),
	    RAS_DB_TEXT(dbuf), RAS_DB_TEXT(latestb) })) < 0)
		goto fail;
	(void)ras_db_res_int(res, 0, 0, &nbudget);
	(void)ras_db_res_int(res, 0, 1, &ncalls);
	slot1 = strcmp(ras_db_res_get(res, 0, 2), "true") == 0;
	(void)ras_db_res_int(res, 0, 3, &last_ok);
	(void)ras_db_res_int(res, 0, 4, &nfailed);
	(void)ras_db_res_int(res, 0, 5, &nfailed_day);
	ras_db_res_free(res);
	res = NULL;
	cl->used = (int)nbudget;
	cl->failed = (int)nfailed;
	(void)ncalls;
	if (flags & RAS_ERS_POLL_SCHEDULED) {
		/* due when the latest schedule time of a working day has passed
		 * with no successful worklist call since (a missed 08:00 is
		 * caught up once, not twice; a failed call is tried again) */
		if (latest == 0 || last_ok >= latest) {
			ras_db_commit(db);   /* keeps abandoned calls settled */
			return 0;
		}
	}
	if (limited && nbudget >= 2) {
		cl->exhausted = true;
		/* a scheduled poll that finds the budget gone after calls that
		 * failed has lost the worklist until the next working day */
		cl->missed = (flags & RAS_ERS_POLL_SCHEDULED) && nfailed_day > 0;
		ras_db_commit(db);
		return 0;
	}
	cl->slot = limited ? (slot1 ? 2 : 1) : 0;
	snprintf(slotb, sizeof(slotb), "%d", cl->slot);
	if ((err = ras_db_query(db, &res, ins, 8, (struct ras_db_param[]){
	    RAS_DB_TEXT(s->id), RAS_DB_TEXT(dbuf), RAS_DB_TEXT(cl->slot ? slotb : NULL),
	    RAS_DB_TEXT(ras_ers_mode_name(ras_ers_mode(c))),
	    RAS_DB_TEXT((flags & RAS_ERS_POLL_FORCE) ? "true" : "false"),
	    RAS_DB_TEXT(ras_ers_base_url(c)), RAS_DB_TEXT(nowb), RAS_DB_TEXT(ras_ers_instance(c)) })) < 0)
		goto fail;
	(void)ras_db_res_int(res, 0, 0, &cl->call_id);
	ras_db_res_free(res);
	if ((err = ras_db_commit(db)) < 0)
		return err;
	cl->due = true;
	return 0;
fail:
	ras_db_res_free(res);
	ras_db_rollback(db);
	return err;
}

int
ras_ers_poll_budget(struct ras_ers *c, struct ras_db *db, const char *service_id, int64_t now,
    struct ras_ers_poll_budget *out)
{
	static const char sql[] =
	    "SELECT count(*) FILTER (WHERE slot IS NOT NULL), count(*),"
	    " (SELECT outcome FROM ers_worklist_calls WHERE service_id = $1 ORDER BY id DESC LIMIT 1),"
	    " (SELECT extract(epoch FROM started_at)::bigint FROM ers_worklist_calls"
	    "   WHERE service_id = $1 ORDER BY id DESC LIMIT 1)"
	    " FROM ers_worklist_calls WHERE service_id = $1 AND day = $2::date";
	struct ras_db_res *res = NULL;
	struct ras_date day;
	int64_t used = 0, calls = 0;
	const int *sched;
	size_t nsched = ras_ers_schedule(c, &sched);
	int secs, err;

	memset(out, 0, sizeof(*out));
	snprintf(out->service, sizeof(out->service), "%s", service_id);
	ras_time_uk_date(now, &day, &secs);
	ras_date_format(&day, out->day);
	if ((err = ras_db_query(db, &res, sql, 2, (struct ras_db_param[]){ RAS_DB_TEXT(service_id),
	    RAS_DB_TEXT(out->day) })) < 0)
		return err;
	(void)ras_db_res_int(res, 0, 0, &used);
	(void)ras_db_res_int(res, 0, 1, &calls);
	if (!ras_db_res_isnull(res, 0, 2))
		snprintf(out->last_outcome, sizeof(out->last_outcome), "%s", ras_db_res_get(res, 0, 2));
	(void)ras_db_res_int(res, 0, 3, &out->last_at);
	ras_db_res_free(res);
	out->limited = ras_ers_mode(c) == RAS_ERS_APPLICATION;
	out->limit = out->limited ? 2 : 0;
	out->used = (int)used;
	out->calls = (int)calls;
	out->left = out->limited ? (2 - (int)used < 0 ? 0 : 2 - (int)used) : -1;
	out->working_day = ras_ers_working_day(c, &day);
	/* the next schedule time that has not passed, on a working day */
	for (int d = 0; d < 14 && out->next_scheduled == 0; d++) {
		struct ras_date dd;

		ras_date_add_days(&day, d, &dd);
		if (!ras_ers_working_day(c, &dd))
			continue;
		for (size_t i = 0; i < nsched; i++) {
			int64_t t = ras_time_uk_midnight(&dd) + (int64_t)sched[i] * 60;

			/* UK midnight + minutes is exact except on the two
			 * clock-change nights, where schedules never sit. */
			if (t > now) {
				out->next_scheduled = t;
				break;
			}
		}
	}
	return 0;
}

/* ---- A008 ---------------------------------------------------------------- */

int
ras_ers_poll_worklist_request(const char *service_id, char **out)
{
	json_t *j = json_pack("{s:s, s:{s:[s]}, s:[{s:s, s:{s:[{s:s, s:s}]}}, {s:s, s:{s:s, s:s}}]}",
	    "resourceType", "Parameters",
	    "meta", "profile", "https://fhir.nhs.uk/STU3/StructureDefinition/eRS-FetchWorklist-Parameters-1",
	    "parameter",
	    "name", "listType", "valueCodeableConcept", "coding",
	    "system", "https://fhir.nhs.uk/STU3/CodeSystem/eRS-ReferralListSelector-1",
	    "code", "REFERRALS_FOR_REVIEW",
	    "name", "service", "valueIdentifier", "system", "http://fhir.nhs.net/Id/ers-service",
	    "value", service_id);
	struct ras_buf b = RAS_BUF_INIT(0);
	int err;

	if (j == NULL)
		return ras_error_code(RAS_EINVALID, "cannot build the worklist request");
	err = ras_json_dump(j, RAS_JSON_COMPACT, &b);
	json_decref(j);
	if (err == 0)
		*out = ras_buf_detach(&b, NULL);
	ras_buf_free(&b);
	return err;
}

static int
finish_call(struct ras_db *db, int64_t call_id, int64_t now, const char *outcome,
    const struct ras_ers_call *k, int items, int kept, int64_t payload_id, const char *error)
{
	static const char sql[] =
	    "UPDATE ers_worklist_calls SET finished_at = to_timestamp($2::bigint), outcome = $3,"
	    " status = nullif($4::int, 0), attempts = $5::int, items = $6::int, kept = $7::int,"
	    " payload_id = $8::bigint, correlation_id = nullif($9, ''), request_id = nullif($10, ''),"
	    " error = $11 WHERE id = $1::bigint";
	char id[24], nowb[24], st[24], at[16], it[16], kp[16], pl[24];

	fmt_i64(id, sizeof(id), call_id);
	fmt_i64(nowb, sizeof(nowb), now);
	fmt_i64(st, sizeof(st), k ? k->http.status : 0);
	snprintf(at, sizeof(at), "%d", k ? k->attempts : 0);
	snprintf(it, sizeof(it), "%d", items);
	snprintf(kp, sizeof(kp), "%d", kept);
	fmt_i64(pl, sizeof(pl), payload_id);
	return ras_db_query(db, NULL, sql, 11, (struct ras_db_param[]){
	    RAS_DB_TEXT(id), RAS_DB_TEXT(nowb), RAS_DB_TEXT(outcome), RAS_DB_TEXT(st), RAS_DB_TEXT(at),
	    RAS_DB_TEXT(items >= 0 ? it : NULL), RAS_DB_TEXT(kept >= 0 ? kp : NULL),
	    RAS_DB_TEXT(payload_id ? pl : NULL), RAS_DB_TEXT(k ? k->correlation_id : ""),
	    RAS_DB_TEXT(k ? k->request_id : ""), RAS_DB_TEXT(error) });
}

/* A failed call's RAS code: not reached / gateway trouble may work later;
 * a 4xx is a refusal. */
static int
call_code(const struct ras_ers_call *k)
{
	if (k->http.err == RAS_ETIMEDOUT)
		return RAS_ETIMEDOUT;
	if (k->http.err == RAS_ETOOBIG)
		return RAS_ETOOBIG;
	if (k->http.err == RAS_EINVALID)
		return RAS_EINVALID;   /* refused before sending: TLS trust, configuration */
	if (k->http.err)
		return RAS_EIO;
	if (k->http.status == 429)
		return RAS_ERATELIMITED;
	if (k->http.status >= 500 || k->http.status == 0)
		return RAS_EIO;
	return RAS_EINVALID;
}

/* ---- referrals (A005) ------------------------------------------------- */

struct fetched {
	char ubrn[RAS_ID_MAX + 1];
	int64_t version;
};

struct fetch_ctx {
	struct ras_ers *c;
	struct ras_db *db;
	int64_t now;
	const char *rasd_service;
	struct ras_ers_poll_report *rep;   /* may be NULL (fetch_due) */
	struct ras_ers_fetch_report *files;
	struct fetched *done;              /* referrals fetched this cycle */
	size_t ndone, capdone;
	int64_t *stored;                   /* payloads (A005s, forms) stored: what to triage */
	size_t nstored, capstored;
};

static int
note_stored(struct fetch_ctx *fx, int64_t payload_id)
{
	if (fx->nstored == fx->capstored) {
		size_t cap = fx->capstored ? fx->capstored * 2 : 16;
		int64_t *n = realloc(fx->stored, cap * sizeof(*n));

		if (n == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		fx->stored = n;
		fx->capstored = cap;
	}
	fx->stored[fx->nstored++] = payload_id;
	return 0;
}

/*
 * The triage hook: triage the referrals in state "new" that this cycle's
 * payloads created or completed (ras_triage_pending with their payload
 * ids), when the client has a triage (ras_ers_set_triage); each poll item
 * gets its referral's decision summary.  Referrals left over (another
 * process took them) are the daemon's triage stage's.
 */
static int
triage_stored(struct fetch_ctx *fx, int *triaged)
{
	const struct ras_triage *t = ras_ers_triage(fx->c);
	int err = 0;

	if (t == NULL || fx->nstored == 0)
		return 0;
	for (;;) {
		struct ras_triage_report *reps = NULL;
		size_t n = 0;

		if ((err = ras_triage_pending(fx->db, t, fx->now, TRIAGE_BATCH, fx->stored, fx->nstored,
		    &reps, &n)) < 0)
			break;
		for (size_t i = 0; i < n; i++) {
			if (reps[i].decision_id)
				(*triaged)++;
			for (size_t k = 0; fx->rep && k < fx->rep->nitems; k++) {
				struct ras_ers_poll_item *it = &fx->rep->items[k];

				if (it->referral_id == reps[i].referral_id)
					(void)ras_buf_format(it->triage, sizeof(it->triage), "%s%s%s",
					    reps[i].decision_id ? "" : reps[i].state,
					    reps[i].decision_id ? "" : ": ", reps[i].message);
			}
		}
		free(reps);
		if (n < TRIAGE_BATCH)
			break;
	}
	return err;
}

static int
note_done(struct fetch_ctx *fx, const char *ubrn, int64_t version)
{
	if (fx->ndone == fx->capdone) {
		size_t cap = fx->capdone ? fx->capdone * 2 : 16;
		struct fetched *n = realloc(fx->done, cap * sizeof(*n));

		if (n == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		fx->done = n;
		fx->capdone = cap;
	}
	snprintf(fx->done[fx->ndone].ubrn, sizeof(fx->done[0].ubrn), "%s", ubrn);
	fx->done[fx->ndone].version = version;
	fx->ndone++;
	return 0;
}

/* Lease the due fetches among `ubrns` (NULL = any due, up to limit). */
struct leased {
	char ubrn[RAS_ID_MAX + 1];
	char rasd_service[RAS_ID_MAX + 1];
};

/* Run a lease query: $1 the UBRNs to restrict to (JSON array, or NULL for
 * any), $2 now, $3 the lease in seconds, $4 the row limit. */
static int
run_lease(struct fetch_ctx *fx, const char *sql, const char *const *ubrns, size_t n,
    size_t limit, struct ras_db_res **res)
{
	char *list = ubrns ? json_strings(ubrns, n) : NULL;
	char nowb[24], lease[16], lim[16];
	int err;

	if (ubrns && list == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	fmt_i64(nowb, sizeof(nowb), fx->now);
	snprintf(lease, sizeof(lease), "%d", LEASE_S);
	snprintf(lim, sizeof(lim), "%zu", limit);
	err = ras_db_query(fx->db, res, sql, 4, (struct ras_db_param[]){ RAS_DB_TEXT(list),
	    RAS_DB_TEXT(nowb), RAS_DB_TEXT(lease), RAS_DB_TEXT(lim) });
	free(list);
	return err;
}

static int
lease_referrals(struct fetch_ctx *fx, const char *const *ubrns, size_t n, size_t limit,
    struct leased **out, size_t *nout)
{
	static const char sql[] =
	    "WITH leased AS ("
	    " UPDATE ers_referrals e SET next_attempt_at = to_timestamp($2::bigint + $3::bigint)"
	    " WHERE e.ubrn IN (SELECT ubrn FROM ers_referrals"
	    "   WHERE fetch_state IN ('due', 'failed')"
	    "     AND (next_attempt_at IS NULL OR next_attempt_at <= to_timestamp($2::bigint))"
	    "     AND ($1::jsonb IS NULL OR ubrn IN (SELECT jsonb_array_elements_text($1::jsonb)))"
	    "   ORDER BY ubrn LIMIT $4::int FOR UPDATE SKIP LOCKED)"
	    " RETURNING e.ubrn, coalesce((SELECT rasd_service FROM ers_services v"
	    "   WHERE v.service_id = e.service_id), '') AS rasd_service)"
	    " SELECT * FROM leased ORDER BY ubrn";
	struct ras_db_res *res = NULL;
	int err, rows;

	*out = NULL;
	*nout = 0;
	if ((err = run_lease(fx, sql, ubrns, n, limit, &res)) < 0)
		return err;
	rows = ras_db_res_rows(res);
	*out = calloc(rows ? (size_t)rows : 1, sizeof(**out));
	if (*out == NULL) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		snprintf((*out)[i].ubrn, sizeof((*out)[i].ubrn), "%s", ras_db_res_get(res, i, 0));
		snprintf((*out)[i].rasd_service, sizeof((*out)[i].rasd_service), "%s",
		    ras_db_res_get(res, i, 1));
	}
	*nout = (size_t)rows;
	ras_db_res_free(res);
	return 0;
}

static int
fetch_failed(struct fetch_ctx *fx, const char *ubrn, bool park, const char *code, const char *msg)
{
	static const char sql[] =
	    "UPDATE ers_referrals SET attempts = attempts + 1,"
	    " fetch_state = CASE WHEN $2::boolean OR attempts + 1 >= $6::int THEN 'parked' ELSE 'failed' END,"
	    " next_attempt_at = CASE WHEN $2::boolean OR attempts + 1 >= $6::int THEN NULL"
	    "   ELSE to_timestamp($3::bigint) + make_interval(secs => least(21600, 300 * power(2, attempts)))"
	    "   END,"
	    " error_code = nullif($4, ''), error = $5 WHERE ubrn = $1 RETURNING fetch_state";
	char nowb[24], maxa[16];
	struct ras_db_res *res = NULL;
	int err;

	fmt_i64(nowb, sizeof(nowb), fx->now);
	snprintf(maxa, sizeof(maxa), "%d", ras_ers_max_attempts(fx->c));
	if ((err = ras_db_query(fx->db, &res, sql, 6, (struct ras_db_param[]){ RAS_DB_TEXT(ubrn),
	    RAS_DB_TEXT(park ? "true" : "false"), RAS_DB_TEXT(nowb), RAS_DB_TEXT(code),
	    RAS_DB_TEXT(msg), RAS_DB_TEXT(maxa) })) < 0)
		return err;
	if (fx->rep) {
		struct ras_ers_poll_item *it = add_item(fx->rep, ubrn);
		bool parked = ras_db_res_rows(res) && strcmp(ras_db_res_get(res, 0, 0), "parked") == 0;

		if (it) {
			it->state = parked ? "parked" : "failed";
			snprintf(it->error, sizeof(it->error), "%s", msg);
		}
		if (parked)
			fx->rep->parked++;
		else
			fx->rep->failed++;
	}
	if (fx->files)
		fx->files->referrals_failed++;
	ras_db_res_free(res);
	return 0;
}

/* After one A005: the referral's clinical-information PDF becomes an
 * attachment row to fetch, and its related UBRNs become fetches. */
static int
after_referral(struct fetch_ctx *fx, const struct ras_referral *r, int64_t payload_id,
    const char *etag, int64_t *referral_id)
{
	static const char fetched[] =
	    "SELECT ras_ers_fetched($1, $2::bigint, $3, $4, $5::bigint, to_timestamp($6::bigint))";
	static const char rid[] =
	    "SELECT id FROM referrals WHERE ubrn = $1 AND version = $2::bigint";
	static const char cri[] =
	    "INSERT INTO attachments (referral_id, ubrn, url, title, content_type, availability, type)"
	    " VALUES ($1::bigint, $2, $3, $4, 'application/pdf', 'AVAILABLE', 'CLINICAL_INFORMATION')"
	    " ON CONFLICT (ubrn, url) WHERE ubrn IS NOT NULL DO NOTHING";
	static const char rel[] =
	    "INSERT INTO ers_referrals AS e (ubrn, related_to, first_seen_at, last_seen_at)"
	    " VALUES ($1, $2, to_timestamp($3::bigint), to_timestamp($3::bigint))"
	    " ON CONFLICT (ubrn) DO UPDATE SET last_seen_at = EXCLUDED.last_seen_at,"
	    "  related_to = CASE WHEN e.on_worklist THEN e.related_to ELSE EXCLUDED.related_to END,"
	    "  fetch_state = CASE WHEN e.on_worklist OR e.fetch_state = 'parked' THEN e.fetch_state"
	    "                     ELSE 'due' END,"
	    "  next_attempt_at = CASE WHEN e.on_worklist THEN e.next_attempt_at ELSE NULL END";
	char ver[24], pl[24], nowb[24], ridb[24], url[RAS_ID_MAX * 2 + 64], title[RAS_ID_MAX + 64];
	int err;

	fmt_i64(ver, sizeof(ver), r->version);
	fmt_i64(pl, sizeof(pl), payload_id);
	fmt_i64(nowb, sizeof(nowb), fx->now);
	if ((err = ras_db_query(fx->db, NULL, fetched, 6, (struct ras_db_param[]){
	    RAS_DB_TEXT(r->ubrn), RAS_DB_TEXT(ver), RAS_DB_TEXT(etag), RAS_DB_TEXT(r->ers_state),
	    RAS_DB_TEXT(payload_id ? pl : NULL), RAS_DB_TEXT(nowb) })) < 0)
		return err;
	if ((err = q_int(fx->db, rid, 2, (struct ras_db_param[]){ RAS_DB_TEXT(r->ubrn),
	    RAS_DB_TEXT(ver) }, referral_id)) < 0)
		return err;
	fmt_i64(ridb, sizeof(ridb), *referral_id);
	snprintf(url, sizeof(url), "ReferralRequest/%s/_history/%lld/$ers.generateCRI", r->ubrn,
	    (long long)r->version);
	snprintf(title, sizeof(title), "%s clinical information summary (version %lld)", r->ubrn,
	    (long long)r->version);
	if ((err = ras_db_query(fx->db, NULL, cri, 4, (struct ras_db_param[]){
	    RAS_DB_TEXT(*referral_id ? ridb : NULL), RAS_DB_TEXT(r->ubrn), RAS_DB_TEXT(url),
	    RAS_DB_TEXT(title) })) < 0)
		return err;
	for (size_t i = 0; i < r->n_related; i++) {
		if (!path_safe(r->related_ubrns[i]) || strcmp(r->related_ubrns[i], r->ubrn) == 0)
			continue;
		if ((err = ras_db_query(fx->db, NULL, rel, 3, (struct ras_db_param[]){
		    RAS_DB_TEXT(r->related_ubrns[i]), RAS_DB_TEXT(r->ubrn), RAS_DB_TEXT(nowb) })) < 0)
			return err;
	}
	return 0;
}

/* Fetch the leased referrals: A005 in one concurrent batch, each into the
 * inbox, normalised together. */
static int
fetch_referrals(struct fetch_ctx *fx, const struct leased *ubrns, size_t n, bool related)
{
	struct ras_ers_call *calls = calloc(n ? n : 1, sizeof(*calls));
	struct ras_inbox_item *items = calloc(n ? n : 1, sizeof(*items));
	size_t *map = calloc(n ? n : 1, sizeof(*map));
	int64_t *ids = calloc(n ? n : 1, sizeof(*ids));
	char (*states)[16] = calloc(n ? n : 1, sizeof(*states));
	char (*msgs)[256] = calloc(n ? n : 1, sizeof(*msgs));
	char (*refs)[64] = calloc(n ? n : 1, sizeof(*refs));
	char (*ctypes)[128] = calloc(n ? n : 1, sizeof(*ctypes));
	struct ras_arena *a = ras_arena_new();
	size_t nitems = 0;
	int err = 0;

	if (!calls || !items || !map || !ids || !states || !msgs || !refs || !ctypes || !a) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		ras_ers_call_init(&calls[i], "A005", "GET", 0);
		calls[i].ubrn = ubrns[i].ubrn;
		snprintf(calls[i].url, sizeof(calls[i].url), "/STU3/ReferralRequest/%s", ubrns[i].ubrn);
	}
	if ((err = ras_ers_perform(fx->c, fx->now, calls, n)) < 0)
		goto done;
	for (size_t i = 0; i < n; i++) {
		struct ras_ers_call *k = &calls[i];
		char msg[256];

		if (k->http.err || k->http.status != 200) {
			/* PATIENT_ERROR means "do not attempt again"; any other 4xx
			 * except throttling is a refusal a person must look at. */
			bool park = !k->http.err && k->http.status >= 400 && k->http.status < 500 &&
			    k->http.status != 429 && k->http.status != 401 && k->http.status != 408;

			if ((err = fetch_failed(fx, ubrns[i].ubrn, park, k->error_code,
			    ras_ers_call_error(k, msg, sizeof(msg)))) < 0)
				goto done;
			continue;
		}
		snprintf(refs[nitems], sizeof(refs[0]), "A005 %s", ubrns[i].ubrn);
		(void)ras_http_response_header(&k->http, "Content-Type", ctypes[nitems], sizeof(ctypes[0]));
		items[nitems].data = k->http.body_out.data;
		items[nitems].len = k->http.body_out.len;
		items[nitems].source = "ers";
		items[nitems].source_ref = refs[nitems];
		items[nitems].content_type = ctypes[nitems][0] ? ctypes[nitems] : NULL;
		items[nitems].service_hint = ubrns[i].rasd_service[0] ? ubrns[i].rasd_service :
		    (fx->rasd_service && *fx->rasd_service ? fx->rasd_service : NULL);
		items[nitems].ubrn_hint = ubrns[i].ubrn;
		items[nitems].correlation_id = k->correlation_id;
		map[nitems++] = i;
	}
	if (nitems && (err = store_payloads(fx->db, ras_ers_form_maps(fx->c), items, nitems, ids, states, msgs)) < 0)
		goto done;
	for (size_t j = 0; j < nitems; j++) {
		struct ras_ers_call *k = &calls[map[j]];
		const char *ubrn = ubrns[map[j]].ubrn;
		struct ras_intake in;
		struct ras_ers_poll_item *it = NULL;
		char etag[64] = "";
		int64_t referral_id = 0;

		if (strcmp(states[j], "rejected") == 0 ||
		    ras_intake_parse(a, ras_ers_form_maps(fx->c), k->http.body_out.data, k->http.body_out.len, &in) < 0 ||
		    in.kind != RAS_PAYLOAD_ERS_REFERRAL) {
			char m[300];

			snprintf(m, sizeof(m), "A005 %s stored as payload #%lld but rejected: %s", ubrn,
			    (long long)ids[j], msgs[j][0] ? msgs[j] : ras_error_last());
			if ((err = fetch_failed(fx, ubrn, true, "", m)) < 0)
				goto done;
			continue;
		}
		if (strcmp(in.referrals[0].ubrn, ubrn) != 0) {
			char m[300];

			snprintf(m, sizeof(m), "A005 for %s answered with UBRN %.40s", ubrn, in.referrals[0].ubrn);
			if ((err = fetch_failed(fx, ubrn, true, "", m)) < 0)
				goto done;
			continue;
		}
		(void)ras_http_response_header(&k->http, "ETag", etag, sizeof(etag));
		if ((err = after_referral(fx, &in.referrals[0], ids[j], etag[0] ? etag : NULL,
		    &referral_id)) < 0)
			goto done;
		if ((err = note_done(fx, ubrn, in.referrals[0].version)) < 0 ||
		    (err = note_stored(fx, ids[j])) < 0)
			goto done;
		if (fx->files)
			fx->files->referrals_fetched++;
		if (fx->rep && (it = add_item(fx->rep, ubrn)) != NULL) {
			it->state = "fetched";
			it->related = related;
			it->version = in.referrals[0].version;
			it->referral_id = referral_id;
			it->payload_id = ids[j];
			if (related)
				fx->rep->related++;
			else
				fx->rep->fetched++;
		}
	}
done:
	ras_ers_call_release(calls, n);
	free(calls);
	free(items);
	free(map);
	free(ids);
	free(states);
	free(msgs);
	free(refs);
	free(ctypes);
	ras_arena_free(a);
	return err;
}

/* Fetch due referrals among `ubrns` (all due when NULL), then the related
 * UBRNs they name, a few rounds deep. */
static int
fetch_due_referrals(struct fetch_ctx *fx, const char *const *ubrns, size_t n, size_t limit)
{
	struct leased *leased = NULL;
	size_t nleased = 0;
	int err;

	if ((err = lease_referrals(fx, ubrns, n, limit, &leased, &nleased)) < 0)
		return err;
	for (size_t off = 0; off < nleased && err == 0; off += REFERRAL_BATCH) {
		size_t m = nleased - off < REFERRAL_BATCH ? nleased - off : REFERRAL_BATCH;

		err = fetch_referrals(fx, leased + off, m, false);
	}
	free(leased);
	if (err < 0)
		return err;
	/* related UBRNs named by what was just fetched */
	for (int depth = 0; depth < RELATED_DEPTH; depth++) {
		static const char sql[] =
		    "SELECT ubrn FROM ers_referrals WHERE NOT on_worklist AND fetch_state = 'due'"
		    " AND related_to IN (SELECT jsonb_array_elements_text($1::jsonb))";
		const char **names = calloc(fx->ndone ? fx->ndone : 1, sizeof(*names));
		struct ras_db_res *res = NULL;
		const char **rel = NULL;
		char *list;
		int rows;

		if (names == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		for (size_t i = 0; i < fx->ndone; i++)
			names[i] = fx->done[i].ubrn;
		list = json_strings(names, fx->ndone);
		free(names);
		if (list == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		err = ras_db_query(fx->db, &res, sql, 1, &RAS_DB_TEXT(list));
		free(list);
		if (err < 0)
			return err;
		rows = ras_db_res_rows(res);
		if (rows == 0) {
			ras_db_res_free(res);
			break;
		}
		rel = calloc((size_t)rows, sizeof(*rel));
		if (rel == NULL) {
			ras_db_res_free(res);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		for (int i = 0; i < rows; i++)
			rel[i] = ras_db_res_get(res, i, 0);
		leased = NULL;
		nleased = 0;
		err = lease_referrals(fx, rel, (size_t)rows, (size_t)rows, &leased, &nleased);
		free(rel);
		ras_db_res_free(res);
		if (err < 0)
			return err;
		for (size_t off = 0; off < nleased && err == 0; off += REFERRAL_BATCH) {
			size_t m = nleased - off < REFERRAL_BATCH ? nleased - off : REFERRAL_BATCH;

			err = fetch_referrals(fx, leased + off, m, true);
		}
		free(leased);
		if (err < 0)
			return err;
		if (nleased == 0)
			break;
	}
	return 0;
}

/* ---- attachments --------------------------------------------------------- */

struct att {
	int64_t id;
	char ubrn[RAS_ID_MAX + 1];
	char url[RAS_ID_MAX * 2 + 64];
	char availability[32];
	char state[16];
	char title[256];
	char content_type[128];
	int attempts;
	int64_t cri_version;       /* > 0: an A007 clinical-information row */
	int64_t current_version;   /* ers_referrals.fetched_version */
};

static int
lease_attachments(struct fetch_ctx *fx, const char *const *ubrns, size_t n, size_t limit,
    struct att **out, size_t *nout)
{
	static const char sql[] =
	    "WITH leased AS ("
	    " UPDATE attachments t SET next_attempt_at = to_timestamp($2::bigint + $3::bigint)"
	    " WHERE t.id IN (SELECT id FROM attachments"
	    "   WHERE ubrn IS NOT NULL AND state IN ('listed', 'pending')"
	    "     AND (next_attempt_at IS NULL OR next_attempt_at <= to_timestamp($2::bigint))"
	    "     AND ($1::jsonb IS NULL OR ubrn IN (SELECT jsonb_array_elements_text($1::jsonb)))"
	    "   ORDER BY id LIMIT $4::int FOR UPDATE SKIP LOCKED)"
	    " RETURNING t.id, t.ubrn, t.url, coalesce(t.availability, '') AS availability, t.state,"
	    "  coalesce(t.title, '') AS title, coalesce(t.content_type, '') AS content_type, t.attempts,"
	    "  (SELECT coalesce(fetched_version, 0) FROM ers_referrals e WHERE e.ubrn = t.ubrn) AS current)"
	    /* in the order e-RS listed them: when several forms are attached,
	     * the last one listed is the referral's form */
	    " SELECT * FROM leased ORDER BY id";
	struct ras_db_res *res = NULL;
	int err, rows;

	*out = NULL;
	*nout = 0;
	if ((err = run_lease(fx, sql, ubrns, n, limit, &res)) < 0)
		return err;
	rows = ras_db_res_rows(res);
	*out = calloc(rows ? (size_t)rows : 1, sizeof(**out));
	if (*out == NULL) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		struct att *t = &(*out)[i];
		int64_t v;
		const char *u;

		(void)ras_db_res_int(res, i, 0, &t->id);
		snprintf(t->ubrn, sizeof(t->ubrn), "%s", ras_db_res_get(res, i, 1));
		snprintf(t->url, sizeof(t->url), "%s", ras_db_res_get(res, i, 2));
		snprintf(t->availability, sizeof(t->availability), "%s", ras_db_res_get(res, i, 3));
		snprintf(t->state, sizeof(t->state), "%s", ras_db_res_get(res, i, 4));
		snprintf(t->title, sizeof(t->title), "%s", ras_db_res_get(res, i, 5));
		snprintf(t->content_type, sizeof(t->content_type), "%s", ras_db_res_get(res, i, 6));
		(void)ras_db_res_int(res, i, 7, &v);
		t->attempts = (int)v;
		(void)ras_db_res_int(res, i, 8, &t->current_version);
		u = strstr(t->url, "/_history/");
		if (strncmp(t->url, "ReferralRequest/", 16) == 0 && u)
			t->cri_version = strtoll(u + 10, NULL, 10);
	}
	*nout = (size_t)rows;
	ras_db_res_free(res);
	return 0;
}

/* Move an attachment to a state without content. */
static int
att_state(struct fetch_ctx *fx, const struct att *t, const char *state, int64_t retry_in,
    const char *error, bool count_attempt)
{
	static const char sql[] =
	    "UPDATE attachments SET state = $2, attempts = attempts + $5::int,"
	    " next_attempt_at = CASE WHEN $3::bigint > 0 THEN to_timestamp($4::bigint + $3::bigint) END,"
	    " error = $6 WHERE id = $1::bigint";
	char id[24], in[24], nowb[24];

	fmt_i64(id, sizeof(id), t->id);
	fmt_i64(in, sizeof(in), retry_in);
	fmt_i64(nowb, sizeof(nowb), fx->now);
	if (strcmp(state, "pending") == 0)
		fx->files->pending++;
	else if (strcmp(state, "blocked") == 0)
		fx->files->blocked++;
	else if (strcmp(state, "too-big") == 0)
		fx->files->too_big++;
	else
		fx->files->failed++;
	return ras_db_query(fx->db, NULL, sql, 6, (struct ras_db_param[]){ RAS_DB_TEXT(id),
	    RAS_DB_TEXT(state), RAS_DB_TEXT(in), RAS_DB_TEXT(nowb),
	    RAS_DB_TEXT(count_attempt ? "1" : "0"), RAS_DB_TEXT(error) });
}

/* A transient failure: try again later with back-off, or give up. */
static int
att_retry(struct fetch_ctx *fx, const struct att *t, const char *error)
{
	if (t->attempts + 1 >= ras_ers_max_attempts(fx->c))
		return att_state(fx, t, "failed", 0, error, true);
	return att_state(fx, t, "listed", ras_ers_backoff_ms(t->attempts + 1, 60000, 3600000) / 1000,
	    error, true);
}

/* Is this fetched file a referral form?  Only JSON or XML can be. */
static bool
looks_like_form(struct ras_arena *a, const struct ras_xmlform_maps *maps, const char *data, size_t len)
{
	struct ras_intake in;
	size_t k = 0;

	while (k < len && (data[k] == ' ' || data[k] == '\n' || data[k] == '\r' || data[k] == '\t'))
		k++;
	if (k >= len || (data[k] != '{' && data[k] != '<') || len > RAS_PAYLOAD_MAX)
		return false;
	ras_error_clear();
	return ras_intake_parse(a, maps, data, len, &in) == 0 && in.kind == RAS_PAYLOAD_FORM;
}

static int
att_store(struct fetch_ctx *fx, const struct att *t, const struct ras_http_request *r)
{
	static const char sql[] =
	    "UPDATE attachments SET content = $2, content_sha256 = $3, content_size = $4::bigint,"
	    " state = 'fetched', fetched_at = to_timestamp($5::bigint), attempts = attempts + 1,"
	    " next_attempt_at = NULL, error = NULL,"
	    " content_type = coalesce(content_type, nullif($6, '')) WHERE id = $1::bigint";
	char id[24], size[24], nowb[24], sha[RAS_SHA256_HEX_LEN], ctype[128] = "";
	struct ras_arena *a;
	int err;

	fmt_i64(id, sizeof(id), t->id);
	fmt_i64(size, sizeof(size), (int64_t)r->body_out.len);
	fmt_i64(nowb, sizeof(nowb), fx->now);
	ras_crypto_sha256_hex(r->body_out.data, r->body_out.len, sha);
	(void)ras_http_response_header(r, "Content-Type", ctype, sizeof(ctype));
	if ((err = ras_db_query(fx->db, NULL, sql, 6, (struct ras_db_param[]){ RAS_DB_TEXT(id),
	    RAS_DB_BYTES(r->body_out.data, r->body_out.len), RAS_DB_TEXT(sha), RAS_DB_TEXT(size),
	    RAS_DB_TEXT(nowb), RAS_DB_TEXT(ctype) })) < 0)
		return err;
	fx->files->fetched++;
	if (t->cri_version)
		return 0;
	/* A referral form sent as an attachment goes through the inbox like
	 * any payload, as the form of its referral. */
	if ((a = ras_arena_new()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (looks_like_form(a, ras_ers_form_maps(fx->c), r->body_out.data, r->body_out.len)) {
		char ref[RAS_ID_MAX * 2 + 64];
		struct ras_inbox_item it = { 0 };
		int64_t pid = 0;
		char state[1][16];

		(void)ras_buf_format(ref, sizeof(ref), "A042 %s", t->url);   /* a label for people */
		it.data = r->body_out.data;
		it.len = r->body_out.len;
		it.sha256 = sha;
		it.source = "ers";
		it.source_ref = ref;
		it.content_type = ctype[0] ? ctype : (t->content_type[0] ? t->content_type : NULL);
		it.ubrn_hint = t->ubrn;
		it.service_hint = fx->rasd_service && *fx->rasd_service ? fx->rasd_service : NULL;
		if ((err = store_payloads(fx->db, ras_ers_form_maps(fx->c), &it, 1, &pid, state, NULL)) == 0 &&
		    strcmp(state[0], "stored") == 0) {
			fx->files->forms++;
			err = note_stored(fx, pid);
		}
	}
	ras_arena_free(a);
	return err;
}

static bool
is_code(const struct ras_ers_call *k, const char *code)
{
	return strcmp(k->error_code, code) == 0;
}

static int
fetch_attachment_batch(struct fetch_ctx *fx, struct att *ts, size_t n)
{
	struct ras_ers_call *calls = calloc(n ? n : 1, sizeof(*calls));
	struct ras_ers_call *store = calloc(n ? n : 1, sizeof(*store));
	size_t *callmap = calloc(n ? n : 1, sizeof(*callmap)), *storemap = calloc(n ? n : 1, sizeof(*storemap));
	size_t ncalls = 0, nstore = 0;
	char msg[300];
	int err = 0;

	if (!calls || !store || !callmap || !storemap) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++) {
		struct att *t = &ts[i];
		struct ras_ers_call *k;

		if (strcmp(t->availability, "THREATS_FOUND") == 0 ||
		    strcmp(t->availability, "VALIDATION_FAILED") == 0) {
			/* never retried: the uploading organisation must act */
			snprintf(msg, sizeof(msg), "e-RS marks the attachment %s: contact the organisation that attached it",
			    t->availability);
			if ((err = att_state(fx, t, "blocked", 0, msg, false)) < 0)
				goto done;
			continue;
		}
		if (strcmp(t->availability, "PENDING") == 0 && strcmp(t->state, "listed") == 0) {
			/* just seen as PENDING: the first try waits 5 minutes */
			if ((err = att_state(fx, t, "pending", PENDING_RETRY_S,
			    "e-RS is still scanning the attachment (PENDING)", false)) < 0)
				goto done;
			continue;
		}
		k = &calls[ncalls];
		if (t->cri_version) {
			if (t->current_version && t->cri_version != t->current_version) {
				snprintf(msg, sizeof(msg), "referral has a newer version (%lld) on e-RS",
				    (long long)t->current_version);
				if ((err = att_state(fx, t, "failed", 0, msg, false)) < 0)
					goto done;
				continue;
			}
			ras_ers_call_init(k, "A007", "POST", RAS_ERS_CALL_NO_ACCEPT);
			snprintf(k->url, sizeof(k->url), "/STU3/ReferralRequest/%s/$ers.generateCRI", t->ubrn);
		} else if (strncmp(t->url, "Binary/", 7) == 0 && path_safe(t->url + 7)) {
			ras_ers_call_init(k, "A042", "GET", RAS_ERS_CALL_NO_ACCEPT);
			snprintf(k->url, sizeof(k->url), "/R4/Binary/%s", t->url + 7);
		} else {
			if ((err = att_state(fx, t, "failed", 0, "attachment url is not Binary/<id>", false)) < 0)
				goto done;
			continue;
		}
		k->ubrn = t->ubrn;
		k->max_body = RAS_ATTACHMENT_MAX;
		callmap[ncalls++] = i;
	}
	if (ncalls && (err = ras_ers_perform(fx->c, fx->now, calls, ncalls)) < 0)
		goto done;
	for (size_t j = 0; j < ncalls; j++) {
		struct ras_ers_call *k = &calls[j];
		struct att *t = &ts[callmap[j]];
		long st = k->http.status;

		ras_ers_call_error(k, msg, sizeof(msg));
		if (k->http.err == RAS_ETOOBIG) {
			err = att_state(fx, t, "too-big", 0, "larger than the 20 MiB limit: open it in e-RS", true);
		} else if (k->http.err) {
			err = att_retry(fx, t, msg);
		} else if (st == 200) {
			err = att_store(fx, t, &k->http);
		} else if (st == 307 || st == 302 || st == 303) {
			char loc[1024];
			struct ras_ers_call *s = &store[nstore];

			if (ras_http_response_header(&k->http, "Location", loc, sizeof(loc)) == NULL ||
			    (strncmp(loc, "https://", 8) != 0 && strncmp(loc, "http://", 7) != 0)) {
				err = att_retry(fx, t, "A042 redirect without an absolute Location");
			} else {
				/* The object store gets a fresh request: no bearer
				 * token, no e-RS headers; the URL is used once. */
				ras_ers_call_init(s, "object-store", "GET",
				    RAS_ERS_CALL_ABSOLUTE | RAS_ERS_CALL_NO_ACCEPT);
				snprintf(s->url, sizeof(s->url), "%s", loc);
				s->ubrn = t->ubrn;
				s->max_body = RAS_ATTACHMENT_MAX;
				storemap[nstore++] = callmap[j];
			}
		} else if (st == 422 && is_code(k, "PENDING")) {
			/* 5 min, 10, 20 … up to 4 h (jitter never takes it under 5 min) */
			int64_t wait = ras_ers_backoff_ms(t->attempts + 1, PENDING_RETRY_S * 1000LL,
			    4 * 3600 * 1000LL) / 1000;

			if (wait < PENDING_RETRY_S)
				wait = PENDING_RETRY_S;
			if (t->attempts + 1 >= PENDING_TRIES_MAX)
				err = att_state(fx, t, "failed", 0, "still PENDING on e-RS after many tries", true);
			else
				err = att_state(fx, t, "pending", wait,
				    "e-RS is still scanning the attachment (PENDING)", true);
		} else if (st == 422 && (is_code(k, "THREATS_FOUND") || is_code(k, "VALIDATION_FAILED"))) {
			snprintf(msg, sizeof(msg), "e-RS refuses the attachment: %s: contact the organisation that attached it",
			    k->error_code);
			err = att_state(fx, t, "blocked", 0, msg, true);
		} else if (st == 429 || st >= 500 || st == 401) {
			err = att_retry(fx, t, msg);
		} else {
			/* 400/403/404/422 other: a person must look */
			err = att_state(fx, t, "failed", 0, msg, true);
		}
		if (err < 0)
			goto done;
	}
	if (nstore && (err = ras_ers_perform(fx->c, fx->now, store, nstore)) < 0)
		goto done;
	for (size_t j = 0; j < nstore; j++) {
		struct ras_ers_call *k = &store[j];
		struct att *t = &ts[storemap[j]];

		ras_ers_call_error(k, msg, sizeof(msg));
		if (k->http.err == RAS_ETOOBIG)
			err = att_state(fx, t, "too-big", 0, "larger than the 20 MiB limit: open it in e-RS", true);
		else if (!k->http.err && k->http.status == 200)
			err = att_store(fx, t, &k->http);
		else
			err = att_retry(fx, t, msg);
		if (err < 0)
			goto done;
	}
done:
	if (calls)
		ras_ers_call_release(calls, ncalls);
	if (store)
		ras_ers_call_release(store, nstore);
	free(calls);
	free(store);
	free(callmap);
	free(storemap);
	return err;
}

static int
fetch_due_attachments(struct fetch_ctx *fx, const char *const *ubrns, size_t n, size_t limit)
{
	size_t done = 0;
	int err = 0;

	while (done < limit) {
		struct att *ts = NULL;
		size_t nt = 0, want = limit - done < ATTACH_BATCH ? limit - done : ATTACH_BATCH;

		if ((err = lease_attachments(fx, ubrns, n, want, &ts, &nt)) < 0)
			return err;
		if (nt == 0) {
			free(ts);
			break;
		}
		err = fetch_attachment_batch(fx, ts, nt);
		free(ts);
		if (err < 0)
			return err;
		done += nt;
	}
	return 0;
}

/* ---- the cycle ----------------------------------------------------------- */

static int
lock_key(struct ras_db *db, const char *what, const char *id, bool lock, int *got)
{
	static const char try_sql[] = "SELECT pg_try_advisory_lock(hashtextextended($1 || ':' || $2, 0))::text";
	static const char un_sql[] = "SELECT pg_advisory_unlock(hashtextextended($1 || ':' || $2, 0))";
	struct ras_db_res *res = NULL;
	int err;

	if (!lock)
		return ras_db_query(db, NULL, un_sql, 2, (struct ras_db_param[]){ RAS_DB_TEXT(what),
		    RAS_DB_TEXT(id) });
	if ((err = ras_db_query(db, &res, try_sql, 2, (struct ras_db_param[]){ RAS_DB_TEXT(what),
	    RAS_DB_TEXT(id) })) < 0)
		return err;
	*got = strcmp(ras_db_res_get(res, 0, 0), "true") == 0;
	ras_db_res_free(res);
	return 0;
}

static int
keep_items(struct ras_ers *c, struct fetch_ctx *fx, const struct ras_ers_service *s,
    const struct ras_intake *in, struct ras_ers_poll_report *rep, const char ***due, size_t *ndue)
{
	static const char sql[] =
	    "INSERT INTO ers_referrals AS e (ubrn, service_id, on_worklist, worklist_version,"
	    "  first_seen_at, last_seen_at)"
	    " SELECT x.ubrn, $2, true, x.v, to_timestamp($3::bigint), to_timestamp($3::bigint)"
	    "  FROM jsonb_to_recordset($1::jsonb) AS x(ubrn text, v bigint)"
	    " ON CONFLICT (ubrn) DO UPDATE SET service_id = EXCLUDED.service_id, on_worklist = true,"
	    "  related_to = NULL, worklist_version = EXCLUDED.worklist_version,"
	    "  last_seen_at = EXCLUDED.last_seen_at,"
	    /* a version not seen before is fetched afresh, even one parked or
	     * failing before; the same version keeps its state (fetched,
	     * parked, or failing with its own retry time) */
	    "  fetch_state = CASE WHEN e.worklist_version IS DISTINCT FROM EXCLUDED.worklist_version"
	    "                      AND e.handled_version IS DISTINCT FROM EXCLUDED.worklist_version"
	    "                     THEN 'due' ELSE e.fetch_state END,"
	    "  attempts = CASE WHEN e.worklist_version IS DISTINCT FROM EXCLUDED.worklist_version"
	    "                      AND e.handled_version IS DISTINCT FROM EXCLUDED.worklist_version"
	    "                  THEN 0 ELSE e.attempts END,"
	    "  next_attempt_at = CASE WHEN e.worklist_version IS DISTINCT FROM EXCLUDED.worklist_version"
	    "                      AND e.handled_version IS DISTINCT FROM EXCLUDED.worklist_version"
	    "                  THEN NULL ELSE e.next_attempt_at END"
	    " RETURNING e.ubrn, e.fetch_state";
	json_t *arr = json_array();
	struct ras_buf b = RAS_BUF_INIT(0);
	struct ras_db_res *res = NULL;
	char nowb[24];
	int err = 0, rows;

	*due = NULL;
	*ndue = 0;
	if (arr == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < in->n_referrals; i++) {
		const struct ras_referral *r = &in->referrals[i];
		struct ras_ers_poll_item *it;

		if (r->ers_referral_type == NULL || strcmp(r->ers_referral_type, "TRIAGE_DEFERRAL") != 0 ||
		    (r->ers_service_id && strcmp(r->ers_service_id, s->id) != 0) ||
		    r->version <= 0 || !path_safe(r->ubrn)) {
			rep->skipped++;
			continue;
		}
		rep->kept++;
		if ((it = add_item(rep, r->ubrn)) != NULL)
			it->worklist_version = r->version;
		if ((err = ras_json_append_new(arr, json_pack("{s:s, s:I}", "ubrn", r->ubrn, "v",
		    (json_int_t)r->version))) < 0)
			goto done;
	}
	if (json_array_size(arr) == 0)
		goto done;
	fmt_i64(nowb, sizeof(nowb), fx->now);
	if ((err = ras_json_dump(arr, RAS_JSON_COMPACT, &b)) < 0 ||
	    (err = ras_db_query(fx->db, &res, sql, 3, (struct ras_db_param[]){ RAS_DB_TEXT(b.data),
	    RAS_DB_TEXT(s->id), RAS_DB_TEXT(nowb) })) < 0)
		goto done;
	rows = ras_db_res_rows(res);
	*due = calloc((size_t)rows + 1, sizeof(**due));
	if (*due == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < rows; i++) {
		const char *u = ras_db_res_get(res, i, 0);
		const char *st = ras_db_res_get(res, i, 1);

		if (strcmp(st, "fetched") == 0 || strcmp(st, "parked") == 0) {
			struct ras_ers_poll_item *it = add_item(rep, u);

			if (strcmp(st, "fetched") == 0)
				rep->unchanged++;
			if (it)
				it->state = strcmp(st, "fetched") == 0 ? "unchanged" : "parked";
			if (strcmp(st, "parked") == 0)
				rep->parked++;
			continue;
		}
		(*due)[(*ndue)++] = strdup(u);
	}
	(void)c;
done:
	if (err < 0 && *due) {
		for (size_t i = 0; i < *ndue; i++)
			free((char *)(*due)[i]);
		free(*due);
		*due = NULL;
		*ndue = 0;
	}
	ras_db_res_free(res);
	ras_buf_free(&b);
	json_decref(arr);
	return err;
}

int
ras_ers_poll_service(struct ras_ers *c, struct ras_db *db, const char *service_id, int64_t now,
    unsigned flags, struct ras_ers_poll_report *rep)
{
	const struct ras_ers_service *s = ras_ers_service_find(c, service_id);
	struct fetch_ctx fx = { .c = c, .db = db, .now = now, .rep = rep };
	struct ras_ers_call k;
	struct claim cl;
	struct ras_arena *a = NULL;
	struct ras_intake in;
	const char **due = NULL;
	size_t ndue = 0;
	char *body = NULL;
	int got = 0, err = 0;
	bool locked = false;

	memset(rep, 0, sizeof(*rep));
	ras_ers_call_init(&k, "A008", "POST", 0);
	snprintf(rep->service, sizeof(rep->service), "%s", service_id);
	rep->outcome = "failed";
	rep->budget_left = -1;
	rep->forced = (flags & RAS_ERS_POLL_FORCE) != 0;
	fx.files = &rep->files;
	if (s == NULL)
		return ras_error_code(RAS_EINVALID, "e-RS service \"%.40s\" is not in ers.service_ids",
		    service_id);
	fx.rasd_service = s->rasd_service;
	if ((flags & RAS_ERS_POLL_FORCE) && ras_ers_is_production(ras_ers_base_url(c)))
		return ras_error_code(RAS_EINVALID,
		    "--force is refused against the production e-RS (%s): the budget always applies there",
		    ras_ers_base_url(c));
	if ((err = lock_key(db, "rasd-ers-poll", s->id, true, &got)) < 0)
		return err;
	if (!got) {
		rep->outcome = "locked";
		return ras_error_code(RAS_ECONFLICT, "another rasd is polling e-RS service %s", s->id);
	}
	locked = true;
	/* no budget slot is spent on a poll that could not even authenticate */
	if ((err = ras_ers_authenticate(c, now)) < 0) {
		snprintf(rep->error, sizeof(rep->error), "%s", ras_error_last());
		goto done;
	}
	if ((err = claim_slot(c, db, s, now, flags, &cl)) < 0)
		goto done;
	if (ras_ers_mode(c) == RAS_ERS_APPLICATION)
		rep->budget_left = 2 - cl.used - (cl.slot ? 1 : 0);
	if (cl.exhausted) {
		rep->outcome = "budget-exhausted";
		rep->budget_left = 0;
		if (cl.missed) {
			/* never silent: the poller's state is a failure until the
			 * next successful call (the next working day's first slot) */
			rep->outcome = "missed";
			snprintf(rep->error, sizeof(rep->error), "e-RS service %s: the worklist poll is "
			    "missed today: worklist calls failed or were left unanswered and the A008 "
			    "budget (2 calls a day) is used up; referrals added since the last good call "
			    "wait for the next working day's first poll", s->id);
			ras_log(RAS_LOG_WARNING, "%s", rep->error);
			err = ras_error_code(RAS_ERATELIMITED, "%s", rep->error);
			goto done;
		}
		/* a scheduled poll whose slot a manual one already used: nothing
		 * to retry, the outcome says it */
		if (flags & RAS_ERS_POLL_SCHEDULED)
			goto done;
		err = ras_error_code(RAS_ERATELIMITED,
		    "the A008 budget of e-RS service %s is used up for today (2 calls a day in "
		    "application-restricted mode)", s->id);
		goto done;
	}
	if (!cl.due) {
		rep->outcome = "not-due";
		goto done;
	}
	rep->slot = cl.slot;
	rep->call_id = cl.call_id;
	if (cl.failed > 0 && (flags & RAS_ERS_POLL_SCHEDULED))
		ras_log(RAS_LOG_WARNING, "e-RS service %s: %d worklist call(s) since the last schedule time "
		    "failed or were left unanswered: trying again (budget slot %d of 2)", s->id, cl.failed,
		    cl.slot);

	if ((err = ras_ers_poll_worklist_request(s->id, &body)) < 0)
		goto done;
	snprintf(k.url, sizeof(k.url), "/STU3/ReferralRequest/$ers.fetchworklist");
	k.body = body;
	k.body_len = strlen(body);
	k.max_body = RAS_WORKLIST_MAX;
	if ((err = ras_ers_perform(c, now, &k, 1)) < 0) {
		(void)finish_call(db, cl.call_id, now, "failed", NULL, -1, -1, 0, ras_error_last());
		goto done;
	}
	snprintf(rep->correlation_id, sizeof(rep->correlation_id), "%s", k.correlation_id);
	snprintf(rep->request_id, sizeof(rep->request_id), "%s", k.request_id);
	if (k.http.err || k.http.status != 200) {
		ras_ers_call_error(&k, rep->error, sizeof(rep->error));
		err = ras_error_code(call_code(&k), "%s", rep->error);
		(void)finish_call(db, cl.call_id, now, "failed", &k, -1, -1, 0, rep->error);
		goto done;
	}
	{
		struct ras_inbox_item it = { 0 };
		char ref[96], ctype[128] = "", state[1][16], msg[1][256];

		(void)ras_buf_format(ref, sizeof(ref), "A008 REFERRALS_FOR_REVIEW service %s", s->id);
		(void)ras_http_response_header(&k.http, "Content-Type", ctype, sizeof(ctype));
		it.data = k.http.body_out.data;
		it.len = k.http.body_out.len;
		it.source = "ers";
		it.source_ref = ref;
		it.content_type = ctype[0] ? ctype : NULL;
		it.service_hint = s->rasd_service[0] ? s->rasd_service : NULL;
		it.correlation_id = k.correlation_id;
		if ((err = store_payloads(db, ras_ers_form_maps(c), &it, 1, &rep->payload_id, state, msg)) < 0)
			goto done;
		if ((a = ras_arena_new()) == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		if (strcmp(state[0], "rejected") == 0 ||
		    ras_intake_parse(a, ras_ers_form_maps(c), k.http.body_out.data, k.http.body_out.len, &in) < 0 ||
		    in.kind != RAS_PAYLOAD_ERS_WORKLIST) {
			snprintf(rep->error, sizeof(rep->error), "worklist (payload #%lld) rejected: %s",
			    (long long)rep->payload_id, msg[0][0] ? msg[0] : ras_error_last());
			err = ras_error_code(RAS_EINVALID, "%s", rep->error);
			(void)finish_call(db, cl.call_id, now, "failed", &k, -1, -1, rep->payload_id, rep->error);
			goto done;
		}
	}
	rep->entries = (int)in.n_referrals;
	if ((err = keep_items(c, &fx, s, &in, rep, &due, &ndue)) < 0)
		goto done;
	if ((err = finish_call(db, cl.call_id, now, "ok", &k, rep->entries, rep->kept,
	    rep->payload_id, NULL)) < 0)
		goto done;
	ras_ers_call_release(&k, 1);

	/* New or changed referrals, then what they carry. */
	if (ndue && (err = fetch_due_referrals(&fx, due, ndue, ndue)) < 0)
		goto done;
	{
		const char **names = calloc(fx.ndone ? fx.ndone : 1, sizeof(*names));

		if (names == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < fx.ndone; i++)
			names[i] = fx.done[i].ubrn;
		if (fx.ndone)
			err = fetch_due_attachments(&fx, names, fx.ndone, (size_t)-1);
		free(names);
		if (err < 0)
			goto done;
	}
	/* triage hook: what this cycle stored, triaged before it returns. */
	if ((err = triage_stored(&fx, &rep->triaged)) < 0) {
		snprintf(rep->error, sizeof(rep->error), "stored, but could not triage: %s", ras_error_last());
		goto done;
	}
	rep->outcome = "polled";
done:
	{
		static const char last[] =
		    "UPDATE ers_services SET last_poll_at = to_timestamp($2::bigint), last_poll_outcome = $3"
		    " WHERE service_id = $1";
		char nowb[24];

		fmt_i64(nowb, sizeof(nowb), now);
		if (strcmp(rep->outcome, "not-due") != 0 && strcmp(rep->outcome, "locked") != 0)
			(void)ras_db_query(db, NULL, last, 3, (struct ras_db_param[]){ RAS_DB_TEXT(s->id),
			    RAS_DB_TEXT(nowb), RAS_DB_TEXT(rep->outcome) });
	}
	(void)ras_ers_flush_calls(c, db);
	if (locked)
		(void)lock_key(db, "rasd-ers-poll", s->id, false, &got);
	ras_ers_call_release(&k, 1);
	for (size_t i = 0; i < ndue; i++)
		free((char *)due[i]);
	free(due);
	free(fx.done);
	free(fx.stored);
	free(body);
	ras_arena_free(a);
	return err;
}

int
ras_ers_poll_due(struct ras_ers *c, struct ras_db *db, int64_t now,
    struct ras_ers_poll_report **reps, size_t *n)
{
	const struct ras_ers_service *s;
	size_t ns = ras_ers_services(c, &s);
	int first = 0;

	*n = 0;
	*reps = calloc(ns ? ns : 1, sizeof(**reps));
	if (*reps == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < ns; i++) {
		int err = ras_ers_poll_service(c, db, s[i].id, now, RAS_ERS_POLL_SCHEDULED, &(*reps)[i]);

		if (err < 0 && (*reps)[i].error[0] == '\0')
			snprintf((*reps)[i].error, sizeof((*reps)[i].error), "%s", ras_error_last());
		if (err < 0 && err != RAS_ECONFLICT && first == 0)
			first = err;
		(*n)++;
	}
	return first;
}

int
ras_ers_poll_fetch_due(struct ras_ers *c, struct ras_db *db, int64_t now, size_t limit,
    struct ras_ers_fetch_report *rep)
{
	struct fetch_ctx fx = { .c = c, .db = db, .now = now };
	int err;

	memset(rep, 0, sizeof(*rep));
	fx.files = rep;
	if ((err = fetch_due_referrals(&fx, NULL, 0, limit)) < 0)
		goto done;
	if ((err = fetch_due_attachments(&fx, NULL, 0, limit)) < 0)
		goto done;
	/* triage hook: referrals fetched here, and referrals whose form
	 * arrived, are triaged like those of a poll cycle. */
	err = triage_stored(&fx, &rep->triaged);
done:
	(void)ras_ers_flush_calls(c, db);
	free(fx.done);
	free(fx.stored);
	return err;
}
