/*
 * rasd: the integration daemon.  See rasd(8) and docs/operations.md.
 *
 *   rasd [--config FILE] [--check-config] [--foreground]
 *
 * Start-up: configuration (every problem reported), refuse root, the
 * database and its schema version, the HTTP listener and the spool; then
 * READY=1 to systemd, in-flight work recovered, and the loop runs the
 * stages, pollers, HTTP requests and signals until SIGTERM.  SIGHUP builds
 * a whole new configuration and swaps it in only if it all validates.
 *
 * Exit status: 0 stopped cleanly; 1 failed while running; 64 bad command
 * line; 69 database unavailable at start; 71 could not listen or watch
 * the spool; 77 started as root; 78 configuration or schema problem.
 */
#define _GNU_SOURCE   /* pipe2 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "httpd.h"
#include "ui/ui.h"
#include "loop.h"
#include "notify.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/log.h"
#include "ras/migrate.h"
#include "ras/ops.h"
#include "ras/time.h"
#include "ras_config.h"
#include "remote.h"
#include "spool.h"
#include "stage.h"

enum {
	EXIT_RUNTIME = 1,
	EXIT_USAGE = 64,
	EXIT_UNAVAILABLE = 69,
	EXIT_OSERR = 71,
	EXIT_NOPERM = 77,
	EXIT_CONFIG = 78,
};

static int ready_pipe = -1;   /* background start: tells the parent we are ready */
/* SIGHUP's reload runs from the outer turn of the loop, never while a
 * stage waits for its transfers (its units must outlive the wait). */
static struct ras_loop_timer *reload_timer;

/* ---- configuration --------------------------------------------------------- */

static enum ras_log_prio
level_of(const struct ras_config *cfg)
{
	const char *v = ras_config_get(cfg, "daemon", NULL, "log_level");

	if (v == NULL)
		return RAS_LOG_INFO;
	if (strcmp(v, "debug") == 0)
		return RAS_LOG_DEBUG;
	if (strcmp(v, "notice") == 0)
		return RAS_LOG_NOTICE;
	if (strcmp(v, "warning") == 0)
		return RAS_LOG_WARNING;
	if (strcmp(v, "err") == 0)
		return RAS_LOG_ERR;
	return RAS_LOG_INFO;
}

static int
check_dir(struct ras_buf *problems, const char *what, const char *path, bool writable)
{
	struct stat st;

	if (path == NULL)
		return 0;
	if (stat(path, &st) < 0) {
		(void)ras_buf_printf(problems, "%s \"%s\": %s\n", what, path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode)) {
		(void)ras_buf_printf(problems, "%s \"%s\" is not a directory\n", what, path);
		return 1;
	}
	if (access(path, R_OK | X_OK | (writable ? W_OK : 0)) < 0) {
		(void)ras_buf_printf(problems, "%s \"%s\" is not %s by this user: %s\n", what, path,
		    writable ? "writable" : "readable", strerror(errno));
		return 1;
	}
	return 0;
}

/*
 * Load and check everything a configuration brings: the file itself,
 * the HTTP and spool settings, the mappings, and each stage's own
 * configuration (rule sets and the like).  On success *cfg and *units are
 * ready to use; otherwise every problem is in `problems` and nothing is
 * returned.
 */
static int
load_all(const char *path, struct ras_config **cfgp, struct ras_units **unitsp,
    struct ras_buf *problems)
{
	struct ras_config *cfg = NULL;
	struct ras_units *units = NULL;
	int err, n = 0;

	*cfgp = NULL;
	*unitsp = NULL;
	if (path)
		err = ras_config_load(path, &cfg, problems);
	else
		err = ras_config_defaults(&cfg);
	if (err == RAS_EIO || err == RAS_ENOMEM || cfg == NULL) {
		(void)ras_buf_printf(problems, "%s\n", ras_error_last());
		ras_config_free(cfg);
		return err < 0 ? err : RAS_ERROR;
	}
	if (err < 0)
		n++;
	n += ras_httpd_check(cfg, problems);
	n += ras_ui_check(cfg, problems);
	{
		const char *spool = ras_config_get(cfg, "spool", NULL, "directory");

		n += check_dir(problems, "[spool] directory", spool, true);
		if (spool) {
			n += check_dir(problems, "[spool] done", ras_config_get(cfg, "spool", NULL, "done"), true);
			n += check_dir(problems, "[spool] rejected", ras_config_get(cfg, "spool", NULL, "rejected"),
			    true);
		}
	}
	n += check_dir(problems, "[general] mappings", ras_config_get(cfg, "general", NULL, "mappings"),
	    false);
	/* Everything the stages load, each problem on its own line (the
	 * mappings file by file, the rule sets with the configuration applied,
	 * document profiles, routing, delivery and e-RS settings, form maps):
	 * the stages' configure() loads the runtime (ras_runtime_new), which
	 * reports them, and the units are built only when it loads. */
	if (ras_units_build(cfg, &units, problems) < 0)
		n++;
	if (n) {
		ras_units_free(units);
		ras_config_free(cfg);
		return RAS_EINVALID;
	}
	*cfgp = cfg;
	*unitsp = units;
	return 0;
}

