/*
 * Unit tests for triage: the calendar, the referral form check, rule-set
 * loading and validation, and the clause-by-clause scenarios of
 * triage_scenarios.h against the shipped mappings/ (no database).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/config.h"
#include "ras/error.h"
#include "ras/form.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/rules.h"
#include "ras/safety_net.h"
#include "ras/triage.h"
#include "ras_config.h"
#include "triage_scenarios.h"

#define FORM_URL "urn:rasd:questionnaire:community-pain-referral"
#define MAPPINGS RAS_SOURCE_ROOT "/mappings"

static struct ras_mappings *maps;

/* A failed check with a message naming the scenario and clause. */
static void
check(int ok, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
check(int ok, int line, const char *fmt, ...)
{
	static char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned)line, msg, __FILE__, "", CU_FALSE);
}

static struct ras_date
date_of(const char *s)
{
	struct ras_date d = { 0, 0, 0 };

	CU_ASSERT_EQUAL_FATAL(ras_date_parse(s, &d), 0);
	return d;
}

/* Split s in place at `sep`; returns the next token or NULL (no strtok). */
static char *
next_token(char **cursor, char sep)
{
	char *start = *cursor, *end;

	while (start && *start == sep)
		start++;
	if (start == NULL || *start == '\0')
		return NULL;
	end = strchr(start, sep);
	if (end) {
		*end = '\0';
		*cursor = end + 1;
	} else {
		*cursor = NULL;
	}
	return start;
}

/* ---- calendar ------------------------------------------------------------ */

static void
calendar_working_days(void)
{
	const struct ras_calendar *cal = ras_mappings_calendar(maps);
	struct ras_date d, from;
	bool cov = false;
	int y0, y1;

	ras_calendar_span(cal, &y0, &y1);
	CU_ASSERT_EQUAL(y0, 2019);
	CU_ASSERT_EQUAL(y1, 2027);
	/* Easter 2026: Good Friday 3 April, Easter Monday 6 April. */
	d = date_of("2026-04-03");
	CU_ASSERT_TRUE(ras_calendar_is_bank_holiday(cal, &d));
	CU_ASSERT_FALSE(ras_calendar_is_working_day(cal, &d));
	d = date_of("2026-04-07");
	CU_ASSERT_TRUE(ras_calendar_is_working_day(cal, &d));
	d = date_of("2026-04-04");
	CU_ASSERT_FALSE(ras_calendar_is_working_day(cal, &d));   /* a Saturday */
	CU_ASSERT_FALSE(ras_calendar_is_bank_holiday(cal, &d));
	/* Scottish-only holidays do not count: 2 January 2026 is a working day. */
	d = date_of("2026-01-02");
	CU_ASSERT_TRUE(ras_calendar_is_working_day(cal, &d));

	/* Day of receipt = day 0; N working days = the Nth working day after. */
	from = date_of("2026-04-02");   /* Thursday before Easter */
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 1, &d, &cov), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &(struct ras_date){ 2026, 4, 7 }), 0);
	CU_ASSERT_TRUE(cov);
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 2, &d, NULL), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &(struct ras_date){ 2026, 4, 8 }), 0);
	/* Received on a Saturday counts like the Friday before. */
	from = date_of("2026-03-07");
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 1, &d, NULL), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &(struct ras_date){ 2026, 3, 9 }), 0);
	/* 0 = the same day, or the next working day when received on a day off. */
	from = date_of("2026-03-02");
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 0, &d, NULL), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &from), 0);
	from = date_of("2026-12-25");
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 0, &d, NULL), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &(struct ras_date){ 2026, 12, 29 }), 0);   /* 28th is the Boxing Day substitute */
	/* Christmas 2025 (Thursday and Friday). */
	from = date_of("2025-12-24");
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 3, &d, NULL), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &(struct ras_date){ 2025, 12, 31 }), 0);
	/* The one-off 2022 holidays (Jubilee, State Funeral) are working-day gaps. */
	from = date_of("2022-06-01");
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 1, &d, NULL), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &(struct ras_date){ 2022, 6, 6 }), 0);
	from = date_of("2022-09-16");
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 1, &d, NULL), 0);
	CU_ASSERT_EQUAL(ras_date_cmp(&d, &(struct ras_date){ 2022, 9, 20 }), 0);
	/* Counting back for a KPI: 2 working days from Thu 2 April to Wed 8 April. */
	CU_ASSERT_EQUAL(ras_calendar_working_days_between(cal, &(struct ras_date){ 2026, 4, 2 },
	    &(struct ras_date){ 2026, 4, 8 }), 2);
	/* Past the file's years: weekends only, and the caller is told. */
	from = date_of("2027-12-20");
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 30, &d, &cov), 0);
	CU_ASSERT_FALSE(cov);
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, -1, &d, NULL), RAS_EINVALID);
	CU_ASSERT_EQUAL(ras_calendar_add_working_days(cal, &from, 401, &d, NULL), RAS_EINVALID);
}

/* Working days are counted from an index over the file's years: from every
 * day of those years (and a year either side), every clock length a rule
 * set may use gives the day a walk over ras_calendar_is_working_day gives,
 * and coverage as the walk finds it. */
