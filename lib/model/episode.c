/* episode: the episode-summary form (see include/ras/episode.h). */
#include <string.h>

#include "ras/arena.h"
#include "ras/episode.h"
#include "ras/error.h"
#include "ras/limits.h"

static const char *const items[] = {
	"admission-date", "discharge-date", "diagnosis", "investigations", "test-results",
	"treatment-summary", "outcomes", "medication-changes", "management-plan", "gp-actions",
	"key-worker", "onward-referral", "self-management-advice", "re-referral-indicators",
	"peer-support", "fit-for-procedure", NULL,
};

static const char *const med_items[] = { "medication", "change", "reason", "opioid", NULL };

static bool
in_list(const char *const *list, const char *s)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

bool
ras_episode_item_known(const char *link_id)
{
	return link_id && in_list(items, link_id);
}

const char *
ras_episode_med_change_name(enum ras_med_change c)
{
	switch (c) {
	case RAS_MED_START: return "start";
	case RAS_MED_STOP: return "stop";
	case RAS_MED_DOSE_CHANGE: return "dose-change";
	case RAS_MED_CONTINUE: return "continue";
	}
	return "unknown";
}

static enum ras_med_change
med_change_parse(const char *s)
{
	if (s == NULL)
		return 0;
	if (strcmp(s, "start") == 0)
		return RAS_MED_START;
	if (strcmp(s, "stop") == 0)
		return RAS_MED_STOP;
	if (strcmp(s, "dose-change") == 0)
		return RAS_MED_DOSE_CHANGE;
	if (strcmp(s, "continue") == 0)
		return RAS_MED_CONTINUE;
	return 0;
}

static int
want_text(const struct ras_answer *an)
{
	if (an->type != RAS_ANSWER_STRING)
		return ras_error_code(RAS_EINVALID, "episode item \"%s\" must be text", an->link_id);
	return 0;
}

static int
set_text(const struct ras_answer *an, const char **slot)
{
	int err;

	if ((err = want_text(an)) < 0)
		return err;
	if (*slot)
		return ras_error_code(RAS_EINVALID, "episode item \"%s\" is answered more than once",
		    an->link_id);
	*slot = an->s;
	return 0;
}

static int
set_date(const struct ras_answer *an, bool *has, struct ras_date *d)
{
	if (an->type != RAS_ANSWER_DATE || an->s == NULL || ras_date_parse(an->s, d) < 0)
		return ras_error_code(RAS_EINVALID, "episode item \"%s\" must be a date (YYYY-MM-DD)",
		    an->link_id);
	if (*has)
		return ras_error_code(RAS_EINVALID, "episode item \"%s\" is answered more than once",
		    an->link_id);
	*has = true;
	return 0;
}

static int
med_answer(struct ras_med_change_item *m, const struct ras_answer *an, int idx)
{
	const char *code;

	if (!in_list(med_items, an->link_id))
		return ras_error_code(RAS_EINVALID,
		    "medication-changes has no item \"%.60s\"", an->link_id);
	if (strcmp(an->link_id, "medication") == 0)
		return set_text(an, &m->medication);
	if (strcmp(an->link_id, "reason") == 0)
		return set_text(an, &m->reason);
	if (strcmp(an->link_id, "opioid") == 0) {
		if (an->type != RAS_ANSWER_BOOLEAN)
			return ras_error_code(RAS_EINVALID,
			    "medication-changes[%d] opioid must be a boolean", idx);
		m->opioid = an->b;
		return 0;
	}
	code = an->type == RAS_ANSWER_CODING ? an->code : an->type == RAS_ANSWER_STRING ? an->s : NULL;
	m->change = med_change_parse(code);
	if (m->change == 0)
		return ras_error_code(RAS_EINVALID,
		    "medication-changes[%d] change must be start, stop, dose-change or continue", idx);
	return 0;
}

