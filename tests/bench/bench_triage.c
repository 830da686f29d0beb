/*
 * bench_triage: decisions per second of the rule engine over a batch of
 * referrals (default 100,000), spread over the four services and over
 * outcomes (accept, return for age/area/duration/form, onward 2WW and
 * emergency, review).  A benchmark, not a test: it prints numbers.
 *
 *   build/tests/bench_triage [N] [MAPPINGS_DIR]
 *   build/tests/bench_triage --db CONNINFO [N]
 *
 * With --db it measures the whole stage instead: N referrals (default
 * 20,000) are stored in the (migrated, preferably empty) database, then
 * ras_triage_pending() decides and stores them in batches of 500
 * (decisions, deadlines, events, state changes, one pipelined transaction
 * per batch).
 *
 * Every decision is made as the stage makes it (facts computed, every rule
 * evaluated, the safety net, advice, clocks), a chunk of referrals at a
 * time as the stage holds them (as many as RAS_TRIAGE_CHUNK_BYTES of stored
 * documents, decided in one arena freed after the chunk; each chunk's
 * samples are made just before it, outside the timing), one thread; three
 * lines: the engine alone (ras_rules_decide),
 * decide + the facts JSON text as stored (ras_rules_facts_text, written
 * straight from the typed facts; with RAS_BENCH_DIGEST set, every one is
 * also compared with jansson's dump of ras_rules_facts_json's object),
 * and decide + the whole decision document stored in decisions.doc.  RAS_BENCH_DIGEST=1 adds an FNV-1a digest of every
 * decision document (to show a change to the engine leaves every decision
 * byte-identical); RAS_BENCH_ENGINE_ONLY=1 stops after the first line and
 * RAS_BENCH_FACTS_ONLY=1 after the second (for a profiler).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/store.h"
#include "ras/triage.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/referral_json.h"
#include "ras/rules.h"
#include "ras_config.h"

#define FORM_URL "urn:rasd:questionnaire:community-pain-referral"

static const struct {
	const char *link;
	char type;
	const char *v;
} base_answers[] = {
	{ "pain-duration-weeks", 'i', "26" }, { "pain-daily", 'b', "t" }, { "diagnosis", 's', "Low back pain" },
	{ "investigations-complete", 'b', "t" }, { "red-flags-screened", 'b', "t" },
	{ "suspected-cancer", 'b', "f" }, { "cancer-related-pain", 'b', "f" },
	{ "medication-optimised", 'b', "t" }, { "treatments-tried", 's', "Physiotherapy" },
	{ "accepts-chronic-pain", 'b', "t" }, { "motivated-to-engage", 'b', "t" },
	{ "acute-mental-illness", 'b', "f" }, { "severe-mental-health", 'b', "f" },
	{ "substance-misuse", 'b', "f" }, { "cognitive-impairment", 'c', "none" },
	{ "medically-stable", 'b', "t" }, { "under-investigation", 'b', "f" },
	{ "requires-surgical-opinion", 'b', "f" }, { "post-op-or-trauma-complication", 'b', "f" },
	{ "pregnancy-related-pain", 'b', "f" }, { "cfs-me", 'b', "f" },
	{ "secondary-care-advice-sought", 'b', "f" }, { "opioids", 'b', "t" },
	{ "patient-expectations", 's', "Return to work" }, { "booking-assistance", 'b', "f" },
	{ "dependants", 'b', "f" },
};
#define N_BASE (sizeof(base_answers) / sizeof(base_answers[0]))

struct sample {
	struct ras_referral r;
	struct ras_answer ans[N_BASE + 2];
	const struct ras_ruleset *rs;
};

static const char *practices[] = { "C84009", "C84001", "J81002", "C84012", "Y05346", "J81010" };
static const char *services[] = { "midnotts", "bassetlaw-2022", "dorset-2019", "dorset-2013" };

static void
make_sample(const struct ras_mappings *m, unsigned i, struct sample *s)
{
	struct ras_referral *r = &s->r;
	size_t n = 0;

	memset(s, 0, sizeof(*s));
	s->rs = ras_mappings_ruleset(m, services[i % 4]);
	r->source = (i % 17 == 0) ? RAS_PAYLOAD_ERS_REFERRAL : RAS_PAYLOAD_FHIR_BUNDLE;
	r->priority = RAS_PRIORITY_ROUTINE;
	r->patient.nhs_number = (i % 97 == 0) ? "9990000019" : "9990000018";
	r->patient.has_birth_date = r->source != RAS_PAYLOAD_ERS_REFERRAL;
	r->patient.birth_date = (struct ras_date){ 1940 + (int)(i % 80), 1 + (int)(i % 12), 1 + (int)(i % 28) };
	r->patient.practice_ods = r->source == RAS_PAYLOAD_ERS_REFERRAL ? NULL : practices[(i / 4) % 6];
	r->referrer.org_ods = (i % 11 == 0) ? "RX1" : practices[(i / 4) % 6];
	r->has_form = r->source != RAS_PAYLOAD_ERS_REFERRAL;
	r->form.questionnaire = FORM_URL;
	r->form.version = (i % 23 == 0) ? "1" : "2";
	r->form.status = "completed";
	for (size_t k = 0; k < N_BASE; k++) {
		struct ras_answer *a = &s->ans[n++];

		a->link_id = base_answers[k].link;
		switch (base_answers[k].type) {
		case 'i':
			a->type = RAS_ANSWER_INTEGER;
			a->i = 6 + (int64_t)(i % 30);
			break;
		case 'b':
			a->type = RAS_ANSWER_BOOLEAN;
			a->b = base_answers[k].v[0] == 't';
			break;
		case 'c':
			a->type = RAS_ANSWER_CODING;
			a->system = FORM_URL;
			a->code = base_answers[k].v;
			break;
		default:
			a->type = RAS_ANSWER_STRING;
			a->s = base_answers[k].v;
			break;
		}
	}
	if (i % 29 == 0)
		s->ans[n++] = (struct ras_answer){ .link_id = "red-flags", .type = RAS_ANSWER_CODING,
			.system = FORM_URL, .code = (i % 58 == 0) ? "cauda-equina" : "suspected-cancer" };
	if (i % 31 == 0)
		s->ans[n++] = (struct ras_answer){ .link_id = "red-flags", .type = RAS_ANSWER_CODING,
			.system = FORM_URL, .code = "fracture" };
	/* each linkId's length, as the stored form's reader gives it */
	for (size_t k = 0; k < n; k++)
		s->ans[k].link_id_len = strlen(s->ans[k].link_id);
	r->form.answers = s->ans;
	r->form.n_answers = n;
}

