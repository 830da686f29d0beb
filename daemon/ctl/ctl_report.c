/*
 * ctl_report: `rasctl report kpi` and `rasctl replay`.
 *
 *   report kpi --service ID --from DATE --to DATE [--format csv|html] [--output FILE]
 *              [--holidays FILE]
 *   replay --service ID [--mappings DIR] --from DATE --to DATE [--json]
 *
 * The report is computed from stored events (kpi.h) and rendered by
 * report.h; it goes to standard output unless --output names a file.
 * Working days are the mappings' calendar (--holidays FILE: another
 * GOV.UK-format file).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/calendar.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/kpi.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/report.h"
#include "ras/time.h"
#include "ras/triage.h"

static int
parse_date_arg(struct ras_ctl *ctl, const char *what, const char *s, struct ras_date *d)
{
	if (s == NULL || ras_date_parse(s, d) < 0) {
		fprintf(stderr, "%s: %s must be a date YYYY-MM-DD\n", ctl->prog, what);
		return CTL_USAGE;
	}
	return 0;
}

int
ras_ctl_report(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service", required_argument, NULL, 's' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "format", required_argument, NULL, 'F' },
		{ "output", required_argument, NULL, 'o' },
		{ "holidays", required_argument, NULL, 'H' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL, *from_s = NULL, *to_s = NULL, *format = "csv", *output = NULL;
	const char *hol_path = NULL;
	struct ras_buf out = RAS_BUF_INIT(0);
	struct ras_arena *a = NULL;
	struct ras_calendar *cal = NULL;
	struct ras_kpi_data data;
	struct ras_kpi_report rep;
	struct ras_date from, to;
	struct ras_db *db;
	int c, rc, err;

	if (argc < 2 || strcmp(argv[1], "kpi") != 0)
		goto usage;
	optind = 2;
	while ((c = getopt_long(argc, argv, "s:f:t:F:o:H:", opts, NULL)) != -1) {
		switch (c) {
		case 's': service = optarg; break;
		case 'f': from_s = optarg; break;
		case 't': to_s = optarg; break;
		case 'F': format = optarg; break;
		case 'o': output = optarg; break;
		case 'H': hol_path = optarg; break;
		default: goto usage;
		}
	}
	if (optind != argc || service == NULL || from_s == NULL || to_s == NULL)
		goto usage;
	if ((rc = parse_date_arg(ctl, "--from", from_s, &from)) != 0 ||
	    (rc = parse_date_arg(ctl, "--to", to_s, &to)) != 0)
		return rc;
	if (strcmp(format, "csv") != 0 && strcmp(format, "html") != 0) {
		fprintf(stderr, "%s: --format is csv or html\n", ctl->prog);
		return CTL_USAGE;
	}
	if (!ras_kpi_known(service)) {
		fprintf(stderr, "%s: no quality requirements are defined for service \"%s\" (known: "
		    "bassetlaw-2022, dorset-2019, midnotts, dorset-2013)\n", ctl->prog, service);
		return CTL_DATAERR;
	}
	/* The working-day calendar every clock in rasd counts in (the
	 * mappings' bank-holiday file), or --holidays FILE for another one. */
	if ((hol_path ? ras_calendar_load(hol_path, &cal) :
	    ras_mappings_load_calendar(ras_ctl_mappings(ctl, NULL), &cal)) < 0) {
		ras_ctl_fail(ctl, "cannot read the bank holidays");
		return hol_path ? CTL_NOINPUT : CTL_CONFIG;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0) {
		ras_calendar_free(cal);
		return rc;
	}
	a = ras_arena_new();
	if (a == NULL) {
		ras_calendar_free(cal);
		return CTL_SOFTWARE;
	}
	if ((err = ras_kpi_load(db, a, service, &from, &to, &data)) < 0 ||
	    (err = ras_kpi_compute(a, &data, service, &from, &to, ras_time_now(), cal, &rep)) < 0) {
		ras_ctl_fail(ctl, "cannot compute the report");
		rc = err == RAS_EINVALID ? CTL_USAGE : ras_ctl_exit_for(err);
		goto done;
	}
	err = strcmp(format, "csv") == 0 ? ras_report_kpi_csv(&rep, &out) : ras_report_kpi_html(&rep, &out);
	if (err < 0) {
		ras_ctl_fail(ctl, "cannot render the report");
		rc = CTL_SOFTWARE;
		goto done;
	}
	if (output) {
		FILE *f = fopen(output, "wb");

		if (f == NULL || fwrite(out.data, 1, out.len, f) != out.len || fclose(f) != 0) {
			fprintf(stderr, "%s: cannot write %s\n", ctl->prog, output);
			rc = CTL_IOERR;
			goto done;
		}
		printf("%s: %s report for %s, %s to %s, %lld referral(s)\n", output, format, service, from_s,
		    to_s, (long long)rep.referrals);
	} else {
		(void)fwrite(out.data, 1, out.len, stdout);
	}
	rc = CTL_OK;
done:
	ras_buf_free(&out);
	ras_arena_free(a);
	ras_calendar_free(cal);
	return rc;
