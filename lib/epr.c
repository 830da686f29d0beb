/* epr: EPR event messages and clinicians' decisions (see include/ras/epr.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/clinicians.h"
#include "ras/crypto.h"
#include "ras/date.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/fhir.h"
#include "ras/form.h"
#include "ras/intake.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/outbox.h"
#include "ras/referral_json.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/time.h"
#include "ras/triage.h"

static const char *const kind_names[] = {
	[RAS_EPR_CONTACTED] = "patient-contacted",
	[RAS_EPR_OFFERED] = "appointment-offered",
	[RAS_EPR_ATTENDED] = "appointment-attended",
	[RAS_EPR_TREATMENT] = "treatment-started",
	[RAS_EPR_ONWARD] = "onward-referral",
	[RAS_EPR_DISCHARGED] = "discharged",
	[RAS_EPR_PIFU] = "pifu",
	[RAS_EPR_DECISION] = "clinician-decision",
};

#define NKINDS (sizeof(kind_names) / sizeof(kind_names[0]))

const char *
ras_epr_kind_name(enum ras_epr_kind k)
{
	return (size_t)k < NKINDS && kind_names[k] ? kind_names[k] : "unknown";
}

enum ras_epr_kind
ras_epr_kind_parse(const char *s)
{
	for (size_t k = 1; s && k < NKINDS; k++)
		if (strcmp(kind_names[k], s) == 0)
			return (enum ras_epr_kind)k;
	return 0;
}

/* ---- parsing (pure) ---------------------------------------------------- */

static json_t *
message_header(const json_t *j)
{
	json_t *entry = ras_json_arr(j, "entry"), *first, *mh;
	const char *rt = ras_json_str(j, "resourceType"), *type = ras_json_str(j, "type");

	if (rt == NULL || strcmp(rt, "Bundle") != 0 || type == NULL || strcmp(type, "message") != 0)
		return NULL;
	first = json_array_get(entry, 0);
	mh = ras_json_obj(first, "resource");
	rt = ras_json_str(mh, "resourceType");
	return rt && strcmp(rt, "MessageHeader") == 0 ? mh : NULL;
}

bool
ras_epr_detect(const json_t *j)
{
	json_t *mh = message_header(j);
	const char *sys = ras_json_str(ras_json_obj(mh, "eventCoding"), "system");

	return sys && strcmp(sys, RAS_SYS_EPR_EVENT) == 0;
}

#define bad(...) ras_error_code(RAS_EINVALID, __VA_ARGS__)

/* The referral a Reference names: a logical reference by identifier, or a
 * ServiceRequest in the bundle. */
static int
referral_of(struct ras_arena *a, const struct ras_fhir_bundle *b, const json_t *ref,
    struct ras_epr_event *ev)
{
	json_t *ident = ras_json_obj(ref, "identifier"), *sr;
	const char *sys, *val;

	if (json_is_array(ref))
		ref = json_array_get(ref, 0);
	if (ref == NULL)
		return RAS_ENOTFOUND;
	ident = ras_json_obj(ref, "identifier");
	if (ident) {
		sys = ras_json_str(ident, "system");
		val = ras_json_str(ident, "value");
		if (sys == NULL || val == NULL)
			return ras_error_code(RAS_EINVALID, "the referral identifier needs a system and a value");
		if (strlen(val) > RAS_ID_MAX || strlen(sys) > 1024)
			return ras_error_code(RAS_ETOOBIG, "the referral identifier is too long");
		if (strcmp(sys, RAS_SYS_UBRN) == 0)
			ev->ubrn = val;
		else
			ev->referral_key = ras_arena_printf(a, "local:%s|%s", sys, val);
		return 0;
	}
	sr = ras_fhir_bundle_resolve(b, ras_json_str(ref, "reference"), "ServiceRequest");
	if (sr == NULL)
		return ras_error_code(RAS_EINVALID,
		    "the referral reference is neither an identifier nor a ServiceRequest in the bundle");
	if ((val = ras_fhir_identifier(sr, RAS_SYS_UBRN)) != NULL) {
		if (strlen(val) > RAS_ID_MAX)
			return ras_error_code(RAS_ETOOBIG, "the UBRN is too long");
		ev->ubrn = val;
		return 0;
	}
	{
		json_t *ids = ras_json_arr(sr, "identifier"), *id;
		size_t i;

		json_array_foreach(ids, i, id) {
			sys = ras_json_str(id, "system");
			val = ras_json_str(id, "value");
			if (sys && val && strlen(val) <= RAS_ID_MAX && strlen(sys) <= 1024) {
				ev->referral_key = ras_arena_printf(a, "local:%s|%s", sys, val);
				return 0;
			}
		}
	}
	return ras_error_code(RAS_EINVALID, "the referral ServiceRequest has no identifier");
}

static int
time_of(const json_t *obj, const char *key, const char *what, bool required, int64_t *out,
    bool *has)
{
	const char *s = ras_json_str(obj, key);

	if (has)
		*has = false;
	if (s == NULL) {
		if (required)
			return ras_error_code(RAS_EINVALID, "%s is missing", what);
		return 0;
	}
	if (ras_time_parse(s, true, out) < 0)
		return ras_error_code(RAS_EINVALID, "%s is not a FHIR dateTime", what);
	if (has)
		*has = true;
	return 0;
}

static int
ext_bool(const json_t *res, const char *url)
{
	json_t *e = ras_fhir_extension(res, url), *v;

	if (e == NULL || (v = json_object_get(e, "valueBoolean")) == NULL || !json_is_boolean(v))
		return -1;
	return json_is_true(v) ? 1 : 0;
}