static void
log_problems(const struct ras_buf *problems)
{
	const char *p = problems->data;

	while (p && *p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		if (len)
			ras_log(RAS_LOG_ERR, "configuration: %.*s", len, p);
		p = nl ? nl + 1 : NULL;
	}
}

/* Options that take effect only at start-up and changed in a reload. */
static void
warn_restart_only(const struct ras_config *old, const struct ras_config *neu)
{
	for (const struct ras_option *o = ras_config_options; o->name; o++) {
		const char *a, *b;

		if (o->reloadable || o->instanced)
			continue;
		a = ras_config_get(old, o->section, NULL, o->name);
		b = ras_config_get(neu, o->section, NULL, o->name);
		if ((a == NULL) != (b == NULL) || (a && b && strcmp(a, b) != 0))
			ras_log(RAS_LOG_WARNING, "[%s] %s changed: it takes effect when rasd restarts",
			    o->section, o->name);
	}
}

/* "normalise, triage, ers-poll ers:11012, …" for the logs. */
static void
unit_names(const struct ras_units *u, char *buf, size_t size)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < ras_units_count(u) && off < size; i++) {
		int n = snprintf(buf + off, size - off, "%s%s", i ? ", " : "", ras_units_name(u, i));

		if (n < 0)
			break;
		off += (size_t)n;
	}
}

/* ---- status and systemd ------------------------------------------------------ */

static void
send_status(struct ras_daemon *d, const char *prefix)
{
	char spool[16];

	snprintf(spool, sizeof(spool), "%s", d->spool ? "on" : "off");
	(void)ras_notify("STATUS=%s: %zu unit(s), http %s, spool %s, %llu payload(s) received",
	    prefix, ras_units_count(d->units), d->httpd ? ras_httpd_address(d->httpd) : "off", spool,
	    (unsigned long long)d->stats.received);
}

static void
on_watchdog(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	(void)l;
	(void)ctx;
	(void)ras_notify("WATCHDOG=1");
	ras_loop_timer_after(t, (int64_t)(ras_notify_watchdog_usec() / 2000));
}

/* The heartbeat records the interval (rasctl status calls an instance
 * running while its last heartbeat is younger than two of them) and the
 * backend of this connection (gone at once when rasd is killed). */
static const char SQL_HEARTBEAT[] =
    "INSERT INTO daemon_instances AS i (instance, host, pid, version, started_at, heartbeat_at,"
    "  stopped_at, heartbeat_seconds, backend_pid)"
    " VALUES ($1, $2, $3::int, $4, to_timestamp($5::bigint), now(),"
    "  CASE WHEN $6::boolean THEN now() END, $7::int, pg_backend_pid())"
    " ON CONFLICT (host, pid, started_at) DO UPDATE SET heartbeat_at = now(),"
    "  stopped_at = EXCLUDED.stopped_at, heartbeat_seconds = EXCLUDED.heartbeat_seconds,"
    "  backend_pid = EXCLUDED.backend_pid";

static void
heartbeat(struct ras_daemon *d, bool stopped)
{
	struct ras_db *db = ras_daemon_db(d);
	char pid[16], started[24], every[16];

	if (db == NULL)
		return;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(started, sizeof(started), "%lld", (long long)d->started_at);
	snprintf(every, sizeof(every), "%lld", (long long)ras_config_int(d->cfg, "daemon", NULL, "heartbeat"));
	if (ras_db_query(db, NULL, SQL_HEARTBEAT, 7, (struct ras_db_param[]){
	    RAS_DB_TEXT(d->instance), RAS_DB_TEXT(d->host), RAS_DB_TEXT(pid), RAS_DB_TEXT(RAS_VERSION),
	    RAS_DB_TEXT(started), RAS_DB_TEXT(stopped ? "true" : "false"), RAS_DB_TEXT(every) }) < 0)
		ras_log(RAS_LOG_WARNING, "could not record the heartbeat: %s", ras_error_last());
}