static void
calendar_index_matches_a_walk(void)
{
	const struct ras_calendar *cal = ras_mappings_calendar(maps);
	struct ras_date d, got;
	int y0, y1, bad = 0;
	bool cov;

	ras_calendar_span(cal, &y0, &y1);
	for (int64_t day = ras_date_to_days(&(struct ras_date){ y0 - 1, 12, 1 });
	    day <= ras_date_to_days(&(struct ras_date){ y1 + 1, 1, 31 }); day++) {
		ras_date_from_days(day, &d);
		for (int n = 0; n <= 45; n += (n < 10 ? 1 : 7)) {
			struct ras_date w = d;
			int k = 0;
			bool wcov = d.year >= y0 && d.year <= y1;

			if (n == 0) {
				while (!ras_calendar_is_working_day(cal, &w)) {
					ras_date_add_days(&w, 1, &w);
					wcov = wcov && w.year >= y0 && w.year <= y1;
				}
			}
			while (k < n) {
				ras_date_add_days(&w, 1, &w);
				wcov = wcov && w.year >= y0 && w.year <= y1;
				k += ras_calendar_is_working_day(cal, &w);
			}
			cov = !wcov;
			if (ras_calendar_add_working_days(cal, &d, n, &got, &cov) != 0 ||
			    ras_date_cmp(&got, &w) != 0 || cov != wcov)
				bad++;
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
}

static void
calendar_rejects_bad_files(void)
{
	struct ras_calendar *cal = NULL;
	static const char *bad[] = {
		"[]",
		"{\"scotland\": {\"events\": [{\"date\": \"2026-01-01\"}]}}",
		"{\"england-and-wales\": {\"events\": []}}",
		"{\"england-and-wales\": {\"events\": [{\"date\": \"2026-13-01\"}]}}",
		"{\"england-and-wales\": {\"events\": [{\"title\": \"no date\"}]}}",
		"{\"england-and-wales\": {\"events\": [{\"date\": \"2026-01-01\"}], \"events\": []}}",
	};
	const char *good = "{\"england-and-wales\": {\"division\": \"england-and-wales\", \"events\": ["
	    "{\"title\": \"x\", \"date\": \"2030-01-01\"}, {\"title\": \"dup\", \"date\": \"2030-01-01\"}]}}";
	struct ras_date d;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CU_ASSERT_EQUAL(ras_calendar_parse(bad[i], strlen(bad[i]), &cal), RAS_EINVALID);
		CU_ASSERT_TRUE(strlen(ras_error_last()) > 0);
	}
	CU_ASSERT_EQUAL_FATAL(ras_calendar_parse(good, strlen(good), &cal), 0);
	d = date_of("2030-01-01");
	CU_ASSERT_TRUE(ras_calendar_is_bank_holiday(cal, &d));
	CU_ASSERT_EQUAL(strlen(ras_calendar_sha256(cal)), 64);
	ras_calendar_free(cal);
}

/* ---- the referral form ------------------------------------------------------ */

static void
questionnaires_load(void)
{
	const struct ras_ruleset *rs = ras_mappings_ruleset(maps, "midnotts");

	CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
	CU_ASSERT_STRING_EQUAL(ras_rules_form_url(rs), FORM_URL);
	CU_ASSERT_EQUAL(strlen(ras_rules_version(rs)), 64);
}

static void
form_check(void)
{
	struct ras_arena *a = ras_arena_new();
	size_t len;
	char *text = ras_test_read(RAS_SOURCE_ROOT "/mappings/forms/community-pain-referral-v2.json", &len);
	char *text1 = ras_test_read(RAS_SOURCE_ROOT "/mappings/forms/community-pain-referral-v1.json", &len);
	json_t *j, *j1;
	struct ras_questionnaire q2, q1;
	const struct ras_questionnaire *qs[2] = { &q1, &q2 };
	struct ras_answer ans[6];
	struct ras_form f = { .questionnaire = FORM_URL, .version = "2", .status = "completed",
		.answers = ans };
	struct ras_form_check fc;
	const struct ras_qitem *it;

	CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, text, strlen(text), 0, &j), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, text1, strlen(text1), 0, &j1), 0);
	CU_ASSERT_EQUAL_FATAL(ras_form_questionnaire_parse(a, j, &q2), 0);
	CU_ASSERT_EQUAL_FATAL(ras_form_questionnaire_parse(a, j1, &q1), 0);
	CU_ASSERT_EQUAL(q2.n_items, 28);
	CU_ASSERT_STRING_EQUAL(q2.status, "active");
	CU_ASSERT_STRING_EQUAL(q1.status, "retired");
	CU_ASSERT_TRUE(q2.active);
	CU_ASSERT_FALSE(q1.active);
	it = ras_form_item(&q2, "red-flags");
	CU_ASSERT_PTR_NOT_NULL_FATAL(it);
	CU_ASSERT_TRUE(it->repeats);
	CU_ASSERT_EQUAL(it->n_options, 6);
	CU_ASSERT_STRING_EQUAL(it->option_system, FORM_URL);
	CU_ASSERT_TRUE(ras_form_item(&q2, "pain-duration-weeks")->required);
	CU_ASSERT_TRUE(ras_form_item(&q2, "investigations-complete")->required);
	CU_ASSERT_TRUE(ras_form_item(&q2, "red-flags-screened")->required);
	CU_ASSERT_EQUAL(ras_form_item(&q2, "cognitive-impairment")->n_options, 4);

	/* Only two answers: the third mandatory item is missing, one type is wrong,
	 * one coded answer is in the wrong system, one item is unknown. */
	ans[0] = (struct ras_answer){ .link_id = "pain-duration-weeks", .type = RAS_ANSWER_INTEGER, .i = 20 };
	ans[1] = (struct ras_answer){ .link_id = "investigations-complete", .type = RAS_ANSWER_STRING, .s = "yes" };
	ans[2] = (struct ras_answer){ .link_id = "cognitive-impairment", .type = RAS_ANSWER_CODING,
		.system = "http://snomed.info/sct", .code = "none" };
	ans[3] = (struct ras_answer){ .link_id = "shoe-size", .type = RAS_ANSWER_INTEGER, .i = 9 };
	ans[4] = (struct ras_answer){ .link_id = "pain-daily", .type = RAS_ANSWER_BOOLEAN, .b = true };
	ans[5] = (struct ras_answer){ .link_id = "pain-daily", .type = RAS_ANSWER_BOOLEAN, .b = false };
	f.n_answers = 6;
	CU_ASSERT_EQUAL_FATAL(ras_form_check(a, qs, 2, &f, (const char *[]){ "diagnosis" }, 1, &fc), 0);
	CU_ASSERT_TRUE(fc.present && fc.questionnaire_known && fc.version_known && fc.current && fc.completed);
	CU_ASSERT_EQUAL(fc.n_missing, 2);   /* red-flags-screened, diagnosis */
	CU_ASSERT_STRING_EQUAL(fc.missing[0], "red-flags-screened");
	CU_ASSERT_STRING_EQUAL(fc.missing[1], "diagnosis");
	CU_ASSERT_EQUAL(fc.n_invalid, 3);   /* investigations-complete, cognitive-impairment, pain-daily twice */
	CU_ASSERT_EQUAL(fc.n_unknown, 1);
	CU_ASSERT_STRING_EQUAL(fc.unknown[0], "shoe-size");
	/* each item's first answer (pain-daily has two: the first is 4), -1 unanswered */
	CU_ASSERT_EQUAL(fc.first_of[ras_form_item(&q2, "pain-daily") - q2.items], 4);
	CU_ASSERT_EQUAL(fc.first_of[ras_form_item(&q2, "pain-duration-weeks") - q2.items], 0);
	CU_ASSERT_EQUAL(fc.first_of[ras_form_item(&q2, "cognitive-impairment") - q2.items], 2);
	CU_ASSERT_EQUAL(fc.first_of[ras_form_item(&q2, "diagnosis") - q2.items], -1);
	CU_ASSERT_EQUAL(fc.n_answers_of[ras_form_item(&q2, "pain-daily") - q2.items], 2);

	/* With the extra items' places known beforehand (as a linked rule set
	 * knows them) the check finds the same, for this response (something
	 * invalid), for one with nothing invalid, in both versions. */
	{
		static const char *const extras[] = { "diagnosis", "pain-daily", "no-such-item",
			"red-flags-screened", "pain-duration-weeks", "diagnosis" };
		const size_t ne = sizeof(extras) / sizeof(extras[0]);
		int at[2 * sizeof(extras) / sizeof(extras[0])];
		struct ras_form_check byname, indexed;

		for (size_t i = 0; i < 2; i++)
			for (size_t e = 0; e < ne; e++) {
				const struct ras_qitem *x = ras_form_item(qs[i], extras[e]);

				at[i * ne + e] = x ? (int)(x - qs[i]->items) : -1;
			}
		for (int round = 0; round < 4; round++) {
			f.version = round < 2 ? "2" : "1";
			f.n_answers = round % 2 ? 1 : 6;   /* 1: only a valid pain-duration-weeks */
			CU_ASSERT_EQUAL_FATAL(ras_form_check(a, qs, 2, &f, extras, ne, &byname), 0);
			CU_ASSERT_EQUAL_FATAL(ras_form_check_indexed(a, qs, 2, &f, extras, ne, at, &indexed), 0);
			CU_ASSERT_EQUAL_FATAL(byname.n_missing, indexed.n_missing);
			for (size_t k = 0; k < byname.n_missing; k++)
				CU_ASSERT_STRING_EQUAL(byname.missing[k], indexed.missing[k]);
			CU_ASSERT_EQUAL_FATAL(byname.n_invalid, indexed.n_invalid);
			for (size_t k = 0; k < byname.n_invalid; k++)
				CU_ASSERT_STRING_EQUAL(byname.invalid[k], indexed.invalid[k]);
			CU_ASSERT_EQUAL(byname.n_unknown, indexed.n_unknown);
		}
		/* nothing invalid: the form's own mandatory items in form order,
		 * then the extra ones unanswered, each once */
		f.version = "2";
		f.n_answers = 1;
		CU_ASSERT_EQUAL_FATAL(ras_form_check_indexed(a, qs, 2, &f, extras, ne, at, &indexed), 0);
		CU_ASSERT_EQUAL(indexed.n_invalid, 0);
		CU_ASSERT_EQUAL_FATAL(indexed.n_missing, 5);
		CU_ASSERT_STRING_EQUAL(indexed.missing[0], "investigations-complete");
		CU_ASSERT_STRING_EQUAL(indexed.missing[1], "red-flags-screened");
		CU_ASSERT_STRING_EQUAL(indexed.missing[2], "diagnosis");
		CU_ASSERT_STRING_EQUAL(indexed.missing[3], "pain-daily");
		CU_ASSERT_STRING_EQUAL(indexed.missing[4], "no-such-item");
		f.n_answers = 6;
	}

	/* The check's memory is not zeroed by the arena: on blocks an earlier
	 * arena filled with junk (and gave back for reuse) every result is the
	 * same as on fresh ones, for something invalid and for nothing invalid. */
	for (int round = 0; round < 2; round++) {
		struct ras_form_check fresh, dirty;
		struct ras_arena *junk = ras_arena_new(), *b;

		f.version = "2";
		f.n_answers = round ? 1 : 6;
		CU_ASSERT_EQUAL_FATAL(ras_form_check(a, qs, 2, &f, (const char *[]){ "diagnosis" }, 1, &fresh), 0);
		RAS_REQUIRE(junk != NULL);
		for (int k = 0; k < 64; k++) {
			void *p = ras_arena_array(junk, 1, 15000);

			RAS_REQUIRE(p != NULL);
			memset(p, 0xA5, 15000);
		}
		ras_arena_free(junk);
		b = ras_arena_new();
		RAS_REQUIRE(b != NULL);
		CU_ASSERT_EQUAL_FATAL(ras_form_check(b, qs, 2, &f, (const char *[]){ "diagnosis" }, 1, &dirty), 0);
		for (size_t k = 0; k < f.n_answers; k++) {
			CU_ASSERT_EQUAL(fresh.item_of[k], dirty.item_of[k]);
			CU_ASSERT_EQUAL(fresh.answer_ok[k], dirty.answer_ok[k]);
		}
		for (size_t k = 0; k < q2.n_items; k++) {
			CU_ASSERT_EQUAL(fresh.n_answers_of[k], dirty.n_answers_of[k]);
			CU_ASSERT_EQUAL(fresh.n_ok_of[k], dirty.n_ok_of[k]);
			CU_ASSERT_EQUAL(fresh.first_of[k], dirty.first_of[k]);
		}
		CU_ASSERT_EQUAL_FATAL(fresh.n_missing, dirty.n_missing);
		for (size_t k = 0; k < fresh.n_missing; k++)
			CU_ASSERT_STRING_EQUAL(fresh.missing[k], dirty.missing[k]);
		CU_ASSERT_EQUAL_FATAL(fresh.n_invalid, dirty.n_invalid);
		for (size_t k = 0; k < fresh.n_invalid; k++)
			CU_ASSERT_STRING_EQUAL(fresh.invalid[k], dirty.invalid[k]);
		CU_ASSERT_EQUAL_FATAL(fresh.n_unknown, dirty.n_unknown);
		for (size_t k = 0; k < fresh.n_unknown; k++)
			CU_ASSERT_STRING_EQUAL(fresh.unknown[k], dirty.unknown[k]);
		CU_ASSERT_EQUAL(dirty.n_invalid, round ? 0 : 3);
		ras_arena_free(b);
	}
	f.n_answers = 6;

	/* Version 1 is known but retired; version 7 is not known. */
	f.version = "1";
	CU_ASSERT_EQUAL(ras_form_check(a, qs, 2, &f, NULL, 0, &fc), 0);
	CU_ASSERT_TRUE(fc.version_known);
	CU_ASSERT_FALSE(fc.current);
	f.version = "7";
	CU_ASSERT_EQUAL(ras_form_check(a, qs, 2, &f, NULL, 0, &fc), 0);
	CU_ASSERT_TRUE(fc.questionnaire_known);
	CU_ASSERT_FALSE(fc.version_known);
	f.questionnaire = "urn:someone:else";
	f.status = "in-progress";
	CU_ASSERT_EQUAL(ras_form_check(a, qs, 2, &f, NULL, 0, &fc), 0);
	CU_ASSERT_FALSE(fc.questionnaire_known);
	CU_ASSERT_FALSE(fc.completed);
	CU_ASSERT_EQUAL(ras_form_check(a, qs, 2, NULL, NULL, 0, &fc), 0);
	CU_ASSERT_FALSE(fc.present);
	free(text);
	free(text1);
	ras_arena_free(a);
}

static void
questionnaire_rejects(void)
{
	static const char *bad[] = {
		"{\"resourceType\": \"Patient\"}",
		"{\"resourceType\": \"Questionnaire\", \"url\": \"u\", \"status\": \"active\", \"item\": [{\"linkId\": \"a\", \"type\": \"boolean\"}]}",
		"{\"resourceType\": \"Questionnaire\", \"url\": \"u\", \"version\": \"1\", \"status\": \"active\", \"item\": [{\"linkId\": \"a\", \"type\": \"attachment\"}]}",
		"{\"resourceType\": \"Questionnaire\", \"url\": \"u\", \"version\": \"1\", \"status\": \"active\", \"item\": [{\"linkId\": \"a\", \"type\": \"boolean\"}, {\"linkId\": \"a\", \"type\": \"integer\"}]}",
		"{\"resourceType\": \"Questionnaire\", \"url\": \"u\", \"version\": \"1\", \"status\": \"active\", \"item\": [{\"linkId\": \"a\", \"type\": \"choice\"}]}",
		"{\"resourceType\": \"Questionnaire\", \"url\": \"u\", \"version\": \"1\", \"status\": \"active\", \"item\": [{\"linkId\": \"g\", \"type\": \"boolean\", \"item\": [{\"linkId\": \"a\", \"type\": \"boolean\"}]}]}",
		"{\"resourceType\": \"Questionnaire\", \"url\": \"u|2\", \"version\": \"1\", \"status\": \"active\", \"item\": [{\"linkId\": \"a\", \"type\": \"boolean\"}]}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ras_arena *a = ras_arena_new();
		struct ras_questionnaire q;
		json_t *j;

		CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, bad[i], strlen(bad[i]), 0, &j), 0);
		CU_ASSERT_EQUAL(ras_form_questionnaire_parse(a, j, &q), RAS_EINVALID);
		ras_arena_free(a);
	}
}

