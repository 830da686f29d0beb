/*
 * ctl_ops: the operations subcommands of rasctl (rasctl(8); docs/operations.md):
 *
 *   decide UBRN --outcome accept|return|onward [--target T] --advice TEXT --by SDS_USER_ID
 *          [--override]
 *   record KIND UBRN --at TIME --by SDS_USER_ID [--mode virtual|face-to-face]
 *          [--first|--follow-up] [--patient-choice] [--slot TIME] [--target T]
 *          [--summary FILE]
 *   epr FILE...            EPR event messages, as if POSTed to rasd
 *   events UBRN [--json]   the audit trail
 *   status [--json] [--risk-hours N]
 *
 * Output names referrals by UBRN and payloads by id; never patient data.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/ops.h"
#include "ras/outbox.h"
#include "ras/store.h"
#include "ras/time.h"
#include "ras/triage.h"

/* SDS user ids are 12 digits. */
static bool
sds_ok(const char *s)
{
	if (s == NULL || strlen(s) != 12)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

static void
name_referral(struct ras_epr_event *ev, const char *what)
{
	if (strncmp(what, "local:", 6) == 0)
		ev->referral_key = what;
	else
		ev->ubrn = what;
}

/* Record one event.  A decision needs the rule sets (its clocks), an
 * episode summary the outbox (its letter); nothing else needs either, so
 * a delivery misconfiguration cannot stop a clinician's decision. */
static int
record_and_print(struct ras_ctl *ctl, struct ras_epr_event *ev)
{
	struct ras_epr_result r;
	struct ras_epr_ctx ctx = { NULL, NULL };
	struct ras_triage *t;
	struct ras_outbox *o;
	struct ras_db *db;
	int rc, err;

	if (ev->kind == RAS_EPR_DECISION) {
		if ((rc = ras_ctl_triage_load(ctl, NULL, &t)) != 0)
			return rc;
		ctx.triage = t;
	}
	if (ev->summary_text) {
		if ((rc = ras_ctl_outbox_load(ctl, NULL, &o)) != 0)
			return rc;
		ctx.outbox = o;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	/* A decision goes through ras_epr_decide, as the clinicians' pages'
	 * do: one set of checks for both. */
	err = ev->kind == RAS_EPR_DECISION ? ras_epr_decide(db, &ctx, ev, &r) :
	    ras_epr_record(db, &ctx, ev, 0, false, &r);
	if (err < 0) {
		ras_ctl_fail(ctl, ev->kind == RAS_EPR_DECISION ? "cannot record the decision" :
		    "cannot record the event");
		return ras_ctl_exit_for(err);
	}
	printf("%s\n", r.message);
	return CTL_OK;
}

int
ras_ctl_decide(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "outcome", required_argument, NULL, 'o' },
		{ "target", required_argument, NULL, 't' },
		{ "advice", required_argument, NULL, 'a' },
		{ "by", required_argument, NULL, 'b' },
		{ "override", no_argument, NULL, 'O' },
		{ NULL, 0, NULL, 0 },
	};
	struct ras_epr_event ev;
	const char *outcome = NULL;
	int c;

	memset(&ev, 0, sizeof(ev));
	ev.kind = RAS_EPR_DECISION;
	ev.first_appointment = -1;
	while ((c = getopt_long(argc, argv, "o:t:a:b:O", opts, NULL)) != -1) {
		switch (c) {
		case 'o': outcome = optarg; break;
		case 't': ev.target = optarg; break;
		case 'a': ev.advice = optarg; break;
		case 'b': ev.actor = optarg; break;
		case 'O': ev.override = true; break;
		default: goto usage;
		}
	}
	if (optind + 1 != argc || outcome == NULL || ev.advice == NULL || ev.actor == NULL)
		goto usage;
	ev.outcome = ras_decision_outcome_parse(outcome);
	if (ev.outcome == 0 || ev.outcome == RAS_OUTCOME_REVIEW) {
		fprintf(stderr, "%s: --outcome must be accept, return or onward\n", ctl->prog);
		return CTL_USAGE;
	}
	if (!sds_ok(ev.actor)) {
		fprintf(stderr, "%s: --by must be the clinician's SDS user id (12 digits)\n", ctl->prog);
		return CTL_USAGE;
	}
	if (strlen(ev.advice) > RAS_STRING_MAX || (ev.target && strlen(ev.target) > RAS_ID_MAX)) {
		fprintf(stderr, "%s: --advice or --target is too long\n", ctl->prog);
		return CTL_USAGE;
	}
	if (ev.target && ev.outcome != RAS_OUTCOME_ONWARD) {
		fprintf(stderr, "%s: --target goes with --outcome onward\n", ctl->prog);
		return CTL_USAGE;
	}
	name_referral(&ev, argv[optind]);
	ev.occurred_at = ras_time_now();
	return record_and_print(ctl, &ev);
usage:
	fprintf(stderr, "usage: rasctl decide UBRN --outcome accept|return|onward [--target T] "
	    "--advice TEXT --by SDS_USER_ID [--override]\n");
	return CTL_USAGE;
}