/*
 * Two-week-wait GP notices due today that nothing delivered yet
 * (ras_ops_gp_notice_alerts): one warning whenever the list changes, with
 * UBRNs only, so that a person acts before the working day ends.
 */
static void
gp_notice_check(struct ras_daemon *d)
{
	static char last[1024];
	struct ras_db *db = ras_daemon_db(d);
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *al = NULL, *x;
	size_t i;

	if (db == NULL || ras_ops_gp_notice_alerts(db, NULL, &al) < 0) {
		json_decref(al);
		return;
	}
	json_array_foreach(al, i, x)
		(void)ras_buf_printf(&b, "%s%s (notice %s)", i ? ", " : "", ras_json_str(x, "ubrn"),
		    ras_json_str(x, "notice_state"));
	if (strcmp(last, b.data ? b.data : "") != 0) {
		if (json_array_size(al) > 0)
			ras_log_fields(RAS_LOG_WARNING, (struct ras_log_field[]){ { "STAGE", "deadlines" },
			    { NULL, NULL } }, "two-week-wait GP notice not delivered for %zu referral(s) due today:"
			    " %.700s; act before the working day ends (rasctl status)", json_array_size(al),
			    b.data ? b.data : "");
		snprintf(last, sizeof(last), "%s", b.data ? b.data : "");
	}
	ras_buf_free(&b);
	json_decref(al);
}

static void
on_heartbeat(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	struct ras_daemon *d = ctx;

	(void)l;
	heartbeat(d, false);
	gp_notice_check(d);
	send_status(d, "running");
	ras_loop_timer_after(t, ras_config_int(d->cfg, "daemon", NULL, "heartbeat") * 1000);
}

/* ---- signals --------------------------------------------------------------- */

static void
reload(struct ras_daemon *d)
{
	struct ras_buf problems = RAS_BUF_INIT(64 * 1024);
	struct ras_config *cfg = NULL;
	struct ras_units *units = NULL;
	int err;

	(void)ras_notify("RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading the configuration",
	    (unsigned long long)ras_notify_monotonic_usec());
	ras_log(RAS_LOG_NOTICE, "SIGHUP: reloading the configuration%s%s", d->config_path ? " from " : "",
	    d->config_path ? d->config_path : "");
	err = load_all(d->config_path, &cfg, &units, &problems);
	if (err == 0 && (ras_httpd_reconfigure(d->httpd, cfg) < 0 || ras_ui_reconfigure(d->ui, cfg) < 0)) {
		(void)ras_buf_printf(&problems, "%s\n", ras_error_last());
		err = RAS_EINVALID;
		ras_units_free(units);
		ras_config_free(cfg);
	}
	if (err < 0) {
		log_problems(&problems);
		ras_log(RAS_LOG_ERR, "configuration reload failed: keeping the configuration in use");
		d->stats.reload_failed++;
		ras_buf_free(&problems);
		(void)ras_notify("READY=1");
		send_status(d, "running (last reload failed: configuration kept)");
		return;
	}
	warn_restart_only(d->cfg, cfg);
	/* groups of POSTs kept by workers use the triage engine and form maps
	 * of the configuration about to be freed */
	ras_httpd_drain(d->httpd);
	ras_units_stop(d, d->units);
	ras_units_free(d->units);
	ras_config_free(d->cfg);
	d->cfg = cfg;
	d->units = units;
	ras_log_set_level(level_of(cfg));
	ras_spool_reconfigure(d->spool, cfg);
	if ((err = ras_units_start(d, d->units, false)) < 0)
		ras_log(RAS_LOG_ERR, "could not start the reloaded stages: %s", ras_error_last());
	ras_spool_kick(d->spool);
	d->stats.reload_ok++;
	d->stats.reload_last_ok = ras_time_now();
	{
		char names[1024];

		unit_names(units, names, sizeof(names));
		ras_log(RAS_LOG_NOTICE, "configuration reloaded: %zu unit(s) (%s)", ras_units_count(units),
		    names);
	}
	ras_buf_free(&problems);
	(void)ras_notify("READY=1");
	send_status(d, "running (configuration reloaded)");
}

