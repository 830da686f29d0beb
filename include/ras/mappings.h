/*
 * mappings: everything triage reads from the mappings directory, loaded
 * and cross-checked together (the only triage module that reads files).
 *
 *   forms/NAME.json     FHIR R4 Questionnaires (the referral form versions)
 *   practices/NAME.json practice lists (registered populations)
 *   calendar/bank-holidays.json   GOV.UK bank holidays
 *   services/<id>.json  one rule set per rasd service
 *
 * Loading stops at the first problem and says which file and why, so a
 * bad edit to a rule set is refused as a whole (the daemon keeps its old
 * mappings on SIGHUP when the new ones do not load).
 *
 * Each rule set's version (decisions.ruleset_version) is the SHA-256 of
 * the SHA-256 digests of its own file, of every practice list (they decide
 * who is a GP referrer) and of every version of its form, in that order:
 * editing any of them changes the version of the decisions it makes.
 *
 * Immutable after loading (apart from ras_mappings_set_automation at
 * configuration time) and safe to share between threads.
 */
#ifndef RAS_MAPPINGS_H
#define RAS_MAPPINGS_H

#include <stddef.h>

#include "ras/rules.h"

struct ras_arena;
struct ras_buf;
struct ras_calendar;
struct ras_mappings;

/* Where the calendar lives under the mappings directory. */
#define RAS_MAPPINGS_CALENDAR "calendar/bank-holidays.json"

int ras_mappings_load(const char *dir, struct ras_mappings **out);
void ras_mappings_free(struct ras_mappings *m);

/*
 * Load the whole directory the way ras_mappings_load() does, but note
 * every problem in `problems` (one line each, naming the file) instead of
 * stopping at the first: what `rasd --check-config` prints.  Returns the
 * number of problems (0: the directory loads), or a negative code when
 * checking itself failed (out of memory).
 */
int ras_mappings_check(const char *dir, struct ras_buf *problems);

/*
 * The working-day calendar alone (RAS_MAPPINGS_CALENDAR under `dir`): for
 * the modules that count working days without the rule sets (document
 * deadlines, KPI reports), so every clock in rasd uses the same file.
 */
int ras_mappings_load_calendar(const char *dir, struct ras_calendar **out);

/* The rule set of a service (NULL when there is none). */
const struct ras_ruleset *ras_mappings_ruleset(const struct ras_mappings *m, const char *service);

/* Service ids, in file-name order; returns the count (ids may be NULL). */
size_t ras_mappings_services(const struct ras_mappings *m, const char **ids, size_t max);

const struct ras_calendar *ras_mappings_calendar(const struct ras_mappings *m);

/* The directory the mappings came from. */
const char *ras_mappings_dir(const struct ras_mappings *m);

/* Link a rule set parsed elsewhere (a candidate file being checked, the
 * fuzzer) to these mappings' forms and practice lists; its version is
 * `version`.  The rule set lives in `a`, which must outlive its use. */
int ras_mappings_link_ruleset(const struct ras_mappings *m, struct ras_arena *a,
    struct ras_ruleset *rs, const char *version);

/* Override a service's automation level; RAS_ENOTFOUND for an unknown service. */
int ras_mappings_set_automation(struct ras_mappings *m, const char *service,
    enum ras_automation a);

#endif
