/*
 * ops: what operations staff look at, read from the shared database, so
 * that `rasctl status`, `rasctl events` and rasd's /metrics agree.
 *
 * Queues are declared once (stage name, SQL giving depth and age of the
 * oldest item); the later stages add their rows in ops.c.  Everything
 * returned is free of patient data: ids, UBRNs, states, times, counts.
 */
#ifndef RAS_OPS_H
#define RAS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ras/json.h"

struct ras_buf;
struct ras_db;

/* Where a document goes, as ops name it (SQL over outbox row `o`): the MESH
 * mailbox or FHIR endpoint; GP auto-routing addresses carry the patient's
 * NHS number, so they are all "GPPROVIDER"; patient copies are "print". */
#define RAS_OPS_DESTINATION(o) \
	"CASE WHEN " o ".transport = 'file' THEN 'print'" \
	" WHEN " o ".address LIKE 'GPPROVIDER\\_%' THEN 'GPPROVIDER'" \
	" ELSE coalesce(" o ".address, '-') END"

struct ras_ops_queue {
	const char *stage;
	int64_t depth;
	double oldest_seconds;   /* 0 when empty */
};

/* Fill up to max queues (in pipeline order); returns the count or a
 * negative code. */
int ras_ops_queues(struct ras_db *db, struct ras_ops_queue *out, size_t max);

/*
 * The whole status as JSON:
 * {"instances": [{instance, host, pid, version, started_at, heartbeat_age_seconds, running}],
 *  "queues": [{stage, depth, oldest_seconds}],
 *  "pollers": [{source, last_success_at, last_attempt_at, last_error}],
 *  "budgets": [{service, rasd_service, day, used, calls, last_poll_at, last_poll_outcome}],
 *               (e-RS A008 worklist calls today, UK date: used = budgeted ones)
 *  "deliveries": [{transport, destination, delivered, waiting, dead, failed_attempts}],
 *  "deadlines": {"breached": N, "due_today": N, "at_risk": [{ubrn, kind, due, hours_left}]},
 *  "alerts": {"gp_notice_undelivered": [...]}   (ras_ops_gp_notice_alerts),
 *  "dead_letters": {"inbox_rejected_7d": N, "inbox_partial_7d": N, "inbox_received_over_1h": N,
 *                   "outbox_dead": N, "ers_parked": N}}
 * `risk_hours`: open deadlines due within this many hours are listed.
 */
int ras_ops_status(struct ras_db *db, int risk_hours, json_t **out);

/*
 * The two-week-wait GP notices at risk today: open gp-notification clocks
 * (the GP told the same day of a potential 2WW) due today or earlier (UK
 * date) that nothing delivered yet, once it is `alert_from` ("HH:MM", UK
 * time) or later, or already overdue, or whose notice is dead.  An array
 * of {deadline_id, ubrn, due, notice_state}: no patient data.  rasd logs
 * a warning for them, /metrics counts them (rasd_gp_notice_undelivered)
 * and `rasctl status` lists them, before the working day ends.
 */
#define RAS_OPS_GP_NOTICE_ALERT_FROM "14:00"
int ras_ops_gp_notice_alerts(struct ras_db *db, const char *alert_from, json_t **out);

/* The audit trail of the referral named by UBRN or storage key:
 * {"referral_key", "versions": [...], "events": [{at, kind, actor, detail}],
 *  "decisions": [...], "deadlines": [...], "epr_events": [...]}.
 * RAS_ENOTFOUND when there is no such referral. */
int ras_ops_trail(struct ras_db *db, const char *what, json_t **out);

/* rasd's /metrics from the database, in Prometheus text format, appended
 * to out: queue depth and age of the oldest item per stage, then the
 * gauge families (referrals, inbox, decisions, deadlines, EPR events,
 * pollers, e-RS budget and outcomes, documents, deliveries, dead letters).
 * The process's own counters are the daemon's (daemon/metrics.c). */
int ras_ops_metrics(struct ras_db *db, struct ras_buf *out);

/* Prometheus text helpers: the HELP/TYPE lines of a family, a label value
 * escaped, and one sample with one label. */
void ras_ops_prom_head(struct ras_buf *b, const char *name, const char *type, const char *help);
void ras_ops_prom_escaped(struct ras_buf *b, const char *v);
void ras_ops_prom_sample(struct ras_buf *b, const char *name, const char *label, const char *value,
    const char *num);

#endif
