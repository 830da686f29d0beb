/*
 * Storing decisions a batch at a time (ras_store_decisions, schema 014)
 * must give exactly what storing them one at a time gives.  Two fresh
 * databases get the same referrals and the same generated mix of decisions
 * (final and review, accept, return with advice, onward 2WW, urgent
 * reviews with a clinical-review clock, several versions of one referral,
 * a clinician's decision after the rules' on the same referral, e-RS
 * referrals whose outcome intents supersede each other): one database
 * stores them one at a time, the other as one batch.  Decisions, deadlines,
 * letters, e-RS outcome intents, events and referral states must be the
 * same, with ids that differ only because of the order rows were written
 * replaced by the place of their decision in the sequence.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/mappings.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras_config.h"

#define MAPPINGS RAS_SOURCE_ROOT "/mappings"

static struct ras_db *one_db, *batch_db;
static struct ras_triage *tri;

/* ---- the referrals (the same in both databases) ------------------------------ */

struct ref {
	const char *fixture, *old_ubrn, *ubrn, *service, *version;
};

/* midnotts FHIR referrals (two versions of one), a 2WW, and e-RS referrals
 * (source ers-referral: their final accepts and returns become intents) */
static const struct ref refs[] = {
	{ "triage/midnotts-accept.json", "100000000301", "100000000901", "midnotts", NULL },
	{ "triage/midnotts-accept.json", "100000000301", "100000000902", "midnotts", NULL },
	{ "triage/midnotts-accept.json", "100000000301", "100000000902", "midnotts", "2" },
	{ "triage/midnotts-accept.json", "100000000301", "100000000903", "midnotts", NULL },
	{ "triage/midnotts-accept.json", "100000000301", "100000000903", "midnotts", "2" },
	{ "triage/midnotts-accept.json", "100000000301", "100000000903", "midnotts", "3" },
	{ "triage/midnotts-2ww.json", "100000000303", "100000000904", "midnotts", NULL },
	{ "triage/midnotts-2ww.json", "100000000303", "100000000905", "midnotts", NULL },
	{ "triage/midnotts-out-of-area.json", "100000000302", "100000000906", "midnotts", NULL },
	{ "ers/referral-Unbooked.json", "000000070000", "000000079001", "midnotts", NULL },
	{ "ers/referral-Unbooked.json", "000000070000", "000000079002", "midnotts", NULL },
	{ "ers/referral-BookedDBS.json", "000000070001", "000000079003", "midnotts", NULL },
};
#define N_REFS (sizeof(refs) / sizeof(refs[0]))

static void
store_ref(struct ras_db *db, const struct ref *r, int k)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture(r->fixture), &len);
	struct ras_buf out = RAS_BUF_INIT(0);
	const char *s = data, *p;
	char name[64];

	while ((p = strstr(s, r->old_ubrn)) != NULL) {
		(void)ras_buf_append(&out, s, (size_t)(p - s));
		(void)ras_buf_puts(&out, r->ubrn);
		s = p + strlen(r->old_ubrn);
	}
	(void)ras_buf_puts(&out, s);
	if (r->version) {
		/* meta.versionId on the ServiceRequest: a new version of the referral */
		static const char sr[] = "\"resourceType\": \"ServiceRequest\",";
		char *at = strstr(out.data, sr);
		struct ras_buf v = RAS_BUF_INIT(0);

		RAS_REQUIRE(at);
		at += strlen(sr);
		(void)ras_buf_append(&v, out.data, (size_t)(at - out.data));
		(void)ras_buf_printf(&v, " \"meta\": {\"versionId\": \"%s\"},", r->version);
		(void)ras_buf_puts(&v, at);
		ras_buf_free(&out);
		out = v;
	}
	snprintf(name, sizeof(name), "ref-%d.json", k);
	{
		struct ras_inbox_item it = { .data = out.data, .len = out.len, .source = "file", .source_ref = name,
			.service_hint = r->service };

		(void)ras_test_ingest(db, &it);
	}
	ras_buf_free(&out);
	free(data);
}

/* ---- the decisions ------------------------------------------------------------- */

enum kind {
	K_REVIEW,            /* the rules: a review, urgent or not (a clinical-review clock when urgent) */
	K_ACCEPT,            /* the rules: a final accept */
	K_RETURN,            /* the rules: a final return with advice */
	K_2WW,               /* the rules: onward to two-week-wait, final or not */
	K_RECOMMEND,         /* the rules: an accept awaiting a clinician */
	K_CLIN_ACCEPT,       /* a clinician's accept */
	K_CLIN_RETURN,       /* a clinician's return with advice */
	K_N
};

