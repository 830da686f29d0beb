/*
 * Integration tests of the demographics stage against a real PostgreSQL
 * and the loopback fake PDS: what rasd sent, what it stored (the response
 * verbatim, the patient row, the check) and what triage decided, for each
 * case of issue 10 §4: found, restricted, superseded, deceased, not found,
 * PDS unavailable, and verify's differences.  rasctl pds lookup/refresh
 * as subprocesses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_fhir.h"
#include "fake_http.h"
#include "fake_pds.h"
#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/outbox.h"
#include "ras/pds.h"
#include "ras/pds_store.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras_config.h"

#define MAPPINGS RAS_SOURCE_ROOT "/mappings"

static struct ras_db *db;
static char *conninfo;
static struct fake_pds *fake;
static struct ras_pds *pds;
static struct ras_triage *tri;          /* [pds] on */
static struct ras_triage *tri_verify;   /* [pds] on, verify */
static int64_t now;

static int64_t
count(const char *sql, const char *arg)
{
	return ras_test_sql_int(db, sql, arg);
}

static char *
text(const char *sql, const char *arg)
{
	return ras_test_sql_text(db, sql, arg);
}

static int64_t
nosleep_mono(void *ctx)
{
	(void)ctx;
	return 0;
}

static void
nosleep(void *ctx, int64_t ms)
{
	(void)ctx;
	(void)ms;
}

/* s with every `from` replaced by `to` (malloc'd). */
static char *
replace(const char *s, const char *from, const char *to)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	const char *p;

	while ((p = strstr(s, from)) != NULL) {
		(void)ras_buf_append(&b, s, (size_t)(p - s));
		(void)ras_buf_puts(&b, to);
		s = p + strlen(from);
	}
	(void)ras_buf_puts(&b, s);
	return b.data;
}

/* The e-RS example referral (NHS number only) under another UBRN and NHS
 * number; returns the referral id. */
static int64_t
store_ers(const char *ubrn, const char *nhs)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture("ers/referral-Unbooked.json"), &len);
	char *a = replace(data, "000000070000", ubrn), *b = replace(a, "9912003888", nhs);
	struct ras_inbox_item it = { .data = b, .len = strlen(b), .source = "file", .source_ref = ubrn,
		.service_hint = "midnotts" };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	CU_ASSERT_STRING_EQUAL(rep[0].state, "stored");
	free(rep);
	free(data);
	free(a);
	free(b);
	return count("SELECT max(id) FROM referrals WHERE ubrn = $1", ubrn);
}

/* The R4 example referral (name, birth date 1962-01-30, practice) under
 * another NHS number. */
static int64_t
store_r4(const char *nhs, const char *key)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture("r4/referral-message.json"), &len);
	char *a = replace(data, "9990000034", nhs);
	struct ras_inbox_item it = { .data = a, .len = strlen(a), .source = "file", .source_ref = key,
		.service_hint = "midnotts" };
	struct ras_inbox_put_result put;
	struct ras_normalise_report *rep = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_store_inbox_put(db, &it, 1, &put), 0);
	CU_ASSERT_EQUAL_FATAL(ras_store_normalise(db, NULL, &put.id, 1, 1, &rep, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 1);
	free(rep);
	free(data);
	free(a);
	return count("SELECT max(r.id) FROM referrals r WHERE r.payload_id = (SELECT max(id) FROM inbox)",
	    NULL);
}

static void
stage(bool verify, int64_t at, struct ras_pds_stage_report *rep)
{
	CU_ASSERT_EQUAL_FATAL(ras_pds_store_demographics(db, pds, verify, 0, at, 50, rep), 0);
}

static size_t
triage(const struct ras_triage *t)
{
	struct ras_triage_report *reps = NULL;
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(ras_triage_pending(db, t, now, 100, NULL, 0, &reps, &n), 0);
	free(reps);
	return n;
}

static char *
state(int64_t id)
{
	char b[24];

	snprintf(b, sizeof(b), "%lld", (long long)id);
	return text("SELECT state FROM referrals WHERE id = $1::bigint", b);
}

