/* kpi: quality requirements from stored events (see include/ras/kpi.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/calendar.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/kpi.h"

enum kind {
	WITHIN_WD,          /* event within N working days of receipt */
	WITHIN_HOURS,       /* event within N hours of receipt */
	DAYS_FROM_RECEIPT,  /* event within N calendar days of receipt */
	DAYS_FROM_TRIAGE,   /* event within N calendar days of the decision */
	SHARE_VIRTUAL,      /* virtual attendances / attendances */
	SHARE_PIFU,         /* moves to PIFU / attendances */
	PATHWAY_MONTHS,     /* receipt to discharge or PIFU within N months */
	SUMMARY_WD,         /* summary sent within N working days of discharge */
	WAITING_OVER_DAYS,  /* accepted, not yet seen, waiting over N days at period end */
};

enum event {
	EV_NONE,
	EV_DECISION,        /* first final decision (any outcome) */
	EV_RETURN,          /* … when it is a return */
	EV_ONWARD_2WW,      /* … when it is onward to the two-week-wait pathway */
	EV_CONTACT,
	EV_OFFERED,
	EV_ATTENDED,
	EV_FACE_TO_FACE,
	EV_TREATMENT,
};

struct def {
	const char *id, *label, *method;
	enum kind kind;
	enum event ev;
	int n;
	double target;
};

struct service_def {
	const char *service, *title, *spec, *clause;
	const struct def *defs;
};

