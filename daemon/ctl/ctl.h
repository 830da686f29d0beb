/*
 * ctl: what rasctl's subcommands share: global options, the database
 * connection chosen by the documented order, the mappings directory, and
 * the exit codes (sysexits.h) that scripts rely on.
 *
 * Each subcommand lives in its own daemon/ctl_<name>.c and registers in
 * the table in rasctl.c.
 */
#ifndef RAS_CTL_H
#define RAS_CTL_H

#include <stdbool.h>
#include <stdio.h>

struct ras_config;
struct ras_db;
struct ras_epr_ctx;
struct ras_outbox;
struct ras_triage;

/* sysexits.h values, named for what rasctl means by them. */
enum {
	CTL_OK = 0,
	CTL_USAGE = 64,        /* bad command line */
	CTL_DATAERR = 65,      /* input rejected (a payload, a referral) */
	CTL_NOINPUT = 66,      /* a named file does not exist or cannot be read */
	CTL_UNAVAILABLE = 69,  /* the database or a remote service is unavailable */
	CTL_SOFTWARE = 70,     /* internal error */
	CTL_IOERR = 74,
	CTL_TEMPFAIL = 75,     /* try again later (budget used up, lock held) */
	CTL_CONFIG = 78,       /* configuration problem */
};

struct ras_ctl {
	const char *db_conninfo;    /* --db */
	const char *config_path;    /* --config */
	struct ras_config *cfg;     /* loaded lazily */
	struct ras_db *db;          /* opened lazily */
	struct ras_triage *triage;  /* loaded lazily (ras_ctl_triage_load) */
	struct ras_outbox *outbox;  /* built lazily (ras_ctl_outbox_load) */
	const char *prog;
};

/* Open the database: --db, else [database] conninfo from the config file,
 * else libpq's environment (PGHOST, PGDATABASE, PGSERVICE, …), else the
 * demo's private cluster under ./var.  Prints the error and returns the
 * exit code on failure. */
int ras_ctl_db(struct ras_ctl *ctl, struct ras_db **out);

/* The configuration (--config, $RASD_CONFIG, /etc/rasd/rasd.conf if it
 * exists, else defaults). Prints problems and returns an exit code. */
int ras_ctl_config(struct ras_ctl *ctl, struct ras_config **out);

/* Mappings directory: `opt` if given, else [general] mappings, else the
 * installed one, else the source checkout's mappings/
 * (ras_runtime_mappings_dir, as rasd decides). */
const char *ras_ctl_mappings(struct ras_ctl *ctl, const char *opt);

/* The rule sets with the configuration applied, and the delivery context,
 * loaded once per command (freed when rasctl exits).  Print the problem and
 * return the exit code on failure. */
int ras_ctl_triage_load(struct ras_ctl *ctl, const char *mappings, struct ras_triage **out);
int ras_ctl_outbox_load(struct ras_ctl *ctl, const char *mappings, struct ras_outbox **out);

/* What recording EPR events needs (decide, record, epr): both of the above. */
int ras_ctl_epr_ctx(struct ras_ctl *ctl, struct ras_epr_ctx *out);

/* Print "rasctl: <msg>: <ras_error_last()>" on stderr. */
void ras_ctl_fail(struct ras_ctl *ctl, const char *what);

/* Exit code for a RAS_E* code. */
int ras_ctl_exit_for(int err);

/* Subcommands (argv[0] is the subcommand name). */
int ras_ctl_migrate(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_ingest(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_show(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_list(struct ras_ctl *ctl, int argc, char **argv);
/* PDS (issue 10) */
int ras_ctl_pds(struct ras_ctl *ctl, int argc, char **argv);
/* triage (issue 3) */
int ras_ctl_triage(struct ras_ctl *ctl, int argc, char **argv);

/* e-RS (issue 4) */
int ras_ctl_ers(struct ras_ctl *ctl, int argc, char **argv);

/* documents and delivery (issue 5) */
int ras_ctl_render(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_outbox(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_episode(struct ras_ctl *ctl, int argc, char **argv);

/* daemon and operations (issue 6) */
int ras_ctl_decide(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_record(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_epr(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_events(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_status(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_report(struct ras_ctl *ctl, int argc, char **argv);
int ras_ctl_replay(struct ras_ctl *ctl, int argc, char **argv);


#endif