/* The check matches an answer's linkId to an item by length, then a word
 * (eight bytes) at a time.  A property over generated linkIds: lengths 1 to
 * RAS_ID_MAX, sharing long prefixes, differing in one byte anywhere (first,
 * last, either side of a word's edge), one shorter or longer, each answer's
 * id in a buffer of its own, its length given by the reader or not (0) or
 * given too short; every answer must find the item strcmp finds, or none. */
static uint64_t
prop_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static void
form_match_property(void)
{
	enum { ITEMS = 48, ROUNDS = 40 };
	uint64_t x = 0x9e3779b97f4a7c15u;
	size_t bad = 0, matched = 0, unmatched = 0;

	for (int round = 0; round < ROUNDS; round++) {
		struct ras_arena *a = ras_arena_new();
		char ids[ITEMS][RAS_ID_MAX + 1];
		json_t *items = json_array(), *qj;
		struct ras_questionnaire q;
		struct ras_answer ans[ITEMS * 8];
		struct ras_form f = { .questionnaire = "urn:test:match", .version = "1",
			.status = "completed", .answers = ans };
		struct ras_form_check fc;
		size_t n = 0;
		int k = 0;

		RAS_REQUIRE(a != NULL && items != NULL);
		/* items: a few stems, each grown to a random length (so many share
		 * a prefix of a word or more), all different */
		while (k < ITEMS) {
			size_t len = 1 + prop_next(&x) % RAS_ID_MAX;
			bool dup = false;

			if (k > 0 && prop_next(&x) % 2) {
				/* another's id, cut or grown, or with one byte changed */
				const char *o = ids[prop_next(&x) % (uint64_t)k];
				size_t ol = strlen(o);

				memcpy(ids[k], o, ol + 1);
				if (prop_next(&x) % 2 && ol > 1) {
					ids[k][ol - 1 - prop_next(&x) % (ol - 1)] = (char)('a' + prop_next(&x) % 26);
				} else {
					for (size_t i = ol; i < len; i++)
						ids[k][i] = (char)('a' + prop_next(&x) % 3);
					ids[k][len] = '\0';
				}
			} else {
				for (size_t i = 0; i < len; i++)
					ids[k][i] = (char)('a' + prop_next(&x) % 3);
				ids[k][len] = '\0';
			}
			for (int j = 0; j < k; j++)
				dup = dup || strcmp(ids[j], ids[k]) == 0;
			if (dup || ids[k][0] == '\0')
				continue;
			{
				int e = json_array_append_new(items, json_pack("{s:s, s:s}", "linkId", ids[k],
				    "type", "boolean"));

				RAS_REQUIRE(e == 0);
			}
			k++;
		}
		qj = json_pack("{s:s, s:s, s:s, s:s, s:o}", "resourceType", "Questionnaire",
		    "url", "urn:test:match", "version", "1", "status", "active", "item", items);
		RAS_REQUIRE(qj != NULL);
		CU_ASSERT_EQUAL_FATAL(ras_form_questionnaire_parse(a, qj, &q), 0);
		/* answers: each item's id, and near misses of it, in random order */
		for (int i = 0; i < ITEMS && n + 8 <= sizeof(ans) / sizeof(ans[0]); i++) {
			const char *id = ids[prop_next(&x) % ITEMS];
			size_t l = strlen(id);

			for (int v = 0; v < 6; v++) {
				char *c = ras_arena_array(a, RAS_ID_MAX + 2, 1);
				size_t cl = l;

				RAS_REQUIRE(c != NULL);
				memcpy(c, id, l + 1);
				switch (v) {
				case 1: c[0] ^= 1; break;                              /* first byte */
				case 2: c[l - 1] ^= 1; break;                          /* last byte */
				case 3: c[prop_next(&x) % l] ^= 2; break;             /* any byte */
				case 4: if (l > 1) c[--cl] = '\0'; break;             /* one shorter */
				case 5: c[cl++] = 'a'; c[cl] = '\0'; break;           /* one longer */
				default: break;                                        /* itself */
				}
				/* the reader's length: right, unknown, or (a reader's bug)
				 * too short, which must not make it match another item */
				switch (prop_next(&x) % 3) {
				case 0: ans[n].link_id_len = cl; break;
				case 1: ans[n].link_id_len = 0; break;
				default: ans[n].link_id_len = cl > 1 ? cl - 1 : 0; break;
				}
				ans[n].link_id = c;
				ans[n].type = RAS_ANSWER_BOOLEAN;
				n++;
			}
		}
		f.n_answers = n;
		{
			const struct ras_questionnaire *qs[1] = { &q };

			CU_ASSERT_EQUAL_FATAL(ras_form_check(a, qs, 1, &f, NULL, 0, &fc), 0);
		}
		for (size_t i = 0; i < n; i++) {
			int want = -1;

			for (size_t j = 0; j < q.n_items; j++)
				if (strcmp(q.items[j].link_id, ans[i].link_id) == 0)
					want = (int)j;
			bad += fc.item_of[i] != want;
			if (want >= 0)
				matched++;
			else
				unmatched++;
		}
		json_decref(qj);
		ras_arena_free(a);
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* (both kinds were tried, many times) */
	CU_ASSERT_TRUE(matched > 1000);
	CU_ASSERT_TRUE(unmatched > 1000);
}

/* ---- rule sets -------------------------------------------------------------- */

/* A minimal valid rule set, with one substitution to break it. */
static int
parse_variant(const char *find, const char *replace, char *why, size_t size)
{
	static const char base[] =
	    "{\"service\": \"x\", \"spec\": \"004\", \"population\": \"practices/x.json\","
	    " \"form\": {\"questionnaire\": \"" FORM_URL "\"},"
	    " \"accept\": {\"id\": \"x.accept\", \"clause\": \"004 \xc2\xa7" "3.4\"},"
	    " \"rules\": [{\"id\": \"x.age\", \"stage\": \"eligibility\", \"kind\": \"administrative\","
	    "   \"clause\": \"004 \xc2\xa7" "3.3\", \"when\": {\"fact\": \"patient.age\", \"lt\": 16},"
	    "   \"outcome\": \"return\", \"advice\": \"too young ({patient.age})\"}],"
	    " \"clocks\": [{\"kind\": \"triage\", \"clause\": \"004 \xc2\xa7" "3.6\", \"working_days\": 2}]}";
	struct ras_arena *a = ras_arena_new();
	struct ras_ruleset *rs = NULL;
	char text[4096];
	const char *at = find ? strstr(base, find) : NULL;
	int err;

	if (find && at == NULL) {
		snprintf(why, size, "test bug: \"%s\" not in the base rule set", find);
		ras_arena_free(a);
		return 1;
	}
	if (at)
		snprintf(text, sizeof(text), "%.*s%s%s", (int)(at - base), base, replace, at + strlen(find));
	else
		snprintf(text, sizeof(text), "%s", base);
	err = ras_rules_parse(a, text, strlen(text), &rs);
	snprintf(why, size, "%s", err ? ras_error_last() : "");
	ras_arena_free(a);
	return err;
}

static void
ruleset_validation(void)
{
	static const struct { const char *find, *replace, *msg; } cases[] = {
		{ "\"rules\"", "\"ruels\": [], \"rules\"", "unknown key \"ruels\"" },
		{ "\"when\"", "\"whn\": 1, \"when\"", "unknown key \"whn\"" },
		{ "\"outcome\": \"return\"", "\"outcome\": \"reject\"", "outcome must be" },
		{ "\"stage\": \"eligibility\", \"kind\": \"administrative\"",
		  "\"stage\": \"safety\", \"kind\": \"safety\"", "must not return" },
		{ "\"stage\": \"eligibility\"", "\"stage\": \"safety\"", "only they" },
		{ "\"clause\": \"004 \xc2\xa7" "3.3\"", "\"clause\": \"003 \xc2\xa7" "3.3\"", "must cite this rule set's spec" },
		{ "\"clause\": \"004 \xc2\xa7" "3.3\", ", "", "\"clause\" must be" },
		{ "\"fact\": \"patient.age\"", "\"fact\": \"patient.shoe_size\"", "unknown fact" },
		{ "\"lt\": 16", "\"lt\": \"16\"", "must be a number" },
		{ "\"lt\": 16", "\"eq\": true", "wrong type" },
		{ "\"lt\": 16", "\"contains\": \"x\"", "only to list facts" },
		{ "\"lt\": 16}", "\"lt\": 16, \"gt\": 1}", "exactly one operator" },
		{ "\"outcome\": \"return\"", "\"outcome\": \"onward\"", "needs a target" },
		{ ", \"advice\": \"too young ({patient.age})\"", "", "needs advice" },
		{ "({patient.age})", "({patient.shoe})", "is not a fact" },
		{ "\"id\": \"x.age\"", "\"id\": \"other.age\"", "start with the service id" },
		{ "\"id\": \"x.age\"", "\"id\": \"x.accept\"", "defined twice" },
		{ "\"working_days\": 2", "\"working_days\": 2, \"hours\": 3", "exactly one of" },
		{ "\"working_days\": 2", "\"working_days\": 9999", "integer from 0" },
		{ "\"spec\": \"004\"", "\"spec\": \"4\"", "three-digit" },
		{ "\"population\": \"practices/x.json\"", "\"population\": \"../etc/passwd\"", "inside the mappings" },
		{ "{\"fact\": \"patient.age\", \"lt\": 16}", "{\"all\": []}", "non-empty list" },
		{ "{\"fact\": \"patient.age\", \"lt\": 16}", "{\"not\": {\"fact\": \"patient.age\", \"lt\": 16}, \"any\": [1]}", "takes one" },
		{ "{\"fact\": \"patient.age\", \"lt\": 16}", "{\"not\": {\"fact\": \"patient.age\", \"lt\": 16}, \"fact\": \"x\"}", "stands alone" },
	};
	char why[512];

	CU_ASSERT_EQUAL(parse_variant(NULL, NULL, why, sizeof(why)), 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int err = parse_variant(cases[i].find, cases[i].replace, why, sizeof(why));

		check(err == RAS_EINVALID && strstr(why, cases[i].msg) != NULL, __LINE__,
		    "rule set variant %zu: expected \"%s\", got %d \"%s\"", i, cases[i].msg, err, why);
	}
}

/* A rule set whose one rule tests n distinct form facts (form.q0 ...). */
static int
parse_with_form_facts(struct ras_arena *a, size_t n, struct ras_ruleset **rs)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	int err;

	(void)ras_buf_puts(&b, "{\"service\": \"x\", \"spec\": \"004\", \"population\": \"p.json\","
	    " \"form\": {\"questionnaire\": \"" FORM_URL "\"},"
	    " \"accept\": {\"id\": \"x.accept\", \"clause\": \"004 \xc2\xa7" "3.4\"},"
	    " \"rules\": [{\"id\": \"x.r\", \"stage\": \"clinical\", \"kind\": \"clinical\","
	    " \"clause\": \"004 \xc2\xa7" "3.3\", \"outcome\": \"review\", \"when\": {\"any\": [");
	for (size_t i = 0; i < n; i++)
		(void)ras_buf_printf(&b, "%s{\"fact\": \"form.q%zu\", \"present\": true}", i ? ", " : "", i);
	(void)ras_buf_puts(&b, "]}}]}");
	err = ras_rules_parse(a, b.data, b.len, rs);
	ras_buf_free(&b);
	return err;
}