static char *
idtext(int64_t id)
{
	static char b[4][24];
	static int k;

	k = (k + 1) % 4;
	snprintf(b[k], sizeof(b[k]), "%lld", (long long)id);
	return b[k];
}

#define ASSERT_STATE(id, want) do { char *s_ = state(id); CU_ASSERT_STRING_EQUAL(s_, want); free(s_); } while (0)

/* ---- the cases ------------------------------------------------------------------ */

static void
found_fills_the_patient_and_triage_names_the_version(void)
{
	struct ras_pds_stage_report rep;
	int64_t id = store_ers("100000000001", "9912003888");
	size_t before = fake_http_count(fake_pds_http(fake));
	const struct fake_req *r;
	char *s;

	/* PDS on: triage leaves it for the demographics stage */
	CU_ASSERT_EQUAL(triage(tri), 0);
	ASSERT_STATE(id, "new");
	stage(false, now, &rep);
	CU_ASSERT_EQUAL(rep.queued, 1);
	CU_ASSERT_EQUAL(rep.by_result[RAS_PDS_FOUND], 1);
	CU_ASSERT_EQUAL_FATAL(fake_http_count(fake_pds_http(fake)), before + 1);
	r = fake_http_req(fake_pds_http(fake), before);
	CU_ASSERT_STRING_EQUAL(r->path, "/personal-demographics/FHIR/R4/Patient/9912003888");
	/* stored verbatim with the request id it was sent with */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint AND result = 'found'"
	    " AND etag = 'W/\"58\"' AND version_id = '58' AND status = 200 AND attempts = 1", idtext(id)), 1);
	s = text("SELECT request_id FROM pds_lookups WHERE referral_id = $1::bigint", idtext(id));
	CU_ASSERT_STRING_EQUAL(s, fake_req_header(r, "X-Request-ID"));
	free(s);
	s = text("SELECT convert_from(body, 'UTF8') FROM pds_lookups WHERE referral_id = $1::bigint", idtext(id));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"versionId\": \"58\""));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "9912003888"));
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM patients WHERE nhs_number = '9912003888'"
	    " AND pds_practice_ods = 'A20047' AND pds_birth_date = '1946-06-23' AND pds_version = '58'"
	    " AND pds_address ->> 'postcode' = 'DN18 5DW' AND pds_checked_at IS NOT NULL"
	    " AND NOT pds_restricted AND $1::text IS NOT NULL", "x"), 1);
	ASSERT_STATE(id, "new");
	CU_ASSERT_EQUAL(triage(tri), 1);
	/* the decision's facts name the PDS version and used its birth date */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions WHERE referral_id = $1::bigint"
	    " AND facts -> 'pds' ->> 'version' = '58' AND facts -> 'pds' ->> 'result' = 'found'", idtext(id)), 1);
	s = text("SELECT reasons::text FROM current_decisions WHERE referral_id = $1::bigint", idtext(id));
	CU_ASSERT_PTR_NULL(strstr(s, "birth-date-unknown"));
	CU_ASSERT_PTR_NULL(strstr(s, "pds."));
	free(s);
	/* the referral's own document is unchanged */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE id = $1::bigint"
	    " AND doc -> 'patient' ->> 'birth_date' IS NULL", idtext(id)), 1);
}

static void
restricted_never_keeps_an_address(void)
{
	struct ras_pds_stage_report rep;
	int64_t id = store_ers("100000000002", "9462979626");
	char *s;

	stage(false, now, &rep);
	CU_ASSERT_EQUAL(rep.restricted, 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM patients WHERE nhs_number = '9462979626'"
	    " AND pds_restricted AND pds_security = 'R' AND pds_address IS NULL AND pds_practice_ods IS NULL"
	    " AND postcode IS NULL AND $1::text IS NOT NULL", "x"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint"
	    " AND summary -> 'address' IS NULL AND (summary ->> 'restricted')::boolean", idtext(id)), 1);
	CU_ASSERT_EQUAL(triage(tri), 1);
	ASSERT_STATE(id, "review");
	s = text("SELECT reasons::text FROM current_decisions WHERE referral_id = $1::bigint", idtext(id));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "pds.restricted"));
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions WHERE referral_id = $1::bigint"
	    " AND outcome = 'review' AND NOT final AND (facts -> 'pds' ->> 'restricted')::boolean", idtext(id)), 1);
	/* a later lookup drops location data held from before */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE referral_id = $1::bigint AND kind = 'pds-lookup'"
	    " AND (detail ->> 'restricted')::boolean", idtext(id)), 1);
}