static void
on_reload(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	struct ras_daemon *d = ctx;

	(void)l;
	(void)t;
	if (!d->stopping)
		reload(d);
}

static void
on_signal(struct ras_loop *l, int fd, uint32_t events, void *ctx)
{
	struct ras_daemon *d = ctx;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGHUP:
			if (d->stopping)
				break;
			if (ras_loop_depth(l) == 0 || reload_timer == NULL)
				reload(d);
			else
				ras_loop_timer_after(reload_timer, 0);
			break;
		case SIGTERM:
		case SIGINT:
			if (!d->stopping) {
				d->stopping = true;
				ras_stage_note_stop();
				(void)ras_notify("STOPPING=1\nSTATUS=stopping");
				ras_log(RAS_LOG_NOTICE, "%s: stopping (the batch in hand is finished)",
				    si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT");
				ras_loop_quit(l);
			}
			break;
		default:
			break;
		}
	}
}

/* ---- start-up ---------------------------------------------------------------- */

/* Leave the terminal: the parent exits once the child is ready (status 0)
 * or has failed (its status), so scripts can rely on the exit status. */
static int
background(void)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid > 0) {
		char c;
		int status = 0;

		close(p[1]);
		if (read(p[0], &c, 1) == 1 && c == 'R')
			_exit(0);
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
			_exit(WEXITSTATUS(status));
		_exit(EXIT_RUNTIME);
	}
	close(p[0]);
	ready_pipe = p[1];
	if (setsid() < 0)
		return -1;
	{
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			if (null > STDERR_FILENO)
				close(null);
		}
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: rasd [--config FILE] [--check-config] [--foreground]\n"
	    "       rasd --reload PID\n"
	    "  --config FILE    configuration file (default $RASD_CONFIG, else %s/rasd.conf)\n"
	    "  --check-config   check the configuration, mappings and rule sets, print\n"
	    "                   \"configuration OK\" or every problem, and exit\n"
	    "  --foreground     stay in the foreground (implied under systemd)\n"
	    "  --reload PID     ask the rasd with process id PID to reload its configuration\n"
	    "                   (SIGHUP; the units' ExecReload=, so no kill(1) is needed)\n",
	    RAS_SYSCONFDIR);
}

/* rasd --reload PID: what `systemctl reload` runs (ExecReload=/usr/sbin/rasd
 * --reload $MAINPID).  kill(1) is procps's, absent on minimal systems. */
static int
send_reload(const char *arg)
{
	char *end;
	long pid;

	errno = 0;
	pid = strtol(arg, &end, 10);
	if (errno || *end || end == arg || pid <= 1 || pid > INT_MAX) {
		ras_log(RAS_LOG_ERR, "--reload wants the process id of a running rasd, not \"%.40s\"", arg);
		return EXIT_USAGE;
	}
	if (kill((pid_t)pid, SIGHUP) < 0) {
		ras_log(RAS_LOG_ERR, "cannot signal process %ld: %s", pid, strerror(errno));
		return errno == EPERM ? EXIT_NOPERM : EXIT_UNAVAILABLE;
	}
	return 0;
}

/* --check-config: load everything as start-up would, print "configuration
 * OK" or every problem; the exit status. */
static int
check_config(const char *path)
{
	struct ras_buf problems = RAS_BUF_INIT(256 * 1024);
	struct ras_config *cfg;
	struct ras_units *units;

	if (load_all(path, &cfg, &units, &problems) < 0) {
		fputs(problems.data ? problems.data : "configuration could not be read\n", stdout);
		ras_buf_free(&problems);
		return EXIT_CONFIG;
	}
	printf("configuration OK\n");
	ras_units_free(units);
	ras_config_free(cfg);
	ras_buf_free(&problems);
	return 0;
}

/* The host and instance names, and the database connections' application
 * name (so that pg_stat_activity shows which rasd).  0, or the exit status. */