/* The engine keeps a decision's facts typed, in slots resolved when the
 * rule set loads: a rule set naming a fact those slots cannot hold must
 * not load, rather than be decided without it. */
static void
ruleset_facts_the_engine_cannot_hold(void)
{
	/* the engine's 24 facts leave RAS_RULE_FACTS_MAX - 24 for form items */
	size_t room = RAS_RULE_FACTS_MAX - 24;
	struct ras_arena *a = ras_arena_new();
	struct ras_ruleset *rs = NULL;
	struct ras_questionnaire q;
	struct ras_practice_list pl;
	const struct ras_questionnaire *forms[1] = { &q };
	const struct ras_practice_list *lists[1] = { &pl };
	static const char form[] = "{\"resourceType\": \"Questionnaire\", \"url\": \"" FORM_URL "\","
	    " \"version\": \"9\", \"status\": \"active\", \"item\": ["
	    " {\"linkId\": \"q0\", \"type\": \"boolean\"},"
	    " {\"linkId\": \"status\", \"type\": \"string\"}]}";
	static const char practices[] = "{\"practices\": [\"C84001\"]}";
	json_t *j;

	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	CU_ASSERT_EQUAL(parse_with_form_facts(a, room, &rs), 0);
	CU_ASSERT_EQUAL(parse_with_form_facts(a, room + 1, &rs), RAS_ETOOBIG);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "more than 256 facts"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "form.q232"));

	/* A form item named like one of the engine's own form facts
	 * (form.status) cannot be told apart from it: linking fails. */
	CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(a, form, strlen(form), 0, &j), 0);
	CU_ASSERT_EQUAL_FATAL(ras_form_questionnaire_parse(a, j, &q), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_practices_parse(a, "p", practices, strlen(practices), &pl), 0);
	CU_ASSERT_EQUAL_FATAL(parse_with_form_facts(a, 1, &rs), 0);
	CU_ASSERT_EQUAL(ras_rules_link(a, rs, forms, 1, &pl, lists, 1, "v"), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "cannot tell from its own fact \"form.status\""));
	/* the same form without that item links */
	q.n_items = 1;
	CU_ASSERT_EQUAL_FATAL(parse_with_form_facts(a, 1, &rs), 0);
	CU_ASSERT_EQUAL(ras_rules_link(a, rs, forms, 1, &pl, lists, 1, "v"), 0);
	ras_arena_free(a);
}

static void
shipped_rulesets(void)
{
	static const char *ids[] = { "bassetlaw-2022", "dorset-2013", "dorset-2019", "midnotts" };
	const char *got[8];

	CU_ASSERT_EQUAL(ras_mappings_services(maps, got, 8), 4);
	for (size_t i = 0; i < 4; i++) {
		const struct ras_ruleset *rs = ras_mappings_ruleset(maps, ids[i]);

		CU_ASSERT_STRING_EQUAL(got[i], ids[i]);
		CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
		CU_ASSERT_TRUE(ras_rules_count(rs) >= 25);
		CU_ASSERT_EQUAL(ras_rules_automation(rs), RAS_AUTOMATION_ADMINISTRATIVE);
		/* Every rule is exercised by at least one scenario. */
		for (size_t r = 0; r < ras_rules_count(rs); r++) {
			const char *id = ras_rules_rule_id(rs, r);
			bool covered = false;

			for (size_t s = 0; s < sizeof(scenarios) / sizeof(scenarios[0]) && !covered; s++)
				covered = scenarios[s].rule && strcmp(scenarios[s].rule, id) == 0;
			/* Rules only reachable through another rule's scenario. */
			covered = covered || strstr(id, ".form.unknown") || strstr(id, ".form.not-completed") ||
			    strstr(id, ".form.invalid") || strstr(id, ".red-flag.unreadable") ||
			    strstr(id, ".urgent") || strstr(id, ".nhs-number") || strstr(id, ".birth-date-unknown") ||
			    strstr(id, ".population.unknown") || strstr(id, ".population.closed-practice") ||
			    strstr(id, ".form.awaited") || strstr(id, ".referrer.unknown");
			check(covered, __LINE__, "rule %s has no scenario", id);
		}
	}
	CU_ASSERT_PTR_NULL(ras_mappings_ruleset(maps, "nowhere"));
}

static void
mappings_errors(void)
{
	struct ras_mappings *m = NULL;
	char dir[4096], cmd[8192];

	CU_ASSERT_EQUAL(ras_mappings_load("/nonexistent", &m), RAS_EIO);
	/* A copy of the shipped mappings with one rule set broken: refused as a whole. */
	snprintf(dir, sizeof(dir), "%s/mappings-copy", ras_test_tmpdir());
	ras_test_fmt(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s' && "
	    "sed -i 's/\"form.cfs-me\"/\"form.cfs_me\"/' '%s/services/midnotts.json'", dir, MAPPINGS, dir, dir);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	CU_ASSERT_EQUAL(ras_mappings_load(dir, &m), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "midnotts.json"));
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "cfs_me"));
	/* A rule set whose file name is not its service id. */
	ras_test_fmt(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s' && mv '%s/services/midnotts.json' '%s/services/mid.json'",
	    dir, MAPPINGS, dir, dir, dir);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	CU_ASSERT_EQUAL(ras_mappings_load(dir, &m), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "must be named midnotts.json"));
	/* The content hash changes when a practice list changes. */
	ras_test_fmt(cmd, sizeof(cmd), "rm -rf '%s' && cp -r '%s' '%s' && "
	    "sed -i 's/\"C84012\"/\"C84999\"/' '%s/practices/midnotts.json'", dir, MAPPINGS, dir, dir);
	CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
	CU_ASSERT_EQUAL_FATAL(ras_mappings_load(dir, &m), 0);
	CU_ASSERT_STRING_NOT_EQUAL(ras_rules_version(ras_mappings_ruleset(m, "midnotts")),
	    ras_rules_version(ras_mappings_ruleset(maps, "midnotts")));
	ras_mappings_free(m);
}

static void
config_assignment(void)
{
	struct ras_config *cfg = NULL;
	struct ras_triage *t = NULL;
	struct ras_buf problems = RAS_BUF_INIT(0);
	const char *why;
	static const char good_conf[] =
	    "[service midnotts]\nautomation = all\ners_service_ids = 21012, 21013\n"
	    "[service bassetlaw-2022]\ners_service_ids = 31000\n[triage]\ndefault_service = dorset-2019\n";
	static const char bad_conf[] =
	    "[service midnotts]\ners_service_ids = 1\n[service bassetlaw-2022]\ners_service_ids = 1\n";
	char *path = ras_test_write_tmp("triage.conf", good_conf, strlen(good_conf));
	char *bad = ras_test_write_tmp("triage-bad.conf", bad_conf, strlen(bad_conf));

	CU_ASSERT_EQUAL_FATAL(ras_config_load(path, &cfg, &problems), 0);
	CU_ASSERT_EQUAL_FATAL(ras_triage_new(cfg, MAPPINGS, &t), 0);
	CU_ASSERT_EQUAL(ras_rules_automation(ras_mappings_ruleset(ras_triage_mappings(t), "midnotts")),
	    RAS_AUTOMATION_ALL);
	CU_ASSERT_STRING_EQUAL(ras_triage_assign(t, "bassetlaw-2022", "21012", &why), "bassetlaw-2022");
	CU_ASSERT_STRING_EQUAL(ras_triage_assign(t, NULL, "21013", &why), "midnotts");
	CU_ASSERT_STRING_EQUAL(ras_triage_assign(t, NULL, "31000", &why), "bassetlaw-2022");
	CU_ASSERT_STRING_EQUAL(ras_triage_assign(t, NULL, "99999", &why), "dorset-2019");
	CU_ASSERT_PTR_NULL(ras_triage_assign(t, "atlantis", NULL, &why));
	CU_ASSERT_PTR_NOT_NULL(why);
	ras_triage_free(t);
	ras_config_free(cfg);
	cfg = NULL;
	CU_ASSERT_EQUAL_FATAL(ras_config_load(bad, &cfg, &problems), 0);
	CU_ASSERT_EQUAL(ras_triage_new(cfg, MAPPINGS, &t), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "listed for both"));
	ras_config_free(cfg);
	/* An unknown automation level, or a service without a rule set, is refused. */
	{
		static const char c1[] = "[service midnotts]\nautomation = sometimes\n";
		static const char c2[] = "[service atlantis]\ners_service_ids = 5\n";
		char *p1 = ras_test_write_tmp("autom.conf", c1, strlen(c1));
		char *p2 = ras_test_write_tmp("atlantis.conf", c2, strlen(c2));

		CU_ASSERT_EQUAL_FATAL(ras_config_load(p1, &cfg, &problems), 0);
		CU_ASSERT_EQUAL(ras_triage_new(cfg, MAPPINGS, &t), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "administrative, all or none"));
		ras_config_free(cfg);
		CU_ASSERT_EQUAL_FATAL(ras_config_load(p2, &cfg, &problems), 0);
		CU_ASSERT_EQUAL(ras_triage_new(cfg, MAPPINGS, &t), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "no rule set"));
		ras_config_free(cfg);
		free(p1);
		free(p2);
	}
	/* Without a configuration nothing is assigned by default. */
	CU_ASSERT_EQUAL_FATAL(ras_triage_new(NULL, MAPPINGS, &t), 0);
	CU_ASSERT_PTR_NULL(ras_triage_assign(t, NULL, "21012", &why));
	CU_ASSERT_PTR_NOT_NULL(strstr(why, "default_service"));
	ras_triage_free(t);
	ras_buf_free(&problems);
	free(path);
	free(bad);
}

