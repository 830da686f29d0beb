/*
 * kpi: each service specification's quality requirements, computed from
 * what rasd stored: when each referral was received, its decisions, the
 * EPR events after acceptance, and the deadlines met.
 *
 *   bassetlaw-2022   003 §5.1 (assessment in 3 working days, inappropriate
 *                    referrals returned in 3, first appointment offered in
 *                    5, seen in 20, treatment in 30, virtual share, PIFU
 *                    share, pathway within 6 months, discharge summary in 5)
 *   dorset-2019      the triage clock (48 hours) and the access times (first
 *                    face-to-face within 8 weeks of triage, none waiting
 *                    over 26 weeks)
 *   midnotts         004 §3.6 (triage and returns in 2 working days, 2WW
 *                    onward in 2, contact in 5, assess in 20, treat in 30,
 *                    plan to the GP within 5 of discharge)
 *   dorset-2013      seen within the 18-week maximum (001)
 *
 * "Within N working days of receipt" means by the end of the Nth working
 * day after the day of receipt (the specs' "< N+1 working days"), in UK
 * civil time.  Referrals are counted in the period they were received in
 * (triage-anchored measures: decided in; discharge measures: discharged
 * in).  A referral whose event has not happened is "pending" while its
 * deadline has not passed when the report is made, and "missed" (in the
 * figure, counted against it) after; events the patient chose to delay
 * (patient-choice) are excluded, as the specs say.  Every figure says how
 * many referrals (or attendances, or discharges) it is based on.
 *
 * Loading reads the database; computing is pure, so it is tested with
 * data made up in the test.
 */
#ifndef RAS_KPI_H
#define RAS_KPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/time.h"

struct ras_arena;
struct ras_calendar;
struct ras_db;

/* One referral (all its versions) as the measures see it.  Instants are
 * Unix seconds; 0 means "has not happened". */
struct ras_kpi_referral {
	const char *key;               /* UBRN or local key */
	int64_t received;              /* first receipt */
	int64_t decided;               /* first final decision */
	const char *outcome;           /* of that decision */
	const char *target;            /* onward target */
	int64_t contact;               /* first contact (contacted, offered or attended) */
	int64_t offered;               /* first appointment offered */
	bool offered_choice;
	int64_t attended;              /* first appointment attended */
	bool attended_choice;
	int64_t face_to_face;          /* first face-to-face attendance */
	int64_t treatment;
	bool treatment_choice;
	int64_t discharged;
	int64_t pifu;
	int64_t summary_sent;          /* discharge summary / care plan sent to the GP */
	int64_t returned;              /* the return happened: e-RS recorded it or its letter was
	                                  delivered (the return clock met); 0 while not */
	int64_t gp_notified;           /* the 2WW GP notice (or triage letter) delivered: the
	                                  gp-notification clock met; 0 while not */
	bool gp_notice_itk3;           /* the notice went as an ITK3 message (it has an
	                                  acknowledgement state, schema/008) */
	int64_t gp_notice_acked;       /* its ITK3 acknowledgement (business, else
	                                  infrastructure); 0 while none: an ITK3 notice
	                                  counts only once acknowledged */
};

/* An attendance or a move to PIFU (the share measures count events). */
struct ras_kpi_event {
	int64_t at;
	bool pifu;                     /* else an attendance */
	bool is_virtual;
};

/* ITK3 letters to GP practices delivered in the period (schema 008), by
 * acknowledgement state: beside the clocks, which delivery meets. */
struct ras_kpi_acks {
	int64_t delivered, acknowledged, awaiting, negative, missing;
};

struct ras_kpi_data {
	size_t nref;
	struct ras_kpi_referral *ref;
	size_t nev;
	struct ras_kpi_event *ev;
	struct ras_kpi_acks acks;     /* (last: positional initialisers elsewhere) */
};

/* Read what the measures need for `service` (referrals received up to
 * the end of `to`, events in the period).  Arena-owned. */
int ras_kpi_load(struct ras_db *db, struct ras_arena *a, const char *service,
    const struct ras_date *from, const struct ras_date *to, struct ras_kpi_data *out);

#define RAS_KPI_MONTHS_MAX 36

struct ras_kpi_month {
	int year, month;
	int64_t num, den;
};

struct ras_kpi_result {
	const char *id;                /* "assessment-3wd" */
	const char *label;             /* as the spec words it */
	const char *clause;            /* "003 §5.1" */
	const char *method;            /* how it is measured here */
	const char *basis;             /* "referrals", "attendances", "discharges" */
	bool percent;                  /* a percentage; else a count */
	bool higher_better;
	double target;                 /* percent, or the largest acceptable count */
	int64_t num, den;              /* den = what the figure is based on */
	int64_t pending, excluded;
	bool has_value;                /* den > 0 (or a count) */
	double value;
	bool met;
	size_t nmonths;
	struct ras_kpi_month months[RAS_KPI_MONTHS_MAX];
};

struct ras_kpi_report {
	const char *service;
	const char *title;             /* the service's name */
	const char *spec;              /* the specification it comes from */
	struct ras_date from, to;
	int64_t as_of;                 /* when the report was made: deadlines are judged then */
	int64_t generated_at;
	int64_t referrals;             /* referrals received in the period */
	bool holidays;                 /* bank holidays were known */
	struct ras_kpi_acks acks;      /* ITK3 letters delivered in the period and their acknowledgements */
	size_t n;
	struct ras_kpi_result *m;
};

/* True when rasd knows the quality requirements of `service`. */
bool ras_kpi_known(const char *service);

/* Compute the service's measures over [from, to] (UK dates) as of
 * `now` (deadlines after now are pending).  Working days are the
 * calendar's, the one every clock in rasd counts in (mappings/calendar;
 * NULL: Monday to Friday, and the report says bank holidays were not
 * known).  RAS_ENOTFOUND for a service without a measure table. */
int ras_kpi_compute(struct ras_arena *a, const struct ras_kpi_data *data, const char *service,
    const struct ras_date *from, const struct ras_date *to, int64_t now,
    const struct ras_calendar *cal, struct ras_kpi_report *out);

#endif