struct pick {
	size_t ref;
	enum kind kind;
	bool flag;           /* urgent (review), final (2WW) */
};

/* The referral id and receipt time of refs[k] in db (the same in every
 * database that stored refs in order). */
static void
ref_row(struct ras_db *db, size_t k, int64_t *id, int64_t *received)
{
	char sql[256];
	char *s;

	/* (an e-RS referral has the version e-RS gave it: its first here) */
	snprintf(sql, sizeof(sql), "SELECT r.id || ' ' || floor(extract(epoch FROM r.received_at))::bigint"
	    " FROM referrals r WHERE r.ubrn = '%s' AND r.version %s%s ORDER BY r.version LIMIT 1", refs[k].ubrn,
	    refs[k].version ? "= " : "> 0", refs[k].version ? refs[k].version : "");
	s = ras_test_sql_text(db, sql, NULL);
	RAS_REQUIRE(s);
	CU_ASSERT_EQUAL(sscanf(s, "%lld %lld", (long long *)id, (long long *)received), 2);
	free(s);
}

static void
make_decision(struct ras_db *db, struct ras_arena *a, const struct pick *p, int seq, int64_t at,
    struct ras_decision *d, int64_t *referral_id)
{
	const struct ras_ruleset *rs = ras_mappings_ruleset(ras_triage_mappings(tri), "midnotts");
	struct ras_reason *reason = ras_arena_calloc(a, 1, sizeof(*reason));
	bool clinician = p->kind == K_CLIN_ACCEPT || p->kind == K_CLIN_RETURN;
	bool urgent = false;
	int64_t received = 0;

	RAS_REQUIRE(reason);
	ref_row(db, p->ref, referral_id, &received);
	memset(d, 0, sizeof(*d));
	d->service = "midnotts";
	d->final = true;
	d->received_at = received;
	d->decided_at = at;
	d->decided_by = clinician ? (seq % 2 ? "687001000001" : "687001000002") : "rules";
	d->ruleset_version = clinician ? (seq % 3 ? "clinician" : NULL) : ras_rules_version(rs);
	reason->rule = clinician ? "clinician" : "test.rule";
	reason->clause = "004 \xc2\xa7" "3.4";
	reason->stage = "clinical";
	switch (p->kind) {
	case K_REVIEW:
		d->outcome = RAS_OUTCOME_REVIEW;
		d->final = false;
		urgent = p->flag;
		break;
	case K_ACCEPT:
	case K_CLIN_ACCEPT:
		d->outcome = RAS_OUTCOME_ACCEPT;
		break;
	case K_RETURN:
	case K_CLIN_RETURN:
		d->outcome = RAS_OUTCOME_RETURN;
		reason->advice = ras_arena_printf(a, "Advice number %d.", seq);
		break;
	case K_2WW:
		d->outcome = RAS_OUTCOME_ONWARD;
		d->onward_target = "two-week-wait";
		d->final = p->flag;
		urgent = true;
		break;
	case K_RECOMMEND:
		d->outcome = RAS_OUTCOME_ACCEPT;
		d->final = false;
		break;
	case K_N:
		break;
	}
	d->reasons = reason;
	d->n_reasons = 1;
	if (clinician && seq % 2)
		d->facts = NULL;
	else {
		d->facts = json_pack("{s:i, s:b}", "seq", seq, "urgent", urgent);
		RAS_REQUIRE(d->facts);
		CU_ASSERT_EQUAL(ras_json_arena_own(a, d->facts), 0);
	}
	CU_ASSERT_EQUAL_FATAL(ras_rules_deadlines(a, rs, d->outcome, d->onward_target, urgent, d->final,
	    received, ras_mappings_calendar(ras_triage_mappings(tri)), &d->deadlines, &d->n_deadlines, NULL), 0);
}

/* ---- comparing the two databases ------------------------------------------------ */

/* Each decision id is replaced by "d<place in the sequence>", each intent
 * by its decision's place, in every table that names them. */
#define D(expr) "(SELECT 'd' || m.ord FROM dmap m WHERE m.id = (" expr "))"

