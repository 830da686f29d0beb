/*
 * time: instants and UK civil time, with no I/O and no dependence on the
 * process time zone (calendar dates are ras/date.h).
 *
 * Instants are int64 seconds since the Unix epoch (UTC).  rasd's clocks run
 * in UK civil time (Europe/London): the "day of receipt" of a referral that
 * arrives at 23:30 UTC in summer is the next calendar day.  The UK rule
 * (BST from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
 * Sunday of October, since 1996) is computed here so results never depend
 * on the machine's tzdata or TZ variable.
 */
#ifndef RAS_TIME_H
#define RAS_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/date.h"

#define RAS_TIME_STR_MAX  32   /* "YYYY-MM-DDThh:mm:ss+hh:mm" + NUL */

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

/* British Summer Time in `year`: from *start (inclusive) to *end, UTC
 * instants (01:00 UTC on the last Sundays of March and October). */
void ras_time_uk_summer(int year, int64_t *start, int64_t *end);

/* "YYYY-MM-DDThh:mm:ssZ" (UTC). */
void ras_time_format_utc(int64_t t, char *buf);

/* "YYYY-MM-DDThh:mm:ss+01:00" in UK civil time. */
void ras_time_format_uk(int64_t t, char *buf);

/* Wall-clock now (seconds). */
int64_t ras_time_now(void);

/* Monotonic milliseconds, for timeouts and rate limits. */
int64_t ras_time_mono_ms(void);

#endif
