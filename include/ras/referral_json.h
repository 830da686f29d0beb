/*
 * referral_json: the normalised referral as JSON, both ways.
 *
 * This is the document stored in referrals.doc, printed by `rasctl show`,
 * and read back by later stages (triage, documents) so that they work from
 * exactly what intake produced.  Keys are stable snake_case; absent data is
 * omitted, never written as an empty string.
 */
#ifndef RAS_REFERRAL_JSON_H
#define RAS_REFERRAL_JSON_H

#include "ras/form.h"
#include "ras/json.h"
#include "ras/referral.h"

struct ras_arena;

/* New reference in *out. `key` is the storage key (ras_referral_key). */
int ras_referral_json_dump(const struct ras_referral *r, const char *key, json_t **out);

/* Parse a stored document back; strings point into `doc`, which the arena
 * keeps alive. */
int ras_referral_json_load(struct ras_arena *a, json_t *doc, struct ras_referral *out);

#endif
