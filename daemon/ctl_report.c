/*
 * ctl_report: `rasctl report kpi` and `rasctl replay`.
 *
 *   report kpi --service ID --from DATE --to DATE [--format csv|html] [--output FILE]
 *              [--holidays FILE]
 *   replay --service ID [--mappings DIR] --from DATE --to DATE [--json]
 *
 * The report is computed from stored events (kpi.h) and rendered by
 * report.h; it goes to standard output unless --output names a file.
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
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/kpi.h"
#include "ras/limits.h"
#include "ras/report.h"
#include "ras/timeutil.h"

/*
 * Bank holidays (England and Wales) from a GOV.UK-format file.  Until the
 * triage work's calendar module is merged this small reader stands in for
 * it; afterwards the report uses that module and the same file.
 */
struct holidays {
	size_t n;
	int64_t days[512];
};

static bool
workday(const struct ras_date *d, void *ctx)
{
	const struct holidays *h = ctx;
	int64_t day = ras_date_to_days(d);

	if (ras_date_weekday(d) > 5)
		return false;
	for (size_t i = 0; h && i < h->n; i++)
		if (h->days[i] == day)
			return false;
	return true;
}

static int
load_holidays(const char *path, struct holidays *h)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
	json_t *j = NULL, *ev;
	size_t i;
	int err;

	h->n = 0;
	if ((err = ras_buf_read_file(&b, path)) < 0 ||
	    (err = ras_json_parse(b.data, b.len, RAS_MAPPING_FILE_MAX, &j)) < 0) {
		ras_buf_free(&b);
		return err;
	}
	json_array_foreach(ras_json_arr(ras_json_obj(j, "england-and-wales"), "events"), i, ev) {
		struct ras_date d;

		if (h->n < sizeof(h->days) / sizeof(h->days[0]) &&
		    ras_date_parse(ras_json_str(ev, "date"), &d) == 0)
			h->days[h->n++] = ras_date_to_days(&d);
	}
	json_decref(j);
	ras_buf_free(&b);
	if (h->n == 0)
		return ras_error_code(RAS_EINVALID, "%s has no england-and-wales events", path);
	return 0;
}

static const char *
find_holidays(struct ras_ctl *ctl)
{
	static char path[4096];
	static const char *const names[] = { "bank-holidays.json", "calendar/bank-holidays.json",
		"calendar/gov-uk-bank-holidays.json", NULL };
	const char *m = ras_ctl_mappings(ctl, NULL);

	for (int i = 0; names[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", m, names[i]);
		if (access(path, R_OK) == 0)
			return path;
	}
	return NULL;
}

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
	struct holidays *hol = NULL;
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
	if ((hol = calloc(1, sizeof(*hol))) == NULL)
		return CTL_SOFTWARE;
	if (hol_path == NULL)
		hol_path = find_holidays(ctl);
	if (hol_path && load_holidays(hol_path, hol) < 0) {
		ras_ctl_fail(ctl, "cannot read the bank holidays");
		free(hol);
		return CTL_NOINPUT;
	}
	if (hol_path == NULL)
		fprintf(stderr, "%s: no bank-holiday file in the mappings (--holidays FILE): counting "
		    "Monday to Friday only\n", ctl->prog);
	if ((rc = ras_ctl_db(ctl, &db)) != 0) {
		free(hol);
		return rc;
	}
	a = ras_arena_new();
	if (a == NULL) {
		free(hol);
		return CTL_SOFTWARE;
	}
	if ((err = ras_kpi_load(db, a, service, &from, &to, &data)) < 0 ||
	    (err = ras_kpi_compute(a, &data, service, &from, &to, ras_time_now(), workday, hol,
	    hol_path != NULL, &rep)) < 0) {
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
	free(hol);
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
