/*
 * store: rasd's persistent state in PostgreSQL, in batches.
 *
 * Two steps take a payload from the outside world to stored referrals:
 *
 * 1. ras_store_inbox_put() keeps the raw bytes with their hash, source and
 *    time, in one transaction for the whole batch.  From here on nothing is
 *    lost: a crash leaves the rows in state "received".
 * 2. ras_store_normalise() claims "received" rows (FOR UPDATE SKIP LOCKED,
 *    so several rasd processes share the work), parses each one, and stores
 *    patients, referrals, answers, conditions, attachments and events,
 *    pipelining the statements of the whole batch.  Each payload ends as
 *    stored, duplicate, partial (some worklist items refused) or rejected
 *    (kept, with the reason).  If the batch fails in the database, each
 *    payload is retried on its own so one bad payload cannot block others.
 *
 * The (referral_key, version) pair is unique: the same referral version
 * arriving twice stores once; two e-RS views of one version (worklist item
 * and A005) are merged.  The same version arriving again with different
 * content (a GP's corrected re-send under the same UBRN and version, or the
 * same R4 ServiceRequest identifier) is a new revision: the old document is
 * kept in referral_revisions, the referral goes back to triage and the
 * event log says so (schema/006).  Identical content stays a duplicate.
 */
#ifndef RAS_STORE_H
#define RAS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/limits.h"

#include "ras/json.h"

struct ras_buf;

struct ras_db;

struct ras_inbox_item {
	const char *data;
	size_t len;              /* bytes in data (≤ RAS_PAYLOAD_KEEP_MAX) */
	uint64_t full_size;      /* size as received (> len when truncated) */
	const char *sha256;      /* hex digest of the whole payload; computed when NULL */
	const char *source;      /* file, http, spool, mesh, ers */
	const char *source_ref;  /* file name, request path, MESH id: no patient data */
	const char *content_type;
	const char *service_hint;
	const char *ubrn_hint;
	const char *correlation_id;
};

struct ras_inbox_put_result {
	int64_t id;
	bool duplicate;          /* the same bytes were already in the inbox */
	int64_t received;        /* inserted by this call: its received_at, whole seconds; else 0 */
};

/* Store a batch of payloads (one transaction). out[i] answers items[i]. */
int ras_store_inbox_put(struct ras_db *db, const struct ras_inbox_item *items, size_t n,
    struct ras_inbox_put_result *out);

/* Read a payload from an open descriptor as the inbox keeps it: at most
 * RAS_PAYLOAD_KEEP_MAX bytes into `data` (initialised here; the caller
 * frees it), while the size and SHA-256 cover all of it, so an oversized
 * payload is still kept and known.  RAS_EIO (with the reason) on a read
 * error, RAS_ENOMEM.  The descriptor is not closed. */
int ras_store_read_payload(int fd, struct ras_buf *data, uint64_t *size, char *sha256_hex);

/* What became of one payload in ras_store_normalise(). */
struct ras_normalise_report {
	int64_t payload_id;
	const char *state;       /* stored, duplicate, partial, rejected, or received (left for later) */
	const char *kind;        /* payload kind name */
	char message[512];       /* one line: what was stored, or why not; no patient data */
	int created, merged, duplicates, refused, skipped;
	int revised;             /* same (key, version), different content: a new revision */
	int64_t first_referral_id;
	/* For the log fields (no second lookup): the UBRN of the first referral
	 * this payload created or revised ("" when none), and the payload's
	 * correlation id ("" when none). */
	char ubrn[RAS_ID_MAX];
	char correlation_id[RAS_ID_MAX];
};

/*
 * Normalise payloads.  With ids (n > 0) those inbox rows are processed (if
 * still "received"); with ids == NULL, up to `limit` received rows are
 * claimed oldest first.  Reports go to *out (malloc'd array, caller frees);
 * *nout is the count.  Returns a negative code only when the database
 * itself failed; payload problems are reports, not errors.  XML forms are
 * read through `form_maps` (ras_intake_parse; NULL: none).
 */
struct ras_xmlform_maps;
int ras_store_normalise(struct ras_db *db, const struct ras_xmlform_maps *form_maps,
    const int64_t *ids, size_t n, size_t limit, struct ras_normalise_report **out, size_t *nout);

/*
 * The same, each report handed to fn(report, ctx) once the batch has
 * committed (in claim order; *nout their count), none kept: the daemon's
 * stage logs them as they come, so that what a batch holds in memory does
 * not grow with batch_size beyond its ids and packed reports (~120 bytes a
 * payload).  The report is valid only during the call.
 */
typedef void ras_normalise_report_fn(const struct ras_normalise_report *r, void *ctx);
int ras_store_normalise_each(struct ras_db *db, const struct ras_xmlform_maps *form_maps,
    const int64_t *ids, size_t n, size_t limit, ras_normalise_report_fn *fn, void *ctx, size_t *nout);

