/* rasd_proc: rasd as a test subprocess (see rasd_proc.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "rasd_proc.h"

#define LOGS_MAX 256

static char *logs[LOGS_MAX];
static size_t nlogs;
static unsigned seq;

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uid_t
rasd_uid(void)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return geteuid();
	pw = getpwnam("nobody");
	return pw ? pw->pw_uid : 65534;
}

gid_t
rasd_gid(void)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return getegid();
	pw = getpwnam("nobody");
	return pw ? pw->pw_gid : 65534;
}

char *
rasd_dir(const char *name)
{
	char *path = malloc(PATH_MAX);

	snprintf(path, PATH_MAX, "%s/%s", ras_test_tmpdir(), name);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "cannot create %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if (geteuid() == 0 && chown(path, rasd_uid(), rasd_gid()) < 0) {
		fprintf(stderr, "cannot chown %s: %s\n", path, strerror(errno));
		exit(1);
	}
	return path;
}

char *
rasd_config(const char *name, const char *text)
{
	char *p = ras_test_write_tmp(name, text, strlen(text));

	chmod(p, 0644);
	return p;
}

int
rasd_start(struct rasd_proc *p, const char *config, const char *const *args,
    const char *const *env)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char *argv[32];
	int n = 0, logfd;

	memset(p, 0, sizeof(*p));
	p->exit_status = -1;
	seq++;
	snprintf(p->notify_path, sizeof(p->notify_path), "%s/notify.%u", ras_test_tmpdir(), seq);
	snprintf(p->log_path, sizeof(p->log_path), "%s/rasd.%u.log", ras_test_tmpdir(), seq);
	unlink(p->notify_path);
	p->notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	ras_test_fmt(sa.sun_path, sizeof(sa.sun_path), "%s", p->notify_path);
	if (p->notify_fd < 0 || bind(p->notify_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "cannot bind %s: %s\n", p->notify_path, strerror(errno));
		exit(1);
	}
	chmod(p->notify_path, 0777);
	logfd = open(p->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (logfd < 0) {
		fprintf(stderr, "cannot create %s\n", p->log_path);
		exit(1);
	}
	if (nlogs < LOGS_MAX)
		logs[nlogs++] = strdup(p->log_path);
	argv[n++] = (char *)ras_test_program("daemon/rasd");
	if (config) {
		argv[n++] = "--config";
		argv[n++] = (char *)config;
	}
	for (; args && *args && n < 30; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	p->pid = fork();
	if (p->pid < 0)
		return -1;
	if (p->pid == 0) {
		char ns[600];
		int null = open("/dev/null", O_RDONLY);

		dup2(null, 0);
		dup2(logfd, 1);
		dup2(logfd, 2);
		snprintf(ns, sizeof(ns), "NOTIFY_SOCKET=%s", p->notify_path);
		putenv(ns);
		unsetenv("INVOCATION_ID");
		unsetenv("JOURNAL_STREAM");
		unsetenv("WATCHDOG_USEC");
		for (; env && *env; env++)
			putenv((char *)*env);
		if (geteuid() == 0 && !getenv("RASD_TEST_AS_ROOT")) {
			if (setgroups(0, NULL) < 0 || setgid(rasd_gid()) < 0 || setuid(rasd_uid()) < 0)
				_exit(126);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	close(logfd);
	return 0;
}

static void
drain(struct rasd_proc *p)
{
	char buf[4096];
	ssize_t n;

	while ((n = recv(p->notify_fd, buf, sizeof(buf) - 1, 0)) > 0) {
		p->notes = realloc(p->notes, p->nnotes + (size_t)n + 2);
		memcpy(p->notes + p->nnotes, buf, (size_t)n);
		p->nnotes += (size_t)n;
		p->notes[p->nnotes++] = '\x1e';
		p->notes[p->nnotes] = '\0';
	}
}

static bool
exited(struct rasd_proc *p)
{
	int st;

	if (p->exit_status >= 0)
		return true;
	if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
		p->exit_status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		return true;
	}
	return false;
}

bool
rasd_wait_notify(struct rasd_proc *p, const char *needle, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		struct pollfd pf = { p->notify_fd, POLLIN, 0 };

		drain(p);
		if (p->notes && strstr(p->notes, needle))
			return true;
		if (exited(p))
			return false;
		if (now_ms() >= end)
			return false;
		(void)poll(&pf, 1, 50);
	}
}

bool
rasd_wait_ready(struct rasd_proc *p, int timeout_ms)
{
	const char *h;

	if (!rasd_wait_notify(p, "READY=1", timeout_ms) ||
	    !rasd_wait_notify(p, "STATUS=ready", timeout_ms))
		return false;
	h = strstr(p->notes, "http ");
	if (h && strncmp(h + 5, "off", 3) != 0) {
		size_t k = 0;

		h += 5;
		while (h[k] && h[k] != ',' && k < sizeof(p->http) - 1)
			k++;
		memcpy(p->http, h, k);
		p->http[k] = '\0';
	}
	return true;
}

int
rasd_wait_exit(struct rasd_proc *p, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (!exited(p)) {
		if (now_ms() >= end)
			return -1;
		drain(p);
		usleep(10000);
	}
	drain(p);
	return p->exit_status;
}

void
rasd_kill(struct rasd_proc *p, int sig)
{
	if (p->pid > 0 && p->exit_status < 0)
		kill(p->pid, sig);
}

char *
rasd_log(const struct rasd_proc *p)
{
	return ras_test_read(p->log_path, NULL);
}

void
rasd_free(struct rasd_proc *p)
{
	if (p->pid > 0 && !exited(p)) {
		kill(p->pid, SIGKILL);
		(void)rasd_wait_exit(p, 5000);
	}
	if (p->notify_fd >= 0)
		close(p->notify_fd);
	unlink(p->notify_path);
	free(p->notes);
	p->notes = NULL;
	p->notify_fd = -1;
}

char *
rasd_all_logs(void)
{
	char *all = calloc(1, 1);
	size_t len = 0;

	for (size_t i = 0; i < nlogs; i++) {
		size_t l;
		char *t = ras_test_read(logs[i], &l);

		all = realloc(all, len + l + 1);
		memcpy(all + len, t, l);
		len += l;
		all[len] = '\0';
		free(t);
	}
	return all;
}

bool
rasd_until(bool (*fn)(void *ctx), void *ctx, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (!fn(ctx)) {
		if (now_ms() >= end)
			return false;
		usleep(20000);
	}
	return true;
}
