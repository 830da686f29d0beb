/*
 * loop: the one event loop of a rasd process (epoll).
 *
 * File descriptors (the HTTP listener's epoll fd, inotify, signalfd) get a
 * callback when ready; timers are kept in the loop and fire from it, so
 * every stage batch, poll, HTTP request and signal is handled on one
 * thread, one at a time.  A callback that takes long delays the others;
 * stages bound that by claiming at most batch_size rows per call.
 *
 * A callback that must wait for something outside (a stage waiting for
 * its HTTP transfers) calls ras_loop_wait(): the loop goes on turning —
 * every descriptor, and the timers marked nested (watchdog, heartbeat, the
 * HTTP listener's, the spool's, libcurl's) — until the wait is over, then
 * the callback carries on.  Timers not so marked (the stages') wait for
 * the outer turn, so no stage runs inside another.
 */
#ifndef RAS_DAEMON_LOOP_H
#define RAS_DAEMON_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct ras_loop;
struct ras_loop_timer;

typedef void (*ras_loop_io_fn)(struct ras_loop *l, int fd, uint32_t events, void *ctx);
typedef void (*ras_loop_timer_fn)(struct ras_loop *l, struct ras_loop_timer *t, void *ctx);

int ras_loop_new(struct ras_loop **out);
/* Frees timers too; file descriptors stay the caller's. */
void ras_loop_free(struct ras_loop *l);

/* Watch fd for `events` (EPOLLIN, …). One watcher per fd. */
int ras_loop_add_fd(struct ras_loop *l, int fd, uint32_t events, ras_loop_io_fn fn, void *ctx);
void ras_loop_del_fd(struct ras_loop *l, int fd);

/* A timer, initially stopped. */
struct ras_loop_timer *ras_loop_timer_new(struct ras_loop *l, const char *name,
    ras_loop_timer_fn fn, void *ctx);
void ras_loop_timer_free(struct ras_loop *l, struct ras_loop_timer *t);
/* Fire after ms milliseconds (0: on the next turn). Re-arming replaces. */
void ras_loop_timer_after(struct ras_loop_timer *t, int64_t ms);
/* Fire no later than ms from now (keeps an earlier arming). */
void ras_loop_timer_within(struct ras_loop_timer *t, int64_t ms);
void ras_loop_timer_stop(struct ras_loop_timer *t);
bool ras_loop_timer_armed(const struct ras_loop_timer *t);
/* Let t fire inside ras_loop_wait() (default: only from the outer turn). */
void ras_loop_timer_set_nested(struct ras_loop_timer *t, bool nested);

/* Run until ras_loop_quit(); returns 0 or RAS_EIO when epoll fails. */
int ras_loop_run(struct ras_loop *l);
void ras_loop_quit(struct ras_loop *l);

/* Turn the loop until done(arg) is true (see above); a quit asked for
 * meanwhile ends ras_loop_run() afterwards.  0, or RAS_EIO when epoll
 * fails. */
int ras_loop_wait(struct ras_loop *l, bool (*done)(void *arg), void *arg);
/* How many ras_loop_wait() calls are in progress (0: the outer turn). */
int ras_loop_depth(const struct ras_loop *l);

/* Monotonic milliseconds as the loop sees them. */
int64_t ras_loop_now_ms(void);

#endif
