/* stages: helpers the stage registry shares with intake (see stages.c). */
#ifndef RAS_DAEMON_STAGES_H
#define RAS_DAEMON_STAGES_H

#include <stddef.h>

struct ras_config;
struct ras_db;
struct ras_normalise_report;
struct ras_outbox;
struct ras_triage;
struct ras_units;

/* One log line per normalised payload (warning when rejected), with
 * STAGE=, PAYLOAD_ID=, UBRN= and CORRELATION_ID= fields. */
void ras_stages_log_normalised(struct ras_db *db, const struct ras_normalise_report *rep,
    size_t n);

/* The mappings directory rasd uses: [general] mappings, else the installed
 * one (RAS_DATADIR/mappings) when it exists, else NULL (no triage). */
const char *ras_stages_mappings_dir(const struct ras_config *cfg);

/* The triage engine and the outbox of the units' configuration (NULL when
 * that part is not configured), for intake of EPR events. */
const struct ras_triage *ras_stages_triage(const struct ras_units *u);
struct ras_outbox *ras_stages_outbox(const struct ras_units *u);

#endif
