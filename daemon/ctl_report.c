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
#include "ras/timeutil.h"

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
 * replay: re-run a rule set over stored referrals and list the decisions
 * that would change, changing nothing.  The referrals and their current
 * decisions are read here; evaluating them needs the triage engine
 * (issue 3), which plugs in through `replay_evaluate` when it is merged.
 */
static int (*replay_evaluate)(struct ras_db *db, const char *mappings, const char *service,
    const char *doc, json_t **decision) = NULL;

int
ras_ctl_replay(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service", required_argument, NULL, 's' },
		{ "mappings", required_argument, NULL, 'm' },
		{ "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL, *mappings = NULL, *from_s = NULL, *to_s = NULL;
	struct ras_date from, to;
	struct ras_db *db;
	struct ras_db_res *res = NULL;
	int c, rc, err, changed = 0, same = 0, failed = 0;

	while ((c = getopt_long(argc, argv, "s:m:f:t:", opts, NULL)) != -1) {
		switch (c) {
		case 's': service = optarg; break;
		case 'm': mappings = optarg; break;
		case 'f': from_s = optarg; break;
		case 't': to_s = optarg; break;
		default: goto usage;
		}
	}
	if (optind != argc || service == NULL || from_s == NULL || to_s == NULL)
		goto usage;
	if ((rc = parse_date_arg(ctl, "--from", from_s, &from)) != 0 ||
	    (rc = parse_date_arg(ctl, "--to", to_s, &to)) != 0)
		return rc;
	mappings = ras_ctl_mappings(ctl, mappings);
	if (replay_evaluate == NULL) {
		fprintf(stderr, "%s: replay needs the triage engine, which is not in this build yet\n",
		    ctl->prog);
		return CTL_UNAVAILABLE;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	{
		struct ras_date end_day;
		char start[RAS_TIME_STR_MAX], end[RAS_TIME_STR_MAX];

		ras_date_add_days(&to, 1, &end_day);
		ras_time_format_utc(ras_time_uk_midnight(&from), start);
		ras_time_format_utc(ras_time_uk_midnight(&end_day), end);
		err = ras_db_query(db, &res,
		    "SELECT coalesce(r.ubrn, r.referral_key), r.doc::text, d.outcome, d.onward_target"
		    " FROM referrals r LEFT JOIN current_decisions d ON d.referral_id = r.id"
		    " WHERE r.service = $1 AND r.received_at >= $2::timestamptz AND r.received_at < $3::timestamptz"
		    "   AND r.version = (SELECT max(version) FROM referrals v WHERE v.referral_key = r.referral_key)"
		    " ORDER BY r.received_at, r.id", 3,
		    (struct ras_db_param[]){ RAS_DB_TEXT(service), RAS_DB_TEXT(start), RAS_DB_TEXT(end) });
		if (err < 0) {
			ras_ctl_fail(ctl, "cannot read the referrals");
			return ras_ctl_exit_for(err);
		}
	}
	for (int i = 0; i < ras_db_res_rows(res); i++) {
		const char *key = ras_db_res_get(res, i, 0), *was = ras_db_res_get(res, i, 2);
		const char *was_target = ras_db_res_get(res, i, 3);
		json_t *dec = NULL;
		const char *now, *now_target;

		if (replay_evaluate(db, mappings, service, ras_db_res_get(res, i, 1), &dec) < 0) {
			printf("%s: cannot evaluate: %s\n", key, ras_error_last());
			failed++;
			continue;
		}
		now = ras_json_str(dec, "outcome");
		now_target = ras_json_str(dec, "onward_target");
		if (was && now && strcmp(was, now) == 0 &&
		    ((was_target == NULL && now_target == NULL) ||
		    (was_target && now_target && strcmp(was_target, now_target) == 0))) {
			same++;
		} else {
			printf("%s: %s%s%s -> %s%s%s\n", key, was ? was : "(no decision)", was_target ? " " : "",
			    was_target ? was_target : "", now ? now : "?", now_target ? " " : "",
			    now_target ? now_target : "");
			changed++;
		}
		json_decref(dec);
	}
	ras_db_res_free(res);
	printf("%d decision(s) would change, %d would stay the same%s\n", changed, same,
	    failed ? " (some referrals could not be evaluated)" : "");
	return failed ? CTL_DATAERR : CTL_OK;
usage:
	fprintf(stderr, "usage: rasctl replay --service ID [--mappings DIR] --from DATE --to DATE\n");
	return CTL_USAGE;
}
