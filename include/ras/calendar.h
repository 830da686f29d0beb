/*
 * calendar: the working-day calendar every clock in rasd counts in.
 *
 * A working day is Monday to Friday, except the England and Wales bank
 * holidays listed in a GOV.UK-format file (https://www.gov.uk/bank-holidays.json,
 * shipped as mappings/calendar/bank-holidays.json; operators refresh it).
 * Only the "england-and-wales" division is read: all four services are in
 * England.
 *
 * Counting (DESIGN §3): the day of receipt is day 0; "within N working days"
 * means by the end of the Nth working day after day 0, so a referral
 * received on a Saturday or a bank holiday is counted exactly like one
 * received on the working day before it.  N = 0 ("the same day") is the end
 * of the first working day on or after the day of receipt.
 *
 * The file says which years it covers (the years that have events).  A
 * count that runs past them treats the unknown years as having no bank
 * holidays, which can only make a deadline earlier, never later; the
 * result says so (`covered` false) so the caller can record and warn.
 *
 * Pure: ras_calendar_parse() takes bytes; ras_calendar_load() is the one
 * convenience that reads a file.  A calendar is immutable once built and
 * may be shared between threads.
 */
#ifndef RAS_CALENDAR_H
#define RAS_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/time.h"

struct ras_calendar;

/* Parse a GOV.UK bank-holidays.json document.  RAS_EINVALID (with the
 * reason) when it is not one, has no england-and-wales events, or a date is
 * malformed; RAS_ETOOBIG over RAS_CALENDAR_EVENTS_MAX events. */
int ras_calendar_parse(const char *data, size_t len, struct ras_calendar **out);

/* Read and parse a file (bounded by RAS_MAPPING_FILE_MAX). */
int ras_calendar_load(const char *path, struct ras_calendar **out);

void ras_calendar_free(struct ras_calendar *cal);

/* Years with at least one event: the span the file vouches for. */
void ras_calendar_span(const struct ras_calendar *cal, int *first_year, int *last_year);

/* Lower-case hex SHA-256 of the file the calendar was parsed from. */
const char *ras_calendar_sha256(const struct ras_calendar *cal);

/* In the functions below a NULL calendar means Monday to Friday with no
 * bank holidays (and never `covered`). */
bool ras_calendar_is_bank_holiday(const struct ras_calendar *cal, const struct ras_date *d);
bool ras_calendar_is_working_day(const struct ras_calendar *cal, const struct ras_date *d);

/*
 * ras_calendar_is_working_day() in the shape of the working-day callbacks
 * other modules take (`cal` is a const struct ras_calendar *, or NULL):
 * the e-RS poll schedule (ras_ers_set_workday), the daemon's pollers
 * (ras_schedule_prev/next), so that every clock and schedule in rasd
 * counts the same working days.
 */
bool ras_calendar_workday(const struct ras_date *d, void *cal);

/*
 * The date by the end of which "within n working days of `from`" falls due
 * (see the counting rule above); n in 0..RAS_CLOCK_DAYS_MAX.  *covered
 * (may be NULL) is false when a day outside the file's years was crossed.
 */
int ras_calendar_add_working_days(const struct ras_calendar *cal, const struct ras_date *from,
    int n, struct ras_date *out, bool *covered);

/* The same with days counted as ras_date_to_days() counts them (for a
 * caller that has them already): *out_day is the day it falls due. */
int ras_calendar_add_working_days_n(const struct ras_calendar *cal, int64_t from_day, int n,
    int64_t *out_day, bool *covered);

/* Working days after `from` up to and including `to` (0 when to <= from):
 * the number a KPI report compares with N. */
int64_t ras_calendar_working_days_between(const struct ras_calendar *cal,
    const struct ras_date *from, const struct ras_date *to);

#endif
