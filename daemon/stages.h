/* stages: helpers the stage registry shares with intake (see stages.c). */
#ifndef RAS_DAEMON_STAGES_H
#define RAS_DAEMON_STAGES_H

#include <stddef.h>

struct ras_db;
struct ras_normalise_report;

/* One log line per normalised payload (warning when rejected), with
 * STAGE=, PAYLOAD_ID=, UBRN= and CORRELATION_ID= fields. */
void ras_stages_log_normalised(struct ras_db *db, const struct ras_normalise_report *rep,
    size_t n);

#endif