static const char *const dumps[] = {
	"SELECT string_agg(format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', m.ord, d.referral_id, d.service,"
	" d.outcome, d.onward_target, d.final, d.reasons, d.facts, d.ruleset_version, d.decided_by, d.decided_at,"
	" d.received_at, d.deadlines, d.doc), E'\\n' ORDER BY m.ord)"
	" || (SELECT count(*) FROM decisions)::text FROM decisions d LEFT JOIN dmap m ON m.id = d.id",

	"SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s',"
	" dl.referral_id, dl.kind, dl.clause, dl.due_date, dl.due_at, " D("dl.decision_id") ", dl.met_at,"
	" CASE WHEN dl.met_by LIKE 'decision:%' THEN " D("substr(dl.met_by, 10)::bigint") " ELSE dl.met_by END,"
	" dl.cancelled_at) AS x FROM deadlines dl) s",

	"SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s',"
	" o.referral_id, o.referral_key, o.service, o.kind, o.doc_version, o.recipient_role, o.recipient_ods,"
	" " D("o.decision_id") ", o.deadline_id, o.state,"
	" CASE WHEN o.last_error LIKE 'superseded by decision %' THEN"
	"  " D("substr(o.last_error, 24)::bigint") " ELSE o.last_error END) AS x FROM outbox o) s",

	"SELECT string_agg(x, E'\\n' ORDER BY x) FROM (SELECT format('%s|%s|%s|%s|%s|%s|%s',"
	" " D("e.decision_id") ", e.referral_id, e.ubrn, e.version, e.review_outcome, e.comments, e.state) AS x"
	" FROM ers_outcomes e) s",

	/* every referral's events in the order they were written */
	"SELECT string_agg(format('%s|%s|%s|%s|%s', e.referral_id, e.ubrn, e.kind, e.actor,"
	" (e.detail - 'decision_id' - 'decision' - 'intent') || jsonb_strip_nulls(jsonb_build_object("
	"  'decision_id', " D("(e.detail ->> 'decision_id')::bigint") ","
	"  'decision', " D("(e.detail ->> 'decision')::bigint") ","
	"  'intent', " D("(SELECT o.decision_id FROM ers_outcomes o WHERE o.id = (e.detail ->> 'intent')::bigint)")
	"))), E'\\n' ORDER BY e.referral_id, e.id) FROM events e",

	"SELECT string_agg(format('%s|%s|%s|%s', r.id, r.referral_key, r.state, r.service), E'\\n' ORDER BY r.id)"
	" FROM referrals r",
};

static const char *const dump_names[] = { "decisions", "deadlines", "outbox", "ers_outcomes", "events",
	"referrals" };

static char *
int_array(const int64_t *v, size_t n)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	(void)ras_buf_putc(&b, '{');
	for (size_t i = 0; i < n; i++)
		(void)ras_buf_printf(&b, "%s%lld", i ? "," : "", (long long)v[i]);
	(void)ras_buf_putc(&b, '}');
	return ras_buf_detach(&b, NULL);
}

/* dmap: decision id -> its place in the sequence, on db's connection. */
static void
load_map(struct ras_db *db, const int64_t *ids, size_t n)
{
	int64_t *ords = calloc(n ? n : 1, sizeof(*ords));
	char *a, *b;

	RAS_REQUIRE(ords);
	for (size_t i = 0; i < n; i++)
		ords[i] = (int64_t)i + 1;
	a = int_array(ids, n);
	b = int_array(ords, n);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "CREATE TEMP TABLE dmap (id bigint PRIMARY KEY, ord int)"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_query(db, NULL, "INSERT INTO dmap SELECT * FROM unnest($1::bigint[], $2::int[])",
	    2, (struct ras_db_param[]){ RAS_DB_TEXT(a), RAS_DB_TEXT(b) }), 0);
	free(a);
	free(b);
	free(ords);
}

/* The first line where a and b differ, for the failure message. */
static void
show_difference(const char *what, const char *a, const char *b, const char *a_is, const char *b_is)
{
	size_t line = 1, i = 0;

	while (a[i] && a[i] == b[i]) {
		if (a[i] == '\n')
			line++;
		i++;
	}
	while (i > 0 && a[i - 1] != '\n')
		i--;
	fprintf(stderr, "%s differ at line %zu:\n  %s: %.300s\n  %s: %.300s\n", what, line, a_is, a + i,
	    b_is, b + i);
}

/* ---- the test ------------------------------------------------------------------ */