static int
name_instance(struct ras_daemon *d)
{
	const char *inst = getenv("RASD_INSTANCE");

	if (gethostname(d->host, sizeof(d->host)) < 0)
		snprintf(d->host, sizeof(d->host), "localhost");
	d->host[sizeof(d->host) - 1] = '\0';
	if (inst == NULL || *inst == '\0')
		inst = ras_config_get(d->cfg, "general", NULL, "instance");
	if (snprintf(d->instance, sizeof(d->instance), "%s", inst ? inst : d->host) >=
	    (int)sizeof(d->instance)) {
		ras_log(RAS_LOG_ERR, "cannot start: the instance name (RASD_INSTANCE, [general] "
		    "instance or the host name) is longer than %zu characters", sizeof(d->instance) - 1);
		return EXIT_CONFIG;
	}
	if (getenv("PGAPPNAME") == NULL) {
		char app[80];

		if (snprintf(app, sizeof(app), "rasd %s", d->instance) < (int)sizeof(app))
			setenv("PGAPPNAME", app, 0);
	}
	return 0;
}

/* The database and its schema, the loop with the signals, the HTTP
 * listener, the spool and the timers.  0, or the exit status. */
static int
open_services(struct ras_daemon *d, int sfd)
{
	int err;

	(void)ras_notify("STATUS=connecting to the database");
	if ((err = ras_db_connect(ras_config_get(d->cfg, "database", NULL, "conninfo"), &d->db)) < 0) {
		ras_log(RAS_LOG_ERR, "cannot start: %s", ras_error_last());
		return EXIT_UNAVAILABLE;
	}
	if ((err = ras_migrate_check(d->db)) < 0) {
		ras_log(RAS_LOG_ERR, "cannot start: %s", ras_error_last());
		return err == RAS_EIO ? EXIT_UNAVAILABLE : EXIT_CONFIG;
	}
	if ((err = ras_loop_new(&d->loop)) < 0 || sfd < 0 ||
	    (err = ras_loop_add_fd(d->loop, sfd, EPOLLIN, on_signal, d)) < 0 ||
	    (err = ras_remote_start(d->loop)) < 0 ||
	    (reload_timer = ras_loop_timer_new(d->loop, "reload", on_reload, d)) == NULL) {
		ras_log(RAS_LOG_ERR, "cannot start: %s", sfd < 0 ? strerror(errno) : ras_error_last());
		return EXIT_OSERR;
	}
	if ((err = ras_httpd_start(d, d->cfg, &d->httpd)) < 0 ||
	    (err = ras_ui_start(d, d->cfg, &d->ui)) < 0 ||
	    (err = ras_spool_open(d, d->cfg, &d->spool)) < 0) {
		ras_log(RAS_LOG_ERR, "cannot start: %s", ras_error_last());
		return EXIT_OSERR;
	}
	heartbeat(d, false);
	/* The heartbeat and the watchdog ping go on while a stage waits for
	 * a slow remote service. */
	d->heartbeat = ras_loop_timer_new(d->loop, "heartbeat", on_heartbeat, d);
	if (d->heartbeat) {
		ras_loop_timer_set_nested(d->heartbeat, true);
		ras_loop_timer_after(d->heartbeat, ras_config_int(d->cfg, "daemon", NULL, "heartbeat") * 1000);
	}
	if (ras_notify_watchdog_usec()) {
		/* rasctl status calls an instance dead after two heartbeats; that
		 * should come before systemd's watchdog acts, not long after */
		uint64_t hb = (uint64_t)ras_config_int(d->cfg, "daemon", NULL, "heartbeat") * 1000000u;

		if (2 * hb > ras_notify_watchdog_usec())
			ras_log(RAS_LOG_WARNING, "[daemon] heartbeat = %llu s is more than half the watchdog "
			    "interval (WatchdogSec= %llu s): rasctl status will be slow to see a hung rasd",
			    (unsigned long long)(hb / 1000000u),
			    (unsigned long long)(ras_notify_watchdog_usec() / 1000000u));
		d->watchdog = ras_loop_timer_new(d->loop, "watchdog", on_watchdog, d);
		if (d->watchdog) {
			ras_loop_timer_set_nested(d->watchdog, true);
			ras_loop_timer_after(d->watchdog, 0);
		}
	}
	return 0;
}

/* Configuration, database and schema are checked: ready (the log, systemd,
 * and the parent of a background start). */