usage:
	fprintf(stderr, "usage: rasctl report kpi --service ID --from DATE --to DATE [--format csv|html] "
	    "[--output FILE] [--holidays FILE]\n");
	return CTL_USAGE;
}

/*
 * replay: re-run a rule set (the service's in the mappings, or a changed
 * copy with --mappings DIR) over the stored referrals received in the
 * period and list the decisions that would change, changing nothing
 * (ras_triage_replay reads in a READ ONLY transaction).  One line per
 * change, then a summary:
 *
 *   100000000101 v1: return (final) -> accept (recommendation): bassetlaw-2022: accept …
 *   1 decision(s) would change, 3 would stay the same
 *
 * Exit 0; 65 when some referrals could not be decided (listed); 64 usage;
 * 78 the mappings do not load or have no rule set for the service.
 */
static void
print_outcome(enum ras_outcome o, const char *target, bool fin)
{
	printf("%s%s%s (%s)", ras_decision_outcome_name(o), target[0] ? " to " : "", target,
	    fin ? "final" : "recommendation");
}

int
ras_ctl_replay(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service", required_argument, NULL, 's' },
		{ "mappings", required_argument, NULL, 'm' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL, *mappings = NULL, *from_s = NULL, *to_s = NULL;
	struct ras_triage_replay *v = NULL;
	struct ras_triage *t;
	struct ras_date from, to;
	struct ras_db *db;
	size_t n = 0, same = 0, failed = 0;
	bool as_json = false;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "s:m:f:t:j", opts, NULL)) != -1) {
		switch (c) {
		case 's': service = optarg; break;
		case 'm': mappings = optarg; break;
		case 'f': from_s = optarg; break;
		case 't': to_s = optarg; break;
		case 'j': as_json = true; break;
		default: goto usage;
		}
	}
	if (optind != argc || service == NULL || from_s == NULL || to_s == NULL)
		goto usage;
	if ((rc = parse_date_arg(ctl, "--from", from_s, &from)) != 0 ||
	    (rc = parse_date_arg(ctl, "--to", to_s, &to)) != 0)
		return rc;
	if ((rc = ras_ctl_triage_load(ctl, mappings, &t)) != 0 || (rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	if ((err = ras_triage_replay(db, t, service, &from, &to, ras_time_now(), &v, &n, &same)) < 0) {
		ras_ctl_fail(ctl, "cannot replay");
		return err == RAS_ENOTFOUND ? CTL_CONFIG : ras_ctl_exit_for(err);
	}
	if (as_json) {
		struct ras_buf out = RAS_BUF_INIT(0);
		json_t *arr = json_array(), *j;

		for (size_t i = 0; i < n; i++) {
			json_t *x = json_pack("{s:s, s:I, s:s?, s:s?, s:b, s:s, s:s?, s:s?, s:b, s:s}",
			    "referral", v[i].referral, "referral_id", (json_int_t)v[i].referral_id,
			    "was", v[i].had ? ras_decision_outcome_name(v[i].was) : NULL,
			    "was_target", v[i].was_target[0] ? v[i].was_target : NULL, "was_final", v[i].was_final,
			    "current_decision_by", v[i].was_by,
			    "now", v[i].now ? ras_decision_outcome_name(v[i].now) : NULL,
			    "now_target", v[i].now_target[0] ? v[i].now_target : NULL, "now_final", v[i].now_final,
			    v[i].now ? "decision" : "error", v[i].message);

			(void)ras_json_append_new(arr, x);
			failed += v[i].now == 0;
		}
		j = json_pack("{s:s, s:s, s:s, s:o, s:I, s:I}", "service", service, "from", from_s, "to", to_s,
		    "changes", arr, "same", (json_int_t)same, "failed", (json_int_t)failed);
		(void)ras_json_dump(j, RAS_JSON_PRETTY | RAS_JSON_SORTED, &out);
		printf("%s\n", out.data ? out.data : "{}");
		ras_buf_free(&out);
		json_decref(j);
	} else {
		for (size_t i = 0; i < n; i++) {
			printf("%s: ", v[i].referral);
			if (v[i].now == 0) {
				printf("%s\n", v[i].message);
				failed++;
				continue;
			}
			if (v[i].had)
				print_outcome(v[i].was, v[i].was_target, v[i].was_final);
			else
				printf("(no decision by the rules)");
			printf(" -> ");
			print_outcome(v[i].now, v[i].now_target, v[i].now_final);
			printf("%s: %s\n", strcmp(v[i].was_by, "rules") ? " (a clinician has decided since)" : "",
			    v[i].message);
		}
		printf("%zu decision(s) would change, %zu would stay the same%s; nothing was changed\n",
		    n - failed, same, failed ? " (some referrals could not be decided)" : "");
	}
	free(v);
	return failed ? CTL_DATAERR : CTL_OK;
usage:
	fprintf(stderr, "usage: rasctl replay --service ID [--mappings DIR] --from DATE --to DATE [--json]\n");
	return CTL_USAGE;
}
