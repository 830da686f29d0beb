/*
 * episode: what happened during a patient's care, as the EPR reports it in
 * a QuestionnaireResponse against rasd's episode-summary form
 * (mappings/forms/episode-summary.json, canonical
 * urn:rasd:questionnaire:episode-summary, version 1).  The notification
 * letter and the discharge summary are built from it.
 *
 * Parsing is strict: an answer to an item the form does not have, a value
 * of the wrong type, or a medication change that is not start, stop,
 * dose-change or continue is refused with RAS_EINVALID, so a mapping
 * mistake in the EPR shows up at once instead of as a silent gap in a
 * letter.  Which items a document *requires* is per service
 * (docprofile.h), not here.
 *
 * Strings point into the form (and so into its arena).  Never logged.
 */
#ifndef RAS_EPISODE_H
#define RAS_EPISODE_H

#include <stdbool.h>
#include <stddef.h>

#include "ras/referral.h"
#include "ras/time.h"

struct ras_arena;

#define RAS_EPISODE_QUESTIONNAIRE "urn:rasd:questionnaire:episode-summary"
#define RAS_EPISODE_VERSION       "1"

enum ras_med_change {
	RAS_MED_START = 1,
	RAS_MED_STOP,
	RAS_MED_DOSE_CHANGE,
	RAS_MED_CONTINUE,
};

/* "start", "stop", "dose-change", "continue" */
const char *ras_episode_med_change_name(enum ras_med_change c);

struct ras_med_change_item {
	const char *medication;
	enum ras_med_change change;
	const char *reason;        /* NULL when not given */
	bool opioid;
};

struct ras_episode {
	bool has_admission_date;
	struct ras_date admission_date;
	bool has_discharge_date;
	struct ras_date discharge_date;
	const char *diagnosis;
	const char *investigations;
	const char *test_results;
	const char *treatment_summary;
	const char *outcomes;
	size_t n_meds;
	struct ras_med_change_item *meds;
	const char *management_plan;
	size_t n_gp_actions;
	const char **gp_actions;
	const char *key_worker;
	const char *onward_referral;
	const char *self_management_advice;
	const char *re_referral_indicators;
	const char *peer_support;
	const char *fit_for_procedure;
};

/* Build the episode from a flattened QuestionnaireResponse.  The form must
 * name the episode-summary questionnaire (version 1 when a version is
 * given). */
int ras_episode_from_form(struct ras_arena *a, const struct ras_form *form,
    struct ras_episode *out);

/* True when the episode answers item `link_id` (a top-level linkId of the
 * form; "medication-changes" is answered by at least one group). */
bool ras_episode_has(const struct ras_episode *e, const char *link_id);

/* True when link_id is an item of the episode-summary form. */
bool ras_episode_item_known(const char *link_id);

/* True when any medication change is an opioid. */
bool ras_episode_has_opioid(const struct ras_episode *e);

#endif