static void
superseded_number_is_recorded_both_ways(void)
{
	struct ras_pds_stage_report rep;
	int64_t id;

	fake_pds_supersede(fake, "9434765919", "9693632109");
	id = store_ers("100000000003", "9434765919");
	stage(false, now, &rep);
	CU_ASSERT_EQUAL(rep.superseded, 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint"
	    " AND nhs_number = '9434765919' AND answered_id = '9693632109'", idtext(id)), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM patients WHERE nhs_number = '9434765919'"
	    " AND superseded_by = '9693632109' AND $1::text IS NOT NULL", "x"), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals r JOIN patients p ON p.id = r.patient_id"
	    " WHERE r.id = $1::bigint AND p.nhs_number = '9693632109'", idtext(id)), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_checks WHERE referral_id = $1::bigint"
	    " AND nhs_number = '9693632109'", idtext(id)), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE referral_id = $1::bigint AND kind = 'pds-superseded'"
	    " AND detail ->> 'superseded' = '9434765919' AND detail ->> 'now' = '9693632109'", idtext(id)), 1);
	CU_ASSERT_EQUAL(triage(tri), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM current_decisions WHERE referral_id = $1::bigint"
	    " AND (facts -> 'pds' ->> 'superseded')::boolean", idtext(id)), 1);
	/* a later referral for the old number is looked up under the new one */
	{
		size_t before = fake_http_count(fake_pds_http(fake));

		(void)store_ers("100000000013", "9434765919");
		stage(false, now + 7200, &rep);
		CU_ASSERT_EQUAL_FATAL(fake_http_count(fake_pds_http(fake)), before + 1);
		CU_ASSERT_STRING_EQUAL(fake_http_req(fake_pds_http(fake), before)->path,
		    "/personal-demographics/FHIR/R4/Patient/9693632109");
		CU_ASSERT_EQUAL(triage(tri), 1);
	}
}

static void
deceased_goes_to_review_without_patient_copy(void)
{
	struct ras_pds_stage_report rep;
	int64_t id = store_ers("100000000004", "9000000009");
	char *s;

	stage(false, now, &rep);
	CU_ASSERT_EQUAL(rep.deceased, 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM patients WHERE nhs_number = '9000000009'"
	    " AND pds_deceased LIKE '2010-10-22%' AND $1::text IS NOT NULL", "x"), 1);
	CU_ASSERT_EQUAL(triage(tri), 1);
	ASSERT_STATE(id, "review");
	s = text("SELECT reasons::text FROM current_decisions WHERE referral_id = $1::bigint", idtext(id));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "pds.deceased"));
	free(s);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE referral_id = $1::bigint"
	    " AND recipient_role = 'patient'", idtext(id)), 0);
}