/* ---- scenarios --------------------------------------------------------------- */

struct base_answer {
	const char *link;
	char type;             /* b boolean, i integer, s string, c coding */
	const char *v;
};

static const struct base_answer good_form[] = {
	{ "pain-duration-weeks", 'i', "26" }, { "pain-daily", 'b', "true" },
	{ "diagnosis", 's', "Chronic low back pain" }, { "investigations-complete", 'b', "true" },
	{ "red-flags-screened", 'b', "true" }, { "suspected-cancer", 'b', "false" },
	{ "cancer-related-pain", 'b', "false" }, { "medication-optimised", 'b', "true" },
	{ "treatments-tried", 's', "Physiotherapy, naproxen: partial relief" },
	{ "accepts-chronic-pain", 'b', "true" }, { "motivated-to-engage", 'b', "true" },
	{ "acute-mental-illness", 'b', "false" }, { "severe-mental-health", 'b', "false" },
	{ "substance-misuse", 'b', "false" }, { "cognitive-impairment", 'c', "none" },
	{ "medically-stable", 'b', "true" }, { "under-investigation", 'b', "false" },
	{ "requires-surgical-opinion", 'b', "false" }, { "post-op-or-trauma-complication", 'b', "false" },
	{ "pregnancy-related-pain", 'b', "false" }, { "cfs-me", 'b', "false" },
	{ "secondary-care-advice-sought", 'b', "false" }, { "opioids", 'b', "true" },
	{ "patient-expectations", 's', "To manage the pain and return to work" },
	{ "booking-assistance", 'b', "false" }, { "dependants", 'b', "false" },
};

#define MAX_ANSWERS 64

static struct ras_answer
make_answer(struct ras_arena *a, const char *link, const char *v)
{
	struct ras_answer x = { .link_id = ras_arena_strdup(a, link) };
	char *end;
	long long n = strtoll(v, &end, 10);

	if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0) {
		x.type = RAS_ANSWER_BOOLEAN;
		x.b = v[0] == 't';
	} else if (*v && *end == '\0') {
		x.type = RAS_ANSWER_INTEGER;
		x.i = n;
	} else if (v[0] == '@') {
		x.type = RAS_ANSWER_CODING;
		x.system = FORM_URL;
		x.code = ras_arena_strdup(a, v + 1);
	} else {
		x.type = RAS_ANSWER_STRING;
		x.s = ras_arena_strdup(a, v);
	}
	return x;
}

static void
del_answers(struct ras_form *f, const char *link)
{
	size_t k = 0;

	for (size_t i = 0; i < f->n_answers; i++)
		if (strcmp(f->answers[i].link_id, link) != 0)
			f->answers[k++] = f->answers[i];
	f->n_answers = k;
}

static const char *
base_practice(const char *service)
{
	if (strcmp(service, "midnotts") == 0)
		return "C84009";
	if (strcmp(service, "bassetlaw-2022") == 0)
		return "C84001";
	return "J81002";
}

static void
build_referral(struct ras_arena *a, const char *service, struct ras_referral *r)
{
	struct ras_form *f = &r->form;

	memset(r, 0, sizeof(*r));
	r->source = RAS_PAYLOAD_FHIR_BUNDLE;
	r->local_id = "https://example.nhs.uk/referral|1";
	r->priority = RAS_PRIORITY_ROUTINE;
	r->patient.nhs_number = "9990000018";
	r->patient.nhs_number_status = RAS_NHSNO_OK;
	r->patient.has_birth_date = true;
	r->patient.birth_date = (struct ras_date){ 1970, 5, 14 };
	r->patient.practice_ods = base_practice(service);
	r->referrer.org_ods = base_practice(service);
	r->has_form = true;
	f->questionnaire = FORM_URL;
	f->version = "2";
	f->status = "completed";
	f->answers = ras_arena_calloc(a, MAX_ANSWERS, sizeof(*f->answers));
	for (size_t i = 0; i < sizeof(good_form) / sizeof(good_form[0]); i++) {
		const struct base_answer *b = &good_form[i];
		char v[128];

		snprintf(v, sizeof(v), "%s%s", b->type == 'c' ? "@" : "", b->v);
		f->answers[f->n_answers++] = make_answer(a, b->link, v);
	}
}

/* Apply one edit; returns false (and fails the test) on a test-table typo. */
static bool
apply_edit(struct ras_arena *a, struct ras_referral *r, const char *service, char *e,
    enum ras_automation *autom)
{
	char *colon = strchr(e, ':'), *arg, *eq;
	struct ras_form *f = &r->form;

	if (colon == NULL)
		return false;
	*colon = '\0';
	arg = colon + 1;
	eq = strchr(arg, '=');
	if (strcmp(e, "set") == 0 || strcmp(e, "add") == 0 || strcmp(e, "str") == 0 ||
	    strcmp(e, "coding") == 0) {
		struct ras_answer x;

		if (eq == NULL || f->n_answers >= MAX_ANSWERS)
			return false;
		*eq = '\0';
		if (strcmp(e, "set") == 0 || strcmp(e, "str") == 0 || strcmp(e, "coding") == 0)
			del_answers(f, arg);
		x = make_answer(a, arg, eq + 1);
		if (strcmp(e, "str") == 0) {
			x.type = RAS_ANSWER_STRING;
			x.s = ras_arena_strdup(a, eq + 1);
		} else if (strcmp(e, "coding") == 0) {
			char *bar = strchr(eq + 1, '|');

			if (bar == NULL)
				return false;
			*bar = '\0';
			x.type = RAS_ANSWER_CODING;
			x.system = ras_arena_strdup(a, eq + 1);
			x.code = ras_arena_strdup(a, bar + 1);
		}
		f->answers[f->n_answers++] = x;
	} else if (strcmp(e, "del") == 0) {
		del_answers(f, arg);
	} else if (strcmp(e, "dob") == 0) {
		r->patient.has_birth_date = strcmp(arg, "none") != 0;
		if (r->patient.has_birth_date && ras_date_parse(arg, &r->patient.birth_date) < 0)
			return false;
	} else if (strcmp(e, "practice") == 0) {
		r->patient.practice_ods = strcmp(arg, "none") ? ras_arena_strdup(a, arg) : NULL;
	} else if (strcmp(e, "referrer") == 0) {
		r->referrer.org_ods = strcmp(arg, "none") ? ras_arena_strdup(a, arg) : NULL;
	} else if (strcmp(e, "nhs") == 0) {
		r->patient.nhs_number = strcmp(arg, "none") ? ras_arena_strdup(a, arg) : NULL;
		r->patient.nhs_number_status = ras_nhsno_check(r->patient.nhs_number);
	} else if (strcmp(e, "source") == 0 && strcmp(arg, "ers") == 0) {
		r->source = RAS_PAYLOAD_ERS_REFERRAL;
		r->ubrn = "000000070000";
		r->version = 5;
	} else if (strcmp(e, "priority") == 0) {
		r->priority = strcmp(arg, "urgent") == 0 ? RAS_PRIORITY_URGENT :
		    strcmp(arg, "two-week-wait") == 0 ? RAS_PRIORITY_TWO_WEEK_WAIT : RAS_PRIORITY_ROUTINE;
	} else if (strcmp(e, "form") == 0 && strcmp(arg, "none") == 0) {
		r->has_form = false;
	} else if (strcmp(e, "version") == 0) {
		f->version = strcmp(arg, "none") ? ras_arena_strdup(a, arg) : NULL;
	} else if (strcmp(e, "questionnaire") == 0) {
		f->questionnaire = ras_arena_strdup(a, arg);
	} else if (strcmp(e, "status") == 0) {
		f->status = ras_arena_strdup(a, arg);
	} else if (strcmp(e, "automation") == 0) {
		int v = ras_rules_automation_parse(arg);

		if (v < 0)
			return false;
		*autom = (enum ras_automation)v;
	} else {
		return false;
	}
	(void)service;
	return true;
}

static bool
deadlines_match(const struct ras_decision *d, const char *spec, char *got, size_t size)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	size_t want = 0;
	bool ok = true;
	char copy[512], *cur = copy;

	for (size_t i = 0; i < d->n_deadlines; i++) {
		char due[RAS_TIME_STR_MAX];

		if (d->deadlines[i].hours)
			ras_time_format_uk(d->deadlines[i].due_at, due);
		else
			ras_date_format(&d->deadlines[i].due_date, due);
		(void)ras_buf_printf(&b, "%s%s=%s", i ? "," : "", d->deadlines[i].kind, due);
	}
	snprintf(got, size, "%s", b.data ? b.data : "");
	ras_buf_free(&b);
	snprintf(copy, sizeof(copy), "%s", spec);
	for (char *tok = next_token(&cur, ','); tok; tok = next_token(&cur, ',')) {
		char needle[sizeof(copy)];
		const char *hit;
		size_t l;

		want++;
		snprintf(needle, sizeof(needle), "%s", tok);
		l = strlen(needle);
		hit = strstr(got, needle);
		/* whole entries only */
		ok = ok && hit && (hit == got || hit[-1] == ',') && (hit[l] == '\0' || hit[l] == ',');
	}
	return ok && want == d->n_deadlines;
}

static bool
fact_matches(const json_t *facts, const char *spec)
{
	char name[128];
	const char *eq = strchr(spec, '='), *want;
	json_t *v;
	char buf[64];

	if (eq == NULL)
		return false;
	snprintf(name, sizeof(name), "%.*s", (int)(eq - spec), spec);
	want = eq + 1;
	v = json_object_get(facts, name);
	if (json_is_string(v))
		return strcmp(json_string_value(v), want) == 0;
	if (json_is_boolean(v))
		return strcmp(json_is_true(v) ? "true" : "false", want) == 0;
	if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return strcmp(buf, want) == 0;
	}
	return false;
}

static size_t next_scenario;

