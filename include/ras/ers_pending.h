/*
 * ers_pending: what on the e-RS side waits for a person (`rasctl ers
 * pending`): review outcomes not (yet) recorded on e-RS, e-RS referrals
 * waiting for a clinician's decision or an onward referral, referrals e-RS
 * could not give rasd, attachments not fetched.  No patient data: UBRNs,
 * states, times, error codes.
 */
#ifndef RAS_ERS_PENDING_H
#define RAS_ERS_PENDING_H

#include <stddef.h>

#include "ras/json.h"

struct ras_db;

/* The sections, in the order they are reported: key (of the JSON object)
 * and a one-line title for people. */
struct ras_ers_pending_section {
	const char *key;
	const char *title;
};

extern const struct ras_ers_pending_section ras_ers_pending_sections[];
extern const size_t ras_ers_pending_nsections;

/* {"outcomes": [...], "waiting": [...], "fetches": [...], "attachments": [...]}
 * (new reference in *out). */
int ras_ers_pending_list(struct ras_db *db, json_t **out);

#endif
