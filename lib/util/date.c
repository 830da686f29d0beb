/* date: calendar dates (see include/ras/date.h). */
#include <stdio.h>
#include <string.h>

#include "ras/date.h"
#include "ras/error.h"

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int
ras_date_days_in_month(int y, int m)
{
	static const int dim[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

bool
ras_date_valid(const struct ras_date *d)
{
	return d->year >= 1 && d->year <= 9999 && d->month >= 1 && d->month <= 12 &&
	    d->day >= 1 && d->day <= ras_date_days_in_month(d->year, d->month);
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

int
ras_date_digits(const char *s, int n, int *out)
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
	    ras_date_digits(s, 4, &d.year) < 0 || ras_date_digits(s + 5, 2, &d.month) < 0 ||
	    ras_date_digits(s + 8, 2, &d.day) < 0 || !ras_date_valid(&d))
		return ras_error_code(RAS_EINVALID, "invalid date \"%.40s\" (expected YYYY-MM-DD)",
		    s ? s : "");
	*out = d;
	return 0;
}

void
ras_date_format(const struct ras_date *d, char *buf)
{
	/* unsigned and bounded, so the output provably fits (valid dates are
	 * 1..9999, 1..12, 1..31) */
	(void)snprintf(buf, RAS_DATE_STR_MAX, "%04u-%02u-%02u", (unsigned)d->year % 10000u,
	    (unsigned)d->month % 100u, (unsigned)d->day % 100u);
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
	int dim = ras_date_days_in_month(y, m);

	out->year = y;
	out->month = m;
	out->day = d->day > dim ? dim : d->day;
}

/* Last Sunday of `month` in `year`, as days since the epoch. */
