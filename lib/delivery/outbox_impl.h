/*
 * outbox_impl: what the three files of the outbox share, private to
 * lib/delivery/ (the public interface is include/ras/outbox.h):
 *
 *   outbox.c          the context, document profiles, episodes, operations
 *   outbox_render.c   pending -> ready: documents built, routes resolved
 *   outbox_deliver.c  ready -> delivered: FHIR posts, MESH sends, files
 */
#ifndef RAS_OUTBOX_IMPL_H
#define RAS_OUTBOX_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/docprofile.h"
#include "ras/document.h"
#include "ras/limits.h"
#include "ras/routing.h"

struct ras_arena;
struct ras_calendar;
struct ras_http;
struct ras_mesh;
struct ras_xmlform_maps;

#define MAX_PROFILES 32

struct profile_slot {
	const char *service;
	struct ras_docprofile p;
	int err;
};

/* A FHIR endpoint that refused connections (outbox_deliver.c): its letters
 * are not claimed until next_try, and then only one, the probe. */
struct held_route {
	bool used;
	char address[RAS_DELIVER_HELD_URL_MAX];
	int64_t since;                /* the first refusal of this spell */
	int64_t next_try;             /* when one letter probes it */
	int refusals;                 /* rounds in a row it refused (its back-off) */
};

struct ras_outbox {
	struct ras_arena *a;          /* lives as long as the context */
	const char *mappings;
	struct ras_calendar *cal;     /* working days of the episode deadlines */
	struct ras_routing routing;
	bool gp_auto;
	bool gpprovider_ddmmyyyy;     /* [routing] gpprovider_dob_format = DDMMYYYY */
	int64_t ack_inf_timeout;      /* [outbox] ack_infrastructure_timeout, seconds */
	int ack_bus_days;             /* [outbox] ack_business_working_days */
	struct profile_slot profiles[MAX_PROFILES];
	size_t nprofiles;
	struct ras_mesh *mesh;         /* NULL: [mesh] is not enabled */
	struct ras_http *mesh_http, *fhir_http;
	bool mesh_owned;              /* ras_outbox_new made mesh and mesh_http (else borrowed) */
	const char *workflow[RAS_DOC_PATIENT_COPY + 1];
	const char *fhir_token;
	long fhir_timeout_ms;
	int64_t handshake_interval;
	int batch, max_attempts;
	int64_t backoff_base, backoff_max, lease;
	const char *print_dir;
	const struct ras_xmlform_maps *form_maps;   /* episode summaries in XML (borrowed) */
	int64_t pds_max_age;          /* [pds] max_age in seconds with [pds] on, else 0: a letter
	                                 waits while its patient's PDS record is older */
	struct held_route held[RAS_DELIVER_HELD_ROUTES_MAX];   /* in this process only */
};

/* The service's document profile, loaded once; NULL (error set) when the
 * service has none that loads. */
const struct ras_docprofile *ras_outbox_profile(struct ras_outbox *o, const char *service);

/* Text of a time (UTC) and of an integer, in the arena. */
const char *ras_outbox_ts(struct ras_arena *a, int64_t t);
const char *ras_outbox_num(struct ras_arena *a, int64_t v);

/* Statements both stages batch (ras_db_writes_add): an event about an
 * outbox row ($1 id, $2 kind, $3 detail), and the re-check of the
 * deadline a row meets ($1 id, $2 at). */
extern const char ras_outbox_sql_event[];
extern const char ras_outbox_sql_deadline[];

#endif
