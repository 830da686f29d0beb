/*
 * docprofile: what each outbound document of a service carries, as data
 * (mappings/documents/<service-id>.json), each kind citing the clause of
 * its specification.  The builders (document.h) know how to render a
 * section; the profile says which sections a service's document has, in
 * which order, under which title, which items it cannot go without, and
 * the clock that runs for it.  A kind a service's specification does not
 * call for is absent, and asking for it is an error.
 *
 *   {"service": "midnotts", "name": "...", "spec": "004",
 *    "provider": {"ods", "name", "telephone", "email", "address"},
 *    "documents": {
 *      "discharge-summary": {"clause": "004 §3.12", "title": "...",
 *        "sections": ["gp-actions", {"id": "dates", "title": "..."}, ...],
 *        "required": ["discharge-date", "treatment-summary", "patient.nhs-number", ...],
 *        "deadline": {"working_days": 5, "from": "discharge", "clause": "004 §3.12"}},
 *      "patient-copy": {"clause": "004 §3.12", "of": "discharge-summary"}, ...}}
 *
 * Everything is owned by the arena the profile was loaded into.
 */
#ifndef RAS_DOCPROFILE_H
#define RAS_DOCPROFILE_H

#include <stdbool.h>
#include <stddef.h>

struct ras_arena;

struct ras_docsection {
	const char *id;      /* a section the builders know (see ras_docprofile_section_known) */
	const char *title;   /* NULL: the builder's default title */
};

struct ras_dockind {
	const char *kind;    /* triage-outcome, gp-2ww-notice, notification-letter, discharge-summary, patient-copy */
	const char *clause;
	const char *title;
	const char *of;      /* patient-copy: the kind whose content it copies */
	size_t n_sections;
	struct ras_docsection *sections;
	size_t n_required;
	const char **required;   /* episode linkIds, "patient.name", "patient.birth-date", "patient.nhs-number" */
	bool has_deadline;
	bool same_day;           /* due by the end of the day it starts */
	int working_days;        /* else due by the end of the Nth working day after */
	const char *deadline_from;   /* decision, contact, discharge */
	const char *deadline_clause;
};

struct ras_docprovider {
	const char *ods, *name, *telephone, *email, *address;
};

struct ras_docprofile {
	const char *service;
	const char *name;
	const char *spec;
	struct ras_docprovider provider;
	size_t n_kinds;
	struct ras_dockind *kinds;
};

/* Parse and validate a profile (unknown kinds, sections or required items
 * are RAS_EINVALID with the offending name). */
int ras_docprofile_parse(struct ras_arena *a, const char *data, size_t len,
    struct ras_docprofile *out);

/* Load <mappings>/documents/<service>.json; RAS_ENOTFOUND when the service
 * has no profile. */
int ras_docprofile_load(struct ras_arena *a, const char *mappings, const char *service,
    struct ras_docprofile *out);

/* The kind, or NULL when the service's specification has none. */
const struct ras_dockind *ras_docprofile_kind(const struct ras_docprofile *p, const char *kind);

bool ras_docprofile_section_known(const char *id);

#endif