/* Contact mode from a v3 ActCode (Encounter.class, Appointment.appointmentType). */
static const char *
mode_of_code(const char *code)
{
	if (code == NULL)
		return NULL;
	if (strcmp(code, "VR") == 0)
		return "virtual";
	if (strcmp(code, "AMB") == 0 || strcmp(code, "HH") == 0 || strcmp(code, "FLD") == 0)
		return "face-to-face";
	return NULL;
}

/* The SDS user id of a Reference to a Practitioner (or PractitionerRole). */
static const char *
sds_of(const struct ras_fhir_bundle *b, const json_t *ref)
{
	json_t *ident = ras_json_obj(ref, "identifier"), *res;
	const char *sys;

	if (ident && (sys = ras_json_str(ident, "system")) != NULL &&
	    (strcmp(sys, RAS_SYS_SDS_USER) == 0 || strcmp(sys, RAS_SYS_SDS_USER_STU3) == 0))
		return ras_json_str(ident, "value");
	res = ras_fhir_bundle_resolve(b, ras_json_str(ref, "reference"), NULL);
	if (res == NULL)
		return NULL;
	if (strcmp(ras_json_str(res, "resourceType"), "PractitionerRole") == 0) {
		json_t *pr = ras_fhir_bundle_resolve(b,
		    ras_json_str(ras_json_obj(res, "practitioner"), "reference"), "Practitioner");

		if (pr)
			res = pr;
	}
	return ras_fhir_identifier(res, RAS_SYS_SDS_USER);
}

static bool
is_episode_type(const json_t *eoc, const char *code)
{
	json_t *types = ras_json_arr(eoc, "type"), *t;
	size_t i;

	json_array_foreach(types, i, t) {
		const char *c = ras_fhir_cc_code(t, RAS_SYS_EPISODE_TYPE);

		if (c && strcmp(c, code) == 0)
			return true;
	}
	return false;
}

static int
parse_focus(struct ras_arena *a, const struct ras_fhir_bundle *b, json_t *res,
    struct ras_epr_event *ev)
{
	const char *rt = ras_json_str(res, "resourceType");
	int err;

#define WANT(type) \
	do { \
		if (strcmp(rt, type) != 0) \
			return ras_error_code(RAS_EINVALID, "a %s event needs a " type \
			    " as MessageHeader.focus, not a %.40s", ras_epr_kind_name(ev->kind), rt); \
	} while (0)

	switch (ev->kind) {
	case RAS_EPR_CONTACTED:
	case RAS_EPR_ATTENDED:
		WANT("Encounter");
		if ((err = referral_of(a, b, ras_json_arr(res, "basedOn"), ev)) < 0)
			return err == RAS_ENOTFOUND ? bad("%s.basedOn must name the referral", "Encounter") : err;
		if ((err = time_of(ras_json_obj(res, "period"), "start", "Encounter.period.start", true,
		    &ev->occurred_at, NULL)) < 0)
			return err;
		ev->mode = mode_of_code(ras_json_str(ras_json_obj(res, "class"), "code"));
		if (ev->kind == RAS_EPR_ATTENDED) {
			const char *st = ras_json_str(res, "status");

			if (st == NULL || (strcmp(st, "finished") != 0 && strcmp(st, "in-progress") != 0))
				return bad("an attended appointment needs Encounter.status finished or in-progress%s", "");
			if (ev->mode == NULL)
				return bad("an attended appointment needs Encounter.class VR (virtual) or AMB (face to face)%s", "");
		}
		break;
	case RAS_EPR_OFFERED:
		WANT("Appointment");
		if ((err = referral_of(a, b, ras_json_arr(res, "basedOn"), ev)) < 0)
			return err == RAS_ENOTFOUND ? bad("%s.basedOn must name the referral", "Appointment") : err;
		if ((err = time_of(res, "created", "Appointment.created (when it was offered)", true,
		    &ev->occurred_at, NULL)) < 0 ||
		    (err = time_of(res, "start", "Appointment.start", false, &ev->slot, &ev->has_slot)) < 0)
			return err;
		{
			json_t *at = ras_json_obj(res, "appointmentType");

			ev->mode = mode_of_code(ras_fhir_cc_code(at, RAS_SYS_V3_ACTCODE));
		}
		break;
	case RAS_EPR_TREATMENT:
	case RAS_EPR_PIFU:
	case RAS_EPR_DISCHARGED:
		WANT("EpisodeOfCare");
		if ((err = referral_of(a, b, ras_json_arr(res, "referralRequest"), ev)) < 0)
			return err == RAS_ENOTFOUND ?
			    bad("%s.referralRequest must name the referral", "EpisodeOfCare") : err;
		if (ev->kind == RAS_EPR_DISCHARGED) {
			const char *st = ras_json_str(res, "status");

			if (st == NULL || strcmp(st, "finished") != 0)
				return bad("a discharge needs EpisodeOfCare.status finished%s", "");
			if ((err = time_of(ras_json_obj(res, "period"), "end",
			    "EpisodeOfCare.period.end (the discharge)", true, &ev->occurred_at, NULL)) < 0)
				return err;
		} else {
			if (ev->kind == RAS_EPR_PIFU && !is_episode_type(res, "pifu"))
				return bad("a pifu event needs EpisodeOfCare.type %s#pifu", RAS_SYS_EPISODE_TYPE);
			if ((err = time_of(ras_json_obj(res, "period"), "start", "EpisodeOfCare.period.start",
			    true, &ev->occurred_at, NULL)) < 0)
				return err;
		}
		break;
	case RAS_EPR_ONWARD: {
		json_t *pt = ras_json_obj(res, "performerType");

		WANT("ServiceRequest");
		if ((err = referral_of(a, b, ras_json_arr(res, "basedOn"), ev)) < 0)
			return err == RAS_ENOTFOUND ?
			    bad("the onward %s.basedOn must name the referral", "ServiceRequest") : err;
		if ((err = time_of(res, "authoredOn", "ServiceRequest.authoredOn", true,
		    &ev->occurred_at, NULL)) < 0)
			return err;
		ev->target = ras_fhir_cc_code(pt, NULL);
		if (ev->target == NULL)
			ev->target = ras_json_str(pt, "text");
		if (ev->target == NULL)
			return bad("an onward referral needs %s.performerType (where to)", "ServiceRequest");
		break;
	}
	case RAS_EPR_DECISION: {
		json_t *bs = ras_json_obj(res, "businessStatus"), *outs, *o;
		size_t i;

		WANT("Task");
		{
			json_t *focus = ras_json_obj(res, "focus");

			if ((err = referral_of(a, b, focus ? focus : ras_json_arr(res, "basedOn"), ev)) < 0)
				return err == RAS_ENOTFOUND ? bad("%s.focus must name the referral", "Task") : err;
		}
		ev->outcome = ras_decision_outcome_parse(ras_fhir_cc_code(bs, RAS_SYS_TRIAGE_OUTCOME));
		if (ev->outcome == 0 || ev->outcome == RAS_OUTCOME_REVIEW)
			return bad("a clinician decision needs Task.businessStatus %s#accept|return|onward",
			    RAS_SYS_TRIAGE_OUTCOME);
		ev->actor = sds_of(b, ras_json_obj(res, "owner"));
		if (ev->actor == NULL)
			return bad("a clinician decision needs Task.owner with the clinician's SDS user id (%s)",
			    RAS_SYS_SDS_USER);
		ev->advice = ras_json_str(json_array_get(ras_json_arr(res, "note"), 0), "text");
		ev->override = ext_bool(res, RAS_URL_OVERRIDE) == 1;
		outs = ras_json_arr(res, "output");
		json_array_foreach(outs, i, o) {
			const char *c = ras_fhir_cc_code(ras_json_obj(o, "type"), NULL);

			if (c && strcmp(c, "onward-target") == 0)
				ev->target = ras_json_str(o, "valueString");
		}
		if ((err = time_of(res, "lastModified", "Task.lastModified", false, &ev->occurred_at,
		    NULL)) < 0)
			return err;
		if (ev->occurred_at == 0 && (err = time_of(res, "authoredOn", "Task.authoredOn or lastModified",
		    true, &ev->occurred_at, NULL)) < 0)
			return err;
		break;
	}
	}
#undef WANT
	{
		int fa = ext_bool(res, RAS_URL_FIRST_APPOINTMENT);

		ev->first_appointment = fa;
		ev->patient_choice = ext_bool(res, RAS_URL_PATIENT_CHOICE) == 1;
	}
	return 0;
}