/* A scenario's referral, decided as the scenario says (0, or the error). */
static int
decide_scenario(struct ras_arena *a, const struct scenario *s, struct ras_decision *d, int64_t *at,
    struct ras_buf *facts_text)
{
	struct ras_referral r;
	enum ras_automation autom = RAS_AUTOMATION_ADMINISTRATIVE;
	const struct ras_ruleset *rs = ras_mappings_ruleset(maps, s->service);
	char edits[512], *cur = edits;
	int err;

	check(rs != NULL, __LINE__, "[%s] no rule set %s", s->clause, s->service);
	if (rs == NULL)
		return -1;
	build_referral(a, s->service, &r);
	snprintf(edits, sizeof(edits), "%s", s->edits);
	for (char *e = next_token(&cur, ';'); e; e = next_token(&cur, ';'))
		check(apply_edit(a, &r, s->service, e, &autom), __LINE__, "[%s] bad edit \"%s\"", s->name, e);
	if (ras_time_parse(s->at ? s->at : AT_DEFAULT, false, at) < 0 ||
	    ras_mappings_set_automation(maps, s->service, autom) < 0)
		return -1;
	err = ras_rules_decide(a, rs, &r, *at, ras_mappings_calendar(maps), *at + 60, d);
	if (err == 0 && facts_text)   /* (while the referral lives) */
		err = ras_rules_facts_text(d, facts_text);
	if (err == 0)
		err = ras_rules_facts_json(a, d);
	(void)ras_mappings_set_automation(maps, s->service, RAS_AUTOMATION_ADMINISTRATIVE);
	check(err == 0, __LINE__, "[%s %s] decide failed: %s", s->service, s->clause, ras_error_last());
	return err;
}

static void
run_scenario(void)
{
	const struct scenario *s = &scenarios[next_scenario++];
	struct ras_arena *a = ras_arena_new();
	struct ras_decision d;
	const struct ras_ruleset *rs = ras_mappings_ruleset(maps, s->service);
	char got[512];
	int64_t at;
	bool has_rule = false, has_advice = s->advice_has == NULL;

	if (decide_scenario(a, s, &d, &at, NULL) != 0) {
		ras_arena_free(a);
		return;
	}
	check(strcmp(ras_decision_outcome_name(d.outcome), s->outcome) == 0, __LINE__,
	    "[%s %s] %s: outcome %s, expected %s (first reason %s)", s->service, s->clause, s->name,
	    ras_decision_outcome_name(d.outcome), s->outcome, d.n_reasons ? d.reasons[0].rule : "-");
	check((s->target == NULL && d.onward_target == NULL) ||
	    (s->target && d.onward_target && strcmp(s->target, d.onward_target) == 0), __LINE__,
	    "[%s %s] %s: onward target %s, expected %s", s->service, s->clause, s->name,
	    d.onward_target ? d.onward_target : "null", s->target ? s->target : "null");
	if (s->final >= 0)
		check(d.final == (s->final == 1), __LINE__, "[%s %s] %s: final %d, expected %d",
		    s->service, s->clause, s->name, d.final, s->final);
	for (size_t i = 0; i < d.n_reasons; i++) {
		has_rule = has_rule || strcmp(d.reasons[i].rule, s->rule) == 0;
		has_advice = has_advice || (d.reasons[i].advice && strstr(d.reasons[i].advice, s->advice_has));
		/* Every reason cites a clause of its own spec. */
		check(d.reasons[i].clause && strncmp(d.reasons[i].clause, s->clause, 3) == 0, __LINE__,
		    "[%s] reason %s cites %s", s->name, d.reasons[i].rule, d.reasons[i].clause);
		if (d.outcome == RAS_OUTCOME_RETURN)
			check(d.reasons[i].advice != NULL && strlen(d.reasons[i].advice) > 40, __LINE__,
			    "[%s] a return without advice for the GP", s->name);
	}
	check(has_rule, __LINE__, "[%s %s] %s: rule %s not among the reasons (first: %s)", s->service,
	    s->clause, s->name, s->rule, d.n_reasons ? d.reasons[0].rule : "-");
	check(has_advice, __LINE__, "[%s %s] %s: no advice mentions \"%s\" (first: %s)", s->service,
	    s->clause, s->name, s->advice_has ? s->advice_has : "", d.n_reasons && d.reasons[0].advice ?
	    d.reasons[0].advice : "-");
	if (s->deadlines)
		check(deadlines_match(&d, s->deadlines, got, sizeof(got)), __LINE__,
		    "[%s %s] %s: deadlines %s, expected %s", s->service, s->clause, s->name, got, s->deadlines);
	if (s->fact)
		check(fact_matches(d.facts, s->fact), __LINE__, "[%s %s] %s: fact %s does not hold",
		    s->service, s->clause, s->name, s->fact);
	/* Never: a red flag or suspected cancer returned or accepted. */
	if (json_array_size(json_object_get(d.facts, "form.red-flags")) > 0 ||
	    json_is_true(json_object_get(d.facts, "form.suspected-cancer")))
		check(d.outcome == RAS_OUTCOME_ONWARD || d.outcome == RAS_OUTCOME_REVIEW, __LINE__,
		    "[%s] a red flag was %s", s->name, ras_decision_outcome_name(d.outcome));
	CU_ASSERT_STRING_EQUAL(d.ruleset_version, ras_rules_version(rs));
	CU_ASSERT_STRING_EQUAL(d.decided_by, "rules");
	CU_ASSERT_EQUAL(d.received_at, at);
	ras_arena_free(a);
}

/* ---- facts and golden decisions ------------------------------------------------ */

static void
facts_carry_no_patient_data(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_buf b = RAS_BUF_INIT(0);
	struct ras_referral r;
	struct ras_decision d;
	json_t *j;
	int64_t at;

	build_referral(a, "midnotts", &r);
	r.patient.family = "Example";
	r.patient.given = "Jane";
	r.patient.postcode = "NG24 1AA";
	CU_ASSERT_EQUAL_FATAL(ras_time_parse(AT_DEFAULT, false, &at), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_decide(a, ras_mappings_ruleset(maps, "midnotts"), &r, at,
	    ras_mappings_calendar(maps), at, &d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(a, &d), 0);
	CU_ASSERT_EQUAL_FATAL(ras_decision_to_json(&d, true, &j), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_dump(j, RAS_JSON_COMPACT, &b), 0);
	json_decref(j);
	CU_ASSERT_PTR_NULL(strstr(b.data, "9990000018"));
	CU_ASSERT_PTR_NULL(strstr(b.data, "1970-05-14"));
	CU_ASSERT_PTR_NULL(strstr(b.data, "Chronic low back pain"));
	CU_ASSERT_PTR_NULL(strstr(b.data, "return to work"));
	CU_ASSERT_PTR_NULL(strstr(b.data, "Example"));
	CU_ASSERT_PTR_NULL(strstr(b.data, "NG24"));
	/* …but it does record what the rules used. */
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"form.diagnosis\":true"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"patient.age\":55"));
	CU_ASSERT_PTR_NOT_NULL(strstr(b.data, "\"ruleset_version\":\""));
	ras_buf_free(&b);
	ras_arena_free(a);
}

/* The decision JSON (as rasctl triage prints it, plus the facts) of each
 * sample referral, against tests/golden/triage/. */
static void
golden_decisions(void)
{
	static const struct { const char *fixture, *service, *at, *golden; } cases[] = {
		{ "triage/midnotts-accept.json", "midnotts", "2026-04-02T09:30:00+01:00", "triage/midnotts-accept.json" },
		{ "triage/midnotts-out-of-area.json", "midnotts", "2026-04-02T09:30:00+01:00", "triage/midnotts-out-of-area.json" },
		{ "triage/midnotts-2ww.json", "midnotts", "2026-04-02T09:30:00+01:00", "triage/midnotts-2ww.json" },
		{ "triage/bassetlaw-short-duration.json", "bassetlaw-2022", "2026-12-23T15:00:00Z", "triage/bassetlaw-short-duration.json" },
		{ "triage/bassetlaw-surgical-opinion.json", "bassetlaw-2022", "2026-12-23T15:00:00Z", "triage/bassetlaw-surgical-opinion.json" },
		{ "triage/dorset-2019-old-form.json", "dorset-2019", "2026-03-27T16:00:00Z", "triage/dorset-2019-old-form.json" },
		{ "triage/dorset-2013-cauda-equina.json", "dorset-2013", "2026-04-03T10:00:00+01:00", "triage/dorset-2013-cauda-equina.json" },
		{ "ers/referral-Unbooked.json", "midnotts", "2026-04-02T09:30:00+01:00", "triage/ers-referral-Unbooked.json" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ras_arena *a = ras_arena_new();
		struct ras_buf b = RAS_BUF_INIT(0);
		struct ras_intake in;
		struct ras_decision d;
		size_t len;
		char *data = ras_test_read(ras_test_fixture(cases[i].fixture), &len);
		json_t *j;
		int64_t at;

		CU_ASSERT_EQUAL_FATAL(ras_intake_parse(a, NULL, data, len, &in), 0);
		CU_ASSERT_EQUAL_FATAL(ras_time_parse(cases[i].at, false, &at), 0);
		CU_ASSERT_EQUAL_FATAL(ras_rules_decide(a, ras_mappings_ruleset(maps, cases[i].service),
		    &in.referrals[0], at, ras_mappings_calendar(maps), at, &d), 0);
		CU_ASSERT_EQUAL_FATAL(ras_rules_facts_json(a, &d), 0);
		CU_ASSERT_EQUAL_FATAL(ras_decision_to_json(&d, false, &j), 0);
		/* The facts go in too (without the content hash, which changes with
		 * every edit of the mappings). */
		CU_ASSERT_EQUAL_FATAL(json_object_set(j, "facts", d.facts), 0);
		CU_ASSERT_EQUAL_FATAL(ras_json_dump(j, RAS_JSON_PRETTY | RAS_JSON_SORTED, &b), 0);
		(void)ras_buf_putc(&b, '\n');
		check(ras_test_golden(cases[i].golden, b.data, b.len), __LINE__,
		    "decision for %s differs from tests/golden/%s (see .actual)", cases[i].fixture, cases[i].golden);
		json_decref(j);
		ras_buf_free(&b);
		free(data);
		ras_arena_free(a);
	}
}

/*
 * Every scenario's whole decision (outcome, target, final, reasons with
 * their clauses and advice, deadlines, and the facts as stored) against
 * tests/golden/triage/scenarios.txt, recorded from the engine that looked
 * facts up by name: any change in how conditions are compiled or facts
 * built that alters one decision fails here.
 */
static void
golden_scenario_decisions(void)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *s = &scenarios[i];
		struct ras_arena *a = ras_arena_new();
		struct ras_decision d;
		int64_t at;
		json_t *j = NULL;

		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		if (decide_scenario(a, s, &d, &at, NULL) == 0 && ras_decision_to_json(&d, false, &j) == 0) {
			/* without the rule set's version, which changes with every edit
			 * of the mappings */
			(void)json_object_del(j, "ruleset_version");
			(void)json_object_set(j, "facts", d.facts);
			(void)ras_buf_printf(&b, "%s %s: %s\n", s->service, s->clause, s->name);
			CU_ASSERT_EQUAL(ras_json_dump(j, RAS_JSON_SORTED, &b), 0);
			(void)ras_buf_putc(&b, '\n');
		} else {
			check(false, __LINE__, "[%s %s] %s: no decision", s->service, s->clause, s->name);
		}
		json_decref(j);
		ras_arena_free(a);
	}
	check(ras_test_golden("triage/scenarios.txt", b.data, b.len), __LINE__,
	    "a scenario's decision differs from tests/golden/triage/scenarios.txt (see .actual)");
	ras_buf_free(&b);
}

