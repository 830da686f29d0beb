/*
 * ctl_triage: `rasctl triage --service ID [--at DATETIME] [--mappings DIR] FILE`.
 *
 * Triages one referral without a database and prints one JSON object:
 *
 *   {"service", "outcome", "onward_target", "final",
 *    "reasons": [{"rule", "clause", "advice"}], "deadlines": [{"kind", "due"}]}
 *
 * FILE is a FHIR R4 referral Bundle (or an e-RS A005 ReferralRequest; "-"
 * reads standard input).  --at is the receipt time (default now): the age
 * and every clock run from it.  Exit status: 0 a decision was made; 65 the
 * input cannot be triaged at all (missing or unreadable file, not JSON,
 * not a single referral), with one line on stderr; 64 bad usage (missing
 * or unknown --service, bad --at); 78 the mappings or configuration do not
 * load; 70 an internal failure.
 *
 * An invalid NHS number is a decision, not an exit 65: the referral is
 * returned with the reason (unless a safety rule fires first), because the
 * file is a referral that a person will act on.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/rules.h"
#include "ras/triage.h"

static const char usage_text[] =
    "usage: rasctl triage --service ID [--at DATETIME] [--mappings DIR] FILE\n";

/* Read FILE ("-" = stdin) up to RAS_PAYLOAD_MAX; 0 or a message in why. */
static int
read_payload(const char *name, struct ras_buf *b, char *why, size_t size)
{
	char chunk[65536];
	int fd = STDIN_FILENO;
	ssize_t n;

	if (strcmp(name, "-") != 0) {
		struct stat st;

		if ((fd = open(name, O_RDONLY | O_CLOEXEC)) < 0) {
			snprintf(why, size, "cannot open \"%s\": %s", name, strerror(errno));
			return -1;
		}
		if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
			snprintf(why, size, "\"%s\" is not a regular file", name);
			close(fd);
			return -1;
		}
	}
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(why, size, "cannot read \"%s\": %s", name, strerror(errno));
			break;
		}
		if (n == 0) {
			if (fd != STDIN_FILENO)
				close(fd);
			return 0;
		}
		if (ras_buf_append(b, chunk, (size_t)n) < 0) {
			snprintf(why, size, "\"%s\" is larger than %u bytes", name, RAS_PAYLOAD_MAX);
			break;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return -1;
}

int
ras_ctl_triage(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service", required_argument, NULL, 's' },
		{ "at", required_argument, NULL, 'a' },
		{ "mappings", required_argument, NULL, 'm' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL, *at = NULL, *mdir = NULL, *known[RAS_SERVICES_MAX];
	struct ras_buf in = RAS_BUF_INIT(RAS_PAYLOAD_MAX), out = RAS_BUF_INIT(0);
	struct ras_arena *a = NULL;
	struct ras_triage *t = NULL;
	struct ras_config *cfg = NULL;
	struct ras_intake intake;
	struct ras_decision d;
	const struct ras_ruleset *rs;
	json_t *j = NULL;
	int64_t received;
	char why[512];
	int c, rc = CTL_OK, err;

	while ((c = getopt_long(argc, argv, "+s:a:m:", opts, NULL)) != -1) {
		switch (c) {
		case 's': service = optarg; break;
		case 'a': at = optarg; break;
		case 'm': mdir = optarg; break;
		default:
			fputs(usage_text, stderr);
			return CTL_USAGE;
		}
	}
	if (service == NULL || optind != argc - 1) {
		fputs(usage_text, stderr);
		return CTL_USAGE;
	}
	received = ras_time_now();
	if (at && ras_time_parse(at, true, &received) < 0) {
		fprintf(stderr, "%s: --at \"%s\" is not a date-time (e.g. 2026-04-06T10:15:00+01:00 or 2026-04-06)\n",
		    ctl->prog, at);
		return CTL_USAGE;
	}

	/* The input first: a file that cannot be triaged is exit 65 whatever
	 * else is wrong. */
	if (read_payload(argv[optind], &in, why, sizeof(why)) < 0) {
		fprintf(stderr, "%s: cannot triage: %s\n", ctl->prog, why);
		rc = CTL_DATAERR;
		goto done;
	}
	if ((a = ras_arena_new()) == NULL) {
		rc = CTL_SOFTWARE;
		goto done;
	}
	ras_error_clear();
	if ((err = ras_intake_parse(a, NULL, in.data ? in.data : "", in.len, &intake)) < 0) {
		if (err == RAS_ENOMEM) {
			rc = CTL_SOFTWARE;
			goto done;
		}
		fprintf(stderr, "%s: cannot triage \"%s\": %s\n", ctl->prog, argv[optind], ras_error_last());
		rc = CTL_DATAERR;
		goto done;
	}
	if ((intake.kind != RAS_PAYLOAD_FHIR_BUNDLE && intake.kind != RAS_PAYLOAD_ERS_REFERRAL) ||
	    intake.n_referrals != 1) {
		fprintf(stderr, "%s: cannot triage \"%s\": it is a payload of kind \"%s\", not a single referral\n", ctl->prog,
		    argv[optind], ras_referral_payload_kind_name(intake.kind));
		rc = CTL_DATAERR;
		goto done;
	}

	if ((rc = ras_ctl_config(ctl, &cfg)) != 0)
		goto done;
	if (ras_triage_new(cfg, ras_ctl_mappings(ctl, mdir), &t) < 0) {
		ras_ctl_fail(ctl, "cannot load the mappings");
		rc = CTL_CONFIG;
		goto done;
	}
	if ((rs = ras_mappings_ruleset(ras_triage_mappings(t), service)) == NULL) {
		size_t n = ras_mappings_services(ras_triage_mappings(t), known, RAS_SERVICES_MAX);

		fprintf(stderr, "%s: unknown service \"%s\"; the mappings have:", ctl->prog, service);
		for (size_t i = 0; i < n && i < RAS_SERVICES_MAX; i++)
			fprintf(stderr, " %s", known[i]);
		fputc('\n', stderr);
		rc = CTL_USAGE;
		goto done;
	}
	if ((err = ras_rules_decide(a, rs, &intake.referrals[0], received,
	    ras_mappings_calendar(ras_triage_mappings(t)), ras_time_now(), &d)) < 0) {
		ras_ctl_fail(ctl, "cannot triage");
		rc = CTL_SOFTWARE;
		goto done;
	}
	if (ras_decision_to_json(&d, false, &j) < 0 || ras_json_dump(j, RAS_JSON_COMPACT, &out) < 0) {
		rc = CTL_SOFTWARE;
		goto done;
	}
	printf("%s\n", out.data);
done:
	json_decref(j);
	ras_buf_free(&in);
	ras_buf_free(&out);
	ras_triage_free(t);
	ras_arena_free(a);
	return rc;
}
