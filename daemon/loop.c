/* loop: epoll event loop with timers (see loop.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "loop.h"
#include "ras/error.h"
#include "ras/time.h"

struct watch {
	int fd;
	ras_loop_io_fn fn;
	void *ctx;
	struct watch *next;
};

struct ras_loop_timer {
	struct ras_loop *loop;
	const char *name;
	ras_loop_timer_fn fn;
	void *ctx;
	bool armed;
	bool nested;                 /* may fire inside ras_loop_wait() */
	int64_t due_ms;
	uint64_t fired_pass;
	struct ras_loop_timer *next;
};

struct ras_loop {
	int epfd;
	bool quit;
	int depth;                   /* ras_loop_wait() calls in progress */
	uint64_t pass;
	struct watch *watches;
	struct ras_loop_timer *timers;
};

int64_t
ras_loop_now_ms(void)
{
	return ras_time_mono_ms();
}

int
ras_loop_new(struct ras_loop **out)
{
	struct ras_loop *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		free(l);
		return ras_error_code(RAS_EIO, "could not create epoll instance: %s", strerror(errno));
	}
	*out = l;
	return 0;
}

void
ras_loop_free(struct ras_loop *l)
{
	if (l == NULL)
		return;
	while (l->watches) {
		struct watch *w = l->watches;

		l->watches = w->next;
		free(w);
	}
	while (l->timers) {
		struct ras_loop_timer *t = l->timers;

		l->timers = t->next;
		free(t);
	}
	close(l->epfd);
	free(l);
}

int
ras_loop_add_fd(struct ras_loop *l, int fd, uint32_t events, ras_loop_io_fn fn, void *ctx)
{
	struct watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events };

	if (w == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	w->fd = fd;
	w->fn = fn;
	w->ctx = ctx;
	ev.data.ptr = w;
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		free(w);
		return ras_error_code(RAS_EIO, "could not watch descriptor %d: %s", fd, strerror(errno));
	}
	w->next = l->watches;
	l->watches = w;
	return 0;
}

void
ras_loop_del_fd(struct ras_loop *l, int fd)
{
	for (struct watch **pw = &l->watches; *pw; pw = &(*pw)->next) {
		if ((*pw)->fd != fd)
			continue;
		{
			struct watch *w = *pw;

			(void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
			*pw = w->next;
			/* An event for w may still be pending in this turn's
			 * array: the watch is freed, so mark the fd gone first. */
			w->fd = -1;
			free(w);
		}
		return;
	}
}

struct ras_loop_timer *
ras_loop_timer_new(struct ras_loop *l, const char *name, ras_loop_timer_fn fn, void *ctx)
{
	struct ras_loop_timer *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->loop = l;
	t->name = name;
	t->fn = fn;
	t->ctx = ctx;
	t->next = l->timers;
	l->timers = t;
	return t;
}

void
ras_loop_timer_free(struct ras_loop *l, struct ras_loop_timer *t)
{
	if (t == NULL)
		return;
	for (struct ras_loop_timer **pt = &l->timers; *pt; pt = &(*pt)->next)
		if (*pt == t) {
			*pt = t->next;
			free(t);
			return;
		}
}

void
ras_loop_timer_after(struct ras_loop_timer *t, int64_t ms)
{
	t->armed = true;
	t->due_ms = ras_loop_now_ms() + (ms > 0 ? ms : 0);
}

void
ras_loop_timer_within(struct ras_loop_timer *t, int64_t ms)
{
	int64_t due = ras_loop_now_ms() + (ms > 0 ? ms : 0);

	if (!t->armed || due < t->due_ms) {
		t->armed = true;
		t->due_ms = due;
	}
}

void
ras_loop_timer_stop(struct ras_loop_timer *t)
{
	t->armed = false;
}

bool
ras_loop_timer_armed(const struct ras_loop_timer *t)
{
	return t->armed;
}

void
ras_loop_timer_set_nested(struct ras_loop_timer *t, bool nested)
{
	t->nested = nested;
}

void
ras_loop_quit(struct ras_loop *l)
{
	l->quit = true;
}

/* Fire every timer that was due when the pass began, earliest first, each
 * at most once: a timer re-armed for "now" waits for the next turn, so I/O
 * (HTTP requests, signals) gets a look in between two batches. */
static void
run_timers(struct ras_loop *l, bool nested)
{
	int64_t now = ras_loop_now_ms();
	uint64_t pass = ++l->pass;

	for (;;) {
		struct ras_loop_timer *best = NULL;

		for (struct ras_loop_timer *t = l->timers; t; t = t->next)
			if (t->armed && t->due_ms <= now && t->fired_pass != pass &&
			    (!nested || t->nested) && (best == NULL || t->due_ms < best->due_ms))
				best = t;
		if (best == NULL || (l->quit && !nested))
			return;
		best->armed = false;
		best->fired_pass = pass;
		best->fn(l, best, best->ctx);
	}
}

static int
next_timeout(struct ras_loop *l, bool nested)
{
	int64_t now = ras_loop_now_ms(), best = -1;

	for (struct ras_loop_timer *t = l->timers; t; t = t->next)
		if (t->armed && (!nested || t->nested)) {
			int64_t d = t->due_ms - now;

			if (d < 0)
				d = 0;
			if (best < 0 || d < best)
				best = d;
		}
	if (best > 60000)
		best = 60000;
	return (int)best;
}

/* One turn: wait for I/O or the next timer, run the callbacks of ready
 * descriptors, then the due timers.  Inside ras_loop_wait() only the
 * timers marked nested run, and a quit waits for the outer turn. */
static int
turn(struct ras_loop *l, bool nested)
{
	struct epoll_event evs[32];
	int n = epoll_wait(l->epfd, evs, 32, next_timeout(l, nested));

	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return ras_error_code(RAS_EIO, "epoll_wait failed: %s", strerror(errno));
	}
	for (int i = 0; i < n && (nested || !l->quit); i++) {
		struct watch *w = evs[i].data.ptr;
		bool live = false;

		/* The watch may have been removed by an earlier callback
		 * of this turn. */
		for (struct watch *x = l->watches; x; x = x->next)
			if (x == w)
				live = true;
		if (live && w->fd >= 0)
			w->fn(l, w->fd, evs[i].events, w->ctx);
	}
	if (nested || !l->quit)
		run_timers(l, nested);
	return 0;
}

int
ras_loop_run(struct ras_loop *l)
{
	int err;

	l->quit = false;
	while (!l->quit)
		if ((err = turn(l, false)) < 0)
			return err;
	return 0;
}

int
ras_loop_wait(struct ras_loop *l, bool (*done)(void *arg), void *arg)
{
	int err = 0;

	l->depth++;
	while (!done(arg))
		if ((err = turn(l, true)) < 0)
			break;
	l->depth--;
	return err;
}

int
ras_loop_depth(const struct ras_loop *l)
{
	return l->depth;
}