static void
batch_equals_one_at_a_time(void)
{
	/* Decided before the batch, in both databases one at a time: clocks,
	 * letters and intents for the batch to supersede. */
	static const struct pick before[] = {
		{ 0, K_RETURN, false }, { 1, K_REVIEW, true }, { 3, K_RECOMMEND, false },
		{ 6, K_2WW, false }, { 9, K_RETURN, false }, { 10, K_REVIEW, true },
		{ 11, K_ACCEPT, false }, { 8, K_REVIEW, false },
	};
	/* The batch: first the cases named above, then a generated mix. */
	static const struct pick fixed[] = {
		{ 2, K_ACCEPT, false },         /* version 2 of refs[1]: supersedes version 1's clocks */
		{ 4, K_REVIEW, true },          /* versions 2 and 3 of refs[3] in one batch */
		{ 5, K_RETURN, false },
		{ 4, K_CLIN_ACCEPT, false },    /* a clinician after the rules, on an older version */
		{ 9, K_CLIN_ACCEPT, false },    /* supersedes the pending e-RS intent of the return before */
		{ 10, K_CLIN_RETURN, false },   /* meets the clinical-review clock; an intent */
		{ 10, K_ACCEPT, false },        /* the rules again after the clinician, same batch */
		{ 7, K_2WW, true },             /* a 2WW notice and a triage outcome letter */
		{ 7, K_2WW, false },            /* no second notice */
		{ 6, K_CLIN_RETURN, false },    /* cancels nothing sent; a triage outcome letter */
		{ 11, K_REVIEW, false },
		{ 11, K_CLIN_RETURN, false },
	};
	enum { N_BEFORE = sizeof(before) / sizeof(before[0]), N_FIXED = sizeof(fixed) / sizeof(fixed[0]),
		N_MIX = 40, N = N_FIXED + N_MIX };
	struct ras_arena *a = ras_arena_new();
	struct pick picks[N];
	struct ras_decision before_d[N_BEFORE], d[N];
	int64_t before_rid[N_BEFORE], rid[N], ids_one[N_BEFORE + N], ids_batch[N_BEFORE + N];
	int64_t t0 = 1775000000;   /* 2026-03-31: the decisions' own times, the same in both */
	uint32_t seed = 20261207u;

	RAS_REQUIRE(a);
	for (size_t k = 0; k < N_REFS; k++) {
		store_ref(one_db, &refs[k], (int)k);
		store_ref(batch_db, &refs[k], (int)k);
	}
	/* the same referrals, under the same ids */
	{
		char *x = ras_test_sql_text(one_db, "SELECT string_agg(id || ubrn || version, ',' ORDER BY id)"
		    " FROM referrals", NULL);
		char *y = ras_test_sql_text(batch_db, "SELECT string_agg(id || ubrn || version, ',' ORDER BY id)"
		    " FROM referrals", NULL);

		RAS_REQUIRE(x);
		RAS_REQUIRE(y);
		CU_ASSERT_STRING_EQUAL(x, y);
		CU_ASSERT_EQUAL(ras_test_count(x, ","), N_REFS - 1);
		free(x);
		free(y);
	}

	for (size_t i = 0; i < N_BEFORE; i++) {
		make_decision(one_db, a, &before[i], (int)i, t0 + (int64_t)i * 60, &before_d[i], &before_rid[i]);
		CU_ASSERT_EQUAL_FATAL(ras_triage_store_decision(one_db, before_rid[i], &before_d[i], &ids_one[i]), 0);
		CU_ASSERT_EQUAL_FATAL(ras_triage_store_decision(batch_db, before_rid[i], &before_d[i], &ids_batch[i]), 0);
	}
	for (size_t i = 0; i < N; i++) {
		if (i < N_FIXED)
			picks[i] = fixed[i];
		else {
			seed = seed * 1103515245u + 12345u;
			picks[i].ref = (seed >> 8) % N_REFS;
			picks[i].kind = (enum kind)((seed >> 16) % K_N);
			picks[i].flag = (seed >> 24) & 1u;
		}
		make_decision(one_db, a, &picks[i], (int)(N_BEFORE + i), t0 + 3600 + (int64_t)i * 60, &d[i], &rid[i]);
	}
	/* one at a time here, one batch there */
	for (size_t i = 0; i < N; i++)
		CU_ASSERT_EQUAL_FATAL(ras_triage_store_decision(one_db, rid[i], &d[i], &ids_one[N_BEFORE + i]), 0);
	CU_ASSERT_EQUAL_FATAL(ras_triage_store_decisions(batch_db, rid, d, N, &ids_batch[N_BEFORE]), 0);

	load_map(one_db, ids_one, N_BEFORE + N);
	load_map(batch_db, ids_batch, N_BEFORE + N);
	for (size_t q = 0; q < sizeof(dumps) / sizeof(dumps[0]); q++) {
		char *x = ras_test_sql_text(one_db, dumps[q], NULL), *y = ras_test_sql_text(batch_db, dumps[q], NULL);

		RAS_REQUIRE(x);
		RAS_REQUIRE(y);
		if (strcmp(x, y) != 0)
			show_difference(dump_names[q], x, y, "one at a time", "as a batch   ");
		CU_ASSERT_STRING_EQUAL(x, y);
		free(x);
		free(y);
	}

	/* The mix did exercise what it is meant to (so an equal result means something). */
	CU_ASSERT_EQUAL(ras_test_sql_int(one_db, "SELECT count(*) FROM decisions", NULL), N_BEFORE + N);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM ers_outcomes WHERE state = 'pending'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM ers_outcomes WHERE state = 'superseded'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM outbox WHERE kind = 'gp-2ww-notice'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM outbox WHERE state = 'cancelled'"
	    " AND last_error LIKE 'superseded by decision %'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM outbox WHERE doc_version > 1", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM deadlines WHERE kind = 'clinical-review'"
	    " AND met_by LIKE 'decision:%'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM deadlines WHERE kind = 'triage'"
	    " AND met_by LIKE 'decision:%'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM deadlines d JOIN referrals r ON r.id = d.referral_id"
	    " WHERE d.cancelled_at IS NOT NULL AND r.version < (SELECT max(v.version) FROM referrals v"
	    "  WHERE v.referral_key = r.referral_key)", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM referrals WHERE state = 'decided'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(one_db, "SELECT count(*) FROM referrals WHERE state = 'review'", NULL) > 0);
	/* the batch held a referral several times: it was stored in rounds */
	{
		size_t most = 0;

		for (size_t i = 0; i < N; i++) {
			size_t same = 0;

			for (size_t j = 0; j < N; j++)
				same += rid[j] == rid[i];
			if (same > most)
				most = same;
		}
		CU_ASSERT(most >= 3);
	}
	ras_arena_free(a);
}

