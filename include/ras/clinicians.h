/*
 * clinicians: the register of clinicians who may decide about referrals,
 * from the configuration (a web UI will edit the same sections later):
 *
 *   [clinician 687001000009]        the SDS user id: 12 digits
 *   name = Dr A Example
 *   registration = GMC 1234567      professional body and number
 *   role = Consultant in pain medicine
 *   services = midnotts, bassetlaw-2022   rasd services they decide for
 *
 * `rasctl decide --by` and EPR clinician decisions must name a clinician
 * registered for the referral's service, or are refused (lib/epr.c).
 * Every key is required; an unknown service is caught by the caller
 * (ras_triage_new checks the services against the rule sets).
 */
#ifndef RAS_CLINICIANS_H
#define RAS_CLINICIANS_H

#include <stdbool.h>
#include <stddef.h>

struct ras_config;

struct ras_clinician {
	const char *sds_id;
	const char *name;
	const char *registration;
	const char *role;
	size_t n_services;
	const char **services;
};

struct ras_clinicians;

/* The register of `cfg` (NULL: an empty one).  RAS_EINVALID naming the
 * section when an id is not 12 digits or a key is missing or empty. */
int ras_clinicians_from_config(const struct ras_config *cfg, struct ras_clinicians **out);
void ras_clinicians_free(struct ras_clinicians *reg);

size_t ras_clinicians_count(const struct ras_clinicians *reg);
const struct ras_clinician *ras_clinicians_at(const struct ras_clinicians *reg, size_t i);

/* The clinician with this SDS user id, or NULL (reg may be NULL). */
const struct ras_clinician *ras_clinicians_find(const struct ras_clinicians *reg,
    const char *sds_id);

/* Is c registered for `service`? */
bool ras_clinicians_serves(const struct ras_clinician *c, const char *service);

/* True when s is an SDS user id (12 digits). */
bool ras_clinicians_sds_ok(const char *s);

#endif
