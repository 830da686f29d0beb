/*
 * stage: the units of work the daemon runs from its loop.
 *
 * A stage moves rows from one state to the next in batches: it claims up
 * to `limit` rows with SELECT … FOR UPDATE SKIP LOCKED, does the work, and
 * commits, so any number of rasd processes on one database share the work
 * and no row is processed twice.  A poller fetches from one outside source
 * (an e-RS worklist, the MESH inbox) on a schedule; it runs under a
 * PostgreSQL advisory lock for its source, and the pollers table records
 * the last successful poll so that a slot is polled once however many
 * processes run.
 *
 * Every unit has the same interface: a name, run(db, now, limit, state)
 * returning how many rows it processed (>= 0) or a RAS_E* code, an
 * optional recover() run once at start-up before new work is taken (for
 * in-flight work a crash left behind, e.g. outbox rows marked "sending"),
 * and an interval (stages) or schedule + source (pollers).
 *
 * Stages are registered in ras_stage_defs[] (stages.c) in pipeline order;
 * each def's configure() adds its units for a given configuration, or
 * reports why that configuration is unusable (so SIGHUP can refuse it).
 * What several units of one configuration share (the triage engine, the
 * e-RS client, the outbox) is the sink's shared object: it lives as long as
 * those units and is freed after them, so a reload builds a whole new set
 * and the old one goes only once the new one is in place.
 *
 * When a stage processes rows, the stages after it in the pipeline are
 * woken at once; when a poller (or a unit with its own pace) brings in
 * work, every stage is.
 */
#ifndef RAS_DAEMON_STAGE_H
#define RAS_DAEMON_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ras_buf;
struct ras_config;
struct ras_date;
struct ras_daemon;
struct ras_db;

typedef int (*ras_unit_run_fn)(struct ras_db *db, int64_t now, size_t limit, void *state);
typedef int (*ras_unit_recover_fn)(struct ras_db *db, int64_t now, void *state);
typedef void (*ras_unit_start_fn)(void *state);
/* Working days of a poller's schedule (schedule.h); NULL = Monday to Friday. */
typedef bool (*ras_unit_workday_fn)(const struct ras_date *d, void *ctx);

struct ras_unit_spec {
	const char *name;             /* "normalise", "ers-poll" (copied) */
	const char *source;           /* pollers: "ers:21012" (copied); NULL for a stage */
	const char *schedule;         /* pollers: see schedule.h (copied) */
	int interval_s;               /* stages: idle interval; 0 = [daemon] stage_interval */
	size_t limit;                 /* rows per call; 0 = [database] batch_size */
	ras_unit_run_fn run;
	ras_unit_recover_fn recover;  /* may be NULL */
	ras_unit_start_fn start;      /* may be NULL: run each time the units start (start-up
	                               * and every reload that installs them), before recover */
	bool own_pace;                /* stages: run on the interval only, never woken by others */
	ras_unit_workday_fn workday;  /* pollers: working days of the schedule (NULL: Mon-Fri) */
	void *workday_ctx;
	void *state;                  /* owned by the unit from here on */
	void (*free_state)(void *state);
};

/* The sink configure() adds units to. */
struct ras_unit_sink;
int ras_unit_add(struct ras_unit_sink *sink, const struct ras_unit_spec *spec);

/* The object the units of this configuration share (NULL until set), and
 * setting it: it is freed with free_fn after every unit has been freed. */
void *ras_unit_sink_shared(struct ras_unit_sink *sink);
void ras_unit_sink_set_shared(struct ras_unit_sink *sink, void *shared, void (*free_fn)(void *));

struct ras_stage_def {
	const char *name;
	/* Add this stage's units for cfg.  Problems go to `problems` (one
	 * line each) with RAS_EINVALID returned. */
	int (*configure)(const struct ras_config *cfg, struct ras_unit_sink *sink,
	    struct ras_buf *problems);
};

/* In pipeline order, terminated by a NULL name (stages.c). */
extern const struct ras_stage_def ras_stage_defs[];

/* The units of one configuration. */
struct ras_units;

/* Build the units for cfg; on RAS_EINVALID `problems` says why. */
int ras_units_build(const struct ras_config *cfg, struct ras_units **out,
    struct ras_buf *problems);
void ras_units_free(struct ras_units *u);

/* Start them in d's loop: with `recover` (at start-up, not on reloads)
 * the recover hooks run first, in pipeline order; then the timers.  The
 * previous units, if any, must have been stopped. */
int ras_units_start(struct ras_daemon *d, struct ras_units *u, bool recover);
void ras_units_stop(struct ras_daemon *d, struct ras_units *u);

/* Wake a stage by name (after intake, or after the stage before it). */
void ras_units_kick(struct ras_units *u, const char *name);

/* Wake the stages after `name` in the pipeline (intake normalised rows
 * itself, so the stages after normalise have work). */
void ras_units_kick_next(struct ras_units *u, const char *name);

/* Wake every stage (not the pollers, not the units with their own pace). */
void ras_units_kick_all(struct ras_units *u);

/* The shared object of a set of units (see ras_unit_sink_set_shared). */
void *ras_units_shared(const struct ras_units *u);

/* Number of units, and each one's name/source (for logs and tests). */
size_t ras_units_count(const struct ras_units *u);
const char *ras_units_name(const struct ras_units *u, size_t i);

/* True when SIGTERM or SIGINT is pending: a long run() checks this between
 * items and returns early so the process stops within its stop timeout. */
bool ras_stage_should_stop(void);
/* The loop has read SIGTERM or SIGINT (rasd.c). */
void ras_stage_note_stop(void);

/* Advisory lock key of a poll source (stable across processes). */
int64_t ras_stage_lock_key(const char *source);

#endif
