/* notify: sd_notify over the NOTIFY_SOCKET datagram (see notify.h). */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "notify.h"
#include "ras/error.h"

static struct sockaddr_un notify_addr;
static socklen_t notify_len;
static int notify_fd = -1;
static uint64_t watchdog_usec;

int
ras_notify_init(void)
{
	const char *path = getenv("NOTIFY_SOCKET"), *wd = getenv("WATCHDOG_USEC");
	const char *wpid = getenv("WATCHDOG_PID");
	size_t len;

	watchdog_usec = 0;
	if (wd && *wd) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(wd, &end, 10);
		/* WATCHDOG_PID, when set, names the process meant to ping. */
		if (errno == 0 && *end == '\0' && v > 0 &&
		    (wpid == NULL || strtol(wpid, NULL, 10) == (long)getpid()))
			watchdog_usec = v;
	}
	if (path == NULL || *path == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(notify_addr.sun_path))
		return ras_error_code(RAS_EINVALID, "NOTIFY_SOCKET \"%.100s\" is not a socket path", path);
	memset(&notify_addr, 0, sizeof(notify_addr));
	notify_addr.sun_family = AF_UNIX;
	memcpy(notify_addr.sun_path, path, len);
	if (path[0] == '@')
		notify_addr.sun_path[0] = '\0';   /* abstract namespace */
	notify_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if (notify_fd < 0)
		notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (notify_fd < 0)
		return ras_error_code(RAS_EIO, "could not create the notification socket: %s",
		    strerror(errno));
	return 0;
}

bool
ras_notify_enabled(void)
{
	return notify_fd >= 0;
}

int
ras_notify(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	int n;

	if (notify_fd < 0)
		return 0;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return ras_error_code(RAS_EINVALID, "notification too long");
	if (sendto(notify_fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&notify_addr,
	    notify_len) < 0)
		return ras_error_code(RAS_EIO, "could not notify the service manager: %s",
		    strerror(errno));
	return 0;
}

uint64_t
ras_notify_watchdog_usec(void)
{
	return watchdog_usec;
}

uint64_t
ras_notify_monotonic_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
