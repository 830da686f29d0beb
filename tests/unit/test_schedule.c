/* Unit tests: poll schedules (lib/schedule.c). */
#include <string.h>

#include "harness.h"
#include "ras/error.h"
#include "ras/schedule.h"
#include "ras/time.h"

static int64_t
at(const char *iso)
{
	int64_t t = 0;

	CU_ASSERT_EQUAL_FATAL(ras_time_parse(iso, false, &t), 0);
	return t;
}

static void
parse_forms(void)
{
	struct ras_schedule s;

	CU_ASSERT_EQUAL(ras_schedule_parse("13:00, 08:00", &s), 0);
	CU_ASSERT_EQUAL(s.every, 0);
	CU_ASSERT_EQUAL(s.ntimes, 2);
	CU_ASSERT_EQUAL(s.times[0], 8 * 3600);     /* sorted */
	CU_ASSERT_EQUAL(s.times[1], 13 * 3600);
	CU_ASSERT_FALSE(s.all_days);
	CU_ASSERT_EQUAL(ras_schedule_parse("daily 06:30", &s), 0);
	CU_ASSERT_TRUE(s.all_days);
	CU_ASSERT_EQUAL(s.times[0], 6 * 3600 + 1800);
	CU_ASSERT_EQUAL(ras_schedule_parse("every 5m", &s), 0);
	CU_ASSERT_EQUAL(s.every, 300);
	CU_ASSERT_EQUAL(ras_schedule_parse("every 2h", &s), 0);
	CU_ASSERT_EQUAL(s.every, 7200);
	CU_ASSERT_EQUAL(ras_schedule_parse("every 45", &s), 0);
	CU_ASSERT_EQUAL(s.every, 45);
}

static void
parse_errors(void)
{
	struct ras_schedule s;
	static const char *bad[] = { "", "8:00", "24:00", "08:60", "08:00,08:00", "every", "every 0",
		"every 5", "every 8d", "every -3m", "08:00;13:00", "daily", NULL };

	for (int i = 0; bad[i]; i++) {
		CU_ASSERT_EQUAL(ras_schedule_parse(bad[i], &s), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "schedule"));
	}
}

static void
working_day_slots(void)
{
	struct ras_schedule s;
	int64_t t = 0;

	CU_ASSERT_EQUAL_FATAL(ras_schedule_parse("08:00,13:00", &s), 0);
	/* Wednesday 2026-01-14 10:00 UTC (GMT): the latest slot is 08:00 that day. */
	CU_ASSERT_EQUAL(ras_schedule_prev(&s, at("2026-01-14T10:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-01-14T08:00:00Z"));
	CU_ASSERT_EQUAL(ras_schedule_next(&s, at("2026-01-14T10:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-01-14T13:00:00Z"));
	/* A slot exactly now is the current one; next is strictly after. */
	CU_ASSERT_EQUAL(ras_schedule_prev(&s, at("2026-01-14T13:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-01-14T13:00:00Z"));
	/* Saturday morning: the latest slot is Friday 13:00; the next Monday 08:00. */
	CU_ASSERT_EQUAL(ras_schedule_prev(&s, at("2026-01-17T09:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-01-16T13:00:00Z"));
	CU_ASSERT_EQUAL(ras_schedule_next(&s, at("2026-01-17T09:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-01-19T08:00:00Z"));
}

static void
uk_summer_time(void)
{
	struct ras_schedule s;
	int64_t t = 0;

	CU_ASSERT_EQUAL_FATAL(ras_schedule_parse("daily 08:00", &s), 0);
	/* 08:00 BST is 07:00 UTC in July. */
	CU_ASSERT_EQUAL(ras_schedule_next(&s, at("2026-07-01T00:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-07-01T07:00:00Z"));
	/* The day the clocks go forward (Sunday 29 March 2026). */
	CU_ASSERT_EQUAL(ras_schedule_next(&s, at("2026-03-29T00:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-03-29T07:00:00Z"));
	/* … and back (Sunday 25 October 2026). */
	CU_ASSERT_EQUAL(ras_schedule_next(&s, at("2026-10-25T00:00:00Z"), NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-10-25T08:00:00Z"));
}

static bool
no_christmas(const struct ras_date *d, void *ctx)
{
	(void)ctx;
	if (d->month == 12 && (d->day == 25 || d->day == 28))
		return false;
	return ras_date_weekday(d) <= 5;
}

static void
holidays_from_caller(void)
{
	struct ras_schedule s;
	int64_t t = 0;

	CU_ASSERT_EQUAL_FATAL(ras_schedule_parse("08:00", &s), 0);
	/* Thursday 24 Dec 2026 after 08:00: Friday 25 and Monday 28 are holidays. */
	CU_ASSERT_EQUAL(ras_schedule_next(&s, at("2026-12-24T09:00:00Z"), no_christmas, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-12-29T08:00:00Z"));
	CU_ASSERT_EQUAL(ras_schedule_prev(&s, at("2026-12-28T12:00:00Z"), no_christmas, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, at("2026-12-24T08:00:00Z"));
}

static void
interval_slots(void)
{
	struct ras_schedule s;
	int64_t t = 0;

	CU_ASSERT_EQUAL_FATAL(ras_schedule_parse("every 300", &s), 0);
	CU_ASSERT_EQUAL(ras_schedule_prev(&s, 1000, NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, 900);
	CU_ASSERT_EQUAL(ras_schedule_next(&s, 1000, NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, 1200);
	CU_ASSERT_EQUAL(ras_schedule_next(&s, 1200, NULL, NULL, &t), 0);
	CU_ASSERT_EQUAL(t, 1500);
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "parse", parse_forms },
		{ "parse errors", parse_errors },
		{ "working-day slots", working_day_slots },
		{ "UK summer time", uk_summer_time },
		{ "holidays from the caller", holidays_from_caller },
		{ "intervals", interval_slots },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "schedule", cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
