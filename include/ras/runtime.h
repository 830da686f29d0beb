/*
 * runtime: everything rasd loads from its configuration and mappings
 * directory, loaded and checked as one, so that a configuration is either
 * wholly usable or refused with every problem listed (`rasd
 * --check-config`, start-up, and SIGHUP, which swaps in a new runtime only
 * when it loads).
 *
 *   mappings   the referral forms, practice lists, calendar and rule sets
 *              (every broken file named, not just the first)
 *   triage     the rule sets with [service ID] and [triage] applied
 *   documents  the document profile of every service with a rule set
 *              (mappings/documents/<service>.json)
 *   MESH       [mesh] and its secrets: one client (one session, one
 *              handshake per interval) that the outbox and the MESH inbox share
 *   outbox     [outbox], [routing] (the routing table), [fhir], their
 *              secrets, and the MESH client to send with
 *   MESH inbox rasd's mailbox polled as an intake source, through the same client
 *   form maps  mappings/form-maps (XML and XHTML referral forms)
 *   e-RS       [ers], when base_url is set: its schedule counts the triage
 *              calendar's working days and what it polls is triaged
 *              (ras_ers_set_triage)
 *
 * The objects are owned by the runtime and live until ras_runtime_free();
 * borrowers (the EPR route, the stages) must not outlive it.  Loading does
 * no network or database I/O.  The XML form maps are given to the e-RS
 * client and the outbox here, and to intake by whoever normalises
 * (ras_store_normalise(db, ras_runtime_form_maps(rt), ...)).
 */
#ifndef RAS_RUNTIME_H
#define RAS_RUNTIME_H

#include "ras/epr.h"

struct ras_buf;
struct ras_calendar;
struct ras_config;
struct ras_ers;
struct ras_mesh_inbox;
struct ras_pds;
struct ras_outbox;
struct ras_runtime;
struct ras_triage;
struct ras_xmlform_maps;

/* The mappings directory of a configuration: [general] mappings, else
 * $RAS_DATADIR/mappings when that variable is set (a build run in place
 * sets it to the source checkout), else the installed DATADIR/mappings. */
const char *ras_runtime_mappings_dir(const struct ras_config *cfg);

/*
 * Load everything for `cfg` (NULL: defaults).  Every problem found is
 * appended to `problems`, one line each, and loading goes on so that all
 * of them are reported; RAS_EINVALID when there was any (nothing is
 * returned), RAS_ENOMEM when loading itself failed.
 */
int ras_runtime_new(const struct ras_config *cfg, struct ras_runtime **out,
    struct ras_buf *problems);
void ras_runtime_free(struct ras_runtime *rt);

/* Load and throw away: the number of problems (0: OK), each one line in
 * `problems`, or a negative code when checking itself failed. */
int ras_runtime_check(const struct ras_config *cfg, struct ras_buf *problems);

const char *ras_runtime_mappings(const struct ras_runtime *rt);
const struct ras_triage *ras_runtime_triage(const struct ras_runtime *rt);
const struct ras_calendar *ras_runtime_calendar(const struct ras_runtime *rt);
struct ras_outbox *ras_runtime_outbox(const struct ras_runtime *rt);
struct ras_mesh_inbox *ras_runtime_mesh_inbox(const struct ras_runtime *rt);
const struct ras_xmlform_maps *ras_runtime_form_maps(const struct ras_runtime *rt);
/* NULL when e-RS is not configured. */
struct ras_ers *ras_runtime_ers(const struct ras_runtime *rt);

/* The PDS client ([pds] base_url set; NULL otherwise) and its settings
 * (verify, max_age) into *settings when not NULL. */
struct ras_pds_settings;
struct ras_pds *ras_runtime_pds(const struct ras_runtime *rt, struct ras_pds_settings *settings);

/* What the EPR route needs (ras_epr_record, ras_epr_receive). */
struct ras_epr_ctx ras_runtime_epr(const struct ras_runtime *rt);

#endif
