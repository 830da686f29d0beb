/* decision: names and JSON for triage decisions (see include/ras/decision.h). */
#include <string.h>

#include "ras/arena.h"
#include "ras/decision.h"
#include "ras/error.h"

const char *
ras_decision_outcome_name(enum ras_outcome o)
{
	switch (o) {
	case RAS_OUTCOME_ACCEPT: return "accept";
	case RAS_OUTCOME_RETURN: return "return";
	case RAS_OUTCOME_ONWARD: return "onward";
	case RAS_OUTCOME_REVIEW: return "review";
	}
	return "unknown";
}

enum ras_outcome
ras_decision_outcome_parse(const char *s)
{
	if (s == NULL)
		return 0;
	if (strcmp(s, "accept") == 0)
		return RAS_OUTCOME_ACCEPT;
	if (strcmp(s, "return") == 0)
		return RAS_OUTCOME_RETURN;
	if (strcmp(s, "onward") == 0)
		return RAS_OUTCOME_ONWARD;
	if (strcmp(s, "review") == 0)
		return RAS_OUTCOME_REVIEW;
	return 0;
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

int
ras_decision_to_json(const struct ras_decision *d, bool full, json_t **out)
{
	json_t *o = json_object(), *reasons = json_array(), *deadlines = json_array();
	int err = 0;

	if (o == NULL || reasons == NULL || deadlines == NULL) {
		json_decref(reasons);
		json_decref(deadlines);
		json_decref(o);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < d->n_reasons && err == 0; i++) {
		const struct ras_reason *r = &d->reasons[i];
		json_t *x = json_object();

		if ((err = ras_json_append_new(reasons, x)) < 0)
			break;
		if ((err = ras_json_set_new(x, "rule", str_or_null(r->rule))) < 0 ||
		    (err = ras_json_set_new(x, "clause", str_or_null(r->clause))) < 0 ||
		    (err = ras_json_set_new(x, "advice", str_or_null(r->advice))) < 0)
			break;
		if (full && r->stage)
			err = ras_json_set_str(x, "stage", r->stage);
	}
	for (size_t i = 0; i < d->n_deadlines && err == 0; i++) {
		const struct ras_deadline *dl = &d->deadlines[i];
		json_t *x = json_object();
		char buf[RAS_TIME_STR_MAX];

		if ((err = ras_json_append_new(deadlines, x)) < 0 ||
		    (err = ras_json_set_str(x, "kind", dl->kind)) < 0)
			break;
		if (dl->hours)
			ras_time_format_uk(dl->due_at, buf);
		else
			ras_date_format(&dl->due_date, buf);
		if ((err = ras_json_set_str(x, "due", buf)) < 0)
			break;
		if (full && dl->clause)
			err = ras_json_set_str(x, "clause", dl->clause);
	}
	if (err == 0)
		err = ras_json_set_new(o, "service", str_or_null(d->service));
	if (err == 0)
		err = ras_json_set_new(o, "outcome", json_string(ras_decision_outcome_name(d->outcome)));
	if (err == 0)
		err = ras_json_set_new(o, "onward_target", str_or_null(d->onward_target));
	if (err == 0)
		err = ras_json_set_new(o, "final", json_boolean(d->final));
	if (err == 0)
		err = ras_json_set_new(o, "reasons", reasons);
	else
		json_decref(reasons);
	reasons = NULL;
	if (err == 0)
		err = ras_json_set_new(o, "deadlines", deadlines);
	else
		json_decref(deadlines);
	deadlines = NULL;
	if (err == 0 && full) {
		char buf[RAS_TIME_STR_MAX];

		if (d->facts)
			err = ras_json_set_new(o, "facts", json_incref(d->facts));
		if (err == 0)
			err = ras_json_set_new(o, "ruleset_version", str_or_null(d->ruleset_version));
		if (err == 0)
			err = ras_json_set_new(o, "decided_by", str_or_null(d->decided_by));
		if (err == 0 && d->decided_at) {
			ras_time_format_utc(d->decided_at, buf);
			err = ras_json_set_str(o, "decided_at", buf);
		}
		if (err == 0 && d->received_at) {
			ras_time_format_utc(d->received_at, buf);
			err = ras_json_set_str(o, "received_at", buf);
		}
	}
	if (err < 0) {
		json_decref(o);
		return err;
	}
	*out = o;
	return 0;
}

int
ras_decision_from_json(struct ras_arena *a, json_t *doc, struct ras_decision *d)
{
	json_t *reasons = ras_json_arr(doc, "reasons"), *deadlines = ras_json_arr(doc, "deadlines");
	json_t *x;
	size_t i;
	int err;

	memset(d, 0, sizeof(*d));
	json_incref(doc);
	if ((err = ras_json_arena_own(a, doc)) < 0)
		return err;
	d->service = ras_json_str(doc, "service");
	d->outcome = ras_decision_outcome_parse(ras_json_str(doc, "outcome"));
	if (d->outcome == 0)
		return ras_error_code(RAS_EINVALID, "decision has no valid outcome");
	d->onward_target = ras_json_str(doc, "onward_target");
	(void)ras_json_bool(doc, "final", &d->final);
	d->facts = json_object_get(doc, "facts");
	d->ruleset_version = ras_json_str(doc, "ruleset_version");
	d->decided_by = ras_json_str(doc, "decided_by");
	if (ras_json_str(doc, "decided_at") &&
	    ras_time_parse(ras_json_str(doc, "decided_at"), false, &d->decided_at) < 0)
		return ras_error_code(RAS_EINVALID, "decision has an invalid decided_at");
	if (ras_json_str(doc, "received_at") &&
	    ras_time_parse(ras_json_str(doc, "received_at"), false, &d->received_at) < 0)
		return ras_error_code(RAS_EINVALID, "decision has an invalid received_at");
	d->reasons = ras_arena_calloc(a, json_array_size(reasons) + 1, sizeof(*d->reasons));
	d->deadlines = ras_arena_calloc(a, json_array_size(deadlines) + 1, sizeof(*d->deadlines));
	if (d->reasons == NULL || d->deadlines == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(reasons, i, x) {
		d->reasons[i].rule = ras_json_str(x, "rule");
		d->reasons[i].clause = ras_json_str(x, "clause");
		d->reasons[i].advice = ras_json_str(x, "advice");
		d->reasons[i].stage = ras_json_str(x, "stage");
	}
	d->n_reasons = json_array_size(reasons);
	json_array_foreach(deadlines, i, x) {
		struct ras_deadline *dl = &d->deadlines[i];
		const char *due = ras_json_str(x, "due");

		dl->kind = ras_json_str(x, "kind");
		dl->clause = ras_json_str(x, "clause");
		if (due && strlen(due) == 10) {
			if (ras_date_parse(due, &dl->due_date) < 0)
				return ras_error_code(RAS_EINVALID, "decision deadline has an invalid date");
		} else if (due) {
			dl->hours = true;
			if (ras_time_parse(due, false, &dl->due_at) < 0)
				return ras_error_code(RAS_EINVALID, "decision deadline has an invalid time");
			ras_time_uk_date(dl->due_at, &dl->due_date, NULL);
		}
	}
	d->n_deadlines = json_array_size(deadlines);
	return 0;
}
