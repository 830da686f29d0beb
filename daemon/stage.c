/* stage: unit registry runtime, batches and pollers (see stage.h). */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "loop.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/log.h"
#include "ras/schedule.h"
#include "ras/time.h"
#include "stage.h"

/* Longest wait after repeated failures of a unit. */
#define BACKOFF_MAX_S 300
/* How soon a failed poll slot is tried again (capped by the next slot). */
#define POLL_RETRY_S 300

struct unit {
	struct ras_unit_spec spec;
	char *name, *source, *schedule;
	char label[96];              /* "normalise" or "ers-poll ers:21012" */
	struct ras_schedule sched;
	int64_t lock_key;
	int interval_s;
	size_t limit;
	int failures;
	size_t index;                /* position in the pipeline */
	struct ras_loop_timer *timer;
	struct ras_daemon *d;
	struct ras_units *owner;
};

struct ras_units {
	struct unit *v;
	size_t n, cap;
	void *shared;
	void (*free_shared)(void *);
};

struct ras_unit_sink {
	struct ras_units *u;
	const struct ras_config *cfg;
	struct ras_buf *problems;
	int nprob;
};

int64_t
ras_stage_lock_key(const char *source)
{
	unsigned char h[RAS_SHA256_LEN];
	uint64_t k = 0;

	/* A fixed prefix keeps rasd's keys apart from other users of
	 * advisory locks in the same database. */
	ras_crypto_sha256(source, strlen(source), h);
	for (int i = 0; i < 8; i++)
		k = (k << 8) | h[i];
	return (int64_t)(k & 0x7fffffffffffffffULL);
}

/* Set once the loop has read SIGTERM/SIGINT (it may do so while a stage
 * waits for its transfers, and then the signal is no longer pending). */
static bool stop_noted;

void
ras_stage_note_stop(void)
{
	stop_noted = true;
}

bool
ras_stage_should_stop(void)
{
	sigset_t pending;

	if (stop_noted)
		return true;
	if (sigpending(&pending) < 0)
		return false;
	return sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1;
}

static void
unit_free_fields(struct unit *x)
{
	if (x->spec.free_state && x->spec.state)
		x->spec.free_state(x->spec.state);
	free(x->name);
	free(x->source);
	free(x->schedule);
}

int
ras_unit_add(struct ras_unit_sink *sink, const struct ras_unit_spec *spec)
{
	struct ras_units *u = sink->u;
	struct unit *x;

	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 8;
		struct unit *nv = realloc(u->v, cap * sizeof(*nv));

		if (nv == NULL) {
			if (spec->free_state && spec->state)
				spec->free_state(spec->state);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
		u->v = nv;
		u->cap = cap;
	}
	x = &u->v[u->n];
	memset(x, 0, sizeof(*x));
	x->spec = *spec;
	x->name = strdup(spec->name);
	x->source = spec->source ? strdup(spec->source) : NULL;
	x->schedule = spec->schedule ? strdup(spec->schedule) : NULL;
	x->index = u->n;
	u->n++;
	if (x->name == NULL || (spec->source && x->source == NULL) ||
	    (spec->schedule && x->schedule == NULL))
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (x->source)
		snprintf(x->label, sizeof(x->label), "%s %s", x->name, x->source);
	else
		snprintf(x->label, sizeof(x->label), "%s", x->name);
	if (x->source) {
		if (x->schedule == NULL) {
			(void)ras_buf_printf(sink->problems, "poller %s has no schedule\n", x->label);
			sink->nprob++;
		} else if (ras_schedule_parse(x->schedule, &x->sched) < 0) {
			(void)ras_buf_printf(sink->problems, "poller %s: %s\n", x->label, ras_error_last());
			sink->nprob++;
		}
		x->lock_key = ras_stage_lock_key(x->source);
	}
	x->interval_s = spec->interval_s > 0 ? spec->interval_s :
	    (int)ras_config_int(sink->cfg, "daemon", NULL, "stage_interval");
	x->limit = spec->limit ? spec->limit :
	    (size_t)ras_config_int(sink->cfg, "database", NULL, "batch_size");
	if (x->interval_s <= 0)
		x->interval_s = 2;
	if (x->limit == 0)
		x->limit = 200;
	return 0;
}