/*
 * The stage decides a chunk of referrals at a time (triage.c): the stored
 * documents of up to RAS_TRIAGE_CHUNK_BYTES, each read and decided in the
 * chunk's one arena, freed when the chunk is written.  The benchmark does
 * the same with as many samples as there are referrals of a sample's size
 * (its document as JSON text, which jsonb stores in no fewer bytes) in a
 * chunk.
 */
static unsigned long
chunk_referrals(const struct ras_mappings *m)
{
	struct sample s;
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *j = NULL;
	unsigned long n = 1;

	make_sample(m, 1, &s);
	if (ras_referral_json_dump(&s.r, "bench", &j) == 0 && ras_json_dump(j, RAS_JSON_COMPACT, &b) == 0 &&
	    b.len > 0 && b.len < RAS_TRIAGE_CHUNK_BYTES)
		n = RAS_TRIAGE_CHUNK_BYTES / b.len;
	json_decref(j);
	ras_buf_free(&b);
	return n;
}

static void
report(unsigned long n, double secs, const char *what)
{
	printf("bench_triage: %lu decisions in %.3f s: %.0f decisions/s (%.2f us each, one thread, %s)\n",
	    n, secs, (double)n / secs, secs * 1e6 / (double)n, what);
}

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The stage against a real database. */
static int
bench_db(const char *conninfo, unsigned long n)
{
	struct ras_db *db = NULL;
	struct ras_triage *t = NULL;
	size_t len, done = 0;
	char path[4096], *data;
	FILE *f;
	double t0, t1, ti0, ti1;
	unsigned long stored = 0;

	snprintf(path, sizeof(path), "%s/tests/fixtures/triage/midnotts-accept.json", RAS_SOURCE_ROOT);
	if ((f = fopen(path, "rb")) == NULL)
		return 66;
	data = malloc(1 << 20);
	len = fread(data, 1, (1 << 20) - 1, f);
	fclose(f);
	data[len] = '\0';
	if (ras_db_connect(conninfo, &db) < 0 || ras_triage_new(NULL, RAS_SOURCE_ROOT "/mappings", &t) < 0) {
		fprintf(stderr, "bench_triage: %s\n", ras_error_last());
		return 69;
	}
	/* Store n referrals (distinct UBRNs), 500 payloads a batch: the intake
	 * (inbox put, then normalise) is timed too. */
	ti0 = seconds();
	while (stored < n) {
		struct ras_inbox_item items[500];
		struct ras_inbox_put_result put[500];
		int64_t ids[500];
		char *bufs[500];
		size_t k = 0;
		struct ras_normalise_report *rep = NULL;
		size_t nrep = 0;

		for (; k < 500 && stored + k < n; k++) {
			char ubrn[16], *p;

			bufs[k] = malloc(len + 1);
			memcpy(bufs[k], data, len + 1);
			snprintf(ubrn, sizeof(ubrn), "%012lu", 200000000000UL + stored + k);
			while ((p = strstr(bufs[k], "100000000301")) != NULL)
				memcpy(p, ubrn, 12);
			items[k] = (struct ras_inbox_item){ .data = bufs[k], .len = len, .source = "bench",
				.service_hint = "midnotts" };
		}
		if (ras_store_inbox_put(db, items, k, put) < 0) {
			fprintf(stderr, "bench_triage: %s\n", ras_error_last());
			return 69;
		}
		for (size_t i = 0; i < k; i++)
			ids[i] = put[i].id;
		if (ras_store_normalise(db, NULL, ids, k, k, &rep, &nrep) < 0) {
			fprintf(stderr, "bench_triage: %s\n", ras_error_last());
			return 69;
		}
		free(rep);
		for (size_t i = 0; i < k; i++)
			free(bufs[i]);
		stored += k;
	}
	ti1 = seconds();
	printf("bench_triage --db: %lu payloads kept and normalised in %.3f s: %.0f referrals/s "
	    "(inbox put + normalise, batches of 500, one connection)\n", stored, ti1 - ti0,
	    (double)stored / (ti1 - ti0));
	t0 = seconds();
	for (;;) {
		struct ras_triage_report *reps = NULL;
		size_t got = 0;

		if (ras_triage_pending(db, t, ras_time_now(), 500, NULL, 0, &reps, &got) < 0) {
			fprintf(stderr, "bench_triage: %s\n", ras_error_last());
			return 69;
		}
		free(reps);
		if (got == 0)
			break;
		done += got;
	}
	t1 = seconds();
	printf("bench_triage --db: %zu referrals triaged and stored in %.3f s: %.0f decisions/s "
	    "(batches of 500, one connection)\n", done, t1 - t0, (double)done / (t1 - t0));
	free(data);
	ras_triage_free(t);
	ras_db_close(db);
	return 0;
}