static int
parse_time_arg(struct ras_ctl *ctl, const char *what, const char *s, int64_t *out)
{
	if (ras_time_parse(s, true, out) < 0) {
		fprintf(stderr, "%s: %s \"%s\" is not a date or date-time (YYYY-MM-DD[Thh:mm[:ss][±hh:mm]])\n",
		    ctl->prog, what, s);
		return CTL_USAGE;
	}
	return 0;
}

int
ras_ctl_record(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "at", required_argument, NULL, 'A' },
		{ "by", required_argument, NULL, 'b' },
		{ "mode", required_argument, NULL, 'm' },
		{ "first", no_argument, NULL, 'f' },
		{ "follow-up", no_argument, NULL, 'F' },
		{ "patient-choice", no_argument, NULL, 'p' },
		{ "slot", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "summary", required_argument, NULL, 'S' },
		{ NULL, 0, NULL, 0 },
	};
	struct ras_arena *a = ras_arena_new();
	struct ras_epr_event ev;
	const char *at = NULL, *summary = NULL;
	int c, rc = CTL_USAGE;

	memset(&ev, 0, sizeof(ev));
	ev.first_appointment = -1;
	if (a == NULL)
		return CTL_SOFTWARE;
	while ((c = getopt_long(argc, argv, "A:b:m:fFps:t:S:", opts, NULL)) != -1) {
		switch (c) {
		case 'A': at = optarg; break;
		case 'b': ev.actor = optarg; break;
		case 'm': ev.mode = optarg; break;
		case 'f': ev.first_appointment = 1; break;
		case 'F': ev.first_appointment = 0; break;
		case 'p': ev.patient_choice = true; break;
		case 's':
			if ((rc = parse_time_arg(ctl, "--slot", optarg, &ev.slot)) != 0)
				goto done;
			ev.has_slot = true;
			break;
		case 't': ev.target = optarg; break;
		case 'S': summary = optarg; break;
		default: goto usage;
		}
	}
	if (optind + 2 != argc || at == NULL || ev.actor == NULL)
		goto usage;
	ev.kind = ras_epr_kind_parse(argv[optind]);
	if (ev.kind == 0 || ev.kind == RAS_EPR_DECISION) {
		fprintf(stderr, "%s: KIND is one of patient-contacted, appointment-offered, "
		    "appointment-attended, treatment-started, onward-referral, discharged, pifu "
		    "(a decision is `rasctl decide`)\n", ctl->prog);
		goto done;
	}
	if (!sds_ok(ev.actor)) {
		fprintf(stderr, "%s: --by must be the SDS user id (12 digits) of who did it\n", ctl->prog);
		goto done;
	}
	if (ev.mode && strcmp(ev.mode, "virtual") != 0 && strcmp(ev.mode, "face-to-face") != 0) {
		fprintf(stderr, "%s: --mode is virtual or face-to-face\n", ctl->prog);
		goto done;
	}
	if (ev.kind == RAS_EPR_ATTENDED && ev.mode == NULL) {
		fprintf(stderr, "%s: an attended appointment needs --mode\n", ctl->prog);
		goto done;
	}
	if (ev.kind == RAS_EPR_ONWARD && ev.target == NULL) {
		fprintf(stderr, "%s: an onward referral needs --target\n", ctl->prog);
		goto done;
	}
	if (ev.target && strlen(ev.target) > RAS_ID_MAX) {
		fprintf(stderr, "%s: --target is too long\n", ctl->prog);
		goto done;
	}
	if ((rc = parse_time_arg(ctl, "--at", at, &ev.occurred_at)) != 0)
		goto done;
	if (ev.kind == RAS_EPR_DISCHARGED && summary == NULL) {
		fprintf(stderr, "%s: a discharge needs --summary FILE (the episode-summary "
		    "QuestionnaireResponse)\n", ctl->prog);
		rc = CTL_USAGE;
		goto done;
	}
	if (summary && ev.kind != RAS_EPR_DISCHARGED && ev.kind != RAS_EPR_CONTACTED &&
	    ev.kind != RAS_EPR_ATTENDED) {
		fprintf(stderr, "%s: --summary goes with discharged, patient-contacted or "
		    "appointment-attended\n", ctl->prog);
		rc = CTL_USAGE;
		goto done;
	}
	if (summary) {
		struct ras_buf b = RAS_BUF_INIT(RAS_PAYLOAD_MAX);
		struct ras_intake in;

		if (ras_buf_read_file(&b, summary) < 0) {
			ras_ctl_fail(ctl, "cannot read the summary");
			ras_buf_free(&b);
			rc = CTL_NOINPUT;
			goto done;
		}
		if (ras_intake_parse(a, NULL, b.data, b.len, &in) < 0 || in.kind != RAS_PAYLOAD_FORM ||
		    in.form->questionnaire == NULL ||
		    strcmp(in.form->questionnaire, RAS_Q_EPISODE_SUMMARY) != 0) {
			fprintf(stderr, "%s: %s is not an episode-summary QuestionnaireResponse (%s)\n",
			    ctl->prog, summary, RAS_Q_EPISODE_SUMMARY);
			ras_buf_free(&b);
			rc = CTL_DATAERR;
			goto done;
		}
		ev.summary = in.form;
		ev.summary_text = ras_arena_strndup(a, b.data, b.len);
		ev.summary_len = b.len;
		ras_buf_free(&b);
		if (ev.summary_text == NULL) {
			rc = CTL_SOFTWARE;
			goto done;
		}
	}
	name_referral(&ev, argv[optind + 1]);
	rc = record_and_print(ctl, &ev);
	goto done;
