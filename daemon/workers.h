/*
 * workers: threads that each hold a database connection of their own and
 * run one job at a time for the event loop (the HTTP listener's groups of
 * intake POSTs: httpd.c, receive.h).
 *
 * The loop stays the only thread that touches the daemon's state: a job's
 * `run` gets the worker's connection and nothing else shared (it may log;
 * it must not touch the daemon, the loop or libmicrohttpd), and its `done`
 * is called later on the loop's thread, from a descriptor the loop
 * watches, to use what `run` left.  So PostgreSQL works on two groups at
 * once on a machine with cores to spare, while the loop goes on taking
 * requests; nothing is answered before `done`.
 *
 * A worker connects when its first job comes (and again when its
 * connection was lost); a job whose worker has no connection runs with a
 * NULL one and must fail cleanly (its senders are told to try again).
 */
#ifndef RAS_DAEMON_WORKERS_H
#define RAS_DAEMON_WORKERS_H

#include <stdbool.h>
#include <stddef.h>

struct ras_db;
struct ras_loop;
struct ras_workers;

typedef void (*ras_workers_run_fn)(void *job, struct ras_db *db);
typedef void (*ras_workers_done_fn)(void *job);

/* n threads (1..RAS_WORKERS_MAX, limits.h) connecting with conninfo (copied).
 * 0, or RAS_ENOMEM / RAS_EIO (a thread or descriptor could not be made). */
int ras_workers_new(struct ras_loop *l, const char *conninfo, size_t n, struct ras_workers **out);
/* Waits for the jobs running, calls their `done`, ends the threads. */
void ras_workers_free(struct ras_workers *w);

/* Hand `job` to an idle worker: true, or false when every one is busy
 * (nothing was taken). */
bool ras_workers_submit(struct ras_workers *w, void *job, ras_workers_run_fn run, ras_workers_done_fn done);
/* Jobs taken and not yet done (`done` not yet called). */
size_t ras_workers_busy(struct ras_workers *w);
size_t ras_workers_count(const struct ras_workers *w);
/* Block until every job taken has run, and call their `done` now: before
 * something `run` may depend on changes (a configuration reload), and at
 * the end. */
void ras_workers_drain(struct ras_workers *w);

#endif