int
main(int argc, char **argv)
{
	unsigned long n = 100000;
	const char *dir = argc > 2 ? argv[2] : RAS_SOURCE_ROOT "/mappings";
	struct ras_mappings *m = NULL;
	struct sample *samples;
	unsigned long outcomes[5] = { 0 }, finals = 0;
	size_t json_bytes = 0, facts_bytes = 0;
	/* RAS_BENCH_DIGEST=1: FNV-1a over every decision's JSON, to check that a
	 * change to the engine leaves every decision byte-identical. */
	bool want_digest = getenv("RAS_BENCH_DIGEST") != NULL;
	uint64_t digest = 14695981039346656037ULL;
	unsigned long chunk;
	double t0, secs;

	if (argc > 2 && strcmp(argv[1], "--db") == 0) {
		char *end = NULL;

		if (argc > 3)
			n = strtoul(argv[3], &end, 10);
		if (argc > 3 && (*end || n == 0 || n > 10000000)) {
			fprintf(stderr, "usage: bench_triage --db CONNINFO [N]\n");
			return 64;
		}
		return bench_db(argv[2], argc > 3 ? n : 20000);
	}
	if (argc > 1) {
		char *end;

		n = strtoul(argv[1], &end, 10);
		if (*end || n == 0 || n > 10000000) {
			fprintf(stderr, "usage: bench_triage [N (1..10000000)] [MAPPINGS_DIR]\n");
			return 64;
		}
	}
	if (ras_mappings_load(dir, &m) < 0) {
		fprintf(stderr, "bench_triage: cannot load %s: %s\n", dir, ras_error_last());
		return 78;
	}
	/* As the stage holds them: a chunk of referrals at a time (see above),
	 * each chunk's samples made just before it is decided, outside the
	 * timing. */
	chunk = chunk_referrals(m);
	if (chunk > n)
		chunk = n;
	samples = calloc(chunk, sizeof(*samples));
	if (samples == NULL)
		return 70;

	/* The engine alone: facts, rules, advice, clocks. */
	secs = 0;
	for (unsigned long base = 0; base < n; base += chunk) {
		unsigned long k = n - base < chunk ? n - base : chunk;
		struct ras_arena *a;

		for (unsigned long j = 0; j < k; j++)
			make_sample(m, (unsigned)(base + j), &samples[j]);
		t0 = seconds();
		if ((a = ras_arena_new()) == NULL)
			return 70;
		for (unsigned long j = 0; j < k; j++) {
			struct ras_decision d;

			if (ras_rules_decide(a, samples[j].rs, &samples[j].r, 1775000000,
			    ras_mappings_calendar(m), 1775000000, &d) < 0) {
				fprintf(stderr, "bench_triage: decision %lu failed: %s\n", base + j,
				    ras_error_last());
				return 70;
			}
		}
		ras_arena_free(a);
		secs += seconds() - t0;
	}
	report(n, secs, "engine only: decide");

	if (getenv("RAS_BENCH_ENGINE_ONLY")) {   /* for profiling the engine */
		free(samples);
		ras_mappings_free(m);
		return 0;
	}
	/* Plus the decision's facts as stored: written out once (JSON text). */
	secs = 0;
	for (unsigned long base = 0; base < n; base += chunk) {
		unsigned long k = n - base < chunk ? n - base : chunk;
		struct ras_arena *a;

		for (unsigned long j = 0; j < k; j++)
			make_sample(m, (unsigned)(base + j), &samples[j]);
		t0 = seconds();
		if ((a = ras_arena_new()) == NULL)
			return 70;
		for (unsigned long j = 0; j < k; j++) {
			struct ras_decision d;
			struct ras_buf b = RAS_BUF_INIT(0);

			if (ras_rules_decide(a, samples[j].rs, &samples[j].r, 1775000000,
			    ras_mappings_calendar(m), 1775000000, &d) < 0 || ras_rules_facts_text(&d, &b) < 0) {
				fprintf(stderr, "bench_triage: decision %lu failed: %s\n", base + j,
				    ras_error_last());
				return 70;
			}
			if (want_digest) {
				/* the text is byte for byte jansson's dump of the facts object */
				struct ras_buf jb = RAS_BUF_INIT(0);

				if (ras_rules_facts_json(a, &d) < 0 ||
				    ras_json_dump(d.facts, RAS_JSON_COMPACT, &jb) < 0 ||
				    jb.len != b.len || memcmp(jb.data, b.data, b.len) != 0) {
					fprintf(stderr, "bench_triage: decision %lu: the facts text differs from "
					    "the facts object's JSON\n", base + j);
					return 70;
				}
				ras_buf_free(&jb);
			}
			facts_bytes += b.len;
			ras_buf_free(&b);
		}
		ras_arena_free(a);
		secs += seconds() - t0;
	}
	report(n, secs, "decide + facts JSON");
	if (getenv("RAS_BENCH_FACTS_ONLY")) {    /* for profiling the facts JSON */
		free(samples);
		ras_mappings_free(m);
		return 0;
	}

	/* As the stage does it: the whole decision document stored in
	 * decisions.doc (reasons, deadlines, facts). */
	secs = 0;
	for (unsigned long base = 0; base < n; base += chunk) {
		unsigned long k = n - base < chunk ? n - base : chunk;
		struct ras_arena *a;

		for (unsigned long j = 0; j < k; j++)
			make_sample(m, (unsigned)(base + j), &samples[j]);
		t0 = seconds();
		if ((a = ras_arena_new()) == NULL)
			return 70;
		for (unsigned long j = 0; j < k; j++) {
			struct ras_decision d;
			struct ras_buf b = RAS_BUF_INIT(0);
			json_t *jd = NULL;

			if (ras_rules_decide(a, samples[j].rs, &samples[j].r, 1775000000,
			    ras_mappings_calendar(m), 1775000000, &d) < 0 ||
			    ras_rules_facts_json(a, &d) < 0 || ras_decision_to_json(&d, true, &jd) < 0 ||
			    ras_json_dump(jd, RAS_JSON_COMPACT, &b) < 0) {
				fprintf(stderr, "bench_triage: decision %lu failed: %s\n", base + j,
				    ras_error_last());
				return 70;
			}
			outcomes[d.outcome]++;
			finals += d.final;
			json_bytes += b.len;
			for (size_t x = 0; want_digest && x < b.len; x++)
				digest = (digest ^ (unsigned char)b.data[x]) * 1099511628211ULL;
			json_decref(jd);
			ras_buf_free(&b);
		}
		ras_arena_free(a);
		secs += seconds() - t0;
	}
	report(n, secs, "decide + the decision document as stored");
	printf("  outcomes: accept %lu, return %lu, onward %lu, review %lu; final %lu; "
	    "facts JSON %.0f, decision JSON %.0f bytes on average\n", outcomes[RAS_OUTCOME_ACCEPT],
	    outcomes[RAS_OUTCOME_RETURN], outcomes[RAS_OUTCOME_ONWARD], outcomes[RAS_OUTCOME_REVIEW],
	    finals, (double)facts_bytes / (double)n, (double)json_bytes / (double)n);
	if (want_digest)
		printf("  decision JSON digest: %016llx\n", (unsigned long long)digest);
	free(samples);
	ras_mappings_free(m);
	return 0;
}