usage:
	fprintf(stderr, "usage: rasctl record KIND UBRN --at TIME --by SDS_USER_ID [--mode virtual|face-to-face]\n"
	    "         [--first|--follow-up] [--patient-choice] [--slot TIME] [--target T] [--summary FILE]\n");
	rc = CTL_USAGE;
done:
	ras_arena_free(a);
	return rc;
}

int
ras_ctl_epr(struct ras_ctl *ctl, int argc, char **argv)
{
	struct ras_epr_ctx ctx;
	struct ras_db *db;
	int rc, worst = CTL_OK;

	if (argc < 2) {
		fprintf(stderr, "usage: rasctl epr FILE...   (EPR event messages, as POSTed to rasd)\n");
		return CTL_USAGE;
	}
	if ((rc = ras_ctl_epr_ctx(ctl, &ctx)) != 0 || (rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	for (int i = 1; i < argc; i++) {
		struct ras_buf b = RAS_BUF_INIT(RAS_PAYLOAD_KEEP_MAX);
		struct ras_inbox_item it;
		struct ras_epr_result r;
		int err;

		if (ras_buf_read_file(&b, argv[i]) < 0) {
			printf("%s: cannot read: %s\n", argv[i], ras_error_last());
			ras_buf_free(&b);
			worst = CTL_NOINPUT;
			continue;
		}
		memset(&it, 0, sizeof(it));
		it.data = b.data ? b.data : "";
		it.len = b.len;
		it.source = "file";
		it.source_ref = argv[i];
		if ((err = ras_epr_receive(db, &ctx, &it, &r)) < 0) {
			ras_ctl_fail(ctl, "cannot store the message");
			ras_buf_free(&b);
			return ras_ctl_exit_for(err);
		}
		printf("%s: %s (payload #%lld): %s\n", argv[i], r.state, (long long)r.payload_id, r.message);
		if (strcmp(r.state, "rejected") == 0 && worst == CTL_OK)
			worst = CTL_DATAERR;
		ras_buf_free(&b);
	}
	return worst;
}

/* ---- events ---------------------------------------------------------------- */

static const char *
s_or(const json_t *o, const char *k, const char *def)
{
	const char *v = ras_json_str(o, k);

	return v ? v : def;
}

static void
print_detail(const json_t *detail)
{
	const char *k;
	json_t *v;

	json_object_foreach((json_t *)detail, k, v) {
		if (json_is_string(v))
			printf(" %s=%s", k, json_string_value(v));
		else if (json_is_integer(v))
			printf(" %s=%lld", k, (long long)json_integer_value(v));
		else if (json_is_boolean(v))
			printf(" %s=%s", k, json_is_true(v) ? "true" : "false");
	}
}

int
ras_ctl_events(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' }, { NULL, 0, NULL, 0 } };
	struct ras_buf out = RAS_BUF_INIT(0);
	struct ras_db *db;
	json_t *t = NULL, *x;
	bool as_json = false;
	size_t i;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "j", opts, NULL)) != -1) {
		if (c != 'j') {
			fprintf(stderr, "usage: rasctl events UBRN [--json]\n");
			return CTL_USAGE;
		}
		as_json = true;
	}
	if (optind + 1 != argc) {
		fprintf(stderr, "usage: rasctl events UBRN [--json]\n");
		return CTL_USAGE;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	if ((err = ras_ops_trail(db, argv[optind], &t)) < 0) {
		ras_ctl_fail(ctl, "cannot show the audit trail");
		return ras_ctl_exit_for(err);
	}
	if (as_json) {
		(void)ras_json_dump(t, RAS_JSON_PRETTY | RAS_JSON_SORTED, &out);
		printf("%s\n", out.data);
		ras_buf_free(&out);
		json_decref(t);
		return CTL_OK;
	}
	printf("referral %s\n", s_or(t, "referral_key", "?"));
	json_array_foreach(ras_json_arr(t, "versions"), i, x) {
		int64_t v = 0, id = 0, pid = 0;

		(void)ras_json_int(x, "version", &v);
		(void)ras_json_int(x, "id", &id);
		(void)ras_json_int(x, "payload_id", &pid);
		printf("  version %lld: #%lld %s, service %s, received %s from %s (payload #%lld)\n",
		    (long long)v, (long long)id, s_or(x, "state", "?"), s_or(x, "service", "-"),
		    s_or(x, "received_at", "?"), s_or(x, "source", "?"), (long long)pid);
	}
	printf("\naudit trail:\n");
	json_array_foreach(ras_json_arr(t, "events"), i, x) {
		printf("  %s  %-28s %-14s", s_or(x, "at", "?"), s_or(x, "kind", "?"), s_or(x, "actor", "?"));
		print_detail(ras_json_obj(x, "detail"));
		printf("\n");
	}
	printf("\ndecisions:\n");
	if (json_array_size(ras_json_arr(t, "decisions")) == 0)
		printf("  (none)\n");
	json_array_foreach(ras_json_arr(t, "decisions"), i, x) {
		int64_t id = 0;
		bool fin = false;
		json_t *r;
		size_t k;

		(void)ras_json_int(x, "id", &id);
		(void)ras_json_bool(x, "final", &fin);
		printf("  #%lld %s  %s%s%s (%s) by %s, rules %s:", (long long)id, s_or(x, "at", "?"),
		    s_or(x, "outcome", "?"), ras_json_str(x, "onward_target") ? " to " : "",
		    s_or(x, "onward_target", ""), fin ? "final" : "recommendation", s_or(x, "decided_by", "?"),
		    s_or(x, "ruleset_version", "?"));
		json_array_foreach(ras_json_arr(x, "reasons"), k, r)
			printf(" %s%s%s%s", s_or(r, "rule", "?"), ras_json_str(r, "clause") ? " (" : "",
			    s_or(r, "clause", ""), ras_json_str(r, "clause") ? ")" : "");
		printf("\n");
	}
	printf("\ndeadlines:\n");
	if (json_array_size(ras_json_arr(t, "deadlines")) == 0)
		printf("  (none)\n");
	json_array_foreach(ras_json_arr(t, "deadlines"), i, x) {
		bool late = false;

		(void)ras_json_bool(x, "late", &late);
		printf("  %-26s due %s  %s%s%s%s\n", s_or(x, "kind", "?"), s_or(x, "due", "?"),
		    ras_json_str(x, "met_at") ? "met " : ras_json_str(x, "cancelled_at") ? "cancelled " : "open",
		    s_or(x, "met_at", s_or(x, "cancelled_at", "")),
		    ras_json_str(x, "met_by") ? " by " : "", s_or(x, "met_by", ""));
		if (late)
			printf("  %-26s   ^ LATE\n", "");
	}
	printf("\nEPR events:\n");
	if (json_array_size(ras_json_arr(t, "epr_events")) == 0)
		printf("  (none)\n");
	json_array_foreach(ras_json_arr(t, "epr_events"), i, x) {
		printf("  %s  %-22s by %s%s%s%s%s\n", s_or(x, "at", "?"), s_or(x, "kind", "?"),
		    s_or(x, "actor", "?"), ras_json_str(x, "mode") ? ", " : "", s_or(x, "mode", ""),
		    ras_json_str(x, "target") ? ", to " : "", s_or(x, "target", ""));
	}
	json_decref(t);
	return CTL_OK;
}

