/*
 * timeutil: calendar dates, instants and UK civil time, with no I/O and no
 * dependence on the process time zone.
 *
 * Instants are int64 seconds since the Unix epoch (UTC).  rasd's clocks run
 * in UK civil time (Europe/London): the "day of receipt" of a referral that
 * arrives at 23:30 UTC in summer is the next calendar day.  The UK rule
 * (BST from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
 * Sunday of October, since 1996) is computed here so results never depend
 * on the machine's tzdata or TZ variable.
 */
#ifndef RAS_TIMEUTIL_H
#define RAS_TIMEUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ras_date {
	int year;   /* 1..9999 */
	int month;  /* 1..12 */
	int day;    /* 1..31 */
};

#define RAS_DATE_STR_MAX  11   /* "YYYY-MM-DD" + NUL */
#define RAS_TIME_STR_MAX  32   /* "YYYY-MM-DDThh:mm:ss+hh:mm" + NUL */

bool ras_date_valid(const struct ras_date *d);

/* Days since 1970-01-01 (negative before). */
int64_t ras_date_to_days(const struct ras_date *d);
void ras_date_from_days(int64_t days, struct ras_date *out);

/* ISO weekday: 1 = Monday … 7 = Sunday. */
int ras_date_weekday(const struct ras_date *d);

/* d + n days. */
void ras_date_add_days(const struct ras_date *d, int64_t n, struct ras_date *out);

/* <0, 0, >0 like strcmp. */
int ras_date_cmp(const struct ras_date *a, const struct ras_date *b);

/* Strict "YYYY-MM-DD" (FHIR date with full precision). RAS_EINVALID otherwise. */
int ras_date_parse(const char *s, struct ras_date *out);

/* Writes "YYYY-MM-DD" into buf (at least RAS_DATE_STR_MAX bytes). */
void ras_date_format(const struct ras_date *d, char *buf);

/* Age in completed years on `on`. A 29 February birthday is reached on
 * 1 March in common years (the usual English reading). */
int ras_date_age_years(const struct ras_date *birth, const struct ras_date *on);

/* d plus n calendar months (day clamped to the month's end). */
void ras_date_add_months(const struct ras_date *d, int n, struct ras_date *out);

/*
 * Parse a FHIR dateTime/instant: "YYYY-MM-DDThh:mm[:ss[.fff]](Z|±hh:mm)".
 * When `local_ok` is true, a value without an offset, or a bare
 * "YYYY-MM-DD", is read as UK civil time (midnight for a bare date).
 */
int ras_time_parse(const char *s, bool local_ok, int64_t *out);

/* UTC offset of UK civil time at instant t: 0 or 3600 seconds. */
int ras_time_uk_offset(int64_t t);

/* UK civil date (and seconds since local midnight) of instant t. */
void ras_time_uk_date(int64_t t, struct ras_date *date, int *secs_of_day);

/* Instant of UK local midnight starting date d. */
int64_t ras_time_uk_midnight(const struct ras_date *d);

/* "YYYY-MM-DDThh:mm:ssZ" (UTC). */
void ras_time_format_utc(int64_t t, char *buf);

/* "YYYY-MM-DDThh:mm:ss+01:00" in UK civil time. */
void ras_time_format_uk(int64_t t, char *buf);

/* Wall-clock now (seconds). */
int64_t ras_time_now(void);

/* Monotonic milliseconds, for timeouts and rate limits. */
int64_t ras_time_mono_ms(void);

#endif