/* The facts text of referral r (a fresh decision) against jansson's dump
 * of the facts object: true when both are the same bytes, or both fail. */
static bool
facts_text_same(const struct ras_ruleset *rs, const struct ras_referral *r, int64_t at)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_decision d;
	struct ras_buf text = RAS_BUF_INIT(0), dump = RAS_BUF_INIT(0);
	int et, ej;
	bool same;

	if (a == NULL || ras_rules_decide(a, rs, r, at, ras_mappings_calendar(maps), at, &d) < 0) {
		ras_arena_free(a);
		return false;
	}
	et = ras_rules_facts_text(&d, &text);
	ej = ras_rules_facts_json(a, &d);
	if (ej == 0)
		ej = ras_json_dump(d.facts, RAS_JSON_COMPACT, &dump);
	same = (et < 0 && ej < 0) || (et == 0 && ej == 0 && text.len == dump.len &&
	    memcmp(text.data, dump.data, text.len) == 0);
	ras_buf_free(&text);
	ras_buf_free(&dump);
	ras_arena_free(a);
	return same;
}

/*
 * ras_rules_facts_text writes what jansson writes of the facts object:
 * for every scenario, and for strings that need escapes, are not ASCII or
 * are not UTF-8 (then both fail).
 */
static void
facts_text_is_the_objects_json(void)
{
	static const char *const odd[] = {
		"C8\"4009", "C84\\009", "C84\n009", "C84\x01" "009", "C84\x7f" "009", "C84/009",
		"Cr\xc3\xa9" "009", "a quote \" after eight bytes", "a backslash after 8 \\",
		"\xe2\x82\xac euro \xf0\x9f\x98\x80", "\xff not UTF-8", "C84\xc3" "009",
	};
	const struct ras_ruleset *rs = ras_mappings_ruleset(maps, "midnotts");
	int64_t at = 0;

	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		const struct scenario *s = &scenarios[i];
		struct ras_arena *a = ras_arena_new();
		struct ras_decision d;
		struct ras_buf text = RAS_BUF_INIT(0), dump = RAS_BUF_INIT(0);

		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		if (decide_scenario(a, s, &d, &at, &text) == 0) {
			CU_ASSERT_EQUAL(ras_json_dump(d.facts, RAS_JSON_COMPACT, &dump), 0);
			check(text.len == dump.len && memcmp(text.data, dump.data, text.len) == 0, __LINE__,
			    "[%s %s] %s: the facts text is not the facts object's JSON", s->service, s->clause,
			    s->name);
		}
		ras_buf_free(&text);
		ras_buf_free(&dump);
		ras_arena_free(a);
	}
	CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
	CU_ASSERT_EQUAL_FATAL(ras_time_parse(AT_DEFAULT, false, &at), 0);
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		struct ras_arena *a = ras_arena_new();
		struct ras_referral r;
		const char *doubts[1] = { odd[i] };

		CU_ASSERT_PTR_NOT_NULL_FATAL(a);
		build_referral(a, "midnotts", &r);
		r.patient.practice_ods = odd[i];
		check(facts_text_same(rs, &r, at), __LINE__, "practice \"%s\"", odd[i]);
		build_referral(a, "midnotts", &r);
		r.referrer.org_ods = odd[i];
		r.form.version = odd[i];
		check(facts_text_same(rs, &r, at), __LINE__, "referrer and form version \"%s\"", odd[i]);
		build_referral(a, "midnotts", &r);
		r.form.answers[r.form.n_answers++] = (struct ras_answer){ .link_id = "red-flags",
			.type = RAS_ANSWER_CODING, .system = FORM_URL, .code = odd[i] };
		r.form.answers[r.form.n_answers++] = (struct ras_answer){ .link_id = odd[i],
			.type = RAS_ANSWER_CODING, .system = FORM_URL, .code = "cauda-equina" };
		r.doubts = doubts;
		r.n_doubts = 1;
		check(facts_text_same(rs, &r, at), __LINE__, "codes, linkId and doubt \"%s\"", odd[i]);
		ras_arena_free(a);
	}
}

/* The net's result as text, to compare two of them. */
static void
net_text(const struct ras_safety_net *n, struct ras_buf *b)
{
	char buf[RAS_SAFETY_NOTE_TEXT_MAX];

	(void)ras_buf_printf(b, "%d%d%d%d%d%d %zu %zu:", n->danger, n->cauda_equina,
	    n->suspected_cancer, n->two_week_wait, n->urgent, n->red_flag, n->forms_seen,
	    n->answers_seen);
	for (size_t i = 0; i < n->n_signals; i++)
		(void)ras_buf_printf(b, " s[%s]", ras_safety_net_note_text(&n->signals[i], buf));
	for (size_t i = 0; i < n->n_doubts; i++)
		(void)ras_buf_printf(b, " d[%s]", ras_safety_net_note_text(&n->doubts[i], buf));
}

/*
 * The safety net given the form check's match of answers to items reads
 * every referral as it does without it: for every scenario, and with
 * answers the net must notice (red flags as text, as a code, unreadable;
 * a cancer item coded; an answer of a type rasd does not read; an item
 * off the form), read with the version they name or, unknown, the current.
 */
static void
net_with_the_form_checks_match(void)
{
	struct ras_arena *qa = ras_arena_new();
	size_t len;
	char *t2 = ras_test_read(RAS_SOURCE_ROOT "/mappings/forms/community-pain-referral-v2.json", &len);
	char *t1 = ras_test_read(RAS_SOURCE_ROOT "/mappings/forms/community-pain-referral-v1.json", &len);
	json_t *j2, *j1;
	struct ras_questionnaire q2, q1;
	const struct ras_questionnaire *qs[2] = { &q1, &q2 };
	const struct ras_safety_net_items *ix = NULL;
	static const struct ras_answer extra[] = {
		{ .link_id = "red-flags", .type = RAS_ANSWER_STRING, .s = "numb saddle" },
		{ .link_id = "red-flags", .type = RAS_ANSWER_CODING, .system = FORM_URL, .code = "true" },
		{ .link_id = "red-flags", .type = RAS_ANSWER_OTHER },
		{ .link_id = "suspected-cancer", .type = RAS_ANSWER_CODING, .system = FORM_URL, .code = "x" },
		{ .link_id = "diagnosis", .type = RAS_ANSWER_OTHER },
		{ .link_id = "diagnosis", .type = RAS_ANSWER_CODING, .system = FORM_URL,
		  .code = "cauda-equina" },
		{ .link_id = "shoe-size", .type = RAS_ANSWER_INTEGER, .i = 9 },
		{ .link_id = "red-flags", .type = RAS_ANSWER_CODING, .system = FORM_URL,
		  .code = "cauda-equina" },
	};
	static const char *const versions[] = { "2", "1", "9" };

	CU_ASSERT_PTR_NOT_NULL_FATAL(qa);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t2);
	CU_ASSERT_PTR_NOT_NULL_FATAL(t1);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(qa, t2, strlen(t2), 0, &j2), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse_arena(qa, t1, strlen(t1), 0, &j1), 0);
	CU_ASSERT_EQUAL_FATAL(ras_form_questionnaire_parse(qa, j2, &q2), 0);
	CU_ASSERT_EQUAL_FATAL(ras_form_questionnaire_parse(qa, j1, &q1), 0);
	CU_ASSERT_EQUAL_FATAL(ras_safety_net_items_new(qa, qs, 2, &ix), 0);
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		for (size_t e = 0; e <= sizeof(extra) / sizeof(extra[0]); e++)
			for (size_t v = 0; v < 9; v++) {
				const struct scenario *s = &scenarios[i];
				struct ras_arena *a = ras_arena_new();
				struct ras_referral r;
				struct ras_form_check fc;
				struct ras_safety_net_match m;
				struct ras_safety_net with, without;
				struct ras_buf bw = RAS_BUF_INIT(0), bo = RAS_BUF_INIT(0);
				enum ras_automation autom = RAS_AUTOMATION_ADMINISTRATIVE;
				char edits[512], *cur = edits;

				CU_ASSERT_PTR_NOT_NULL_FATAL(a);
				build_referral(a, s->service, &r);
				snprintf(edits, sizeof(edits), "%s", s->edits);
				for (char *x = next_token(&cur, ';'); x; x = next_token(&cur, ';'))
					(void)apply_edit(a, &r, s->service, x, &autom);
				if (e < sizeof(extra) / sizeof(extra[0]) && r.form.n_answers < MAX_ANSWERS)
					r.form.answers[r.form.n_answers++] = extra[e];
				r.form.version = versions[v % 3];
				/* each linkId's length as a reader gives it: unknown (0),
				 * right, or (a reader's bug) one short; the check matches
				 * by it, and the net must read the same whichever */
				for (size_t k = 0; k < r.form.n_answers; k++) {
					struct ras_answer *an = &r.form.answers[k];
					size_t l = strlen(an->link_id);

					an->link_id_len = v / 3 == 0 ? 0 : v / 3 == 1 ? l : l > 1 ? l - 1 : 0;
				}
				CU_ASSERT_EQUAL_FATAL(ras_form_check(a, qs, 2, &r.form, NULL, 0, &fc), 0);
				if (fc.q == NULL)
					CU_ASSERT_EQUAL_FATAL(ras_form_check_as(a, &q2, &r.form, NULL, 0, &fc), 0);
				m = (struct ras_safety_net_match){ .form = fc.q == &q1 ? 0 : 1, .item_of = fc.item_of };
				CU_ASSERT_EQUAL(ras_safety_net_check(a, &r, ix, &m, &with), 0);
				CU_ASSERT_EQUAL(ras_safety_net_check(a, &r, ix, NULL, &without), 0);
				net_text(&with, &bw);
				net_text(&without, &bo);
				check(bw.len == bo.len && memcmp(bw.data, bo.data, bw.len) == 0, __LINE__,
				    "[%s %s] %s, extra %zu, version %s, length %zu: the net reads %s with the match, %s without",
				    s->service, s->clause, s->name, e, versions[v % 3], v / 3, bw.data, bo.data);
				/* the coded cauda equina red flag is seen through the match */
				if (e == sizeof(extra) / sizeof(extra[0]) - 1 && r.has_form)
					check(with.danger && with.cauda_equina, __LINE__,
					    "[%s] %s, version %s, length %zu: a coded cauda equina red flag missed",
					    s->service, s->name, versions[v % 3], v / 3);
				ras_buf_free(&bw);
				ras_buf_free(&bo);
				ras_arena_free(a);
			}
	free(t2);
	free(t1);
	ras_arena_free(qa);
}

