/*
 * ctl_ers: `rasctl ers …`, the e-RS client by hand (rasctl(8); docs/design/ers.md).
 *
 *   rasctl ers poll [--service ID] --once [--force] [--json]
 *   rasctl ers fetch [--limit N]            retry due referral and attachment fetches now
 *   rasctl ers outcome UBRN                 record the stored decision on e-RS now
 *   rasctl ers budget [--service ID] [--json]
 *   rasctl ers pending [--json]             what waits for e-RS or for a person
 *
 * Exit status: 0 done (or nothing due); 65 e-RS refused something (a
 * parked outcome, a rejected worklist); 69 e-RS or the database
 * unavailable; 75 try later (budget used up, another instance busy, an
 * outcome left to retry); 78 e-RS not configured.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/ers.h"
#include "ras/ers_outcome.h"
#include "ras/ers_pending.h"
#include "ras/ers_poll.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/time.h"
#include "ras/triage.h"
#include "ras/xmlform.h"

struct ers_env {
	struct ras_db *db;
	struct ras_ers *c;
	struct ras_xmlform_maps *maps;
};

static void
env_free(struct ers_env *e)
{
	ras_xmlform_maps_free(e->maps);
	ras_ers_free(e->c);
}

/* Database, e-RS client and the form maps intake needs. */
static int
env_open(struct ras_ctl *ctl, struct ers_env *e, bool need_client)
{
	struct ras_config *cfg;
	struct ras_buf problems = RAS_BUF_INIT(64 * 1024);
	char dir[4096];
	int rc, err;

	memset(e, 0, sizeof(*e));
	if ((rc = ras_ctl_config(ctl, &cfg)) != 0)
		return rc;
	if (need_client || ras_config_get(cfg, "ers", NULL, "base_url")) {
		struct ras_triage *t;

		if ((err = ras_ers_from_config(cfg, &e->c)) < 0) {
			ras_ctl_fail(ctl, "cannot use the e-RS configuration");
			return err == RAS_ENOTFOUND && need_client ? CTL_CONFIG :
			    err == RAS_EIO ? CTL_NOINPUT : CTL_CONFIG;
		}
		/* What a poll or fetch stores is triaged at once, and the
		 * schedule counts the triage calendar's working days.  Without
		 * the rule sets nothing is polled: no budget slot is spent on a
		 * configuration that must be fixed first. */
		if ((rc = ras_ctl_triage_load(ctl, NULL, &t)) != 0) {
			env_free(e);
			return rc;
		}
		ras_ers_set_triage(e->c, t);
	}
	snprintf(dir, sizeof(dir), "%s/form-maps", ras_ctl_mappings(ctl, NULL));
	if ((err = ras_xmlform_maps_load(dir, &e->maps, &problems)) < 0) {
		if (problems.data)
			fputs(problems.data, stderr);
		ras_ctl_fail(ctl, "cannot use the form maps");
		ras_buf_free(&problems);
		env_free(e);
		return CTL_CONFIG;
	}
	ras_buf_free(&problems);
	if (e->c)
		ras_ers_set_form_maps(e->c, e->maps);
	if ((rc = ras_ctl_db(ctl, &e->db)) != 0) {
		env_free(e);
		return rc;
	}
	return 0;
}

static int
exit_for_poll(int err)
{
	switch (err) {
	case 0: return CTL_OK;
	case RAS_ERATELIMITED: return CTL_TEMPFAIL;
	case RAS_ECONFLICT: return CTL_TEMPFAIL;
	case RAS_EIO: return CTL_UNAVAILABLE;
	case RAS_ETIMEDOUT: return CTL_UNAVAILABLE;
	default: return ras_ctl_exit_for(err);
	}
}

static void
fmt_time(int64_t t, char *buf)
{
	if (t <= 0)
		snprintf(buf, RAS_TIME_STR_MAX, "-");
	else
		ras_time_format_uk(t, buf);
}

