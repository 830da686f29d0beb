/* stages: helpers the stage registry shares with intake (see stages.c). */
#ifndef RAS_DAEMON_STAGES_H
#define RAS_DAEMON_STAGES_H

#include <stddef.h>

struct ras_config;
struct ras_db;
struct ras_normalise_report;
struct ras_triage_report;
struct ras_units;

/* One log line per normalised payload (warning when rejected), with
 * STAGE=, PAYLOAD_ID=, UBRN= and CORRELATION_ID= fields (from the reports:
 * no database lookup). */
void ras_stages_log_normalised(const struct ras_normalise_report *rep, size_t n);
/* The triage stage's log lines for its reports; returns how many referrals
 * left state "new". */
int ras_stages_log_triaged(const struct ras_triage_report *rep, size_t n);

/* The runtime of the units' configuration (rule sets, outbox, e-RS client,
 * form maps; runtime.h), for the EPR route of intake. */
struct ras_runtime;
const struct ras_runtime *ras_stages_runtime(const struct ras_units *u);

#endif