void *
ras_unit_sink_shared(struct ras_unit_sink *sink)
{
	return sink->u->shared;
}

void
ras_unit_sink_set_shared(struct ras_unit_sink *sink, void *shared, void (*free_fn)(void *))
{
	sink->u->shared = shared;
	sink->u->free_shared = free_fn;
}

void *
ras_units_shared(const struct ras_units *u)
{
	return u ? u->shared : NULL;
}

int
ras_units_build(const struct ras_config *cfg, struct ras_units **out, struct ras_buf *problems)
{
	struct ras_units *u = calloc(1, sizeof(*u));
	struct ras_unit_sink sink = { u, cfg, problems, 0 };
	int err = 0;

	if (u == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (const struct ras_stage_def *def = ras_stage_defs; def->name; def++) {
		int e = def->configure(cfg, &sink, problems);

		if (e == RAS_ENOMEM) {
			err = e;
			goto done;
		}
		if (e < 0)
			sink.nprob++;
	}
	if (sink.nprob) {
		err = ras_error_code(RAS_EINVALID, "%d problem(s) with the stages' configuration",
		    sink.nprob);
		goto done;
	}
	*out = u;
	u = NULL;
done:
	ras_units_free(u);
	return err;
}

void
ras_units_free(struct ras_units *u)
{
	if (u == NULL)
		return;
	for (size_t i = 0; i < u->n; i++)
		unit_free_fields(&u->v[i]);
	/* What the units shared goes last: their free_state may still use it. */
	if (u->free_shared && u->shared)
		u->free_shared(u->shared);
	free(u->v);
	free(u);
}

/* Wake the stages from index `from` on (pollers and own-pace units are
 * left to their own timers). */
static void
wake_from(struct ras_units *u, size_t from, size_t except)
{
	for (size_t k = from; u && k < u->n; k++) {
		struct unit *y = &u->v[k];

		if (k == except || y->source || y->spec.own_pace || y->timer == NULL)
			continue;
		ras_loop_timer_within(y->timer, 0);
	}
}

size_t
ras_units_count(const struct ras_units *u)
{
	return u ? u->n : 0;
}

const char *
ras_units_name(const struct ras_units *u, size_t i)
{
	return i < u->n ? u->v[i].label : NULL;
}

static void
log_unit(enum ras_log_prio prio, const struct unit *x, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
log_unit(enum ras_log_prio prio, const struct unit *x, const char *fmt, ...)
{
	struct ras_log_field f[] = { { "STAGE", x->name }, { "SOURCE", x->source }, { NULL, NULL } };
	va_list ap;

	va_start(ap, fmt);
	ras_log_vfields(prio, f, fmt, ap);
	va_end(ap);
}

static int64_t
backoff_ms(struct unit *x)
{
	int64_t s = x->interval_s;

	for (int i = 1; i < x->failures && s < BACKOFF_MAX_S; i++)
		s *= 2;
	if (s > BACKOFF_MAX_S)
		s = BACKOFF_MAX_S;
	return s * 1000;
}

static void
run_stage(struct unit *x)
{
	struct ras_daemon *d = x->d;
	struct ras_unit_stats *st = ras_daemon_unit_stats(d, x->label);
	struct ras_db *db = ras_daemon_stage_db(d);
	int64_t now = ras_time_now();
	int n;

	if (db == NULL) {
		x->failures++;
		if (x->failures == 1)
			log_unit(RAS_LOG_ERR, x, "%s: database unavailable: %s", x->label, ras_error_last());
		ras_loop_timer_after(x->timer, backoff_ms(x));
		return;
	}
	ras_error_clear();
	st->runs++;
	st->last_run = now;
	n = x->spec.run(db, now, x->limit, x->spec.state);
	if (n < 0) {
		st->errors++;
		x->failures++;
		log_unit(RAS_LOG_ERR, x, "%s: batch failed (%s): %s; retrying in %lld s", x->label,
		    ras_error_name(n), ras_error_last(), (long long)(backoff_ms(x) / 1000));
		ras_loop_timer_after(x->timer, backoff_ms(x));
		return;
	}
	if (x->failures)
		log_unit(RAS_LOG_NOTICE, x, "%s: working again", x->label);
	x->failures = 0;
	st->rows += (uint64_t)n;
	st->last_ok = now;
	/* Work done here is work for the stages after it; a unit with its
	 * own pace (a retry sweep) may have brought in work for any stage. */
	if (n > 0)
		wake_from(x->owner, x->spec.own_pace ? 0 : x->index + 1, x->index);
	/* A full batch means there is probably more: go again on the next
	 * turn of the loop (after any I/O that is waiting). */
	ras_loop_timer_after(x->timer, (size_t)n >= x->limit ? 0 : (int64_t)x->interval_s * 1000);
}

static const char SQL_POLL_SLOT[] =
    "SELECT coalesce(last_success_at >= to_timestamp($2::bigint), false)::text"
    " FROM pollers WHERE source = $1";
static const char SQL_POLL_DONE[] =
    "INSERT INTO pollers AS p (source, last_attempt_at, last_success_at, last_error, attempts,"
    "  successes, last_instance)"
    " VALUES ($1, to_timestamp($2::bigint), CASE WHEN $3::text IS NULL THEN now() END, $3, 1,"
    "  CASE WHEN $3::text IS NULL THEN 1 ELSE 0 END, $4)"
    " ON CONFLICT (source) DO UPDATE SET last_attempt_at = EXCLUDED.last_attempt_at,"
    "  last_success_at = coalesce(EXCLUDED.last_success_at, p.last_success_at),"
    "  last_error = EXCLUDED.last_error, attempts = p.attempts + 1,"
    "  successes = p.successes + EXCLUDED.successes, last_instance = EXCLUDED.last_instance";

static void
arm_next_slot(struct unit *x, int64_t now, bool failed)
{
	int64_t next = 0, wait;

	if (ras_schedule_next(&x->sched, now, x->spec.workday, x->spec.workday_ctx, &next) < 0)
		next = now + 86400;
	wait = next - now;
	if (failed && wait > POLL_RETRY_S)
		wait = POLL_RETRY_S;
	if (wait < 1)
		wait = 1;
	ras_loop_timer_after(x->timer, wait * 1000);
}

static void
run_poller(struct unit *x)
{
	struct ras_daemon *d = x->d;
	struct ras_unit_stats *st = ras_daemon_unit_stats(d, x->label);
	struct ras_db *db = ras_daemon_stage_db(d);
	struct ras_db_res *res = NULL;
	int64_t now = ras_time_now(), slot = 0;
	char slot_s[24], now_s[24];
	const char *errmsg = NULL;
	int got, n;

	if (db == NULL) {
		log_unit(RAS_LOG_ERR, x, "%s: database unavailable: %s", x->label, ras_error_last());
		arm_next_slot(x, now, true);
		return;
	}
	if (ras_schedule_prev(&x->sched, now, x->spec.workday, x->spec.workday_ctx, &slot) < 0) {
		arm_next_slot(x, now, false);
		return;
	}
	got = ras_db_try_advisory_lock(db, x->lock_key);
	if (got <= 0) {
		/* Another rasd is polling this source now (or the database
		 * failed): it records the slot; look again at the next one. */
		if (got < 0)
			log_unit(RAS_LOG_ERR, x, "%s: could not take the poll lock: %s", x->label,
			    ras_error_last());
		arm_next_slot(x, now, got < 0);
		return;
	}
	snprintf(slot_s, sizeof(slot_s), "%lld", (long long)slot);
	snprintf(now_s, sizeof(now_s), "%lld", (long long)now);
	if (ras_db_query(db, &res, SQL_POLL_SLOT, 2,
	    (struct ras_db_param[]){ RAS_DB_TEXT(x->source), RAS_DB_TEXT(slot_s) }) == 0 &&
	    ras_db_res_rows(res) == 1 && strcmp(ras_db_res_get(res, 0, 0), "true") == 0) {
		ras_db_res_free(res);
		(void)ras_db_advisory_unlock(db, x->lock_key);
		arm_next_slot(x, now, false);
		return;
	}
	ras_db_res_free(res);
	ras_error_clear();
	st->runs++;
	st->last_run = now;
	n = x->spec.run(db, now, x->limit, x->spec.state);
	if (n < 0) {
		st->errors++;
		errmsg = *ras_error_last() ? ras_error_last() : ras_error_name(n);
		log_unit(RAS_LOG_ERR, x, "%s: poll failed (%s): %s", x->label, ras_error_name(n), errmsg);
	} else {
		st->rows += (uint64_t)n;
		st->last_ok = now;
		log_unit(RAS_LOG_INFO, x, "%s: polled, %d item(s)", x->label, n);
	}
	{
		char msg[300];

		snprintf(msg, sizeof(msg), "%s", errmsg ? errmsg : "");
		if (ras_db_query(db, NULL, SQL_POLL_DONE, 4, (struct ras_db_param[]){
		    RAS_DB_TEXT(x->source), RAS_DB_TEXT(now_s), RAS_DB_TEXT(errmsg ? msg : NULL),
		    RAS_DB_TEXT(d->instance) }) < 0)
			log_unit(RAS_LOG_ERR, x, "%s: could not record the poll: %s", x->label,
			    ras_error_last());
	}
	(void)ras_db_advisory_unlock(db, x->lock_key);
	if (n > 0)
		wake_from(x->owner, 0, SIZE_MAX);
	arm_next_slot(x, now, n < 0);
}

static void
on_timer(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	struct unit *x = ctx;

	(void)l;
	(void)t;
	if (x->d->stopping)
		return;
	if (x->source)
		run_poller(x);
	else
		run_stage(x);
}

int
ras_units_start(struct ras_daemon *d, struct ras_units *u, bool recover)
{
	int64_t now = ras_time_now();

	for (size_t i = 0; i < u->n; i++) {
		struct unit *x = &u->v[i];

		x->d = d;
		x->owner = u;
		x->timer = ras_loop_timer_new(d->loop, x->label, on_timer, x);
		if (x->timer == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	/* Process-wide settings of this configuration (the form maps intake
	 * reads) are installed before any unit runs. */
	for (size_t i = 0; i < u->n; i++)
		if (u->v[i].spec.start)
			u->v[i].spec.start(u->v[i].spec.state);
	/* In-flight work first: whatever a stopped or killed process left
	 * half done is settled before any unit takes new work. */
	for (size_t i = 0; i < u->n; i++) {
		struct unit *x = &u->v[i];
		struct ras_db *db;
		int err;

		if (!recover || x->spec.recover == NULL)
			continue;
		if ((db = ras_daemon_stage_db(d)) == NULL)
			return RAS_EIO;
		if ((err = x->spec.recover(db, now, x->spec.state)) < 0) {
			log_unit(RAS_LOG_ERR, x, "%s: could not recover in-flight work: %s", x->label,
			    ras_error_last());
			return err;
		}
	}
	for (size_t i = 0; i < u->n; i++) {
		struct unit *x = &u->v[i];

		/* Stages look for work at once; pollers catch up a slot
		 * missed while no rasd was running. */
		ras_loop_timer_after(x->timer, 0);
	}
	return 0;
}

void
ras_units_stop(struct ras_daemon *d, struct ras_units *u)
{
	for (size_t i = 0; u && i < u->n; i++) {
		ras_loop_timer_free(d->loop, u->v[i].timer);
		u->v[i].timer = NULL;
	}
}

void
ras_units_kick(struct ras_units *u, const char *name)
{
	for (size_t i = 0; u && i < u->n; i++)
		if (u->v[i].source == NULL && strcmp(u->v[i].name, name) == 0 && u->v[i].timer)
			ras_loop_timer_within(u->v[i].timer, 0);
}

void
ras_units_kick_next(struct ras_units *u, const char *name)
{
	for (size_t i = 0; u && i < u->n; i++)
		if (u->v[i].source == NULL && strcmp(u->v[i].name, name) == 0) {
			wake_from(u, i + 1, i);
			return;
		}
}

void
ras_units_kick_all(struct ras_units *u)
{
	wake_from(u, 0, SIZE_MAX);
}