static json_t *
poll_json(const struct ras_ers_poll_report *r)
{
	json_t *items = json_array(), *j;

	for (size_t i = 0; i < r->nitems; i++) {
		const struct ras_ers_poll_item *it = &r->items[i];
		json_t *o = json_pack("{s:s, s:s, s:b, s:I, s:I, s:I, s:I}", "ubrn", it->ubrn, "state",
		    it->state, "related", it->related, "worklist_version", (json_int_t)it->worklist_version,
		    "version", (json_int_t)it->version, "referral_id", (json_int_t)it->referral_id,
		    "payload_id", (json_int_t)it->payload_id);

		if (o && it->error[0])
			(void)ras_json_set_str(o, "error", it->error);
		if (o && it->triage[0])
			(void)ras_json_set_str(o, "triage", it->triage);
		(void)ras_json_append_new(items, o);
	}
	j = json_pack("{s:s, s:s, s:i, s:b, s:i, s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i,"
	    " s:{s:i, s:i, s:i, s:i, s:i, s:i}, s:o}",
	    "service", r->service, "outcome", r->outcome, "slot", r->slot, "forced", r->forced,
	    "budget_left", r->budget_left, "payload_id", (json_int_t)r->payload_id,
	    "entries", r->entries, "kept", r->kept, "skipped", r->skipped, "unchanged", r->unchanged,
	    "fetched", r->fetched, "related", r->related, "failed", r->failed, "parked", r->parked,
	    "triaged", r->triaged, "attachments", "fetched", r->files.fetched, "pending", r->files.pending,
	    "blocked", r->files.blocked, "failed", r->files.failed, "too_big", r->files.too_big,
	    "forms", r->files.forms, "items", items);
	if (j && r->request_id[0])
		(void)ras_json_set_str(j, "request_id", r->request_id);
	if (j && r->correlation_id[0])
		(void)ras_json_set_str(j, "correlation_id", r->correlation_id);
	if (j && r->error[0])
		(void)ras_json_set_str(j, "error", r->error);
	return j;
}

static void
print_poll(const struct ras_ers_poll_report *r)
{
	printf("e-RS service %s: %s", r->service, r->outcome);
	if (r->forced)
		printf(" (forced: budget bypassed)");
	else if (r->slot)
		printf(" (budget slot %d of 2)", r->slot);
	if (r->budget_left >= 0)
		printf(", %d worklist call(s) left today", r->budget_left);
	printf("\n");
	if (strcmp(r->outcome, "polled") != 0 && strcmp(r->outcome, "failed") != 0)
		return;
	if (r->payload_id)
		printf("  worklist: %d entr%s, %d RAS referral(s) (TRIAGE_DEFERRAL), %d skipped; payload #%lld;"
		    " X-Request-ID %s\n", r->entries, r->entries == 1 ? "y" : "ies", r->kept, r->skipped,
		    (long long)r->payload_id, r->request_id[0] ? r->request_id : "-");
	for (size_t i = 0; i < r->nitems; i++) {
		const struct ras_ers_poll_item *it = &r->items[i];

		printf("  %s", it->ubrn);
		if (it->version)
			printf(" v%lld", (long long)it->version);
		else if (it->worklist_version)
			printf(" v%lld", (long long)it->worklist_version);
		printf(": %s%s", it->state, it->related ? " (related referral)" : "");
		if (it->referral_id)
			printf(", referral #%lld (payload #%lld)", (long long)it->referral_id,
			    (long long)it->payload_id);
		if (it->error[0])
			printf(": %s", it->error);
		printf("\n");
		if (it->triage[0])
			printf("    triage: %s\n", it->triage);
	}
	printf("  attachments: %d fetched, %d pending, %d blocked, %d failed, %d too big; %d form(s) read\n",
	    r->files.fetched, r->files.pending, r->files.blocked, r->files.failed, r->files.too_big,
	    r->files.forms);
}

static int
cmd_poll(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "service", required_argument, NULL, 's' },
		{ "once", no_argument, NULL, 'o' },
		{ "force", no_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL;
	bool once = false, force = false, as_json = false;
	struct ers_env e;
	const struct ras_ers_service *svcs;
	json_t *out = NULL;
	int c, rc, worst = CTL_OK;
	size_t n;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': service = optarg; break;
		case 'o': once = true; break;
		case 'f': force = true; break;
		case 'j': as_json = true; break;
		default: goto usage;
		}
	}
	if (!once || optind != argc)
		goto usage;
	if ((rc = env_open(ctl, &e, true)) != 0)
		return rc;
	n = ras_ers_services(e.c, &svcs);
	if (service == NULL && n == 0) {
		fprintf(stderr, "rasctl: ers.service_ids is empty: nothing to poll\n");
		env_free(&e);
		return CTL_CONFIG;
	}
	if (as_json)
		out = json_array();
	for (size_t i = 0; i < (service ? 1 : n); i++) {
		struct ras_ers_poll_report rep;
		const char *id = service ? service : svcs[i].id;
		int err = ras_ers_poll_service(e.c, e.db, id, ras_time_now(),
		    force ? RAS_ERS_POLL_FORCE : 0, &rep);

		if (as_json) {
			json_t *j = poll_json(&rep);

			if (err < 0 && j && rep.error[0] == '\0')
				(void)ras_json_set_str(j, "error", ras_error_last());
			(void)ras_json_append_new(out, j);
		} else {
			print_poll(&rep);
		}
		if (err < 0) {
			if (!as_json)
				ras_ctl_fail(ctl, "e-RS poll");
			rc = exit_for_poll(err);
			if (worst == CTL_OK || rc == CTL_UNAVAILABLE)
				worst = rc;
		}
		ras_ers_poll_report_free(&rep);
	}
	if (as_json) {
		struct ras_buf b = RAS_BUF_INIT(0);

		(void)ras_json_dump(out, RAS_JSON_PRETTY, &b);
		printf("%s\n", b.data ? b.data : "[]");
		ras_buf_free(&b);
		json_decref(out);
	}
	env_free(&e);
	return worst;