int
ras_epr_parse(struct ras_arena *a, json_t *bundle, struct ras_epr_event *out)
{
	struct ras_epr_event ev;
	struct ras_fhir_bundle b;
	json_t *mh = message_header(bundle), *focus, *res;
	const char *sys, *code;
	int err;

	memset(&ev, 0, sizeof(ev));
	ev.first_appointment = -1;
	if (mh == NULL)
		return ras_error_code(RAS_EINVALID,
		    "an EPR event must be a Bundle of type message starting with a MessageHeader");
	sys = ras_json_str(ras_json_obj(mh, "eventCoding"), "system");
	code = ras_json_str(ras_json_obj(mh, "eventCoding"), "code");
	if (sys == NULL || strcmp(sys, RAS_SYS_EPR_EVENT) != 0)
		return bad("MessageHeader.eventCoding.system must be %s", RAS_SYS_EPR_EVENT);
	if ((ev.kind = ras_epr_kind_parse(code)) == 0)
		return ras_error_code(RAS_EINVALID, "unknown EPR event \"%.40s\"", code ? code : "");
	if ((err = ras_fhir_bundle_index(a, bundle, &b)) < 0)
		return err;
	ev.message_id = ras_json_str(mh, "id");
	if (ev.message_id && strlen(ev.message_id) > RAS_ID_MAX)
		return ras_error_code(RAS_ETOOBIG, "MessageHeader.id is longer than %d characters", RAS_ID_MAX);
	focus = json_array_get(ras_json_arr(mh, "focus"), 0);
	if (focus == NULL)
		return bad("%s.focus must name the event's resource", "MessageHeader");
	res = ras_fhir_bundle_resolve(&b, ras_json_str(focus, "reference"), NULL);
	if (res == NULL)
		return ras_error_code(RAS_EINVALID, "MessageHeader.focus \"%.80s\" is not in the bundle",
		    ras_json_str(focus, "reference") ? ras_json_str(focus, "reference") : "");
	if ((err = parse_focus(a, &b, res, &ev)) < 0)
		return err;
	if (ev.ubrn == NULL && ev.referral_key == NULL)
		return bad("the event does not name its referral%s", "");
	/* Who: a clinician (MessageHeader.author), else the sending system. */
	if (ev.actor == NULL)
		ev.actor = sds_of(&b, ras_json_obj(mh, "author"));
	if (ev.actor == NULL) {
		const char *ep = ras_json_str(ras_json_obj(mh, "source"), "endpoint");
		const char *name = ras_json_str(ras_json_obj(mh, "source"), "name");

		ev.actor = name ? name : ep ? ep : "epr";
		if (strlen(ev.actor) > 200)
			ev.actor = ras_arena_strndup(a, ev.actor, 200);
	}
	if (ev.advice && strlen(ev.advice) > RAS_STRING_MAX)
		return ras_error_code(RAS_ETOOBIG, "the advice is longer than %u bytes", RAS_STRING_MAX);
	if (ev.target && strlen(ev.target) > RAS_ID_MAX)
		return ras_error_code(RAS_ETOOBIG, "the onward target is longer than %d characters", RAS_ID_MAX);
	if (ev.kind == RAS_EPR_DISCHARGED || ev.kind == RAS_EPR_CONTACTED || ev.kind == RAS_EPR_ATTENDED) {
		/* The episode summary (what happened: the discharge content, or
		 * what a contact decided) travels in the same message as a
		 * QuestionnaireResponse: required for a discharge. */
		for (size_t i = 0; i < b.n; i++) {
			struct ras_buf text = RAS_BUF_INIT(RAS_PAYLOAD_MAX);
			const char *q;

			if (strcmp(b.entries[i].type, "QuestionnaireResponse") != 0)
				continue;
			q = ras_json_str(b.entries[i].resource, "questionnaire");
			if (q == NULL || strncmp(q, RAS_Q_EPISODE_SUMMARY, strlen(RAS_Q_EPISODE_SUMMARY)) != 0)
				continue;
			ev.summary = ras_arena_calloc(a, 1, sizeof(*ev.summary));
			if (ev.summary == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			if ((err = ras_intake_fhir_form(a, b.entries[i].resource, ev.summary)) < 0)
				return err;
			if ((err = ras_json_dump(b.entries[i].resource, RAS_JSON_COMPACT, &text)) < 0)
				return err;
			ev.summary_text = ras_arena_strndup(a, text.data, text.len);
			ev.summary_len = text.len;
			ras_buf_free(&text);
			if (ev.summary_text == NULL)
				return ras_error_code(RAS_ENOMEM, "out of memory");
			break;
		}
		if (ev.summary == NULL && ev.kind == RAS_EPR_DISCHARGED)
			return bad("a discharge needs the episode summary (QuestionnaireResponse %s)",
			    RAS_Q_EPISODE_SUMMARY);
	}
	*out = ev;
	return 0;
}

/* ---- recording (database) ---------------------------------------------- */

/* The referral (latest version e-RS serves: a superseded worklist stub of a
 * higher version never wins) with what a clinician's decision needs:
 * its current decision, and whether any decision of any version found a
 * red flag or meant the two-week-wait pathway. */
static const char SQL_REFERRAL[] =
    "SELECT r.id::text, r.ubrn, r.priority, coalesce(d.service, r.service), r.state,"
    "  d.id::text, d.outcome, d.final::text, d.onward_target,"
    "  EXISTS (SELECT 1 FROM decisions dd JOIN referrals rv ON rv.id = dd.referral_id,"
    "          jsonb_array_elements(dd.reasons) x"
    "          WHERE rv.referral_key = r.referral_key AND x ->> 'stage' = 'safety')::text,"
    "  floor(extract(epoch FROM r.received_at))::bigint::text,"
    "  coalesce(d.facts ->> 'urgent' = 'true', false)::text, d.decided_by,"
    "  EXISTS (SELECT 1 FROM decisions dd JOIN referrals rv ON rv.id = dd.referral_id"
    "          WHERE rv.referral_key = r.referral_key"
    "            AND dd.onward_target = 'two-week-wait')::text"
    " FROM referrals r"
    " LEFT JOIN LATERAL (SELECT dd.* FROM decisions dd JOIN referrals rv ON rv.id = dd.referral_id"
    "                    WHERE rv.referral_key = r.referral_key ORDER BY dd.id DESC LIMIT 1) d ON true"
    " WHERE r.referral_key = $1"
    " ORDER BY (r.state = 'superseded'), r.version DESC LIMIT 1 FOR UPDATE OF r";

enum { C_ID, C_UBRN, C_PRIORITY, C_SERVICE, C_STATE, C_DEC_ID, C_DEC_OUTCOME, C_DEC_FINAL,
	C_DEC_TARGET, C_SAFETY, C_RECEIVED, C_URGENT, C_DEC_BY, C_EVER_2WW };

static const char SQL_RECORD[] =
    "SELECT event_id::text, created::text, deadlines_met::text FROM ras_epr_record("
    " $1::bigint, $2, to_timestamp($3::bigint), $4, $5::boolean, $6::boolean,"
    " to_timestamp($7::bigint), $8, $9, $10::bigint, $11, $12::bigint, $13::jsonb, $14::jsonb)";

/* May this clinician decision be made?  NULL when yes, else why not. */
static const char *
decision_refused(const struct ras_epr_event *ev, struct ras_db_res *res)
{
	const char *state = ras_db_res_get(res, 0, C_STATE);
	const char *priority = ras_db_res_get(res, 0, C_PRIORITY);
	const char *prev_outcome = ras_db_res_get(res, 0, C_DEC_OUTCOME);
	bool safety = strcmp(ras_db_res_get(res, 0, C_SAFETY), "true") == 0;
	bool ever_2ww = strcmp(ras_db_res_get(res, 0, C_EVER_2WW), "true") == 0;

	if (prev_outcome == NULL || strcmp(state, "new") == 0) {
		if (strcmp(state, "new") == 0)
			return "the referral is waiting for triage (state new): decide once the rules have seen it";
		if (strcmp(state, "unassigned") == 0)
			return "the referral has no service (state unassigned): configure its service so that "
			    "triage can see it first";
		if (strcmp(state, "triage-failed") == 0)
			return "the referral could not be triaged (state triage-failed): see rasctl events";
		return "the referral has no decision to act on";
	}
	if (strcmp(state, "decided") == 0 && !ev->override)
		return "the referral already has a final decision: replace it with --override (or the "
		    "Task extension " RAS_URL_OVERRIDE ") if that is what you mean";
	if (strcmp(state, "decided") != 0 && strcmp(state, "review") != 0)
		return "the referral is not awaiting a decision";
	if (ev->outcome == RAS_OUTCOME_RETURN) {
		if (safety)
			return "cannot return a referral with a red flag: decide accept or onward";
		if (priority && strcmp(priority, "two-week-wait") == 0)
			return "cannot return a suspected cancer (two-week-wait) referral: decide accept or onward";
		if (ever_2ww)
			return "cannot return a referral recommended for the two-week-wait pathway: decide accept or onward";
	}
	if (ev->outcome == RAS_OUTCOME_ONWARD && (ev->target == NULL || *ev->target == '\0'))
		return "an onward decision needs a target (e.g. two-week-wait, secondary-care)";
	if ((ev->outcome == RAS_OUTCOME_RETURN || ev->outcome == RAS_OUTCOME_ONWARD) &&
	    (ev->advice == NULL || *ev->advice == '\0'))
		return "a return or onward decision needs advice for the referrer";
	return NULL;
}

/*
 * The clinician's decision, stored the way triage stores its own
 * (ras_triage_store_decision): the clocks of the outcome come from the
 * service's rule set (ras_rules_deadlines, from the referral's receipt,
 * on the triage calendar), the reason carries the clinician's advice and
 * the clause of the spec's triage clock, the facts say what it replaced.
 */
static int
store_decision(struct ras_db *db, struct ras_arena *a, const struct ras_epr_ctx *ctx,
    const struct ras_epr_event *ev, struct ras_db_res *res, int64_t *decision_id)
{
	const struct ras_mappings *m;
	const struct ras_ruleset *rs;
	const char *service = ras_db_res_get(res, 0, C_SERVICE);
	struct ras_decision dec;
	struct ras_reason *reason;
	int64_t rid = 0, received = 0, prev = 0;
	bool urgent, covered = true, prev_final;
	json_t *facts;
	int err;

	if (ctx == NULL || ctx->triage == NULL)
		return ras_error_set("cannot record a clinician's decision: the rule sets are not loaded");
	m = ras_triage_mappings(ctx->triage);
	if (service == NULL || (rs = ras_mappings_ruleset(m, service)) == NULL)
		return ras_error_code(RAS_EINVALID, "service \"%.40s\" has no rule set: its clocks cannot be "
		    "started", service ? service : "");
	(void)ras_db_res_int(res, 0, C_ID, &rid);
	(void)ras_db_res_int(res, 0, C_RECEIVED, &received);
	(void)ras_db_res_int(res, 0, C_DEC_ID, &prev);
	urgent = strcmp(ras_db_res_get(res, 0, C_URGENT), "true") == 0;
	prev_final = strcmp(ras_db_res_get(res, 0, C_DEC_FINAL), "true") == 0;

	memset(&dec, 0, sizeof(dec));
	if ((reason = ras_arena_calloc(a, 1, sizeof(*reason))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	reason->rule = "clinician";
	reason->clause = ras_rules_clock_clause(rs, "triage");
	reason->advice = ev->advice;
	reason->stage = "clinical";
	dec.service = ras_rules_service(rs);
	dec.outcome = ev->outcome;
	dec.onward_target = ev->outcome == RAS_OUTCOME_ONWARD ? ev->target : NULL;
	dec.final = true;
	dec.n_reasons = 1;
	dec.reasons = reason;
	dec.ruleset_version = "clinician";
	dec.received_at = received;
	dec.decided_at = ev->occurred_at;
	dec.decided_by = ev->actor;
	if ((err = ras_rules_deadlines(a, rs, dec.outcome, dec.onward_target, urgent, true, received,
	    ras_mappings_calendar(m), &dec.deadlines, &dec.n_deadlines, &covered)) < 0)
		return err;
	facts = json_pack("{s:s, s:I, s:s, s:b, s:b, s:s, s:b, s:b}",
	    "decided_via", ev->message_id ? "epr" : "rasctl",
	    "previous_decision", (json_int_t)prev,
	    "previous_outcome", ras_db_res_get(res, 0, C_DEC_OUTCOME),
	    "previous_final", prev_final,
	    "override", prev_final,
	    "clocks_ruleset_version", ras_rules_version(rs),
	    "urgent", urgent,
	    "calendar_covers_deadlines", covered);
	if (facts == NULL || ras_json_arena_own(a, facts) < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	dec.facts = facts;
	return ras_triage_store_decision(db, rid, &dec, decision_id);
}

/*
 * The episode summary an event carries, stored with its letter: a
 * discharge always (the discharge summary; refused with the list of
 * missing items), a contact when the service's specification has a
 * notification letter.  *episode_id stays 0 when nothing was stored.
 */
static int
store_episode(struct ras_db *db, const struct ras_epr_ctx *ctx, const struct ras_epr_event *ev,
    const char *rid, const char *service, int64_t *episode_id)
{
	bool discharge = ev->kind == RAS_EPR_DISCHARGED;

	*episode_id = 0;
	if (ev->summary_text == NULL)
		return 0;
	if (ctx == NULL || ctx->outbox == NULL)
		return ras_error_set("cannot turn the episode summary into its letter: the document "
		    "profiles are not loaded");
	if (!discharge && !ras_outbox_has_document(ctx->outbox, service, "notification-letter"))
		return 0;
	return ras_outbox_episode_put(ctx->outbox, db, rid, discharge ? "discharge" : "contact",
	    ev->summary_text, ev->summary_len, ev->actor, ev->occurred_at, episode_id);
}

static const char *
int_text(struct ras_arena *a, int64_t v)
{
	return ras_arena_printf(a, "%lld", (long long)v);
}

static int
record(struct ras_db *db, const struct ras_epr_ctx *ctx, struct ras_arena *a,
    const struct ras_epr_event *ev, int64_t payload_id, struct ras_epr_result *out)
{
	struct ras_db_res *res = NULL;
	const char *key = ev->ubrn ? ev->ubrn : ev->referral_key, *content = NULL, *detail = NULL;
	char rid[24], decision[24] = "";
	int err;

	if ((err = ras_db_query(db, &res, SQL_REFERRAL, 1, &RAS_DB_TEXT(key))) < 0)
		goto done;
	if (ras_db_res_rows(res) == 0) {
		err = ras_error_code(RAS_ENOTFOUND, "no stored referral %s \"%.60s\"",
		    ev->ubrn ? "with UBRN" : "with key", key);
		goto done;
	}
	snprintf(rid, sizeof(rid), "%s", ras_db_res_get(res, 0, C_ID));
	out->referral_id = strtoll(rid, NULL, 10);
	snprintf(out->ubrn, sizeof(out->ubrn), "%s",
	    ras_db_res_get(res, 0, C_UBRN) ? ras_db_res_get(res, 0, C_UBRN) : "");
	{
		/* A clinical event happens after the referral arrived and not in
		 * the future (five minutes' grace for clocks that disagree).  By UK
		 * civil date for the past: an EPR may give only the day. */
		int64_t received = 0, t_now = ras_time_now();
		struct ras_date rd, ed;

		(void)ras_db_res_int(res, 0, C_RECEIVED, &received);
		ras_time_uk_date(received, &rd, NULL);
		ras_time_uk_date(ev->occurred_at, &ed, NULL);
		if (ras_date_cmp(&ed, &rd) < 0) {
			err = ras_error_code(RAS_EINVALID, "the %s is dated before the day the referral was "
			    "received: refused", ras_epr_kind_name(ev->kind));
			goto done;
		}
		if (ev->occurred_at > t_now + 300) {
			err = ras_error_code(RAS_EINVALID, "the %s is dated in the future: refused",
			    ras_epr_kind_name(ev->kind));
			goto done;
		}
	}
	if (ev->kind == RAS_EPR_DECISION) {
		const char *why = decision_refused(ev, res);
		const char *service = ras_db_res_get(res, 0, C_SERVICE);
		const struct ras_clinician *c = ras_clinicians_find(ctx && ctx->triage ?
		    ras_triage_clinicians(ctx->triage) : NULL, ev->actor);

		/* (without the rule sets there is no register either: store_decision
		 * says so) */
		if (ctx == NULL || ctx->triage == NULL)
			;
		else if (why == NULL && c == NULL)
			why = ras_arena_printf(a, "%s is not a registered clinician ([clinician %s] in the "
			    "configuration): only a registered clinician may decide", ev->actor ? ev->actor : "(nobody)",
			    ev->actor && ras_clinicians_sds_ok(ev->actor) ? ev->actor : "SDS_USER_ID");
		else if (why == NULL && !ras_clinicians_serves(c, service))
			why = ras_arena_printf(a, "clinician %s is not registered for service %s: only a clinician "
			    "of the service may decide", ev->actor, service ? service : "(none)");

		if (why) {
			err = ras_error_code(RAS_EINVALID, "%s", why);
			goto done;
		}
		if ((err = store_decision(db, a, ctx, ev, res, &out->decision_id)) < 0)
			goto done;
		snprintf(decision, sizeof(decision), "%lld", (long long)out->decision_id);
		detail = ras_arena_printf(a, "{\"outcome\":\"%s\",\"override\":%s}",
		    ras_decision_outcome_name(ev->outcome),
		    strcmp(ras_db_res_get(res, 0, C_STATE), "decided") == 0 ? "true" : "false");
	}
	if (ev->summary) {
		const char *service = ras_db_res_get(res, 0, C_SERVICE);
		struct ras_buf b = RAS_BUF_INIT(0);
		json_t *fj;

		if ((err = store_episode(db, ctx, ev, rid, service ? ras_arena_strdup(a, service) : NULL,
		    &out->episode_id)) < 0)
			goto done;
		if ((err = ras_form_to_json(ev->summary, &fj)) < 0)
			goto done;
		err = ras_json_dump(fj, RAS_JSON_COMPACT, &b);
		json_decref(fj);
		if (err == 0)
			content = ras_arena_strndup(a, b.data, b.len);
		ras_buf_free(&b);
		if (err < 0)
			goto done;
		if (out->episode_id)
			detail = ras_arena_printf(a, "{\"episode_id\":%lld}", (long long)out->episode_id);
	}
	ras_db_res_free(res);
	res = NULL;
	{
		const char *first = ev->first_appointment < 0 ? NULL :
		    ev->first_appointment ? "true" : "false";

		if ((err = ras_db_query(db, &res, SQL_RECORD, 14, (struct ras_db_param[]){
		    RAS_DB_TEXT(rid), RAS_DB_TEXT(ras_epr_kind_name(ev->kind)),
		    RAS_DB_TEXT(int_text(a, ev->occurred_at)), RAS_DB_TEXT(ev->mode), RAS_DB_TEXT(first),
		    RAS_DB_TEXT(ev->patient_choice ? "true" : "false"),
		    RAS_DB_TEXT(ev->has_slot ? int_text(a, ev->slot) : NULL), RAS_DB_TEXT(ev->target),
		    RAS_DB_TEXT(ev->message_id), RAS_DB_TEXT(payload_id ? int_text(a, payload_id) : NULL),
		    RAS_DB_TEXT(ev->actor), RAS_DB_TEXT(decision[0] ? decision : NULL),
		    RAS_DB_TEXT(content), RAS_DB_TEXT(detail) })) < 0)
			goto done;
	}
	out->event_id = strtoll(ras_db_res_get(res, 0, 0), NULL, 10);
	out->duplicate = strcmp(ras_db_res_get(res, 0, 1), "true") != 0;
	out->deadlines_met = (int)strtol(ras_db_res_get(res, 0, 2), NULL, 10);
	out->state = out->duplicate ? "duplicate" : "recorded";
	out->kind = ras_epr_kind_name(ev->kind);
	if (out->duplicate && (out->decision_id || out->episode_id)) {
		/* A resent message: the decision or episode written above must
		 * not stand on its own.  Undo by failing; the caller's retry sees
		 * the duplicate before writing again. */
		err = ras_error_code(RAS_ECONFLICT, "message \"%.60s\" was recorded before", ev->message_id);
		goto done;
	}
	if (out->duplicate)
		snprintf(out->message, sizeof(out->message), "%s for referral %s already recorded (event #%lld)",
		    out->kind, out->ubrn[0] ? out->ubrn : key, (long long)out->event_id);
	else if (out->decision_id)
		snprintf(out->message, sizeof(out->message),
		    "clinician decision %s for referral %s recorded (decision #%lld, event #%lld)",
		    ras_decision_outcome_name(ev->outcome), out->ubrn[0] ? out->ubrn : key,
		    (long long)out->decision_id, (long long)out->event_id);
	else
		snprintf(out->message, sizeof(out->message),
		    "%s for referral %s recorded (event #%lld, %d deadline(s) met%s%s)", out->kind,
		    out->ubrn[0] ? out->ubrn : key, (long long)out->event_id, out->deadlines_met,
		    out->episode_id ? ", " : "", out->episode_id ?
		    (ev->kind == RAS_EPR_DISCHARGED ? "discharge summary queued" : "notification letter queued") : "");
done:
	ras_db_res_free(res);
	return err;
}

/* Is this message id already recorded?  (Checked before a decision is
 * written, so a resent decision never writes a second row.) */
static int
already(struct ras_db *db, const struct ras_epr_event *ev, struct ras_epr_result *out)
{
	struct ras_db_res *res = NULL;
	int err, found = 0;

	if (ev->message_id == NULL)
		return 0;
	if ((err = ras_db_query(db, &res,
	    "SELECT e.id::text, e.referral_id::text, coalesce(e.ubrn, ''), coalesce(e.decision_id, 0)::text"
	    " FROM epr_events e WHERE e.message_id = $1", 1, &RAS_DB_TEXT(ev->message_id))) < 0)
		return err;
	if (ras_db_res_rows(res) == 1) {
		out->event_id = strtoll(ras_db_res_get(res, 0, 0), NULL, 10);
		out->referral_id = strtoll(ras_db_res_get(res, 0, 1), NULL, 10);
		snprintf(out->ubrn, sizeof(out->ubrn), "%s", ras_db_res_get(res, 0, 2));
		out->decision_id = strtoll(ras_db_res_get(res, 0, 3), NULL, 10);
		out->duplicate = true;
		out->state = "duplicate";
		out->kind = ras_epr_kind_name(ev->kind);
		snprintf(out->message, sizeof(out->message), "%s for referral %s already recorded (event #%lld)",
		    out->kind, out->ubrn, (long long)out->event_id);
		found = 1;
	}
	ras_db_res_free(res);
	return found;
}

int
ras_epr_record(struct ras_db *db, const struct ras_epr_ctx *ctx, const struct ras_epr_event *ev,
    int64_t payload_id, bool in_txn, struct ras_epr_result *out)
{
	struct ras_arena *a = ras_arena_new();
	int err;

	memset(out, 0, sizeof(*out));
	out->payload_id = payload_id;
	out->kind = ras_epr_kind_name(ev->kind);
	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (!in_txn && (err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = already(db, ev, out)) != 0) {
		if (err > 0)
			err = 0;
		goto finish;
	}
	err = record(db, ctx, a, ev, payload_id, out);
finish:
	if (!in_txn) {
		if (err == 0)
			err = ras_db_commit(db);
		else
			ras_db_rollback(db);
	}
done:
	ras_arena_free(a);
	return err;
}

/* SDS user ids are 12 digits. */
static bool
sds_user_id_ok(const char *s)
{
	if (s == NULL || strlen(s) != 12)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	return true;
}

int
ras_epr_decide_check(const struct ras_epr_event *ev)
{
	if (ev->kind != RAS_EPR_DECISION)
		return ras_error_code(RAS_EINVALID, "not a clinician's decision");
	if (ev->outcome != RAS_OUTCOME_ACCEPT && ev->outcome != RAS_OUTCOME_RETURN &&
	    ev->outcome != RAS_OUTCOME_ONWARD)
		return ras_error_code(RAS_EINVALID, "the outcome must be accept, return or onward");
	if (!sds_user_id_ok(ev->actor))
		return ras_error_code(RAS_EINVALID, "a decision is made by a clinician's SDS user id (12 digits)");
	if (ev->advice == NULL)
		return ras_error_code(RAS_EINVALID, "a decision carries advice");
	if (strlen(ev->advice) > RAS_STRING_MAX || (ev->target && strlen(ev->target) > RAS_ID_MAX))
		return ras_error_code(RAS_EINVALID, "the advice or the onward target is too long");
	if (ev->target && ev->outcome != RAS_OUTCOME_ONWARD)
		return ras_error_code(RAS_EINVALID, "an onward target goes with an onward decision only");
	if ((ev->ubrn == NULL) == (ev->referral_key == NULL))
		return ras_error_code(RAS_EINVALID, "a decision names its referral by UBRN or storage key");
	return 0;
}

int
ras_epr_decide(struct ras_db *db, const struct ras_epr_ctx *ctx, const struct ras_epr_event *ev,
    struct ras_epr_result *out)
{
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = ras_epr_decide_check(ev)) < 0)
		return err;
	return ras_epr_record(db, ctx, ev, 0, false, out);
}

static const char SQL_INBOX_EPR[] =
    "WITH ins AS ("
    " INSERT INTO inbox (sha256, source, source_ref, content_type, body, size, truncated,"
    "   correlation_id, state, kind, error, processed_at)"
    " VALUES ($1, $2, $3, $4, $5, $6::bigint, $7::boolean, $8, $9, 'epr-event', $10, now())"
    " ON CONFLICT (sha256, ubrn_hint) DO NOTHING RETURNING id)"
    " SELECT id::text, 'new' FROM ins"
    " UNION ALL"
    " SELECT id::text, state FROM inbox WHERE sha256 = $1 AND ubrn_hint IS NULL"
    "   AND NOT EXISTS (SELECT 1 FROM ins)";

static int
keep_payload(struct ras_db *db, const struct ras_inbox_item *it, const char *sha, const char *state,
    const char *error, int64_t *id, char *prev_state, size_t prev_size)
{
	struct ras_db_res *res = NULL;
	char size[24];
	int err;

	snprintf(size, sizeof(size), "%llu",
	    (unsigned long long)(it->full_size ? it->full_size : it->len));
	if ((err = ras_db_query(db, &res, SQL_INBOX_EPR, 10, (struct ras_db_param[]){
	    RAS_DB_TEXT(sha), RAS_DB_TEXT(it->source ? it->source : "unknown"),
	    RAS_DB_TEXT(it->source_ref), RAS_DB_TEXT(it->content_type),
	    RAS_DB_BYTES(it->data ? it->data : "", it->len), RAS_DB_TEXT(size),
	    RAS_DB_TEXT(it->full_size > it->len ? "true" : "false"), RAS_DB_TEXT(it->correlation_id),
	    RAS_DB_TEXT(state), RAS_DB_TEXT(error) })) < 0)
		return err;
	*id = strtoll(ras_db_res_get(res, 0, 0), NULL, 10);
	snprintf(prev_state, prev_size, "%s", ras_db_res_get(res, 0, 1));
	ras_db_res_free(res);
	return 0;
}

static int
set_inbox(struct ras_db *db, int64_t id, const char *state, const char *error)
{
	char ids[24];

	snprintf(ids, sizeof(ids), "%lld", (long long)id);
	return ras_db_query(db, NULL,
	    "UPDATE inbox SET state = $2, error = $3, kind = 'epr-event', processed_at = now()"
	    " WHERE id = $1::bigint", 3,
	    (struct ras_db_param[]){ RAS_DB_TEXT(ids), RAS_DB_TEXT(state), RAS_DB_TEXT(error) });
}

int
ras_epr_receive(struct ras_db *db, const struct ras_epr_ctx *ctx, const struct ras_inbox_item *it,
    struct ras_epr_result *out)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_epr_event ev;
	char sha[RAS_SHA256_HEX_LEN], prev[16], reason[400] = "";
	json_t *j = NULL;
	int64_t id = 0;
	int err = 0, perr;

	memset(out, 0, sizeof(*out));
	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (it->sha256)
		snprintf(sha, sizeof(sha), "%s", it->sha256);
	else
		ras_crypto_sha256_hex(it->data, it->len, sha);

	/* Parse first (pure); the outcome decides the inbox state. */
	if (it->full_size > it->len)
		perr = ras_error_code(RAS_ETOOBIG, "payload is larger than %u bytes", RAS_PAYLOAD_KEEP_MAX);
	else if ((perr = ras_json_parse_arena(a, it->data, it->len, RAS_PAYLOAD_MAX, &j)) == 0)
		perr = ras_epr_parse(a, j, &ev);
	if (perr == RAS_ENOMEM) {
		err = perr;
		goto done;
	}
	if (perr < 0)
		snprintf(reason, sizeof(reason), "%s", ras_error_last());

	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = keep_payload(db, it, sha, perr < 0 ? "rejected" : "stored", perr < 0 ? reason : NULL,
	    &id, prev, sizeof(prev))) < 0)
		goto fail;
	out->payload_id = id;
	if (strcmp(prev, "new") != 0 && strcmp(prev, "rejected") != 0) {
		/* The same bytes, already recorded. */
		out->duplicate = true;
		out->state = "duplicate";
		out->kind = perr == 0 ? ras_epr_kind_name(ev.kind) : NULL;
		snprintf(out->message, sizeof(out->message), "the same message was received before (payload #%lld)",
		    (long long)id);
		err = ras_db_commit(db);
		goto done;
	}
	if (perr < 0) {
		out->state = "rejected";
		snprintf(out->message, sizeof(out->message), "%s", reason);
		if (strcmp(prev, "rejected") == 0)
			err = set_inbox(db, id, "rejected", reason);
		if (err == 0)
			err = ras_db_commit(db);
		else
			ras_db_rollback(db);
		goto done;
	}
	/* A message rejected before (say, its referral had not arrived yet)
	 * and sent again is tried again. */
	if ((err = already(db, &ev, out)) < 0)
		goto fail;
	if (err == 1) {
		/* Different bytes, same MessageHeader.id: recorded before. */
		out->payload_id = id;
		if ((err = set_inbox(db, id, "duplicate", NULL)) < 0)
			goto fail;
		err = ras_db_commit(db);
		goto done;
	}
	if ((err = ras_db_exec(db, "SAVEPOINT epr")) < 0)
		goto fail;
	err = record(db, ctx, a, &ev, id, out);
	if (err == 0 && strcmp(prev, "rejected") == 0)
		err = set_inbox(db, id, "stored", NULL);
	if (err == RAS_ENOTFOUND || err == RAS_EINVALID || err == RAS_ETOOBIG) {
		snprintf(reason, sizeof(reason), "%s", ras_error_last());
		if ((err = ras_db_exec(db, "ROLLBACK TO SAVEPOINT epr")) < 0 ||
		    (err = set_inbox(db, id, "rejected", reason)) < 0)
			goto fail;
		memset(out, 0, sizeof(*out));
		out->payload_id = id;
		out->state = "rejected";
		out->kind = ras_epr_kind_name(ev.kind);
		snprintf(out->message, sizeof(out->message), "%s", reason);
	} else if (err < 0) {
		goto fail;
	}
	if (out->duplicate && (err = set_inbox(db, id, "duplicate", NULL)) < 0)
		goto fail;
	err = ras_db_commit(db);
	goto done;
fail:
	ras_db_rollback(db);
done:
	ras_arena_free(a);
	return err;
}
