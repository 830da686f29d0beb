/*
 * schedule: when a poller runs, as data.
 *
 *   "08:00,13:00"        those times (UK civil time) on working days
 *   "daily 06:30"        that time every day, weekends included
 *   "every 300"          every 300 seconds (suffix s, m or h allowed: "every 5m")
 *
 * A schedule defines slots.  The daemon runs a poller when the latest slot
 * at or before now has no successful poll recorded after its start, which
 * makes the schedule hold across restarts and across several rasd
 * processes sharing one database (the pollers table).  Pure: no I/O; what a
 * working day is comes from the caller (the calendar of bank holidays).
 */
#ifndef RAS_SCHEDULE_H
#define RAS_SCHEDULE_H

#include <stdbool.h>
#include <stdint.h>

#include "ras/time.h"

#define RAS_SCHEDULE_TIMES_MAX 48

struct ras_schedule {
	int64_t every;                         /* interval seconds; 0 for a time-of-day schedule */
	bool all_days;                         /* "daily": weekends and holidays too */
	int ntimes;
	int times[RAS_SCHEDULE_TIMES_MAX];     /* seconds after local midnight, ascending */
};

/* True when d is a working day.  NULL means Monday to Friday. */
typedef bool (*ras_workday_fn)(const struct ras_date *d, void *ctx);

/* Parse; RAS_EINVALID with a message naming the bad part. */
int ras_schedule_parse(const char *text, struct ras_schedule *out);

/* The latest slot start at or before `now` (looking back at most 31
 * days); RAS_ENOTFOUND when there is none in that window. */
int ras_schedule_prev(const struct ras_schedule *s, int64_t now, ras_workday_fn workday,
    void *ctx, int64_t *out);

/* The first slot start strictly after `after`; RAS_ENOTFOUND beyond 31 days. */
int ras_schedule_next(const struct ras_schedule *s, int64_t after, ras_workday_fn workday,
    void *ctx, int64_t *out);

#endif
