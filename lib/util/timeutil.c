/* timeutil: dates, instants and UK civil time (see include/ras/timeutil.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ras/error.h"
#include "ras/timeutil.h"

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int
days_in_month(int y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

bool
ras_date_valid(const struct ras_date *d)
{
	return d->year >= 1 && d->year <= 9999 && d->month >= 1 && d->month <= 12 &&
	    d->day >= 1 && d->day <= days_in_month(d->year, d->month);
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t
ras_date_to_days(const struct ras_date *d)
{
	int64_t y = d->year - (d->month <= 2);
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t mp = (d->month + 9) % 12;
	int64_t doy = (153 * mp + 2) / 5 + d->day - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

void
ras_date_from_days(int64_t z, struct ras_date *out)
{
	int64_t era, doe, yoe, y, doy, mp, d, m;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	y = yoe + era * 400;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	out->year = (int)(y + (m <= 2));
	out->month = (int)m;
	out->day = (int)d;
}

int
ras_date_weekday(const struct ras_date *d)
{
	int64_t days = ras_date_to_days(d);
	/* 1970-01-01 was a Thursday (4). */
	int64_t w = (days + 3) % 7;

	if (w < 0)
		w += 7;
	return (int)w + 1;
}

void
ras_date_add_days(const struct ras_date *d, int64_t n, struct ras_date *out)
{
	ras_date_from_days(ras_date_to_days(d) + n, out);
}

int
ras_date_cmp(const struct ras_date *a, const struct ras_date *b)
{
	if (a->year != b->year)
		return a->year < b->year ? -1 : 1;
	if (a->month != b->month)
		return a->month < b->month ? -1 : 1;
	if (a->day != b->day)
		return a->day < b->day ? -1 : 1;
	return 0;
}

static int
digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

int
ras_date_parse(const char *s, struct ras_date *out)
{
	struct ras_date d;

	if (s == NULL || strlen(s) != 10 || s[4] != '-' || s[7] != '-' ||
	    digits(s, 4, &d.year) < 0 || digits(s + 5, 2, &d.month) < 0 ||
	    digits(s + 8, 2, &d.day) < 0 || !ras_date_valid(&d))
		return ras_error_code(RAS_EINVALID, "invalid date \"%.40s\" (expected YYYY-MM-DD)",
		    s ? s : "");
	*out = d;
	return 0;
}

void
ras_date_format(const struct ras_date *d, char *buf)
{
	(void)snprintf(buf, RAS_DATE_STR_MAX, "%04d-%02d-%02d", d->year % 10000,
	    d->month % 100, d->day % 100);
}

int
ras_date_age_years(const struct ras_date *birth, const struct ras_date *on)
{
	int age = on->year - birth->year;
	int bm = birth->month, bd = birth->day;

	if (bm == 2 && bd == 29 && !is_leap(on->year)) {
		bm = 3;
		bd = 1;
	}
	if (on->month < bm || (on->month == bm && on->day < bd))
		age--;
	return age;
}

void
ras_date_add_months(const struct ras_date *d, int n, struct ras_date *out)
{
	int total = d->year * 12 + (d->month - 1) + n;
	int y = total / 12, m = total % 12 + 1;
	int dim = days_in_month(y, m);

	out->year = y;
	out->month = m;
	out->day = d->day > dim ? dim : d->day;
}

/* Last Sunday of `month` in `year`, as days since the epoch. */
static int64_t
last_sunday(int year, int month)
{
	struct ras_date d = { year, month, days_in_month(year, month) };
	int wd = ras_date_weekday(&d);

	return ras_date_to_days(&d) - (wd % 7);
}

int
ras_time_uk_offset(int64_t t)
{
	struct ras_date d;
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
	int64_t start, end;

	ras_date_from_days(days, &d);
	start = last_sunday(d.year, 3) * 86400 + 3600;
	end = last_sunday(d.year, 10) * 86400 + 3600;
	return (t >= start && t < end) ? 3600 : 0;
}