static void
not_found_and_invalid_are_not_retried(void)
{
	struct ras_pds_stage_report rep;
	int64_t id = store_ers("100000000005", "9111231130");
	size_t before;
	char *s;

	stage(false, now, &rep);
	CU_ASSERT_EQUAL(rep.by_result[RAS_PDS_NOT_FOUND], 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_checks WHERE referral_id = $1::bigint"
	    " AND state = 'done' AND result = 'not-found'", idtext(id)), 1);
	CU_ASSERT_EQUAL(triage(tri), 1);
	ASSERT_STATE(id, "review");
	s = text("SELECT reasons::text FROM current_decisions WHERE referral_id = $1::bigint", idtext(id));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "pds.not-found"));
	free(s);
	/* invalidated (withdrawn, not superseded): review too */
	{
		int64_t inv;

		fake_pds_invalidate(fake, "9990003343");
		inv = store_ers("100000000015", "9990003343");
		stage(false, now, &rep);
		CU_ASSERT_EQUAL(rep.by_result[RAS_PDS_INVALIDATED], 1);
		CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint"
		    " AND status = 404 AND code = 'INVALIDATED_RESOURCE' AND result = 'invalidated'", idtext(inv)), 1);
		CU_ASSERT_EQUAL(triage(tri), 1);
		s = text("SELECT reasons::text FROM current_decisions WHERE referral_id = $1::bigint", idtext(inv));
		CU_ASSERT_PTR_NOT_NULL(strstr(s, "pds.invalidated"));
		free(s);
	}
	/* hours later: nothing more is asked */
	before = fake_http_count(fake_pds_http(fake));
	stage(false, now + 86400, &rep);
	CU_ASSERT_EQUAL(fake_http_count(fake_pds_http(fake)), before);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint", idtext(id)), 1);
}

static void
unavailable_waits_and_nothing_is_dropped(void)
{
	struct ras_pds_stage_report rep;
	int64_t id, n = 0, oldest = 0;

	fake_pds_fail(fake, 1000, 503);
	id = store_ers("100000000006", "9732110317");
	stage(false, now, &rep);
	CU_ASSERT_EQUAL(rep.by_result[RAS_PDS_UNAVAILABLE], 1);
	ASSERT_STATE(id, "demographics");
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_checks WHERE referral_id = $1::bigint AND state = 'waiting'"
	    " AND result = 'unavailable' AND next_attempt_at > now()", idtext(id)), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint"
	    " AND result = 'unavailable' AND status = 503 AND attempts = 4", idtext(id)), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM events WHERE referral_id = $1::bigint AND kind = 'pds-waiting'",
	    idtext(id)), 1);
	/* triage does not take it; the clock is visible */
	CU_ASSERT_EQUAL(triage(tri), 0);
	CU_ASSERT_EQUAL(ras_pds_store_waiting(db, &n, &oldest), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_TRUE(oldest > 0 && oldest <= now + 1);
	{
		/* rasctl status shows the queue and the age of its oldest */
		char *out = NULL, *err = NULL;
		json_t *st, *q;
		size_t i;
		bool seen = false;

		CU_ASSERT_EQUAL(ras_test_rasctl(conninfo, NULL, (const char *[]){ "status", "--json", NULL },
		    &out, &err), 0);
		st = json_loads(out ? out : "", 0, NULL);
		json_array_foreach(ras_json_arr(st, "queues"), i, q)
			if (strcmp(ras_json_str(q, "stage"), "demographics") == 0) {
				seen = true;
				CU_ASSERT_EQUAL(json_integer_value(json_object_get(q, "depth")), 1);
				CU_ASSERT_TRUE(json_real_value(json_object_get(q, "oldest_seconds")) >= 0);
			}
		CU_ASSERT_TRUE(seen);
		json_decref(st);
		free(out);
		free(err);
	}
	/* not due yet: no call */
	{
		size_t before = fake_http_count(fake_pds_http(fake));

		stage(false, now + 10, &rep);
		CU_ASSERT_EQUAL(fake_http_count(fake_pds_http(fake)), before);
	}
	/* PDS back: the referral is looked up and triaged */
	fake_pds_fail(fake, 0, 0);
	stage(false, now + 7200, &rep);
	CU_ASSERT_EQUAL(rep.by_result[RAS_PDS_FOUND], 1);
	ASSERT_STATE(id, "new");
	CU_ASSERT_EQUAL(triage(tri), 1);
	CU_ASSERT_EQUAL(ras_pds_store_waiting(db, &n, &oldest), 0);
	CU_ASSERT_EQUAL(n, 0);
}

