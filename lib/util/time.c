/* time: instants and UK civil time (see include/ras/time.h). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ras/error.h"
#include "ras/time.h"

static int64_t
last_sunday(int year, int month)
{
	struct ras_date d = { year, month, ras_date_days_in_month(year, month) };
	int wd = ras_date_weekday(&d);

	return ras_date_to_days(&d) - (wd % 7);
}

void
ras_time_uk_summer(int year, int64_t *start, int64_t *end)
{
	*start = last_sunday(year, 3) * 86400 + 3600;
	*end = last_sunday(year, 10) * 86400 + 3600;
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
	if (*p != 'T' || ras_date_digits(p + 1, 2, &hh) < 0 || p[3] != ':' || ras_date_digits(p + 4, 2, &mm) < 0)
		goto bad;
	p += 6;
	if (*p == ':') {
		if (ras_date_digits(p + 1, 2, &ss) < 0)
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
		if (ras_date_digits(p + 1, 2, &oh) < 0 || p[3] != ':' || ras_date_digits(p + 4, 2, &om) < 0 ||
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
	(void)snprintf(buf, RAS_TIME_STR_MAX, "%04u-%02u-%02uT%02u:%02u:%02uZ",
	    (unsigned)d.year % 10000u, (unsigned)d.month % 100u, (unsigned)d.day % 100u,
	    (unsigned)secs / 3600u % 100u, (unsigned)secs / 60u % 60u, (unsigned)secs % 60u);
}

void
ras_time_format_uk(int64_t t, char *buf)
{
	struct ras_date d;
	int secs, off = ras_time_uk_offset(t);

	split(t + off, &d, &secs);
	(void)snprintf(buf, RAS_TIME_STR_MAX, "%04u-%02u-%02uT%02u:%02u:%02u+%02u:00",
	    (unsigned)d.year % 10000u, (unsigned)d.month % 100u, (unsigned)d.day % 100u,
	    (unsigned)secs / 3600u % 100u, (unsigned)secs / 60u % 60u, (unsigned)secs % 60u,
	    (unsigned)off / 3600u % 100u);
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