usage:
	fprintf(stderr, "usage: rasctl ers poll [--service ID] --once [--force] [--json]\n");
	return CTL_USAGE;
}

static int
cmd_fetch(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ NULL, 0, NULL, 0 },
	};
	struct ras_ers_fetch_report rep;
	struct ers_env e;
	long limit = 100;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end;

		if (c != 'l')
			goto usage;
		limit = strtol(optarg, &end, 10);
		if (*optarg == '\0' || *end != '\0' || limit < 1 || limit > 100000)
			goto usage;
	}
	if (optind != argc)
		goto usage;
	if ((rc = env_open(ctl, &e, true)) != 0)
		return rc;
	err = ras_ers_poll_fetch_due(e.c, e.db, ras_time_now(), (size_t)limit, &rep);
	printf("referrals: %d fetched, %d failed, %d triaged; attachments: %d fetched, %d pending, %d blocked,"
	    " %d failed, %d too big; %d form(s) read\n", rep.referrals_fetched, rep.referrals_failed,
	    rep.triaged, rep.fetched,
	    rep.pending, rep.blocked, rep.failed, rep.too_big, rep.forms);
	if (err < 0)
		ras_ctl_fail(ctl, "e-RS fetch");
	env_free(&e);
	return exit_for_poll(err);
usage:
	fprintf(stderr, "usage: rasctl ers fetch [--limit N]\n");
	return CTL_USAGE;
}

static int
cmd_outcome(struct ras_ctl *ctl, int argc, char **argv)
{
	struct ras_ers_outcome_report rep;
	struct ers_env e;
	int rc, err;

	if (argc != 2 || argv[1][0] == '-') {
		fprintf(stderr, "usage: rasctl ers outcome UBRN\n");
		return CTL_USAGE;
	}
	if ((rc = env_open(ctl, &e, true)) != 0)
		return rc;
	err = ras_ers_outcome_record(e.c, e.db, argv[1], ras_time_now(), &rep);
	if (err < 0) {
		ras_ctl_fail(ctl, "cannot record the outcome");
		env_free(&e);
		return exit_for_poll(err);
	}
	rc = CTL_OK;
	for (size_t i = 0; i < rep.n; i++) {
		const struct ras_ers_outcome_result *r = &rep.v[i];

		printf("%s: %s %s (intent #%lld, decision #%lld, %d A028 call(s)): %s\n", r->ubrn,
		    r->review_outcome, r->state, (long long)r->intent_id, (long long)r->decision_id,
		    r->a028_calls, r->message);
		if (strcmp(r->state, "done") == 0)
			continue;
		if (strcmp(r->state, "retry") == 0 || strcmp(r->state, "unknown") == 0 ||
		    strcmp(r->state, "pending") == 0)
			rc = CTL_TEMPFAIL;
		else
			rc = CTL_DATAERR;
	}
	ras_ers_outcome_report_free(&rep);
	env_free(&e);
	return rc;
}

