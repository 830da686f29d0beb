/*
 * date: calendar dates (proleptic Gregorian, years 1..9999), pure
 * arithmetic with no I/O and no time zone.  Instants and UK civil time
 * are ras/time.h.
 */
#ifndef RAS_DATE_H
#define RAS_DATE_H

#include <stdbool.h>
#include <stdint.h>

struct ras_date {
	int year;   /* 1..9999 */
	int month;  /* 1..12 */
	int day;    /* 1..31 */
};

#define RAS_DATE_STR_MAX  11   /* "YYYY-MM-DD" + NUL */

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

/* Days of month m (1..12) of year y. */
int ras_date_days_in_month(int y, int m);

/* A fixed-width run of n decimal digits at s (a field of a date or time
 * text): 0 and *out, or -1 when any of them is not a digit. */
int ras_date_digits(const char *s, int n, int *out);

#endif