/*
 * The referrals a normalise batch created, handed to the triage step of
 * the same transaction in memory (ras_triage_pending_handed), so that it
 * neither reads back nor parses again what normalise had just built; and
 * what the group's receipts need of their payloads.  An entry holds exactly
 * what the triage step would read from the database for that referral:
 * a referral is handed over only when nothing else in the batch can have
 * changed it since it was inserted, which is when
 *
 *   - the store created it (outcome "created": its row is the document as
 *     sent, the payload's service hint and received time);
 *   - no other referral step of the batch named the same referral (a
 *     second copy merged, revised or found a duplicate of it) and the batch
 *     had no step of another kind (a form, an attachment) that could;
 *   - the batch was written whole (not by the one-payload-at-a-time retry
 *     after a failure);
 *   - its document holds no number that the database's jsonb would give
 *     back as another JSON type (a decimal of 1e15 or more).
 *
 * Beyond RAS_HANDOVER_DOC_BYTES of documents (normalise keeps no more
 * trees than that, even for a moment) an entry keeps no document: doc,
 * version, key, service and e-RS service id are unset, and triage reads
 * that referral back; its payload, kind and UBRN still serve the
 * receipts.  Whatever is not handed over is triaged from the database as
 * before.
 */
struct ras_store_handed {
	int64_t referral_id;
	int64_t payload_id;        /* the inbox row that created it */
	int64_t received;          /* referrals.received_at (the payload's), whole seconds since the epoch */
	int64_t version;           /* referrals.version: the document's "version" */
	const char *service;       /* referrals.service: the payload's service hint, NULL when none */
	const char *ers_service_id;/* referrals.ers_service_id: the document's ers.service_id, or NULL */
	const char *ubrn;          /* referrals.ubrn, or NULL */
	const char *key;           /* referrals.referral_key */
	const char *kind;          /* the payload's kind (static) */
	/* the payload was stored (inbox state "stored", no error) with this
	 * referral as its only step: its receipt is known (ras_store_handover_payload) */
	bool whole_payload;
	json_t *doc;               /* the document as stored; NULL: read it back */
};

struct ras_store_handover;

/* An empty handover (ras_store_normalise_handed fills it). */
int ras_store_handover_new(struct ras_store_handover **out);
void ras_store_handover_free(struct ras_store_handover *h);

/* The entry of referral `referral_id`, or NULL when it was not handed over. */
const struct ras_store_handed *ras_store_handover_find(const struct ras_store_handover *h,
    int64_t referral_id);

/* The entry of the referral payload `payload_id` stored whole (see
 * whole_payload), or NULL. */
const struct ras_store_handed *ras_store_handover_payload(const struct ras_store_handover *h,
    int64_t payload_id);

/* How many referrals were handed over, and how many of them with their
 * documents. */
size_t ras_store_handover_count(const struct ras_store_handover *h, size_t *with_doc);

/*
 * ras_store_normalise(), filling `h` (emptied first) with the referrals it
 * created (see struct ras_store_handed).  h may be NULL: the same as
 * ras_store_normalise().  `known` (NULL, or parallel to ids) holds the
 * payloads ids[i] were kept from by ras_store_inbox_put in this
 * transaction: their bytes are not read back from the inbox (the rows are
 * still claimed, and a row whose length differs is read back).  `kept`
 * (NULL, or parallel to ids, with known) is what that ras_store_inbox_put
 * answered: a row it inserted is this transaction's own, still received
 * and seen by nobody else, so it is taken as kept without a claim (one
 * statement and one round trip fewer for a group of new payloads).
 */
int ras_store_normalise_handed(struct ras_db *db, const struct ras_xmlform_maps *form_maps,
    const int64_t *ids, const struct ras_inbox_item *known, const struct ras_inbox_put_result *kept,
    size_t n, size_t limit, struct ras_store_handover *h, struct ras_normalise_report **out, size_t *nout);

/*
 * The stored referral named by `what`: a UBRN (latest version; all
 * versions listed), else a numeric referral id.  *out is a new JSON object:
 * {"id", "referral_key", "ubrn", "version", "state", "service",
 *  "received_at", "payload_id", "versions": [...], "referral": {doc},
 *  "attachments": [...], "events": [...]}.
 */
int ras_store_show(struct ras_db *db, const char *what, json_t **out);

/* Stored referrals, newest first, as a JSON array of summaries (no patient
 * data): id, referral_key, ubrn, version, state, service, priority, source,
 * practice, received_at.  `state` filters when not NULL. */
int ras_store_list(struct ras_db *db, const char *state, int limit, json_t **out);

/* State and rejection reason of an inbox row (for duplicates). */
int ras_store_inbox_state(struct ras_db *db, int64_t id, char *state, size_t state_size,
    char *error, size_t error_size);

/* Append an event (kind, actor, detail may be NULL). */
int ras_store_event(struct ras_db *db, int64_t referral_id, const char *ubrn,
    int64_t payload_id, const char *kind, const char *actor, const json_t *detail);

#endif
