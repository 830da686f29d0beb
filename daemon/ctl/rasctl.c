/*
 * rasctl: the operations command line for rasd.  See rasctl(8) for every
 * subcommand; `rasctl help` lists them.
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

struct command {
	const char *name;
	int (*fn)(struct ras_ctl *, int, char **);
	const char *usage;
};

static const struct command commands[] = {
	{ "migrate", ras_ctl_migrate, "migrate                      apply database migrations" },
	{ "ingest", ras_ctl_ingest,
	  "ingest [--service ID] [--ubrn UBRN] FILE...  store and normalise payloads" },
	{ "show", ras_ctl_show, "show UBRN|ID                 print a stored referral as JSON" },
	{ "list", ras_ctl_list, "list [--state S] [--limit N] [--json]  stored referrals, newest first" },
	/* triage (issue 3) */
	{ "triage", ras_ctl_triage,
	  "triage --service ID [--at DATETIME] [--mappings DIR] FILE  decide one referral (no database)" },

	/* e-RS (issue 4) */
	{ "ers", ras_ctl_ers,
	  "ers poll|fetch|outcome|budget|pending  the e-RS client by hand (rasctl ers for usage)" },

	/* documents and delivery (issue 5) */
	{ "render", ras_ctl_render, "render --kind KIND --service ID --referral FILE [--episode FILE] "
	  "[--decision FILE] [--at DATETIME] [--format json|xml|html]  build one document (no database)" },
	{ "outbox", ras_ctl_outbox, "outbox list [--state S]|dead|retry ID...|run [--at T]  documents to send" },
	{ "episode", ras_ctl_episode, "episode --kind contact|discharge [--at T] UBRN|ID FILE  store an "
	  "EPR episode summary and queue its letter" },

	/* daemon and operations (issue 6) */
	{ "decide", ras_ctl_decide,
	  "decide UBRN --outcome accept|return|onward [--target T] --advice TEXT --by SDS_USER_ID\n"
	  "                               record a clinician's triage decision" },
	{ "record", ras_ctl_record,
	  "record KIND UBRN --at TIME --by SDS_USER_ID [...]  record an EPR event (see rasctl(8))" },
	{ "epr", ras_ctl_epr, "epr FILE...                  record EPR event messages (FHIR R4)" },
	{ "events", ras_ctl_events, "events UBRN [--json]         the audit trail of a referral" },
	{ "status", ras_ctl_status,
	  "status [--json] [--risk-hours N]  instances, queues, pollers, budgets, deadlines, dead letters" },
	{ "report", ras_ctl_report,
	  "report kpi --service ID --from DATE --to DATE [--format csv|html]  quality requirements" },
	{ "replay", ras_ctl_replay,
	  "replay --service ID [--mappings DIR] --from DATE --to DATE  decisions a rule set would change" },

	/* PDS (issue 10) */
	{ "pds", ras_ctl_pds, "pds lookup NHS_NUMBER|refresh UBRN|ID  patient demographics from PDS" },

	{ NULL, NULL, NULL },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: rasctl [--db CONNINFO] [--config FILE] COMMAND [ARGS]\n\ncommands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %s\n", c->usage);
	fprintf(f, "\nThe database is --db, else [database] conninfo in the config file, else\n"
	    "libpq's environment (PGHOST, PGDATABASE, ...), else the demo cluster in ./var.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "config", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ras_ctl ctl = { .prog = "rasctl" };
	int c, rc;

	ras_log_init("rasctl");
	/* '+': stop at the subcommand so its own options are left to it. */
	while ((c = getopt_long(argc, argv, "+d:c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'd': ctl.db_conninfo = optarg; break;
		case 'c': ctl.config_path = optarg; break;
		case 'h': usage(stdout); return CTL_OK;
		case 'V': printf("rasctl %s\n", RAS_VERSION); return CTL_OK;
		default: usage(stderr); return CTL_USAGE;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return CTL_USAGE;
	}
	if (strcmp(argv[optind], "help") == 0) {
		usage(stdout);
		return CTL_OK;
	}
	for (const struct command *cmd = commands; cmd->name; cmd++) {
		if (strcmp(cmd->name, argv[optind]) != 0)
			continue;
		argc -= optind;
		argv += optind;
		if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
			/* every command the same way: its synopsis (rasctl(8) has the rest) */
			printf("usage: rasctl %s\n", cmd->usage);
			return CTL_OK;
		}
		optind = 0;   /* reset getopt for the subcommand (glibc: 0 re-initialises) */
		rc = cmd->fn(&ctl, argc, argv);
		ras_outbox_free(ctl.outbox);
		ras_triage_free(ctl.triage);
		ras_db_close(ctl.db);
		ras_config_free(ctl.cfg);
		return rc;
	}
	fprintf(stderr, "rasctl: unknown command \"%s\"\n", argv[optind]);
	usage(stderr);
	return CTL_USAGE;
}