static void
deadlines_for_a_clinician(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_deadline *dl;
	size_t n;
	bool cov;
	int64_t at;

	CU_ASSERT_EQUAL_FATAL(ras_time_parse("2026-04-02T09:00:00+01:00", false, &at), 0);
	/* A clinician accepts a Mid Notts referral: the acceptance clocks, from receipt. */
	CU_ASSERT_EQUAL_FATAL(ras_rules_deadlines(a, ras_mappings_ruleset(maps, "midnotts"),
	    RAS_OUTCOME_ACCEPT, NULL, false, true, at, ras_mappings_calendar(maps), &dl, &n, &cov), 0);
	CU_ASSERT_EQUAL(n, 4);
	CU_ASSERT_TRUE(cov);
	CU_ASSERT_STRING_EQUAL(dl[0].kind, "triage");
	CU_ASSERT_STRING_EQUAL(dl[1].kind, "contact");
	CU_ASSERT_EQUAL(ras_date_cmp(&dl[1].due_date, &(struct ras_date){ 2026, 4, 13 }), 0);
	CU_ASSERT_STRING_EQUAL(dl[1].clause, "004 \xc2\xa7" "3.6(3)");
	/* end of that day in UK civil time (BST) */
	{
		char buf[RAS_TIME_STR_MAX];

		ras_time_format_uk(dl[1].due_at, buf);
		CU_ASSERT_STRING_EQUAL(buf, "2026-04-13T23:59:59+01:00");
	}
	ras_arena_free(a);
}

/* ---- the engine's day cache ------------------------------------------------ */

/* A decision made on a thread of its own (the engine's per-thread day
 * cache empty). */
struct fresh_decision {
	const struct ras_ruleset *rs;
	const struct ras_referral *r;
	int64_t at;
	struct ras_arena *a;
	struct ras_decision d;
	int err;
};

static void *
decide_fresh(void *p)
{
	struct fresh_decision *f = p;

	f->err = ras_rules_decide(f->a, f->rs, f->r, f->at, ras_mappings_calendar(maps), f->at, &f->d);
	return NULL;
}

/* The engine keeps the last UK day it placed a time in (day 0 and the hour
 * clocks' due times) per thread: a thread that has decided referrals of
 * other days, across the clock changes and a new year, reaches the same
 * day 0, clocks and due dates as one that decided nothing before, and an
 * hour clock falls due on the UK day of its instant. */
static void
day_cache_changes_no_decision(void)
{
	static const char *const services[] = { "midnotts", "bassetlaw-2022", "dorset-2019", "dorset-2013" };
	static const char *const edges[] = { "2026-03-29T01:00:00Z", "2026-10-25T01:00:00Z",
		"2026-12-31T23:30:00Z" };
	struct ras_referral r;
	size_t n_hours = 0, n_compared = 0;

	memset(&r, 0, sizeof(r));
	r.source = RAS_PAYLOAD_FHIR_BUNDLE;
	r.priority = RAS_PRIORITY_ROUTINE;
	r.patient.nhs_number = "9990000018";
	r.patient.has_birth_date = true;
	r.patient.birth_date = (struct ras_date){ 1970, 6, 15 };
	r.patient.practice_ods = "C84009";
	r.referrer.org_ods = "C84009";
	for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++) {
		int64_t edge;

		CU_ASSERT_EQUAL_FATAL(ras_time_parse(edges[e], false, &edge), 0);
		/* each time twice: after the one before it, and after one three days on */
		for (int64_t t = edge - 2 * 86400; t < edge + 2 * 86400; t += 5831)
			for (size_t s = 0; s < sizeof(services) / sizeof(services[0]); s++)
				for (int pass = 0; pass < 2; pass++) {
					const struct ras_ruleset *rs = ras_mappings_ruleset(maps, services[s]);
					struct ras_arena *a = ras_arena_new();
					struct fresh_decision f = { .rs = rs, .r = &r, .at = t, .a = ras_arena_new() };
					struct ras_decision d, other;
					pthread_t th;

					CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
					CU_ASSERT_PTR_NOT_NULL_FATAL(a);
					CU_ASSERT_PTR_NOT_NULL_FATAL(f.a);
					if (pass == 1)
						CU_ASSERT_EQUAL_FATAL(ras_rules_decide(a, rs, &r, t + 3 * 86400,
						    ras_mappings_calendar(maps), t + 3 * 86400, &other), 0);
					CU_ASSERT_EQUAL_FATAL(ras_rules_decide(a, rs, &r, t, ras_mappings_calendar(maps),
					    t, &d), 0);
					CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, decide_fresh, &f), 0);
					CU_ASSERT_EQUAL_FATAL(pthread_join(th, NULL), 0);
					CU_ASSERT_EQUAL_FATAL(f.err, 0);
					CU_ASSERT_EQUAL(d.outcome, f.d.outcome);
					CU_ASSERT_EQUAL_FATAL(d.n_deadlines, f.d.n_deadlines);
					for (size_t k = 0; k < d.n_deadlines; k++) {
						const struct ras_deadline *x = &d.deadlines[k], *y = &f.d.deadlines[k];

						CU_ASSERT_STRING_EQUAL(x->kind, y->kind);
						CU_ASSERT_EQUAL(x->hours, y->hours);
						CU_ASSERT_EQUAL(ras_date_cmp(&x->due_date, &y->due_date), 0);
						CU_ASSERT_EQUAL(x->due_at, y->due_at);
						if (x->hours) {
							struct ras_date uk;

							ras_time_uk_date(x->due_at, &uk, NULL);
							CU_ASSERT_EQUAL(ras_date_cmp(&uk, &x->due_date), 0);
							n_hours++;
						}
						n_compared++;
					}
					ras_arena_free(f.a);
					ras_arena_free(a);
				}
	}
	/* the comparison ran, hour clocks included */
	CU_ASSERT_TRUE(n_compared > 1000);
	CU_ASSERT_TRUE(n_hours > 100);
}

/* Found by fuzz_triage: an e-RS ReferralRequest whose supportingInfo points
 * at a contained resource without a resourceType crashed intake. */
static void
intake_contained_without_type(void)
{
	static const char rr[] =
	    "{\"resourceType\": \"ReferralRequest\", \"id\": \"000000070001\","
	    " \"meta\": {\"versionId\": \"2\"}, \"contained\": [{\"id\": \"x\"}],"
	    " \"supportingInfo\": [{\"reference\": \"#x\"}]}";
	struct ras_arena *a = ras_arena_new();
	struct ras_intake in;

	CU_ASSERT_EQUAL(ras_intake_parse(a, NULL, rr, strlen(rr), &in), 0);
	CU_ASSERT_EQUAL(in.n_referrals, 1);
	CU_ASSERT_EQUAL(in.referrals[0].n_attachments, 0);
	ras_arena_free(a);
}

/* ---- main ------------------------------------------------------------------- */

int
main(void)
{
	static const struct ras_test_case unit[] = {
		{ "calendar: working days over England and Wales bank holidays", calendar_working_days },
		{ "calendar: working days from the index are those of a walk", calendar_index_matches_a_walk },
		{ "calendar: bad bank-holiday files are refused", calendar_rejects_bad_files },
		{ "form: the shipped Questionnaires load", questionnaires_load },
		{ "form: a response checked against its Questionnaire", form_check },
		{ "form: linkIds matched as strcmp matches them (generated ids)", form_match_property },
		{ "form: Questionnaires rasd cannot check are refused", questionnaire_rejects },
		{ "rules: rule-set validation errors", ruleset_validation },
		{ "rules: a rule set naming facts the typed facts cannot hold does not load",
		  ruleset_facts_the_engine_cannot_hold },
		{ "rules: the four shipped rule sets, every rule with a scenario", shipped_rulesets },
		{ "mappings: broken or renamed files are refused; the hash follows the practice list", mappings_errors },
		{ "triage: configuration, automation override and service assignment", config_assignment },
		{ "rules: facts carry no patient-identifiable data", facts_carry_no_patient_data },
		{ "rules: golden decisions for the sample referrals", golden_decisions },
		{ "rules: every scenario's whole decision is unchanged", golden_scenario_decisions },
		{ "rules: the facts text is the facts object's JSON", facts_text_is_the_objects_json },
		{ "safety net: the form check's match changes nothing it reads", net_with_the_form_checks_match },
		{ "rules: the clocks of a clinician's decision", deadlines_for_a_clinician },
		{ "rules: the engine's day cache changes no day 0, clock or due date", day_cache_changes_no_decision },
		{ "intake: a contained resource without a type (fuzz regression)", intake_contained_without_type },
		{ NULL, NULL },
	};
	size_t n = sizeof(scenarios) / sizeof(scenarios[0]);
	struct ras_test_case *cases = calloc(n + 1, sizeof(*cases));
	struct ras_test_suite suites[] = {
		{ "triage", unit, NULL, NULL },
		{ "scenarios", cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int rc;

	if (ras_mappings_load(MAPPINGS, &maps) < 0) {
		fprintf(stderr, "cannot load %s: %s\n", MAPPINGS, ras_error_last());
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		char *name = malloc(512);

		snprintf(name, 512, "%s %s: %s", scenarios[i].service, scenarios[i].clause, scenarios[i].name);
		cases[i].name = name;
		cases[i].fn = run_scenario;
	}
	rc = ras_test_run_suites(suites);
	for (size_t i = 0; i < n; i++)
		free((char *)cases[i].name);
	free(cases);
	ras_mappings_free(maps);
	return rc;
}