/* ---- the same as 014 stored ------------------------------------------------------ */

/* schema/016 stores decisions with fewer statements; 014's functions, read
 * from their migration (released migrations never change), are the
 * reference.  Loads them over 016's into db. */
static void
load_014(struct ras_db *db)
{
	static const char *const names[] = { "ras_outbox_enqueue_all", "ras_outbox_on_decisions",
		"ras_ers_decisions_intents", "ras_store_decisions" };
	size_t len;
	char *sql = ras_test_read(RAS_SOURCE_ROOT "/schema/014_decisions_batch.sql", &len);

	RAS_REQUIRE(sql);
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		char head[96];
		const char *at, *body, *end;
		struct ras_buf b = RAS_BUF_INIT(0);

		snprintf(head, sizeof(head), "CREATE FUNCTION %s(", names[k]);
		at = strstr(sql, head);
		RAS_REQUIRE(at);
		body = strstr(at, "$$");
		RAS_REQUIRE(body);
		end = strstr(body + 2, "$$;");
		RAS_REQUIRE(end);
		(void)ras_buf_puts(&b, "CREATE OR REPLACE FUNCTION ");
		(void)ras_buf_append(&b, at + strlen("CREATE FUNCTION "), (size_t)(end + 3 - at) - strlen("CREATE FUNCTION "));
		CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, b.data), 0);
		ras_buf_free(&b);
	}
	free(sql);
}

/* The same referrals, decisions before, and two batches in a database with
 * 014's functions and in one with 016's: first a batch with one decision
 * per referral (one round; e-RS and other referrals mixed, 2WW notices,
 * clinicians' decisions), then a generated mix with several decisions per
 * referral (rounds).  Everything stored must be the same. */