static const struct def bassetlaw[] = {
	{ "assessment-3wd", "Referral assessment within 3 working days",
	  "date of the first final triage decision < 4 working days after the date of receipt",
	  WITHIN_WD, EV_DECISION, 3, 95 },
	{ "returned-3wd", "Inappropriate referrals returned within 3 working days of receipt",
	  "date the return was recorded on e-RS or its letter delivered < 4 working days after receipt, "
	  "over referrals returned",
	  WITHIN_WD, EV_RETURN, 3, 95 },
	{ "offered-5wd", "Patients offered an Outpatient First Appointment within 5 working days of referral receipt",
	  "date the first appointment was offered < 6 working days after receipt, over accepted referrals",
	  WITHIN_WD, EV_OFFERED, 5, 95 },
	{ "seen-20wd", "Patients seen at Outpatient First Appointment within 20 working days of referral receipt",
	  "date of the first attendance < 21 working days after receipt; patients who chose to wait longer excluded",
	  WITHIN_WD, EV_ATTENDED, 20, 95 },
	{ "treatment-30wd", "Patient treatment to commence within 30 working days of referral receipt",
	  "date treatment started < 31 working days after receipt; patients who chose to wait longer excluded",
	  WITHIN_WD, EV_TREATMENT, 30, 95 },
	{ "virtual-share", "Number of virtual appointments",
	  "virtual attendances as a proportion of all outpatient attendances in the period",
	  SHARE_VIRTUAL, EV_NONE, 0, 25 },
	{ "pifu-share", "Number of PIFU appointments",
	  "moves to patient-initiated follow-up as a proportion of all outpatient attendances in the period",
	  SHARE_PIFU, EV_NONE, 0, 5 },
	{ "pathway-6m", "Patient pathway from start to finish not exceeding 6 months",
	  "referral date to discharge or PIFU date within 6 months, over pathways that ended in the period",
	  PATHWAY_MONTHS, EV_NONE, 6, 95 },
	{ "summary-5wd", "Discharge summaries and discharge plan provided within 5 days of discharge",
	  "date the discharge summary was sent < 6 working days after the discharge, over discharges in the period",
	  SUMMARY_WD, EV_NONE, 5, 95 },
	{ NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct def dorset2019[] = {
	{ "triage-48h", "Referrals triaged within 48 hours of receipt",
	  "first final triage decision within 48 hours of receipt", WITHIN_HOURS, EV_DECISION, 48, 100 },
	{ "seen-8w-after-triage",
	  "Patients seen for their first face to face assessment / treatment within 8 weeks of triage",
	  "first face-to-face attendance within 56 days of acceptance at triage; patients still waiting "
	  "under 8 weeks at the end of the period are pending", DAYS_FROM_TRIAGE, EV_FACE_TO_FACE, 56, 92 },
	{ "waiting-over-26w", "Number of patients waiting over 26 weeks",
	  "accepted referrals not yet seen face to face and not discharged, waiting over 182 days since "
	  "triage at the end of the period", WAITING_OVER_DAYS, EV_FACE_TO_FACE, 182, 0 },
	{ NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct def midnotts[] = {
	{ "triage-2wd", "Triaged by the clinical team within 2 working days of receipt",
	  "first final triage decision by the end of the 2nd working day after receipt",
	  WITHIN_WD, EV_DECISION, 2, 100 },
	{ "returned-2wd", "Incomplete, non-electronic and inappropriate referrals returned within 2 working days",
	  "return recorded on e-RS or its letter delivered by the end of the 2nd working day after "
	  "receipt, over referrals returned",
	  WITHIN_WD, EV_RETURN, 2, 100 },
	{ "onward-2ww-2wd", "Potential 2WW cancer referrals onward referred within 2 working days",
	  "onward to the two-week-wait pathway with the GP notice delivered (an ITK3 notice: "
	  "acknowledged) by the end of the 2nd working day after receipt",
	  WITHIN_WD, EV_ONWARD_2WW, 2, 100 },
	{ "contact-5wd", "Patients contacted within 5 working days to arrange an appointment",
	  "first contact (a call, an offer or an attendance) by the end of the 5th working day after receipt",
	  WITHIN_WD, EV_CONTACT, 5, 100 },
	{ "assessed-20wd", "Assessed within 20 working days of referral",
	  "first attendance by the end of the 20th working day after receipt", WITHIN_WD, EV_ATTENDED, 20, 100 },
	{ "treatment-30wd", "Treatment commenced within 30 working days of referral",
	  "treatment start by the end of the 30th working day after receipt", WITHIN_WD, EV_TREATMENT, 30, 100 },
	{ "plan-to-gp-5wd", "Care/management plan sent to the GP within 5 working days of discharge",
	  "date the discharge summary was sent by the end of the 5th working day after discharge",
	  SUMMARY_WD, EV_NONE, 5, 100 },
	{ NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct def dorset2013[] = {
	{ "seen-18w", "Service accessed within a maximum of 18 weeks",
	  "first attendance within 126 days of receipt, over accepted referrals", DAYS_FROM_RECEIPT,
	  EV_ATTENDED, 126, 100 },
	{ NULL, NULL, NULL, 0, 0, 0, 0 },
};

static const struct service_def services[] = {
	{ "bassetlaw-2022", "Community Pain Management Referral Assessment and Treatment Service (Bassetlaw)",
	  "003", "003 §5.1", bassetlaw },
	{ "dorset-2019", "Dorset Pain Management Service", "002", "002 Access Times", dorset2019 },
	{ "midnotts", "Community Pain Management Service (Mid Nottinghamshire)", "004", "004 §3.6", midnotts },
	{ "dorset-2013", "Pan Dorset Community Persistent Pain Management Service", "001",
	  "001 Access", dorset2013 },
	{ NULL, NULL, NULL, NULL, NULL },
};

static const struct service_def *
find_service(const char *service)
{
	for (const struct service_def *s = services; s->service; s++)
		if (strcmp(s->service, service) == 0)
			return s;
	return NULL;
}

bool
ras_kpi_known(const char *service)
{
	return service && find_service(service) != NULL;
}

/* ---- calendar arithmetic --------------------------------------------------- */

static struct ras_date
uk_date(int64_t t)
{
	struct ras_date d;
	int secs;

	ras_time_uk_date(t, &d, &secs);
	return d;
}

/* Working days in (a, b] on the calendar (NULL: Monday to Friday); 0 when
 * b is on or before a. */
static int64_t
wd_after(const struct ras_date *a, const struct ras_date *b, const struct ras_calendar *cal)
{
	return ras_calendar_working_days_between(cal, a, b);
}

/* ---- computing -------------------------------------------------------------- */

struct ctx {
	int64_t start, end;        /* period [start, end) as instants */
	int64_t as_of;             /* deadlines of absent events are judged here: now */
	int64_t snapshot;          /* "waiting at the end": min(end, now) */
	const struct ras_calendar *cal;
};

static void
bucket(struct ras_kpi_result *r, const struct ras_kpi_report *rep, int64_t anchor, bool num)
{
	struct ras_date d = uk_date(anchor);
	int idx = (d.year - rep->from.year) * 12 + (d.month - rep->from.month);

	if (idx < 0 || idx >= (int)r->nmonths)
		return;
	r->months[idx].den++;
	if (num)
		r->months[idx].num++;
}

/*
 * What closes the two-week-wait path: the GP told, which is the notice
 * delivered, not the decision to send it; and when the notice went as an
 * ITK3 message, the GP's system acknowledged it (a delivered but
 * unacknowledged or negatively acknowledged ITK3 notice has not reached a
 * person yet).
 */
static int64_t
two_week_wait_closed(const struct ras_kpi_referral *f)
{
	int64_t told = f->gp_notice_itk3 ? f->gp_notice_acked : f->gp_notified;

	if (told == 0)
		return 0;
	return told > f->decided ? told : f->decided;
}

static int64_t
event_of(const struct ras_kpi_referral *f, enum event ev, bool *choice)
{
	*choice = false;
	switch (ev) {
	case EV_DECISION: return f->decided;
	/* A return counts when it happened (e-RS recorded it, or its letter
	 * was delivered), not when it was decided: a dead letter is no return. */
	case EV_RETURN: return f->returned;
	case EV_ONWARD_2WW: return two_week_wait_closed(f);
	case EV_CONTACT: return f->contact;
	case EV_OFFERED: *choice = f->offered_choice; return f->offered;
	case EV_ATTENDED: *choice = f->attended_choice; return f->attended;
	case EV_FACE_TO_FACE: *choice = f->attended_choice; return f->face_to_face;
	case EV_TREATMENT: *choice = f->treatment_choice; return f->treatment;
	case EV_NONE: break;
	}
	return 0;
}

static bool
accepted(const struct ras_kpi_referral *f)
{
	return f->outcome && strcmp(f->outcome, "accept") == 0;
}

/* Is the referral in the measure's cohort? */
static bool
in_cohort(const struct ras_kpi_referral *f, enum event ev)
{
	switch (ev) {
	case EV_DECISION: return true;
	case EV_RETURN: return f->outcome && strcmp(f->outcome, "return") == 0;
	case EV_ONWARD_2WW:
		return f->outcome && strcmp(f->outcome, "onward") == 0 && f->target &&
		    strcmp(f->target, "two-week-wait") == 0;
	case EV_CONTACT:
	case EV_OFFERED:
	case EV_ATTENDED:
	case EV_FACE_TO_FACE:
	case EV_TREATMENT: {
		bool choice;

		/* Accepted, or seen by the service whatever the decision says. */
		return accepted(f) || event_of(f, ev, &choice) != 0;
	}
	case EV_NONE: break;
	}
	return false;
}

static void
within(const struct def *d, const struct ctx *c, const struct ras_kpi_data *data,
    const struct ras_kpi_report *rep, struct ras_kpi_result *r)
{
	for (size_t i = 0; i < data->nref; i++) {
		const struct ras_kpi_referral *f = &data->ref[i];
		int64_t from_t, ev;
		bool choice = false, met;

		if (d->kind == DAYS_FROM_TRIAGE) {
			if (!accepted(f) || f->decided < c->start || f->decided >= c->end)
				continue;
			from_t = f->decided;
		} else {
			if (f->received < c->start || f->received >= c->end || !in_cohort(f, d->ev))
				continue;
			from_t = f->received;
		}
		ev = event_of(f, d->ev, &choice);
		if (choice) {
			r->excluded++;
			continue;
		}
		{
			struct ras_date fd = uk_date(from_t);
			int64_t when = ev ? ev : c->as_of;
			bool late;

			switch (d->kind) {
			case WITHIN_WD: {
				struct ras_date wd = uk_date(when);

				late = wd_after(&fd, &wd, c->cal) > d->n;
				break;
			}
			case WITHIN_HOURS:
				late = when - from_t > (int64_t)d->n * 3600;
				break;
			default:
				late = when - from_t > (int64_t)d->n * 86400;
				break;
			}
			if (ev == 0 && !late) {
				r->pending++;
				continue;
			}
			met = ev != 0 && !late;
		}
		r->den++;
		if (met)
			r->num++;
		bucket(r, rep, from_t, met);
	}
}

static void
shares(const struct def *d, const struct ctx *c, const struct ras_kpi_data *data,
    const struct ras_kpi_report *rep, struct ras_kpi_result *r)
{
	for (size_t i = 0; i < data->nev; i++) {
		const struct ras_kpi_event *e = &data->ev[i];

		if (e->at < c->start || e->at >= c->end || e->pifu)
			continue;
		r->den++;
		bucket(r, rep, e->at, d->kind == SHARE_VIRTUAL && e->is_virtual);
		if (d->kind == SHARE_VIRTUAL && e->is_virtual)
			r->num++;
	}
	if (d->kind == SHARE_PIFU) {
		for (size_t i = 0; i < data->nev; i++) {
			const struct ras_kpi_event *e = &data->ev[i];
			struct ras_date dd;
			int idx;

			if (!e->pifu || e->at < c->start || e->at >= c->end)
				continue;
			r->num++;
			dd = uk_date(e->at);
			idx = (dd.year - rep->from.year) * 12 + (dd.month - rep->from.month);
			if (idx >= 0 && idx < (int)r->nmonths)
				r->months[idx].num++;
		}
	}
}

static void
pathway(const struct def *d, const struct ctx *c, const struct ras_kpi_data *data,
    const struct ras_kpi_report *rep, struct ras_kpi_result *r)
{
	for (size_t i = 0; i < data->nref; i++) {
		const struct ras_kpi_referral *f = &data->ref[i];
		int64_t end = f->discharged;
		struct ras_date rd, limit, ed;
		bool met;

		if (f->pifu && (end == 0 || f->pifu < end))
			end = f->pifu;
		if (end == 0 || end < c->start || end >= c->end)
			continue;
		rd = uk_date(f->received);
		ras_date_add_months(&rd, d->n, &limit);
		ed = uk_date(end);
		met = ras_date_cmp(&ed, &limit) <= 0;
		r->den++;
		if (met)
			r->num++;
		bucket(r, rep, end, met);
	}
}

static void
summaries(const struct def *d, const struct ctx *c, const struct ras_kpi_data *data,
    const struct ras_kpi_report *rep, struct ras_kpi_result *r)
{
	for (size_t i = 0; i < data->nref; i++) {
		const struct ras_kpi_referral *f = &data->ref[i];
		struct ras_date dd, sd;
		bool late;

		if (f->discharged == 0 || f->discharged < c->start || f->discharged >= c->end)
			continue;
		dd = uk_date(f->discharged);
		sd = uk_date(f->summary_sent ? f->summary_sent : c->as_of);
		late = wd_after(&dd, &sd, c->cal) > d->n;
		if (f->summary_sent == 0 && !late) {
			r->pending++;
			continue;
		}
		r->den++;
		if (f->summary_sent && !late)
			r->num++;
		bucket(r, rep, f->discharged, f->summary_sent && !late);
	}
}

static void
waiting(const struct def *d, const struct ctx *c, const struct ras_kpi_data *data,
    struct ras_kpi_result *r)
{
	for (size_t i = 0; i < data->nref; i++) {
		const struct ras_kpi_referral *f = &data->ref[i];
		bool choice;
		int64_t seen = event_of(f, d->ev, &choice);

		if (!accepted(f) || f->decided >= c->snapshot)
			continue;
		if ((seen && seen < c->snapshot) || (f->discharged && f->discharged < c->snapshot))
			continue;
		r->den++;   /* waiting at the end of the period */
		if (c->snapshot - f->decided > (int64_t)d->n * 86400)
			r->num++;
	}
}

int
ras_kpi_compute(struct ras_arena *a, const struct ras_kpi_data *data, const char *service,
    const struct ras_date *from, const struct ras_date *to, int64_t now,
    const struct ras_calendar *cal, struct ras_kpi_report *out)
{
	const struct service_def *s = find_service(service);
	struct ras_kpi_report rep;
	struct ctx c;
	struct ras_date end_day;
	size_t n = 0;
	int months;

	if (s == NULL)
		return ras_error_code(RAS_ENOTFOUND, "no quality requirements are defined for service \"%.60s\"",
		    service);
	if (ras_date_cmp(from, to) > 0)
		return ras_error_code(RAS_EINVALID, "the period ends before it starts");
	months = (to->year - from->year) * 12 + (to->month - from->month) + 1;
	if (months > RAS_KPI_MONTHS_MAX)
		return ras_error_code(RAS_EINVALID, "a report covers at most %d months", RAS_KPI_MONTHS_MAX);
	memset(&rep, 0, sizeof(rep));
	rep.service = s->service;
	rep.title = s->title;
	rep.spec = s->clause;
	rep.from = *from;
	rep.to = *to;
	rep.generated_at = now;
	rep.holidays = cal != NULL;
	rep.acks = data->acks;
	ras_date_add_days(to, 1, &end_day);
	c.start = ras_time_uk_midnight(from);
	c.end = ras_time_uk_midnight(&end_day);
	c.as_of = now;
	c.snapshot = now < c.end ? now : c.end;
	c.cal = cal;
	rep.as_of = c.as_of;
	for (size_t i = 0; i < data->nref; i++)
		if (data->ref[i].received >= c.start && data->ref[i].received < c.end)
			rep.referrals++;
	while (s->defs[n].id)
		n++;
	rep.m = ras_arena_calloc(a, n, sizeof(*rep.m));
	if (rep.m == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	rep.n = n;
	for (size_t i = 0; i < n; i++) {
		const struct def *d = &s->defs[i];
		struct ras_kpi_result *r = &rep.m[i];

		r->id = d->id;
		r->label = d->label;
		r->clause = s->clause;
		r->method = d->method;
		r->target = d->target;
		r->percent = d->kind != WAITING_OVER_DAYS;
		r->higher_better = d->kind != WAITING_OVER_DAYS;
		r->basis = d->kind == SHARE_VIRTUAL || d->kind == SHARE_PIFU ? "attendances" :
		    d->kind == SUMMARY_WD ? "discharges" : d->kind == PATHWAY_MONTHS ? "completed pathways" :
		    d->kind == WAITING_OVER_DAYS ? "patients waiting" : "referrals";
		r->nmonths = (size_t)months;
		for (int k = 0; k < months; k++) {
			r->months[k].year = from->year + (from->month - 1 + k) / 12;
			r->months[k].month = (from->month - 1 + k) % 12 + 1;
		}
		switch (d->kind) {
		case WITHIN_WD:
		case WITHIN_HOURS:
		case DAYS_FROM_RECEIPT:
		case DAYS_FROM_TRIAGE:
			within(d, &c, data, &rep, r);
			break;
		case SHARE_VIRTUAL:
		case SHARE_PIFU:
			shares(d, &c, data, &rep, r);
			break;
		case PATHWAY_MONTHS:
			pathway(d, &c, data, &rep, r);
			break;
		case SUMMARY_WD:
			summaries(d, &c, data, &rep, r);
			break;
		case WAITING_OVER_DAYS:
			waiting(d, &c, data, r);
			break;
		}
		if (r->percent) {
			r->has_value = r->den > 0;
			r->value = r->has_value ? 100.0 * (double)r->num / (double)r->den : 0;
			r->met = r->has_value && r->value + 1e-9 >= r->target;
		} else {
			r->has_value = true;
			r->value = (double)r->num;
			r->met = r->value <= r->target;
		}
	}
	*out = rep;
	return 0;
}

/* ---- loading ------------------------------------------------------------------ */

static const char SQL_REFERRALS[] =
    "WITH r AS ("
    " SELECT referral_key, min(received_at) AS received, array_agg(id) AS ids FROM referrals x"
    " WHERE (x.service = $1 OR EXISTS (SELECT 1 FROM decisions d WHERE d.referral_id = x.id"
    "                                  AND d.service = $1))"
    "   AND x.received_at < $2::timestamptz"
    " GROUP BY referral_key),"
    " e AS (SELECT r.referral_key, p.* FROM r JOIN epr_events p ON p.referral_id = ANY (r.ids))"
    " SELECT r.referral_key, extract(epoch FROM r.received)::bigint,"
    "  fd.at, fd.outcome, fd.onward_target,"
    "  (SELECT extract(epoch FROM min(occurred_at))::bigint FROM e WHERE e.referral_key = r.referral_key"
    "     AND e.kind IN ('patient-contacted', 'appointment-offered', 'appointment-attended')),"
    "  off.at, off.patient_choice::text, att.at, att.patient_choice::text,"
    "  (SELECT extract(epoch FROM min(occurred_at))::bigint FROM e WHERE e.referral_key = r.referral_key"
    "     AND e.kind = 'appointment-attended' AND e.mode = 'face-to-face'),"
    "  tr.at, tr.patient_choice::text,"
    "  (SELECT extract(epoch FROM min(occurred_at))::bigint FROM e WHERE e.referral_key = r.referral_key"
    "     AND e.kind = 'discharged'),"
    "  (SELECT extract(epoch FROM min(occurred_at))::bigint FROM e WHERE e.referral_key = r.referral_key"
    "     AND e.kind = 'pifu'),"
    "  (SELECT extract(epoch FROM min(met_at))::bigint FROM deadlines dl WHERE dl.referral_id = ANY (r.ids)"
    "     AND dl.kind IN ('discharge-summary', 'care-plan') AND dl.met_at IS NOT NULL),"
    "   /* documents and delivery (issue 5): the delivered discharge summary */"
    "  (SELECT extract(epoch FROM min(x.at))::bigint FROM ("
    "     SELECT dl.met_at AS at FROM deadlines dl WHERE dl.referral_id = ANY (r.ids)"
    "       AND dl.kind = 'return' AND dl.met_at IS NOT NULL"
    "     UNION ALL SELECT o.done_at FROM ers_outcomes o WHERE o.referral_id = ANY (r.ids)"
    "       AND o.review_outcome = 'RETURN_TO_REFERRER_WITH_ADVICE' AND o.state = 'done'"
    "     UNION ALL SELECT ob.delivered_at FROM outbox ob JOIN decisions dd ON dd.id = ob.decision_id"
    "       WHERE ob.referral_id = ANY (r.ids) AND ob.kind = 'triage-outcome'"
    "       AND ob.recipient_role = 'referrer' AND ob.state = 'delivered' AND dd.outcome = 'return') x),"
    "   /* clinical safety (issue 12): the return as it happened */"
    "  (SELECT extract(epoch FROM min(x.at))::bigint FROM ("
    "     SELECT dl.met_at AS at FROM deadlines dl WHERE dl.referral_id = ANY (r.ids)"
    "       AND dl.kind = 'gp-notification' AND dl.met_at IS NOT NULL"
    "     UNION ALL SELECT ob.delivered_at FROM outbox ob WHERE ob.referral_id = ANY (r.ids)"
    "       AND ob.kind = 'gp-2ww-notice' AND ob.state = 'delivered') x),"
    "   /* … and the GP notice as delivered, */"
    "  EXISTS (SELECT 1 FROM outbox ob WHERE ob.referral_id = ANY (r.ids)"
    "     AND ob.kind = 'gp-2ww-notice' AND ob.ack_state IS NOT NULL)::text,"
    "  (SELECT extract(epoch FROM min(coalesce(ob.bus_ack_at, ob.inf_ack_at)))::bigint FROM outbox ob"
    "     WHERE ob.referral_id = ANY (r.ids) AND ob.kind = 'gp-2ww-notice'"
    "       AND ob.ack_state = 'acknowledged')"
    "   /* … as an ITK3 message, and acknowledged */"
    " FROM r"
    " LEFT JOIN LATERAL (SELECT extract(epoch FROM d.decided_at)::bigint AS at, d.outcome, d.onward_target"
    "     FROM decisions d WHERE d.referral_id = ANY (r.ids) AND d.final"
    "     ORDER BY d.decided_at, d.id LIMIT 1) fd ON true"
    " LEFT JOIN LATERAL (SELECT extract(epoch FROM occurred_at)::bigint AS at, patient_choice FROM e"
    "     WHERE e.referral_key = r.referral_key AND e.kind = 'appointment-offered'"
    "       AND e.first_appointment IS NOT FALSE ORDER BY occurred_at LIMIT 1) off ON true"
    " LEFT JOIN LATERAL (SELECT extract(epoch FROM occurred_at)::bigint AS at, patient_choice FROM e"
    "     WHERE e.referral_key = r.referral_key AND e.kind = 'appointment-attended'"
    "       AND e.first_appointment IS NOT FALSE ORDER BY occurred_at LIMIT 1) att ON true"
    " LEFT JOIN LATERAL (SELECT extract(epoch FROM occurred_at)::bigint AS at, patient_choice FROM e"
    "     WHERE e.referral_key = r.referral_key AND e.kind = 'treatment-started'"
    "     ORDER BY occurred_at LIMIT 1) tr ON true"
    " ORDER BY r.received, r.referral_key";

static const char SQL_EVENTS[] =
    "SELECT extract(epoch FROM p.occurred_at)::bigint, p.kind, coalesce(p.mode, '')"
    " FROM epr_events p JOIN referrals x ON x.id = p.referral_id"
    " WHERE (x.service = $1 OR EXISTS (SELECT 1 FROM decisions d WHERE d.referral_id = x.id"
    "                                  AND d.service = $1))"
    "   AND p.kind IN ('appointment-attended', 'pifu')"
    "   AND p.occurred_at >= $2::timestamptz AND p.occurred_at < $3::timestamptz"
    " ORDER BY p.occurred_at, p.id";

static const char SQL_ACKS[] =
    "SELECT count(*), count(*) FILTER (WHERE ack_state = 'acknowledged'),"
    " count(*) FILTER (WHERE ack_state = 'awaiting'), count(*) FILTER (WHERE ack_state = 'negative'),"
    " count(*) FILTER (WHERE ack_state = 'missing') FROM outbox"
    " WHERE service = $1 AND message_format IN ('gp-connect-send-document', 'toc-outpatient-letter')"
    "   AND delivered_at >= $2::timestamptz AND delivered_at < $3::timestamptz";

static int64_t
cell_int(const struct ras_db_res *res, int row, int col)
{
	int64_t v = 0;

	(void)ras_db_res_int(res, row, col, &v);
	return v;
}

static const char *
cell_str(struct ras_arena *a, const struct ras_db_res *res, int row, int col)
{
	const char *v = ras_db_res_get(res, row, col);

	return v ? ras_arena_strdup(a, v) : NULL;
}

static bool
cell_true(const struct ras_db_res *res, int row, int col)
{
	const char *v = ras_db_res_get(res, row, col);

	return v && strcmp(v, "true") == 0;
}

int
ras_kpi_load(struct ras_db *db, struct ras_arena *a, const char *service,
    const struct ras_date *from, const struct ras_date *to, struct ras_kpi_data *out)
{
	struct ras_db_res *res = NULL;
	struct ras_date end_day;
	char start[RAS_TIME_STR_MAX], end[RAS_TIME_STR_MAX];
	int err, rows;

	memset(out, 0, sizeof(*out));
	ras_date_add_days(to, 1, &end_day);
	ras_time_format_utc(ras_time_uk_midnight(from), start);
	ras_time_format_utc(ras_time_uk_midnight(&end_day), end);
	if ((err = ras_db_query(db, &res, SQL_REFERRALS, 2, (struct ras_db_param[]){
	    RAS_DB_TEXT(service), RAS_DB_TEXT(end) })) < 0)
		return err;
	rows = ras_db_res_rows(res);
	out->ref = ras_arena_calloc(a, rows ? (size_t)rows : 1, sizeof(*out->ref));
	if (out->ref == NULL) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		struct ras_kpi_referral *f = &out->ref[i];

		f->key = cell_str(a, res, i, 0);
		f->received = cell_int(res, i, 1);
		f->decided = cell_int(res, i, 2);
		f->outcome = cell_str(a, res, i, 3);
		f->target = cell_str(a, res, i, 4);
		f->contact = cell_int(res, i, 5);
		f->offered = cell_int(res, i, 6);
		f->offered_choice = cell_true(res, i, 7);
		f->attended = cell_int(res, i, 8);
		f->attended_choice = cell_true(res, i, 9);
		f->face_to_face = cell_int(res, i, 10);
		f->treatment = cell_int(res, i, 11);
		f->treatment_choice = cell_true(res, i, 12);
		f->discharged = cell_int(res, i, 13);
		f->pifu = cell_int(res, i, 14);
		f->summary_sent = cell_int(res, i, 15);
		f->returned = cell_int(res, i, 16);
		f->gp_notified = cell_int(res, i, 17);
		f->gp_notice_itk3 = cell_true(res, i, 18);
		f->gp_notice_acked = cell_int(res, i, 19);
	}
	out->nref = (size_t)rows;
	ras_db_res_free(res);
	res = NULL;
	if ((err = ras_db_query(db, &res, SQL_EVENTS, 3, (struct ras_db_param[]){
	    RAS_DB_TEXT(service), RAS_DB_TEXT(start), RAS_DB_TEXT(end) })) < 0)
		return err;
	rows = ras_db_res_rows(res);
	out->ev = ras_arena_calloc(a, rows ? (size_t)rows : 1, sizeof(*out->ev));
	if (out->ev == NULL) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		out->ev[i].at = cell_int(res, i, 0);
		out->ev[i].pifu = strcmp(ras_db_res_get(res, i, 1), "pifu") == 0;
		out->ev[i].is_virtual = strcmp(ras_db_res_get(res, i, 2), "virtual") == 0;
	}
	out->nev = (size_t)rows;
	ras_db_res_free(res);
	res = NULL;
	if ((err = ras_db_query(db, &res, SQL_ACKS, 3, (struct ras_db_param[]){
	    RAS_DB_TEXT(service), RAS_DB_TEXT(start), RAS_DB_TEXT(end) })) < 0)
		return err;
	out->acks.delivered = cell_int(res, 0, 0);
	out->acks.acknowledged = cell_int(res, 0, 1);
	out->acks.awaiting = cell_int(res, 0, 2);
	out->acks.negative = cell_int(res, 0, 3);
	out->acks.missing = cell_int(res, 0, 4);
	ras_db_res_free(res);
	return 0;
}