static void
verify_keeps_differences_beside_pds(void)
{
	struct ras_pds_stage_report rep;
	int64_t id = store_r4("9693632109", "r4-verify");
	char *s;

	/* the R4 referral has name, birth date and practice: only verify looks it up */
	stage(false, now, &rep);
	CU_ASSERT_EQUAL(rep.queued, 0);
	stage(true, now, &rep);
	CU_ASSERT_EQUAL(rep.queued, 1);
	CU_ASSERT_EQUAL(rep.differing, 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_checks WHERE referral_id = $1::bigint"
	    " AND differences -> 'birth_date' ->> 'referral' = '1962-01-30'"
	    " AND differences -> 'birth_date' ->> 'pds' = '1946-06-23'"
	    " AND differences -> 'practice_ods' ->> 'pds' = 'A20047'", idtext(id)), 1);
	CU_ASSERT_EQUAL(triage(tri_verify), 1);
	ASSERT_STATE(id, "review");
	s = text("SELECT reasons::text FROM current_decisions WHERE referral_id = $1::bigint", idtext(id));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "pds.differs.birth-date"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "pds.differs.practice"));
	free(s);
	/* what the referrer sent is still there */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE id = $1::bigint"
	    " AND doc -> 'patient' ->> 'birth_date' = '1962-01-30'", idtext(id)), 1);
}

/* Letters of an e-RS referral: built from the PDS name, birth date,
 * address and practice; never a patient copy for a restricted patient. */