/* ---- status ----------------------------------------------------------------- */

int
ras_ctl_status(struct ras_ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "risk-hours", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	struct ras_buf out = RAS_BUF_INIT(0);
	struct ras_db *db;
	json_t *st = NULL, *x, *dl, *dead;
	bool as_json = false;
	long risk = 24;
	size_t i;
	int c, rc, err;

	while ((c = getopt_long(argc, argv, "jr:", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'j': as_json = true; break;
		case 'r':
			errno = 0;
			risk = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || risk < 1 || risk > 24 * 31) {
				fprintf(stderr, "%s: --risk-hours is 1..744\n", ctl->prog);
				return CTL_USAGE;
			}
			break;
		default:
			fprintf(stderr, "usage: rasctl status [--json] [--risk-hours N]\n");
			return CTL_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "usage: rasctl status [--json] [--risk-hours N]\n");
		return CTL_USAGE;
	}
	if ((rc = ras_ctl_db(ctl, &db)) != 0)
		return rc;
	if ((err = ras_ops_status(db, (int)risk, &st)) < 0) {
		ras_ctl_fail(ctl, "cannot read the status");
		return ras_ctl_exit_for(err);
	}
	if (as_json) {
		(void)ras_json_dump(st, RAS_JSON_PRETTY | RAS_JSON_SORTED, &out);
		printf("%s\n", out.data);
		ras_buf_free(&out);
		json_decref(st);
		return CTL_OK;
	}
	printf("rasd instances:\n");
	if (json_array_size(ras_json_arr(st, "instances")) == 0)
		printf("  (none has run in the last day)\n");
	json_array_foreach(ras_json_arr(st, "instances"), i, x) {
		int64_t pid = 0, age = 0;
		bool running = false;

		(void)ras_json_int(x, "pid", &pid);
		(void)ras_json_int(x, "heartbeat_age_seconds", &age);
		(void)ras_json_bool(x, "running", &running);
		printf("  %-12s %s pid %lld, %s, started %s, heartbeat %llds ago%s\n", s_or(x, "instance", "?"),
		    s_or(x, "host", "?"), (long long)pid, s_or(x, "version", "?"), s_or(x, "started_at", "?"),
		    (long long)age, running ? "" : " (NOT RUNNING)");
	}
	printf("\nqueues:\n");
	json_array_foreach(ras_json_arr(st, "queues"), i, x) {
		int64_t depth = 0;
		double age = json_real_value(json_object_get(x, "oldest_seconds"));

		(void)ras_json_int(x, "depth", &depth);
		printf("  %-16s %6lld waiting", s_or(x, "stage", "?"), (long long)depth);
		if (depth)
			printf(", oldest %.0f s", age);
		printf("\n");
	}
	printf("\npollers:\n");
	if (json_array_size(ras_json_arr(st, "pollers")) == 0)
		printf("  (none has run)\n");
	json_array_foreach(ras_json_arr(st, "pollers"), i, x)
		printf("  %-20s last success %s%s%s\n", s_or(x, "source", "?"), s_or(x, "last_success_at", "never"),
		    ras_json_str(x, "last_error") ? ", last error: " : "", s_or(x, "last_error", ""));
	printf("\nbudgets:\n");
	if (json_array_size(ras_json_arr(st, "budgets")) == 0)
		printf("  (no e-RS budgets recorded)\n");
	json_array_foreach(ras_json_arr(st, "budgets"), i, x) {
		int64_t used = 0, calls = 0;

		(void)ras_json_int(x, "used", &used);
		(void)ras_json_int(x, "calls", &calls);
		printf("  e-RS %-15s %lld of 2 worklist calls used today (%lld made), last poll %s %s\n",
		    s_or(x, "service", "?"), (long long)used, (long long)calls, s_or(x, "last_poll_at", "never"),
		    s_or(x, "last_poll_outcome", ""));
	}
	printf("\ndeliveries:\n");
	if (json_array_size(ras_json_arr(st, "deliveries")) == 0)
		printf("  (no documents routed)\n");
	json_array_foreach(ras_json_arr(st, "deliveries"), i, x) {
		int64_t ok = 0, wait = 0, dd = 0, failed = 0;

		(void)ras_json_int(x, "delivered", &ok);
		(void)ras_json_int(x, "waiting", &wait);
		(void)ras_json_int(x, "dead", &dd);
		(void)ras_json_int(x, "failed_attempts", &failed);
		printf("  %-4s %-40s %lld delivered, %lld waiting, %lld dead, %lld failed attempt(s)\n",
		    s_or(x, "transport", "?"), s_or(x, "destination", "?"), (long long)ok, (long long)wait,
		    (long long)dd, (long long)failed);
	}
	dl = ras_json_obj(st, "deadlines");
	{
		int64_t breached = 0, today = 0;

		(void)ras_json_int(dl, "breached", &breached);
		(void)ras_json_int(dl, "due_today", &today);
		printf("\ndeadlines: %lld breached, %lld due today; due within %ld h:\n", (long long)breached,
		    (long long)today, risk);
	}
	if (json_array_size(ras_json_arr(dl, "at_risk")) == 0)
		printf("  (none)\n");
	json_array_foreach(ras_json_arr(dl, "at_risk"), i, x) {
		double h = json_number_value(json_object_get(x, "hours_left"));

		printf("  %-14s %-26s due %s  %s%.1f h\n", s_or(x, "ubrn", "?"), s_or(x, "kind", "?"),
		    s_or(x, "due", "?"), h < 0 ? "OVERDUE by " : "in ", h < 0 ? -h : h);
	}
	{
		json_t *al = ras_json_arr(ras_json_obj(st, "alerts"), "gp_notice_undelivered");

		if (json_array_size(al) > 0)
			printf("\nALERT: %zu two-week-wait GP notice(s) due today not delivered: act before the "
			    "working day ends\n", json_array_size(al));
		json_array_foreach(al, i, x)
			printf("  %-14s gp-notification due %s, notice %s\n", s_or(x, "ubrn", "?"), s_or(x, "due", "?"),
			    s_or(x, "notice_state", "?"));
	}
	dead = ras_json_obj(st, "dead_letters");
	{
		int64_t rej = 0, part = 0, stuck = 0, odead = 0, parked = 0, neg = 0, miss = 0, wait = 0;

		(void)ras_json_int(dead, "inbox_rejected_7d", &rej);
		(void)ras_json_int(dead, "inbox_partial_7d", &part);
		(void)ras_json_int(dead, "inbox_received_over_1h", &stuck);
		(void)ras_json_int(dead, "outbox_dead", &odead);
		(void)ras_json_int(dead, "ers_parked", &parked);
		(void)ras_json_int(ras_json_obj(dead, "itk3_acks"), "negative", &neg);
		(void)ras_json_int(ras_json_obj(dead, "itk3_acks"), "missing", &miss);
		(void)ras_json_int(ras_json_obj(dead, "itk3_acks"), "awaiting", &wait);
		printf("\ndead letters: %lld payload(s) rejected and %lld partial in the last 7 days; "
		    "%lld waiting over an hour to be normalised\n", (long long)rej, (long long)part,
		    (long long)stuck);
		printf("  %lld document(s) dead (rasctl outbox dead), %lld e-RS outcome(s) parked for a person"
		    " (rasctl ers pending)\n", (long long)odead, (long long)parked);
		printf("  of those, %lld letter(s) a GP system answered negatively (e.g. patient not known "
		    "there) and %lld never acknowledged in time; %lld letter(s) awaiting acknowledgement\n",
		    (long long)neg, (long long)miss, (long long)wait);
	}
	json_decref(st);
	return CTL_OK;
}