static void
batch_equals_014(void)
{
	static const struct pick before[] = {
		{ 1, K_REVIEW, true }, { 3, K_RECOMMEND, false }, { 6, K_2WW, false }, { 9, K_RETURN, false },
		{ 10, K_REVIEW, true }, { 8, K_REVIEW, false }, { 0, K_REVIEW, false },
	};
	/* one decision per referral, and one per referral key (versions of one
	 * key are taken in rounds): refs[1], refs[3] and refs[4] are older
	 * versions of refs[2] and refs[5] */
	static const struct pick one_each[] = {
		{ 0, K_ACCEPT, false },         /* final: meets the triage clock the review started */
		{ 2, K_CLIN_ACCEPT, false },    /* meets version 1's clinical-review clock, supersedes its others */
		{ 5, K_REVIEW, true },          /* supersedes version 1's clocks */
		{ 6, K_ACCEPT, false },         /* a letter; the notice stays */
		{ 7, K_2WW, true },             /* a 2WW notice and its letter */
		{ 8, K_ACCEPT, false },
		{ 9, K_CLIN_ACCEPT, false },    /* e-RS: supersedes the pending intent */
		{ 10, K_CLIN_RETURN, false },   /* e-RS: an intent, meets its clinical-review clock */
		{ 11, K_ACCEPT, false },        /* e-RS: an intent */
	};
	enum { N_BEFORE = sizeof(before) / sizeof(before[0]), N_ONE = sizeof(one_each) / sizeof(one_each[0]),
		N_MIX = 40, N = N_ONE + N_MIX };
	struct ras_db *old_db = ras_test_db("decisions_014", NULL), *new_db = ras_test_db("decisions_016", NULL);
	struct ras_arena *a = ras_arena_new();
	struct pick picks[N];
	struct ras_decision before_d[N_BEFORE], d[N];
	int64_t before_rid[N_BEFORE], rid[N], ids_old[N_BEFORE + N], ids_new[N_BEFORE + N];
	int64_t t0 = 1775100000;
	uint32_t seed = 20261208u;
	struct ras_db *dbs[2] = { old_db, new_db };
	int64_t *ids[2] = { ids_old, ids_new };

	RAS_REQUIRE(old_db);
	RAS_REQUIRE(new_db);
	RAS_REQUIRE(a);
	load_014(old_db);
	for (size_t k = 0; k < N_REFS; k++) {
		store_ref(old_db, &refs[k], (int)k);
		store_ref(new_db, &refs[k], (int)k);
	}
	CU_ASSERT_EQUAL(ras_test_sql_int(old_db, "SELECT sum(id * version) FROM referrals", NULL),
	    ras_test_sql_int(new_db, "SELECT sum(id * version) FROM referrals", NULL));
	for (size_t i = 0; i < N_BEFORE; i++)
		make_decision(new_db, a, &before[i], (int)i, t0 + (int64_t)i * 60, &before_d[i], &before_rid[i]);
	for (size_t i = 0; i < N; i++) {
		if (i < N_ONE)
			picks[i] = one_each[i];
		else {
			seed = seed * 1103515245u + 12345u;
			picks[i].ref = (seed >> 8) % N_REFS;
			picks[i].kind = (enum kind)((seed >> 16) % K_N);
			picks[i].flag = (seed >> 24) & 1u;
		}
		make_decision(new_db, a, &picks[i], (int)(N_BEFORE + i), t0 + 3600 + (int64_t)i * 60, &d[i], &rid[i]);
	}
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < N_BEFORE; i++)
			CU_ASSERT_EQUAL_FATAL(ras_triage_store_decision(dbs[k], before_rid[i], &before_d[i], &ids[k][i]), 0);
		CU_ASSERT_EQUAL_FATAL(ras_triage_store_decisions(dbs[k], rid, d, N_ONE, &ids[k][N_BEFORE]), 0);
		CU_ASSERT_EQUAL_FATAL(ras_triage_store_decisions(dbs[k], rid + N_ONE, d + N_ONE, N_MIX,
		    &ids[k][N_BEFORE + N_ONE]), 0);
	}
	load_map(old_db, ids_old, N_BEFORE + N);
	load_map(new_db, ids_new, N_BEFORE + N);
	for (size_t q = 0; q < sizeof(dumps) / sizeof(dumps[0]); q++) {
		char *x = ras_test_sql_text(old_db, dumps[q], NULL), *y = ras_test_sql_text(new_db, dumps[q], NULL);

		RAS_REQUIRE(x);
		RAS_REQUIRE(y);
		if (strcmp(x, y) != 0)
			show_difference(dump_names[q], x, y, "014", "016");
		CU_ASSERT_STRING_EQUAL(x, y);
		free(x);
		free(y);
	}
	/* what the special cases of 016 are about did happen: a final
	 * decision's own triage clock (inserted met), and a triage clock an
	 * earlier decision started that a later one met */
	CU_ASSERT(ras_test_sql_int(new_db, "SELECT count(*) FROM deadlines WHERE kind = 'triage'"
	    " AND met_by = 'decision:' || decision_id", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(new_db, "SELECT count(*) FROM deadlines WHERE kind = 'triage'"
	    " AND met_by LIKE 'decision:%' AND met_by <> 'decision:' || decision_id", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(new_db, "SELECT count(*) FROM deadlines WHERE kind = 'clinical-review'"
	    " AND met_by LIKE 'decision:%'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(new_db, "SELECT count(*) FROM ers_outcomes WHERE state = 'superseded'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(new_db, "SELECT count(*) FROM ers_outcomes", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(new_db, "SELECT count(*) FROM outbox WHERE kind = 'gp-2ww-notice'", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(new_db, "SELECT count(*) FROM outbox WHERE doc_version > 1", NULL) > 0);
	/* and the reference is 014's: its functions differ from 016's */
	CU_ASSERT_NOT_EQUAL(ras_test_sql_int(old_db, "SELECT count(*) FROM pg_proc WHERE proname = 'ras_store_decisions'"
	    " AND prosrc LIKE '%v_vids :=%'", NULL), 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(new_db, "SELECT count(*) FROM pg_proc WHERE proname = 'ras_store_decisions'"
	    " AND prosrc LIKE '%v_vids :=%'", NULL), 0);
	ras_arena_free(a);
	ras_db_close(old_db);
	ras_db_close(new_db);
}

/* schema/016: the referral's document and the decision's reasons, facts
 * and clocks are written with lz4 (this server has it), and
 * ras_store_referrals keeps its plans for the session. */
static void
documents_lz4_and_plans_kept(void)
{
	struct ras_db *db = ras_test_db("decisions_lz4", NULL);

	RAS_REQUIRE(db);
	store_ref(db, &refs[0], 0);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM referrals"
	    " WHERE pg_column_compression(doc) = 'lz4'", NULL), 1);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'decisions'::regclass"
	    " AND attname IN ('reasons', 'facts', 'deadlines') AND attcompression = 'l'", NULL), 3);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM pg_proc WHERE proname = 'ras_store_referrals'"
	    " AND 'plan_cache_mode=force_generic_plan' = ANY (proconfig)", NULL), 1);
	ras_db_close(db);
}

