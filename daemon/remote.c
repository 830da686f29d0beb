/* remote: outbound HTTP driven by the loop (see remote.h). */
#include <stdbool.h>
#include <sys/epoll.h>

#include "loop.h"
#include "ras/error.h"
#include "ras/http.h"
#include "remote.h"

static struct {
	struct ras_loop *loop;
	struct ras_loop_timer *due;
	int fd;
} rm = { NULL, NULL, -1 };

static void
on_ready(struct ras_loop *l, int fd, uint32_t events, void *ctx)
{
	(void)l;
	(void)fd;
	(void)events;
	(void)ctx;
	ras_http_loop_dispatch();
}

static void
on_due(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	(void)l;
	(void)t;
	(void)ctx;
	ras_http_loop_dispatch();
}

static void
drv_timer(void *ctx, long ms)
{
	(void)ctx;
	if (rm.due == NULL)
		return;
	if (ms < 0)
		ras_loop_timer_stop(rm.due);
	else
		ras_loop_timer_after(rm.due, ms);
}

static int
drv_wait(void *ctx, bool (*done)(void *arg), void *arg)
{
	(void)ctx;
	return ras_loop_wait(rm.loop, done, arg);
}

int
ras_remote_start(struct ras_loop *l)
{
	struct ras_http_driver drv = { NULL, drv_timer, drv_wait };
	int err;

	rm.loop = l;
	if ((rm.fd = ras_http_loop_fd()) < 0)
		return RAS_EIO;
	if ((rm.due = ras_loop_timer_new(l, "http-client", on_due, NULL)) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	/* libcurl's deadlines are what a waiting stage waits on */
	ras_loop_timer_set_nested(rm.due, true);
	if ((err = ras_loop_add_fd(l, rm.fd, EPOLLIN, on_ready, NULL)) < 0)
		return err;
	ras_http_set_driver(&drv);
	return 0;
}

void
ras_remote_stop(struct ras_loop *l)
{
	ras_http_set_driver(NULL);
	if (rm.fd >= 0)
		ras_loop_del_fd(l, rm.fd);
	ras_loop_timer_free(l, rm.due);
	rm.due = NULL;
	rm.fd = -1;
	rm.loop = NULL;
}
