/*
 * ctl: what every rasctl subcommand shares (see ctl.h): the configuration,
 * the database, the mappings, the triage and delivery contexts, loaded on
 * first use and freed by main; failure messages and exit codes.
 * rasctl.c is main and the command table; the ctl_*.c files are the
 * subcommands; this file is a leaf they all use.
 */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/log.h"
#include "ras/outbox.h"
#include "ras/runtime.h"
#include "ras/triage.h"
#include "ras_config.h"

void
ras_ctl_fail(struct ras_ctl *ctl, const char *what)
{
	const char *msg = ras_error_last();

	if (msg && *msg)
		fprintf(stderr, "%s: %s: %s\n", ctl->prog, what, msg);
	else
		fprintf(stderr, "%s: %s\n", ctl->prog, what);
}

int
ras_ctl_exit_for(int err)
{
	switch (err) {
	case 0: return CTL_OK;
	case RAS_EINVALID: return CTL_DATAERR;
	case RAS_ETOOBIG: return CTL_DATAERR;
	case RAS_ENOTFOUND: return CTL_DATAERR;
	case RAS_ERATELIMITED: return CTL_TEMPFAIL;
	case RAS_ECONFLICT: return CTL_TEMPFAIL;
	case RAS_ETIMEDOUT: return CTL_TEMPFAIL;
	case RAS_EIO: return CTL_UNAVAILABLE;
	default: return CTL_SOFTWARE;
	}
}

static bool
file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0;
}

int
ras_ctl_config(struct ras_ctl *ctl, struct ras_config **out)
{
	struct ras_buf problems = RAS_BUF_INIT(64 * 1024);
	const char *path = ctl->config_path;
	int err;

	if (ctl->cfg) {
		*out = ctl->cfg;
		return 0;
	}
	if (path == NULL)
		path = getenv("RASD_CONFIG");
	if (path == NULL && file_exists(RAS_SYSCONFDIR "/rasd.conf"))
		path = RAS_SYSCONFDIR "/rasd.conf";
	if (path == NULL) {
		if ((err = ras_config_defaults(&ctl->cfg)) < 0)
			return CTL_SOFTWARE;
		*out = ctl->cfg;
		return 0;
	}
	err = ras_config_load(path, &ctl->cfg, &problems);
	if (err < 0) {
		if (problems.data)
			fputs(problems.data, stderr);
		ras_ctl_fail(ctl, "cannot use configuration");
		ras_buf_free(&problems);
		ras_config_free(ctl->cfg);
		ctl->cfg = NULL;
		return CTL_CONFIG;
	}
	ras_buf_free(&problems);
	*out = ctl->cfg;
	return 0;
}

static bool
libpq_env_set(void)
{
	static const char *vars[] = { "PGHOST", "PGHOSTADDR", "PGDATABASE", "PGSERVICE", "PGPORT",
		"PGUSER", NULL };

	for (int i = 0; vars[i]; i++)
		if (getenv(vars[i]) && *getenv(vars[i]))
			return true;
	return false;
}

int
ras_ctl_db(struct ras_ctl *ctl, struct ras_db **out)
{
	char demo[PATH_MAX + 64];
	const char *conninfo = ctl->db_conninfo;
	int err;

	if (ctl->db) {
		*out = ctl->db;
		return 0;
	}
	if (conninfo && (strstr(conninfo, "password=") || strstr(conninfo, "password ="))) {
		fprintf(stderr, "%s: --db must not carry a password (it would show in the process list):"
		    " use a passfile (PGPASSFILE) instead\n", ctl->prog);
		return CTL_USAGE;
	}
	if (conninfo == NULL) {
		struct ras_config *cfg;

		if ((err = ras_ctl_config(ctl, &cfg)) != 0)
			return err;
		conninfo = ras_config_get(cfg, "database", NULL, "conninfo");
	}
	if (conninfo == NULL && libpq_env_set())
		conninfo = "";
	if (conninfo == NULL) {
		/* The demo's private cluster: a Unix socket under ./var/run of
		 * the current directory, else of $RAS_DATADIR (the checkout the
		 * demo ran in). */
		char cwd[PATH_MAX];
		const char *root = getenv("RAS_DATADIR");

		if (file_exists("var/run") || root == NULL || *root == '\0')
			root = getcwd(cwd, sizeof(cwd)) ? cwd : ".";
		if (snprintf(demo, sizeof(demo), "host=%s/var/run dbname=rasd", root) >= (int)sizeof(demo)) {
			fprintf(stderr, "%s: the demo cluster's path is too long\n", ctl->prog);
			return CTL_USAGE;
		}
		conninfo = demo;
	}
	if ((err = ras_db_connect(conninfo, &ctl->db)) < 0) {
		ras_ctl_fail(ctl, "cannot open the database");
		return CTL_UNAVAILABLE;
	}
	*out = ctl->db;
	return 0;
}

const char *
ras_ctl_mappings(struct ras_ctl *ctl, const char *opt)
{
	struct ras_config *cfg = NULL;

	if (opt)
		return opt;
	if (ras_ctl_config(ctl, &cfg) != 0)
		cfg = NULL;
	return ras_runtime_mappings_dir(cfg);
}

int
ras_ctl_triage_load(struct ras_ctl *ctl, const char *mappings, struct ras_triage **out)
{
	struct ras_config *cfg;
	int rc;

	if (ctl->triage == NULL) {
		if ((rc = ras_ctl_config(ctl, &cfg)) != 0)
			return rc;
		if (ras_triage_new(cfg, ras_ctl_mappings(ctl, mappings), &ctl->triage) < 0) {
			ras_ctl_fail(ctl, "cannot load the rule sets");
			return CTL_CONFIG;
		}
	}
	*out = ctl->triage;
	return 0;
}

int
ras_ctl_outbox_load(struct ras_ctl *ctl, const char *mappings, struct ras_outbox **out)
{
	struct ras_config *cfg;
	int rc;

	if (ctl->outbox == NULL) {
		if ((rc = ras_ctl_config(ctl, &cfg)) != 0)
			return rc;
		if (ras_outbox_new(cfg, ras_ctl_mappings(ctl, mappings), &ctl->outbox) < 0) {
			ras_ctl_fail(ctl, "cannot set up delivery");
			return CTL_CONFIG;
		}
	}
	*out = ctl->outbox;
	return 0;
}

int
ras_ctl_epr_ctx(struct ras_ctl *ctl, struct ras_epr_ctx *out)
{
	struct ras_triage *t;
	struct ras_outbox *o;
	int rc;

	if ((rc = ras_ctl_triage_load(ctl, NULL, &t)) != 0 ||
	    (rc = ras_ctl_outbox_load(ctl, NULL, &o)) != 0)
		return rc;
	out->triage = t;
	out->outbox = o;
	return 0;
}