static int
cmd_budget(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "service", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL;
	bool as_json = false;
	const struct ras_ers_service *svcs;
	struct ers_env e;
	json_t *out;
	size_t n;
	int c, rc, err = 0;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 's': service = optarg; break;
		case 'j': as_json = true; break;
		default: goto usage;
		}
	}
	if (optind != argc)
		goto usage;
	if ((rc = env_open(ctl, &e, true)) != 0)
		return rc;
	n = ras_ers_services(e.c, &svcs);
	out = json_array();
	if (!as_json)
		printf("%-12s %-11s %-6s %-6s %-5s %-25s %s\n", "service", "day", "used", "left", "calls",
		    "next scheduled poll", "last");
	for (size_t i = 0; i < (service ? 1 : n); i++) {
		struct ras_ers_poll_budget b;
		char next[RAS_TIME_STR_MAX], last[RAS_TIME_STR_MAX];

		if ((err = ras_ers_poll_budget(e.c, e.db, service ? service : svcs[i].id, ras_time_now(), &b)) < 0)
			break;
		fmt_time(b.next_scheduled, next);
		fmt_time(b.last_at, last);
		if (as_json) {
			json_t *j = json_pack("{s:s, s:s, s:b, s:i, s:i, s:i, s:b, s:s, s:s}",
			    "service", b.service, "day", b.day, "limited", b.limited, "used", b.used,
			    "calls", b.calls, "left", b.left, "working_day", b.working_day,
			    "next_scheduled", next, "last_outcome", b.last_outcome);

			(void)ras_json_append_new(out, j);
		} else {
			char left[16];

			snprintf(left, sizeof(left), b.limited ? "%d" : "no limit", b.left);
			printf("%-12s %-11s %-6d %-6s %-5d %-25s %s %s\n", b.service, b.day, b.used,
			    b.limited ? left : "-", b.calls, next, b.last_outcome[0] ? b.last_outcome : "never",
			    b.last_outcome[0] ? last : "");
		}
	}
	if (err == 0 && !as_json)
		printf("(application-restricted mode allows 2 worklist calls per service per UK day;"
		    " mode here: %s)\n", ras_ers_mode_name(ras_ers_mode(e.c)));
	if (err == 0 && as_json) {
		struct ras_buf b = RAS_BUF_INIT(0);

		(void)ras_json_dump(out, RAS_JSON_PRETTY, &b);
		printf("%s\n", b.data ? b.data : "[]");
		ras_buf_free(&b);
	}
	json_decref(out);
	if (err < 0)
		ras_ctl_fail(ctl, "cannot read the budget");
	env_free(&e);
	return ras_ctl_exit_for(err);
usage:
	fprintf(stderr, "usage: rasctl ers budget [--service ID] [--json]\n");
	return CTL_USAGE;
}

static int
cmd_pending(struct ras_ctl *ctl, int argc, char **argv)
{
	bool as_json = argc == 2 && strcmp(argv[1], "--json") == 0;
	struct ers_env e;
	json_t *all = NULL;
	int rc, err = 0;

	if (argc > 2 || (argc == 2 && !as_json)) {
		fprintf(stderr, "usage: rasctl ers pending [--json]\n");
		return CTL_USAGE;
	}
	if ((rc = env_open(ctl, &e, false)) != 0)
		return rc;
	err = ras_ers_pending_list(e.db, &all);
	for (size_t s = 0; err == 0 && s < ras_ers_pending_nsections; s++) {
		json_t *arr = json_object_get(all, ras_ers_pending_sections[s].key), *x;
		size_t i;

		if (!as_json) {
			printf("%s (%zu):\n", ras_ers_pending_sections[s].title, json_array_size(arr));
			json_array_foreach(arr, i, x) {
				const char *k;
				json_t *v;

				printf("  -");
				json_object_foreach(x, k, v) {
					struct ras_buf b = RAS_BUF_INIT(0);

					if (json_is_null(v))
						continue;
					if (json_is_string(v))
						printf(" %s=%s", k, json_string_value(v));
					else if (ras_json_dump(v, RAS_JSON_COMPACT, &b) == 0)
						printf(" %s=%s", k, b.data);
					ras_buf_free(&b);
				}
				printf("\n");
			}
		}
	}
	if (err == 0 && as_json) {
		struct ras_buf b = RAS_BUF_INIT(0);

		(void)ras_json_dump(all, RAS_JSON_PRETTY | RAS_JSON_SORTED, &b);
		printf("%s\n", b.data);
		ras_buf_free(&b);
	}
	if (err < 0)
		ras_ctl_fail(ctl, "cannot list pending e-RS work");
	json_decref(all);
	env_free(&e);
	return ras_ctl_exit_for(err);
}

int
ras_ctl_ers(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct ras_ctl *, int, char **);
	} subs[] = {
		{ "poll", cmd_poll }, { "fetch", cmd_fetch }, { "outcome", cmd_outcome },
		{ "budget", cmd_budget }, { "pending", cmd_pending },
	};

	if (argc < 2)
		goto usage;
	for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
		if (strcmp(argv[1], subs[i].name) == 0) {
			optind = 0;
			return subs[i].fn(ctl, argc - 1, argv + 1);
		}
usage:
	fprintf(stderr, "usage: rasctl ers poll [--service ID] --once [--force] [--json]\n"
	    "       rasctl ers fetch [--limit N]\n"
	    "       rasctl ers outcome UBRN\n"
	    "       rasctl ers budget [--service ID] [--json]\n"
	    "       rasctl ers pending [--json]\n");
	return CTL_USAGE;
}
