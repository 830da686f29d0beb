/* workers: threads with a database connection each, for the loop (see workers.h). */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "loop.h"
#include "ras/arena.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/limits.h"
#include "ras/log.h"
#include "workers.h"

struct worker {
	struct ras_workers *w;
	pthread_t thread;
	bool started;
	struct ras_db *db;          /* the worker's own: touched by its thread only */
	/* under ras_workers.mu: */
	void *job;                  /* taken; NULL when idle */
	ras_workers_run_fn run;
	ras_workers_done_fn done;
	bool todo;                  /* taken, not yet run */
	bool ran;                   /* run, `done` not yet called */
};

struct ras_workers {
	struct ras_loop *loop;
	char *conninfo;
	int efd;                    /* eventfd: some job has run */
	bool watched;               /* efd is in the loop */
	pthread_mutex_t mu;
	pthread_cond_t work;        /* a job was handed over, or stop */
	pthread_cond_t ran;         /* a job has run */
	bool stop;
	size_t n;
	struct worker k[RAS_WORKERS_MAX];
};

static void *
worker_main(void *arg)
{
	struct worker *k = arg;
	struct ras_workers *w = k->w;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		void *job;
		ras_workers_run_fn run;
		uint64_t one = 1;

		while (!k->todo && !w->stop)
			pthread_cond_wait(&w->work, &w->mu);
		if (!k->todo)
			break;
		job = k->job;
		run = k->run;
		pthread_mutex_unlock(&w->mu);
		if (k->db && !ras_db_ok(k->db)) {
			ras_db_close(k->db);
			k->db = NULL;
		}
		if (k->db == NULL && ras_db_connect(w->conninfo, &k->db) < 0) {
			ras_log(RAS_LOG_ERR, "intake worker: %s", ras_error_last());
			k->db = NULL;
		}
		run(job, k->db);
		/* (the arena blocks this thread keeps: for the loop's work, not
		 * held between groups; item 7's memory bound) */
		ras_arena_cache_release();
		pthread_mutex_lock(&w->mu);
		k->todo = false;
		k->ran = true;
		pthread_cond_broadcast(&w->ran);
		/* (EAGAIN: the counter is full, the loop has not read it yet) */
		if (write(w->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			ras_log(RAS_LOG_ERR, "intake worker: cannot wake the loop: %s", strerror(errno));
	}
	pthread_mutex_unlock(&w->mu);
	ras_db_close(k->db);
	return NULL;
}

/* On the loop's thread: `done` for every job that has run. */
static void
collect(struct ras_workers *w)
{
	for (;;) {
		struct worker *k = NULL;
		void *job;
		ras_workers_done_fn done;

		pthread_mutex_lock(&w->mu);
		for (size_t i = 0; i < w->n && k == NULL; i++)
			if (w->k[i].ran)
				k = &w->k[i];
		if (k == NULL) {
			pthread_mutex_unlock(&w->mu);
			return;
		}
		job = k->job;
		done = k->done;
		k->ran = false;
		k->job = NULL;
		pthread_mutex_unlock(&w->mu);
		done(job);
	}
}

static void
on_ran(struct ras_loop *l, int fd, uint32_t events, void *ctx)
{
	uint64_t v;

	(void)l;
	(void)events;
	(void)!read(fd, &v, sizeof(v));
	collect(ctx);
}

int
ras_workers_new(struct ras_loop *l, const char *conninfo, size_t n, struct ras_workers **out)
{
	struct ras_workers *w;
	sigset_t all, old;
	int err = 0;

	*out = NULL;
	if (n < 1 || n > RAS_WORKERS_MAX)
		return ras_error_code(RAS_EINVALID, "between 1 and %d workers", RAS_WORKERS_MAX);
	if ((w = calloc(1, sizeof(*w))) == NULL || (w->conninfo = strdup(conninfo ? conninfo : "")) == NULL) {
		free(w);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	w->loop = l;
	w->n = n;
	w->efd = -1;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->work, NULL);
	pthread_cond_init(&w->ran, NULL);
	if ((w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		err = ras_error_code(RAS_EIO, "could not make an eventfd: %s", strerror(errno));
		goto fail;
	}
	if ((err = ras_loop_add_fd(l, w->efd, EPOLLIN, on_ran, w)) < 0)
		goto fail;
	w->watched = true;
	/* One malloc arena for the process: glibc would give each thread an
	 * arena of its own, whose freed memory the loop's thread (the spool's
	 * large passes) cannot reuse: +1.8 MiB of peak RSS at the largest batch
	 * sizes (docs/design/performance.md, item 7's bound of 32 MiB). */
	(void)mallopt(M_ARENA_MAX, 1);
	/* signals stay with the loop's thread (signalfd) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (size_t i = 0; i < n; i++) {
		int e;

		w->k[i].w = w;
		if ((e = pthread_create(&w->k[i].thread, NULL, worker_main, &w->k[i])) != 0) {
			err = ras_error_code(RAS_EIO, "could not start an intake worker: %s", strerror(e));
			break;
		}
		w->k[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err < 0)
		goto fail;
	*out = w;
	return 0;
fail:
	ras_workers_free(w);
	return err;
}

bool
ras_workers_submit(struct ras_workers *w, void *job, ras_workers_run_fn run, ras_workers_done_fn done)
{
	bool taken = false;

	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n && !taken; i++) {
		struct worker *k = &w->k[i];

		if (k->started && k->job == NULL) {
			k->job = job;
			k->run = run;
			k->done = done;
			k->todo = true;
			taken = true;
		}
	}
	if (taken)
		pthread_cond_broadcast(&w->work);
	pthread_mutex_unlock(&w->mu);
	return taken;
}

size_t
ras_workers_busy(struct ras_workers *w)
{
	size_t busy = 0;

	if (w == NULL)
		return 0;
	pthread_mutex_lock(&w->mu);
	for (size_t i = 0; i < w->n; i++)
		busy += w->k[i].job != NULL;
	pthread_mutex_unlock(&w->mu);
	return busy;
}

size_t
ras_workers_count(const struct ras_workers *w)
{
	return w ? w->n : 0;
}

void
ras_workers_drain(struct ras_workers *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		bool running = false;

		for (size_t i = 0; i < w->n; i++)
			running |= w->k[i].todo;
		if (!running)
			break;
		pthread_cond_wait(&w->ran, &w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	collect(w);
}

void
ras_workers_free(struct ras_workers *w)
{
	if (w == NULL)
		return;
	ras_workers_drain(w);
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->work);
	pthread_mutex_unlock(&w->mu);
	for (size_t i = 0; i < w->n; i++)
		if (w->k[i].started)
			pthread_join(w->k[i].thread, NULL);
	if (w->watched)
		ras_loop_del_fd(w->loop, w->efd);
	if (w->efd >= 0)
		close(w->efd);
	pthread_cond_destroy(&w->ran);
	pthread_cond_destroy(&w->work);
	pthread_mutex_destroy(&w->mu);
	free(w->conninfo);
	free(w);
}