static void
letters_use_pds_demographics(void)
{
	struct fake_fhir *ff = fake_fhir_start();
	struct ras_config *cfg;
	struct ras_outbox *o = NULL;
	struct ras_outbox_stats st;
	char routes[4096], conf[8192], buf[2048], *s;
	const char *tmp = ras_test_tmpdir();
	int64_t found = count("SELECT max(id) FROM referrals WHERE ubrn = $1", "100000000001");
	int64_t restricted = count("SELECT max(id) FROM referrals WHERE ubrn = $1", "100000000002");

	snprintf(buf, sizeof(buf), "{\"routes\": [\n"
	    " {\"ods\": \"A20047\", \"transport\": \"fhir\", \"endpoint\": \"%s\", \"mode\": \"document\"},\n"
	    " {\"ods\": \"R69\", \"transport\": \"fhir\", \"endpoint\": \"%s\", \"mode\": \"document\"}]}\n",
	    fake_fhir_base(ff), fake_fhir_base(ff));
	{
		char *w = ras_test_write_tmp("pds-routes.json", buf, strlen(buf));

		ras_test_fmt(routes, sizeof(routes), "%s", w);
		free(w);
	}
	snprintf(conf, sizeof(conf), "[routing]\ntable = %s\n[outbox]\nallow_http_loopback = yes\n"
	    "print_dir = %s\n[pds]\nbase_url = %s\nmode = sandbox\nmax_age = 24\n", routes, tmp,
	    fake_pds_base(fake));
	cfg = ras_test_config(conf);
	CU_ASSERT_EQUAL_FATAL(ras_outbox_new(cfg, MAPPINGS, &o), 0);
	/* the practice letters go to is PDS's: the e-RS referral named none */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE id = $1::bigint"
	    " AND registered_practice = 'A20047'", idtext(found)), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM referrals WHERE id = $1::bigint"
	    " AND registered_practice IS NULL", idtext(restricted)), 1);
	CU_ASSERT_EQUAL(count("SELECT ras_outbox_enqueue(r.id, 'midnotts', 'triage-outcome', d.id, NULL, NULL,"
	    " true, true) FROM referrals r JOIN current_decisions d ON d.referral_id = r.id"
	    " WHERE r.id = $1::bigint", idtext(found)), 2);
	CU_ASSERT(count("SELECT ras_outbox_enqueue(r.id, 'midnotts', 'triage-outcome', d.id, NULL, NULL,"
	    " false, true) FROM referrals r JOIN current_decisions d ON d.referral_id = r.id"
	    " WHERE r.id = $1::bigint", idtext(restricted)) >= 1);
	memset(&st, 0, sizeof(st));
	CU_ASSERT_EQUAL(ras_outbox_render_pending(o, db, now, &st), 0);
	/* the GP's letter (its payload: the document as sent, [routing] mode
	 * document): PDS name, birth date, address; addressed to A20047 */
	s = text("SELECT convert_from(payload, 'UTF8') FROM outbox WHERE referral_id = $1::bigint"
	    " AND recipient_role = 'gp' AND state = 'ready'", idtext(found));
	CU_ASSERT_PTR_NOT_NULL_FATAL(s);
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "1946-06-23"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "1 MOUNT AVENUE"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "DN18 5DW"));
	CU_ASSERT_PTR_NOT_NULL(strstr(s, "A20047"));
	free(s);
	/* restricted (and, in this sandbox record, deceased): no patient copy,
	 * and no address in anything built */
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE referral_id = $1::bigint"
	    " AND recipient_role = 'patient' AND state = 'cancelled' AND last_error LIKE 'no patient copy: PDS records%'",
	    idtext(restricted)), 1);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE referral_id = $1::bigint"
	    " AND (doc::text LIKE '%\"address\"%' OR convert_from(coalesce(payload, ''), 'UTF8') LIKE '%ddress%')",
	    idtext(restricted)), 0);

	/* [pds] max_age: two days on, a new letter waits while the record is
	 * read again (no re-triage), then goes with the fresh one */
	{
		struct ras_pds_stage_report rep;
		size_t before = fake_http_count(fake_pds_http(fake));
		char *state_before = state(found), *state_after;
		int64_t later = now + 2 * 86400;

		CU_ASSERT_EQUAL(count("SELECT ras_outbox_enqueue(r.id, 'midnotts', 'triage-outcome', d.id, NULL, NULL,"
		    " true, false) FROM referrals r JOIN current_decisions d ON d.referral_id = r.id"
		    " WHERE r.id = $1::bigint", idtext(found)), 1);
		memset(&st, 0, sizeof(st));
		CU_ASSERT_EQUAL(ras_outbox_render_pending(o, db, later, &st), 0);
		CU_ASSERT_EQUAL(st.claimed, 0);
		CU_ASSERT_EQUAL(ras_pds_store_demographics(db, pds, false, 24 * 3600, later, 50, &rep), 0);
		CU_ASSERT_EQUAL(rep.refreshed, 1);
		CU_ASSERT_EQUAL(fake_http_count(fake_pds_http(fake)), before + 1);
		CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint", idtext(found)), 2);
		state_after = state(found);
		CU_ASSERT_STRING_EQUAL(state_after, state_before);
		free(state_before);
		free(state_after);
		/* the fresh record is the one of "now": still stale two days on, so
		 * render at the time of the new lookup */
		memset(&st, 0, sizeof(st));
		CU_ASSERT_EQUAL(ras_outbox_render_pending(o, db, now, &st), 0);
		CU_ASSERT_EQUAL(st.claimed, 1);
		CU_ASSERT_EQUAL(count("SELECT count(*) FROM outbox WHERE referral_id = $1::bigint AND recipient_role = 'gp'"
		    " AND state = 'ready' AND doc_version = 2", idtext(found)), 1);
	}
	ras_outbox_free(o);
	ras_config_free(cfg);
	fake_fhir_stop(ff);
}

/* ---- rasctl ------------------------------------------------------------------------- */

static char *
pds_config(void)
{
	static char path[4096];
	char conf[1024];

	snprintf(conf, sizeof(conf), "[pds]\nbase_url = %s\nmode = sandbox\n", fake_pds_base(fake));
	{
		char *w = ras_test_write_tmp("pds.conf", conf, strlen(conf));

		ras_test_fmt(path, sizeof(path), "%s", w);
		free(w);
	}
	return path;
}