static void
announce_ready(struct ras_daemon *d)
{
	char names[1024];

	d->ready = true;
	unit_names(d->units, names, sizeof(names));
	ras_log(RAS_LOG_NOTICE, "ready: %zu unit(s) (%s), http %s, spool %s, ui %s", ras_units_count(d->units),
	    names, d->httpd ? ras_httpd_address(d->httpd) : "off", d->spool ? "on" : "off",
	    d->ui ? ras_ui_address(d->ui) : "off");
	(void)ras_notify("READY=1\nMAINPID=%d", (int)getpid());
	send_status(d, "ready");
	if (ready_pipe >= 0) {
		(void)!write(ready_pipe, "R", 1);
		close(ready_pipe);
		ready_pipe = -1;
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'C' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "reload", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	struct ras_buf problems = RAS_BUF_INIT(256 * 1024);
	struct ras_daemon dd, *d = &dd;
	const char *path = NULL;
	char realp[PATH_MAX];
	bool check = false, foreground = false;
	int c, rc = 0, err, sfd = -1;
	sigset_t mask;

	memset(d, 0, sizeof(*d));
	ras_log_init("rasd");
	while ((c = getopt_long(argc, argv, "c:CfhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'C': check = true; break;
		case 'f': foreground = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("rasd %s\n", RAS_VERSION); return 0;
		case 'R': return send_reload(optarg);
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (path == NULL)
		path = getenv("RASD_CONFIG");
	if (path == NULL && access(RAS_SYSCONFDIR "/rasd.conf", F_OK) == 0)
		path = RAS_SYSCONFDIR "/rasd.conf";
	if (path && realpath(path, realp) != NULL)
		path = realp;
	if (check)
		return check_config(path);

	/* ---- start: refuse root, configuration, background, signals ---- */
	if (geteuid() == 0 || getuid() == 0) {
		ras_log(RAS_LOG_ERR, "rasd must not run as root: run it as its own user (systemd: the "
		    "shipped unit uses User=rasd)");
		return EXIT_NOPERM;
	}
	if ((err = ras_notify_init()) < 0) {
		ras_log(RAS_LOG_ERR, "%s", ras_error_last());
		return EXIT_USAGE;
	}
	d->config_path = path;
	if ((err = load_all(path, &d->cfg, &d->units, &problems)) < 0) {
		log_problems(&problems);
		ras_log(RAS_LOG_ERR, "cannot start: the configuration has problems (rasd --check-config lists them)");
		ras_buf_free(&problems);
		return EXIT_CONFIG;
	}
	ras_buf_free(&problems);
	ras_log_set_level(level_of(d->cfg));
	if (!foreground && !ras_notify_enabled() && getenv("INVOCATION_ID") == NULL &&
	    background() < 0) {
		ras_log(RAS_LOG_ERR, "could not start in the background: %s", strerror(errno));
		return EXIT_OSERR;
	}
	/* Signals arrive through the loop (signalfd); the pending set also
	 * lets long stage runs notice SIGTERM (stage.h). */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	d->started_at = ras_time_now();
	d->stats.reload_last_ok = d->started_at;
	if ((rc = name_instance(d)) != 0)
		return rc;
	ras_log(RAS_LOG_NOTICE, "rasd %s starting (instance %s, configuration %s)", RAS_VERSION,
	    d->instance, path ? path : "built-in defaults");

	/* ---- run: services, ready, in-flight work first, then the loop ---- */
	if ((rc = open_services(d, sfd)) != 0)
		goto done;
	announce_ready(d);
	if ((err = ras_units_start(d, d->units, true)) < 0) {
		ras_log(RAS_LOG_ERR, "cannot start the stages: %s", ras_error_last());
		rc = EXIT_RUNTIME;
		goto done;
	}
	ras_spool_kick(d->spool);
	if ((err = ras_loop_run(d->loop)) < 0) {
		ras_log(RAS_LOG_ERR, "the event loop failed: %s", ras_error_last());
		rc = EXIT_RUNTIME;
	}

	/* ---- stop ---- */
done:
	d->stopping = true;
	if (d->loop) {
		ras_httpd_stop(d, d->httpd);
		ras_ui_stop(d, d->ui);
		ras_spool_close(d, d->spool);
		ras_units_stop(d, d->units);
		ras_remote_stop(d->loop);
	}
	if (d->db && d->ready)
		heartbeat(d, true);
	ras_units_free(d->units);
	ras_loop_free(d->loop);
	ras_db_close(d->stage_db);
	ras_db_close(d->db);
	ras_config_free(d->cfg);
	if (sfd >= 0)
		close(sfd);
	if (rc == 0)
		ras_log(RAS_LOG_NOTICE, "stopped");
	return rc;
}