static void
split(int64_t t, struct ras_date *date, int *secs)
{
	int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;

	ras_date_from_days(days, date);
	if (secs)
		*secs = (int)(t - days * 86400);
}

void
ras_time_uk_date(int64_t t, struct ras_date *date, int *secs_of_day)
{
	split(t + ras_time_uk_offset(t), date, secs_of_day);
}

int64_t
ras_time_uk_midnight(const struct ras_date *d)
{
	int64_t local = ras_date_to_days(d) * 86400;
	/* Offset at local midnight: UK changes at 01:00 UTC, never at midnight,
	 * so the offset just before the change is right for midnight. */
	int64_t guess = local - 3600;

	return local - ras_time_uk_offset(guess);
}

int
ras_time_parse(const char *s, bool local_ok, int64_t *out)
{
	struct ras_date d;
	int hh = 0, mm = 0, ss = 0, oh = 0, om = 0, sign = 0;
	const char *p;
	size_t len;
	bool have_offset = false;
	int64_t t;

	if (s == NULL)
		goto bad;
	len = strlen(s);
	if (len < 10)
		goto bad;
	{
		char date[11];

		memcpy(date, s, 10);
		date[10] = '\0';
		if (ras_date_parse(date, &d) < 0)
			goto bad;
	}
	p = s + 10;
	if (*p == '\0') {
		if (!local_ok)
			goto bad;
		*out = ras_time_uk_midnight(&d);
		return 0;
	}
	if (*p != 'T' || digits(p + 1, 2, &hh) < 0 || p[3] != ':' || digits(p + 4, 2, &mm) < 0)
		goto bad;
	p += 6;
	if (*p == ':') {
		if (digits(p + 1, 2, &ss) < 0)
			goto bad;
		p += 3;
		if (*p == '.') {
			p++;
			if (*p < '0' || *p > '9')
				goto bad;
			while (*p >= '0' && *p <= '9')
				p++;
		}
	}
	if (*p == 'Z') {
		have_offset = true;
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (digits(p + 1, 2, &oh) < 0 || p[3] != ':' || digits(p + 4, 2, &om) < 0 ||
		    oh > 14 || om > 59)
			goto bad;
		have_offset = true;
		p += 6;
	}
	if (*p != '\0' || hh > 23 || mm > 59 || ss > 60)
		goto bad;
	if (ss == 60)
		ss = 59;
	t = ras_date_to_days(&d) * 86400 + hh * 3600 + mm * 60 + ss;
	if (have_offset) {
		t -= sign * (oh * 3600 + om * 60);
	} else {
		if (!local_ok)
			goto bad;
		/* Local UK time: subtract the offset in force at that moment. */
		t -= ras_time_uk_offset(t - 3600);
	}
	*out = t;
	return 0;
bad:
	return ras_error_code(RAS_EINVALID, "invalid date-time \"%.40s\"", s ? s : "");
}

void
ras_time_format_utc(int64_t t, char *buf)
{
	struct ras_date d;
	int secs;

	split(t, &d, &secs);
	(void)snprintf(buf, RAS_TIME_STR_MAX, "%04d-%02d-%02dT%02d:%02d:%02dZ", d.year % 10000,
	    d.month % 100, d.day % 100, secs / 3600, secs / 60 % 60, secs % 60);
}

void
ras_time_format_uk(int64_t t, char *buf)
{
	struct ras_date d;
	int secs, off = ras_time_uk_offset(t);

	split(t + off, &d, &secs);
	(void)snprintf(buf, RAS_TIME_STR_MAX, "%04d-%02d-%02dT%02d:%02d:%02d+%02d:00",
	    d.year % 10000, d.month % 100, d.day % 100, secs / 3600, secs / 60 % 60, secs % 60,
	    off / 3600);
}

int64_t
ras_time_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec;
}

int64_t
ras_time_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