static void
rasctl_lookup_and_refresh(void)
{
	char *out = NULL, *err = NULL;
	const char *conf = pds_config();
	json_t *j;
	int rc;
	int64_t id;

	rc = ras_test_rasctl(conninfo, conf, (const char *[]){ "pds", "lookup", "9693632109", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	j = json_loads(out ? out : "", 0, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(j);
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "result"), "found");
	CU_ASSERT_STRING_EQUAL(ras_json_str(ras_json_obj(j, "patient"), "practice_ods"), "A20047");
	CU_ASSERT_STRING_EQUAL(ras_json_str(ras_json_obj(j, "patient"), "version"), "58");
	json_decref(j);
	free(out);
	free(err);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE actor = 'rasctl' AND nhs_number = $1",
	    "9693632109"), 1);
	rc = ras_test_rasctl(conninfo, conf, (const char *[]){ "pds", "lookup", "9111231130", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	free(out);
	free(err);
	rc = ras_test_rasctl(conninfo, conf, (const char *[]){ "pds", "lookup", "9000000000", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 65);
	free(out);
	free(err);
	fake_pds_fail(fake, 1000, 503);
	rc = ras_test_rasctl(conninfo, conf, (const char *[]){ "pds", "lookup", "9693632109", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 69);
	free(out);
	free(err);
	fake_pds_fail(fake, 0, 0);

	/* refresh by UBRN: a new lookup and back to triage */
	id = count("SELECT max(id) FROM referrals WHERE ubrn = $1", "100000000002");
	rc = ras_test_rasctl(conninfo, conf, (const char *[]){ "pds", "refresh", "100000000002", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"restricted\": true"));
	free(out);
	free(err);
	CU_ASSERT_EQUAL(count("SELECT count(*) FROM pds_lookups WHERE referral_id = $1::bigint", idtext(id)), 2);
	ASSERT_STATE(id, "new");
	CU_ASSERT_EQUAL(triage(tri), 1);
	/* rasctl show: demographics with source and PDS version, never the restricted address */
	rc = ras_test_rasctl(conninfo, conf, (const char *[]){ "show", "100000000001", NULL }, &out, &err);
	CU_ASSERT_EQUAL(rc, 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"demographics\""));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"source\": \"pds\""));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"pds_version\": \"58\""));
	free(out);
	free(err);
}

/* ---- main --------------------------------------------------------------------------- */

static int
setup(void)
{
	struct ras_pds_opts o = { 0 };
	char conf[512];

	db = ras_test_db("pds", &conninfo);
	now = ras_time_now();
	fake = fake_pds_start();
	o.base_url = fake_pds_base(fake);
	o.mode = RAS_NHSAPI_SANDBOX;
	o.timeout_ms = 3000;
	o.clock.mono_ms = nosleep_mono;
	o.clock.sleep_ms = nosleep;
	if (ras_pds_new(&o, &pds) < 0)
		return 1;
	snprintf(conf, sizeof(conf), "[pds]\nbase_url = %s\nmode = sandbox\n", fake_pds_base(fake));
	tri = ras_test_triage(conf, MAPPINGS);
	snprintf(conf, sizeof(conf), "[pds]\nbase_url = %s\nmode = sandbox\nverify = true\n", fake_pds_base(fake));
	tri_verify = ras_test_triage(conf, MAPPINGS);
	return tri && tri_verify ? 0 : 1;
}

static int
teardown(void)
{
	ras_triage_free(tri);
	ras_triage_free(tri_verify);
	ras_pds_free(pds);
	fake_pds_stop(fake);
	ras_db_close(db);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "found: patient filled, verbatim stored, triage names the version", found_fills_the_patient_and_triage_names_the_version },
		{ "restricted: never an address, review marked restricted", restricted_never_keeps_an_address },
		{ "superseded: both recorded, the new number used, audited", superseded_number_is_recorded_both_ways },
		{ "deceased: review, no patient copy", deceased_goes_to_review_without_patient_copy },
		{ "not found: review, not retried", not_found_and_invalid_are_not_retried },
		{ "unavailable: waits, clock visible, nothing dropped", unavailable_waits_and_nothing_is_dropped },
		{ "verify: differences kept beside PDS, review", verify_keeps_differences_beside_pds },
		{ "letters use PDS demographics; none to a restricted patient", letters_use_pds_demographics },
		{ "rasctl pds lookup, refresh and show", rasctl_lookup_and_refresh },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "pds", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
