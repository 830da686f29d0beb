/*
 * rasd_proc: run the real rasd as a subprocess for end-to-end tests.
 *
 * Each process gets its own NOTIFY_SOCKET (a datagram socket the test
 * binds, as systemd would), its own log file (stderr), and — when the
 * tests run as root, which rasd refuses — runs as the unprivileged
 * "nobody" user.  The HTTP address is read from the STATUS= line rasd
 * sends when ready.  Every log is kept for the patient-data check.
 */
#ifndef RAS_TEST_RASD_PROC_H
#define RAS_TEST_RASD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct rasd_proc {
	pid_t pid;
	int notify_fd;
	char notify_path[512];
	char log_path[512];
	char http[64];          /* "127.0.0.1:PORT" once ready */
	char *notes;            /* every datagram received, one per line group, '\x1e' separated */
	size_t nnotes;
	int exit_status;        /* after rasd_wait_exit */
};

/* uid/gid rasd runs as (nobody when the tests run as root, else ours). */
uid_t rasd_uid(void);
gid_t rasd_gid(void);

/* A directory rasd may write (created, owned by rasd_uid()). */
char *rasd_dir(const char *name);

/* Write a config file into the test tmpdir; returns its path (malloc'd). */
char *rasd_config(const char *name, const char *text);

/* Start rasd with extra arguments (NULL-terminated, may be NULL) and
 * environment ("NAME=value", may be NULL). */
int rasd_start(struct rasd_proc *p, const char *config, const char *const *args,
    const char *const *env);

/* Wait until a notification containing `needle` arrives (true) or the
 * timeout passes or the process exits (false). */
bool rasd_wait_notify(struct rasd_proc *p, const char *needle, int timeout_ms);

/* Wait for READY=1 and the http address (if any). */
bool rasd_wait_ready(struct rasd_proc *p, int timeout_ms);

/* Wait for exit; returns the exit status (128+signal), -1 on timeout. */
int rasd_wait_exit(struct rasd_proc *p, int timeout_ms);

void rasd_kill(struct rasd_proc *p, int sig);

/* The log so far (malloc'd). */
char *rasd_log(const struct rasd_proc *p);

/* Release (kills with SIGKILL if still running). */
void rasd_free(struct rasd_proc *p);

/* Every log file written by this test process, concatenated (malloc'd). */
char *rasd_all_logs(void);

/* Poll a condition: run fn until it returns true or timeout_ms passes. */
bool rasd_until(bool (*fn)(void *ctx), void *ctx, int timeout_ms);

#endif