int
ras_episode_from_form(struct ras_arena *a, const struct ras_form *f, struct ras_episode *e)
{
	size_t ngroups = 0, nact = 0;
	int err;

	memset(e, 0, sizeof(*e));
	if (f->questionnaire == NULL || strcmp(f->questionnaire, RAS_EPISODE_QUESTIONNAIRE) != 0)
		return ras_error_code(RAS_EINVALID, "not an episode summary (questionnaire must be %s)",
		    RAS_EPISODE_QUESTIONNAIRE);
	if (f->version && strcmp(f->version, RAS_EPISODE_VERSION) != 0)
		return ras_error_code(RAS_EINVALID,
		    "episode summary version \"%.20s\" is not supported (this rasd reads version %s)",
		    f->version, RAS_EPISODE_VERSION);
	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *an = &f->answers[i];

		if (an->group && strcmp(an->group, "medication-changes") == 0) {
			if ((size_t)an->group_index + 1 > ngroups)
				ngroups = (size_t)an->group_index + 1;
		} else if (an->group) {
			return ras_error_code(RAS_EINVALID, "episode summary has no group \"%.60s\"",
			    an->group);
		} else if (strcmp(an->link_id, "gp-actions") == 0) {
			nact++;
		}
	}
	if (ngroups > RAS_FORM_ANSWERS_MAX)
		return ras_error_code(RAS_ETOOBIG, "too many medication changes");
	e->meds = ras_arena_calloc(a, ngroups + 1, sizeof(*e->meds));
	e->gp_actions = ras_arena_calloc(a, nact + 1, sizeof(*e->gp_actions));
	if (e->meds == NULL || e->gp_actions == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	e->n_meds = ngroups;
	for (size_t i = 0; i < f->n_answers; i++) {
		const struct ras_answer *an = &f->answers[i];
		const char *id = an->link_id;

		if (an->group) {
			if ((err = med_answer(&e->meds[an->group_index], an, an->group_index)) < 0)
				return err;
			continue;
		}
		if (!in_list(items, id))
			return ras_error_code(RAS_EINVALID, "episode summary has no item \"%.60s\"", id);
		if (strcmp(id, "admission-date") == 0)
			err = set_date(an, &e->has_admission_date, &e->admission_date);
		else if (strcmp(id, "discharge-date") == 0)
			err = set_date(an, &e->has_discharge_date, &e->discharge_date);
		else if (strcmp(id, "diagnosis") == 0)
			err = set_text(an, &e->diagnosis);
		else if (strcmp(id, "investigations") == 0)
			err = set_text(an, &e->investigations);
		else if (strcmp(id, "test-results") == 0)
			err = set_text(an, &e->test_results);
		else if (strcmp(id, "treatment-summary") == 0)
			err = set_text(an, &e->treatment_summary);
		else if (strcmp(id, "outcomes") == 0)
			err = set_text(an, &e->outcomes);
		else if (strcmp(id, "management-plan") == 0)
			err = set_text(an, &e->management_plan);
		else if (strcmp(id, "gp-actions") == 0) {
			err = want_text(an);
			if (err == 0)
				e->gp_actions[e->n_gp_actions++] = an->s;
		} else if (strcmp(id, "key-worker") == 0)
			err = set_text(an, &e->key_worker);
		else if (strcmp(id, "onward-referral") == 0)
			err = set_text(an, &e->onward_referral);
		else if (strcmp(id, "self-management-advice") == 0)
			err = set_text(an, &e->self_management_advice);
		else if (strcmp(id, "re-referral-indicators") == 0)
			err = set_text(an, &e->re_referral_indicators);
		else if (strcmp(id, "peer-support") == 0)
			err = set_text(an, &e->peer_support);
		else if (strcmp(id, "fit-for-procedure") == 0)
			err = set_text(an, &e->fit_for_procedure);
		else
			err = ras_error_code(RAS_EINVALID, "episode item \"%.60s\" cannot be answered directly",
			    id);
		if (err < 0)
			return err;
	}
	for (size_t i = 0; i < e->n_meds; i++) {
		const struct ras_med_change_item *m = &e->meds[i];

		if (m->medication == NULL || m->change == 0)
			return ras_error_code(RAS_EINVALID,
			    "medication-changes[%zu] needs both medication and change", i);
		if (m->change == RAS_MED_STOP && m->reason == NULL)
			return ras_error_code(RAS_EINVALID,
			    "medication-changes[%zu] stops a medicine without a reason", i);
	}
	return 0;
}

bool
ras_episode_has(const struct ras_episode *e, const char *id)
{
	if (strcmp(id, "admission-date") == 0)
		return e->has_admission_date;
	if (strcmp(id, "discharge-date") == 0)
		return e->has_discharge_date;
	if (strcmp(id, "diagnosis") == 0)
		return e->diagnosis != NULL;
	if (strcmp(id, "investigations") == 0)
		return e->investigations != NULL;
	if (strcmp(id, "test-results") == 0)
		return e->test_results != NULL;
	if (strcmp(id, "treatment-summary") == 0)
		return e->treatment_summary != NULL;
	if (strcmp(id, "outcomes") == 0)
		return e->outcomes != NULL;
	if (strcmp(id, "medication-changes") == 0)
		return e->n_meds > 0;
	if (strcmp(id, "management-plan") == 0)
		return e->management_plan != NULL;
	if (strcmp(id, "gp-actions") == 0)
		return e->n_gp_actions > 0;
	if (strcmp(id, "key-worker") == 0)
		return e->key_worker != NULL;
	if (strcmp(id, "onward-referral") == 0)
		return e->onward_referral != NULL;
	if (strcmp(id, "self-management-advice") == 0)
		return e->self_management_advice != NULL;
	if (strcmp(id, "re-referral-indicators") == 0)
		return e->re_referral_indicators != NULL;
	if (strcmp(id, "peer-support") == 0)
		return e->peer_support != NULL;
	if (strcmp(id, "fit-for-procedure") == 0)
		return e->fit_for_procedure != NULL;
	return false;
}

bool
ras_episode_has_opioid(const struct ras_episode *e)
{
	for (size_t i = 0; i < e->n_meds; i++)
		if (e->meds[i].opioid)
			return true;
	return false;
}
