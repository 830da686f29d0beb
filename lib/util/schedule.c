/* schedule: poll schedules (see include/ras/schedule.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ras/error.h"
#include "ras/schedule.h"

#define LOOK_DAYS 31

static int
parse_hhmm(const char *s, size_t len, int *out)
{
	int h, m;

	if (len != 5 || s[2] != ':' || s[0] < '0' || s[0] > '2' || s[1] < '0' || s[1] > '9' ||
	    s[3] < '0' || s[3] > '5' || s[4] < '0' || s[4] > '9')
		return RAS_EINVALID;
	h = (s[0] - '0') * 10 + (s[1] - '0');
	m = (s[3] - '0') * 10 + (s[4] - '0');
	if (h > 23)
		return RAS_EINVALID;
	*out = h * 3600 + m * 60;
	return 0;
}

static int
cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;

	return (x > y) - (x < y);
}

int
ras_schedule_parse(const char *text, struct ras_schedule *out)
{
	struct ras_schedule s;
	const char *p = text;

	memset(&s, 0, sizeof(s));
	if (text == NULL)
		return ras_error_code(RAS_EINVALID, "empty schedule");
	while (*p == ' ')
		p++;
	if (strncmp(p, "every ", 6) == 0) {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(p + 6, &end, 10);
		if (errno || end == p + 6 || n <= 0)
			return ras_error_code(RAS_EINVALID, "schedule \"%.60s\": expected \"every N[s|m|h]\"", text);
		if (*end == 'm')
			n *= 60, end++;
		else if (*end == 'h')
			n *= 3600, end++;
		else if (*end == 's')
			end++;
		while (*end == ' ')
			end++;
		if (*end != '\0' || n < 10 || n > 7 * 86400)
			return ras_error_code(RAS_EINVALID,
			    "schedule \"%.60s\": the interval must be between 10 seconds and 7 days", text);
		s.every = n;
		*out = s;
		return 0;
	}
	if (strncmp(p, "daily ", 6) == 0) {
		s.all_days = true;
		p += 6;
	}
	while (*p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *q = p;
		int t;

		while (len && *q == ' ')
			q++, len--;
		while (len && q[len - 1] == ' ')
			len--;
		if (parse_hhmm(q, len, &t) < 0)
			return ras_error_code(RAS_EINVALID,
			    "schedule \"%.60s\": \"%.*s\" is not a time HH:MM", text, (int)(len > 20 ? 20 : len), q);
		if (s.ntimes == RAS_SCHEDULE_TIMES_MAX)
			return ras_error_code(RAS_EINVALID, "schedule \"%.60s\": more than %d times", text,
			    RAS_SCHEDULE_TIMES_MAX);
		for (int i = 0; i < s.ntimes; i++)
			if (s.times[i] == t)
				return ras_error_code(RAS_EINVALID, "schedule \"%.60s\": a time is repeated", text);
		s.times[s.ntimes++] = t;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	if (s.ntimes == 0)
		return ras_error_code(RAS_EINVALID, "schedule \"%.60s\" names no time", text);
	qsort(s.times, (size_t)s.ntimes, sizeof(s.times[0]), cmp_int);
	*out = s;
	return 0;
}

static bool
is_day(const struct ras_schedule *s, const struct ras_date *d, ras_workday_fn workday, void *ctx)
{
	if (s->all_days)
		return true;
	if (workday)
		return workday(d, ctx);
	return ras_date_weekday(d) <= 5;
}

/* Instant of local time-of-day `secs` on date d.  Across the clock change
 * the offset at local midnight is used, then corrected once. */
static int64_t
at_local(const struct ras_date *d, int secs)
{
	int64_t mid = ras_time_uk_midnight(d), t = mid + secs;

	return t - (ras_time_uk_offset(t) - ras_time_uk_offset(mid));
}

int
ras_schedule_prev(const struct ras_schedule *s, int64_t now, ras_workday_fn workday, void *ctx,
    int64_t *out)
{
	struct ras_date today;
	int secs;

	if (s->every > 0) {
		int64_t q = now / s->every;

		if (now < 0 && now % s->every)
			q--;
		*out = q * s->every;
		return 0;
	}
	ras_time_uk_date(now, &today, &secs);
	for (int back = 0; back <= LOOK_DAYS; back++) {
		struct ras_date d;

		ras_date_add_days(&today, -back, &d);
		if (!is_day(s, &d, workday, ctx))
			continue;
		for (int i = s->ntimes - 1; i >= 0; i--) {
			int64_t t = at_local(&d, s->times[i]);

			if (t <= now) {
				*out = t;
				return 0;
			}
		}
	}
	return ras_error_code(RAS_ENOTFOUND, "no scheduled time in the last %d days", LOOK_DAYS);
}

int
ras_schedule_next(const struct ras_schedule *s, int64_t after, ras_workday_fn workday, void *ctx,
    int64_t *out)
{
	struct ras_date today;
	int secs;

	if (s->every > 0) {
		int64_t prev;

		(void)ras_schedule_prev(s, after, workday, ctx, &prev);
		*out = prev + s->every;
		return 0;
	}
	ras_time_uk_date(after, &today, &secs);
	for (int fwd = 0; fwd <= LOOK_DAYS; fwd++) {
		struct ras_date d;

		ras_date_add_days(&today, fwd, &d);
		if (!is_day(s, &d, workday, ctx))
			continue;
		for (int i = 0; i < s->ntimes; i++) {
			int64_t t = at_local(&d, s->times[i]);

			if (t > after) {
				*out = t;
				return 0;
			}
		}
	}
	return ras_error_code(RAS_ENOTFOUND, "no scheduled time in the next %d days", LOOK_DAYS);
}