/* schema/017: the store functions keep one plan per session, made when a
 * table may hold a few rows (a new installation, a quiet database), and
 * every lookup in them is by a list of ids or keys that an index serves.
 * Planned against near-empty tables, the planner chose sequential scans
 * (of referrals, five times a call, and of outbox) and kept them while the
 * tables grew.  A batch of decisions stored in a new database, by a new
 * session, reads none of the tables it touches by a sequential scan; and
 * every function that keeps its plans has sequential scans off. */
static void
plans_use_indexes_on_small_tables(void)
{
	static const struct pick picks[] = {
		{ 0, K_REVIEW, true }, { 2, K_ACCEPT, false }, { 6, K_2WW, true }, { 8, K_RETURN, false },
		{ 9, K_CLIN_ACCEPT, false }, { 11, K_ACCEPT, false },
	};
	enum { N = sizeof(picks) / sizeof(picks[0]) };
	struct ras_db *db = ras_test_db("decisions_plans", NULL);
	struct ras_arena *a = ras_arena_new();
	struct ras_decision d[N];
	int64_t rid[N], ids[N];

	RAS_REQUIRE(db);
	RAS_REQUIRE(a);
	for (size_t k = 0; k < N_REFS; k++)
		store_ref(db, &refs[k], (int)k);
	for (size_t i = 0; i < N; i++)
		make_decision(db, a, &picks[i], (int)i, 1775100000 + (int64_t)i * 60, &d[i], &rid[i]);
	/* (pg_stat_xact_user_tables: this session's scans not yet reported,
	 * which is more than this transaction's; so counted before and after) */
	CU_ASSERT_EQUAL_FATAL(ras_db_hold(db), 0);
	CU_ASSERT_EQUAL_FATAL(ras_db_exec(db, "CREATE TEMP TABLE seq0 AS"
	    " SELECT relid, seq_scan FROM pg_stat_xact_user_tables"), 0);
	CU_ASSERT_EQUAL_FATAL(ras_triage_store_decisions(db, rid, d, N, ids), 0);
	{
		char *seq = ras_test_sql_text(db, "SELECT coalesce(string_agg(t.relname || ' ' || t.seq_scan - coalesce(s.seq_scan, 0), ', '"
		    " ORDER BY t.relname), 'none') FROM pg_stat_xact_user_tables t LEFT JOIN seq0 s USING (relid)"
		    " WHERE t.seq_scan > coalesce(s.seq_scan, 0) AND t.relname <> 'seq0'", NULL);

		RAS_REQUIRE(seq);
		CU_ASSERT_STRING_EQUAL(seq, "none");
		if (strcmp(seq, "none") != 0)
			fprintf(stderr, "sequential scans while storing decisions: %s\n", seq);
		free(seq);
	}
	CU_ASSERT_EQUAL(ras_db_hold_commit(db), 0);
	/* (what the batch touched: letters, e-RS intents, clocks) */
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM decisions", NULL), N);
	CU_ASSERT(ras_test_sql_int(db, "SELECT count(*) FROM outbox", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(db, "SELECT count(*) FROM ers_outcomes", NULL) > 0);
	CU_ASSERT(ras_test_sql_int(db, "SELECT count(*) FROM deadlines", NULL) > 0);
	/* (the six of the store, and the inbox's three of schema 022) */
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM pg_proc WHERE"
	    " 'plan_cache_mode=force_generic_plan' = ANY (proconfig)", NULL), 9);
	CU_ASSERT_EQUAL(ras_test_sql_int(db, "SELECT count(*) FROM pg_proc WHERE"
	    " 'plan_cache_mode=force_generic_plan' = ANY (proconfig)"
	    " AND NOT 'enable_seqscan=off' = ANY (proconfig)", NULL), 0);
	ras_arena_free(a);
	ras_db_close(db);
}

/* A statement that inserts two decisions of one referral at once would
 * have the letters and intents of the first decided without the second
 * seeing them: the triggers refuse it (ras_store_decisions never does). */
static void
two_decisions_of_one_referral_in_one_statement(void)
{
	char *s = ras_test_sql_text(batch_db, "SELECT min(id) FROM referrals WHERE ubrn = '100000000901'", NULL);

	RAS_REQUIRE(s);
	CU_ASSERT_NOT_EQUAL(ras_db_query(batch_db, NULL,
	    "INSERT INTO decisions (referral_id, service, outcome, final, reasons, facts, ruleset_version, decided_by)"
	    " SELECT $1::bigint, 'midnotts', 'accept', true, '[]', '{}', 'x', 'rules' FROM generate_series(1, 2)",
	    1, &RAS_DB_TEXT(s)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "two decisions for referral"));
	free(s);
}

/* A decision with no referral, or no outcome, refuses the whole batch. */
static void
bad_decisions_refuse_the_batch(void)
{
	int64_t before = ras_test_sql_int(batch_db, "SELECT count(*) FROM decisions", NULL);

	CU_ASSERT_NOT_EQUAL(ras_db_query(batch_db, NULL, "SELECT * FROM ras_store_decisions($1::jsonb)", 1,
	    &RAS_DB_TEXT("[{\"referral\": 1, \"doc\": {\"service\": \"midnotts\", \"outcome\": \"accept\","
	    " \"decided_by\": \"rules\"}}, {\"referral\": 99999999, \"doc\": {\"service\": \"midnotts\","
	    " \"outcome\": \"accept\"}}]")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "no referral #99999999"));
	CU_ASSERT_NOT_EQUAL(ras_db_query(batch_db, NULL, "SELECT * FROM ras_store_decisions($1::jsonb)", 1,
	    &RAS_DB_TEXT("[{\"referral\": 1, \"doc\": {\"service\": \"midnotts\"}}]")), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "needs a service and an outcome"));
	CU_ASSERT_EQUAL(ras_test_sql_int(batch_db, "SELECT count(*) FROM decisions", NULL), before);
	/* an empty batch stores nothing */
	CU_ASSERT_EQUAL(ras_test_sql_int(batch_db, "SELECT count(*) FROM ras_store_decisions('[]')", NULL), 0);
}

static int
setup(void)
{
	one_db = ras_test_db("decisions_one", NULL);
	batch_db = ras_test_db("decisions_batch", NULL);
	if (ras_triage_new(NULL, MAPPINGS, &tri) < 0) {
		fprintf(stderr, "cannot load %s: %s\n", MAPPINGS, ras_error_last());
		return 1;
	}
	return 0;
}

static int
teardown(void)
{
	ras_triage_free(tri);
	ras_db_close(one_db);
	ras_db_close(batch_db);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "a batch of decisions stores exactly what one at a time does", batch_equals_one_at_a_time },
		{ "016 stores what 014 stored, in one round and in rounds", batch_equals_014 },
		{ "documents are written with lz4; ras_store_referrals keeps its plans", documents_lz4_and_plans_kept },
		{ "plans made on small tables still use the indexes", plans_use_indexes_on_small_tables },
		{ "one statement cannot insert two decisions of one referral",
		  two_decisions_of_one_referral_in_one_statement },
		{ "a bad decision refuses the whole batch", bad_decisions_refuse_the_batch },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "decisions-batch", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
