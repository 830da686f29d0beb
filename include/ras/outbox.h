/*
 * outbox: delivering documents, in stages the daemon calls on its loop (and
 * rasctl and the tests call directly).  Every stage takes `now`
 * explicitly, claims its rows with FOR UPDATE SKIP LOCKED in batches of
 * [outbox] batch_size, so any number of rasd processes can share one
 * database, and runs its HTTP transfers concurrently.
 *
 *   ras_outbox_render_pending   pending -> ready (document built, route
 *                               resolved, exact payload stored), or dead
 *                               (missing items, no route) or cancelled (the
 *                               service's spec has no such document)
 *   ras_outbox_deliver_pending  ready/unknown -> delivered, or back to ready
 *                               with jittered exponential back-off, or dead
 *                               after [outbox] max_attempts; a MESH send whose
 *                               outcome is unknown is checked by tracking
 *                               (mex-LocalID) before anything is resent
 *
 * The MESH reports about these sends come in through rasd's MESH inbox,
 * an intake source (include/ras/mesh_inbox.h).
 *
 * Rows are created by the database: the AFTER INSERT trigger on decisions
 * (schema/004_documents.sql) and ras_outbox_episode_put().
 */
#ifndef RAS_OUTBOX_H
#define RAS_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/json.h"
#include "ras/time.h"

struct ras_config;
struct ras_db;
struct ras_http;
struct ras_mesh;
struct ras_outbox;

struct ras_outbox_stats {
	int claimed;      /* rows the stage took */
	int rendered;     /* -> ready */
	int delivered;
	int retried;      /* back to ready, later */
	int unknown;      /* outcome unknown: tracking next time */
	int dead;
	int cancelled;
	int chunks;       /* render: chunks of the batch read and rendered */
	int writes;       /* render: times the rendered results were written */
	int built;        /* render: documents built (the copies of one letter share one) */
	bool cut;         /* deliver: due letters were left for the next round by
	                   * RAS_DELIVER_BATCH_BYTES, or wait behind a probe that
	                   * went through (run again at once) */
	int routes_held;  /* deliver: endpoints that began refusing connections */
	int routes_back;  /* deliver: held endpoints that answered again */
};

/* Build the delivery context from [mesh], [fhir], [routing] and [outbox]
 * (secrets read from their files or credentials) and the mappings
 * directory (document profiles, and the working-day calendar the episode
 * deadlines count in: mappings/calendar/bank-holidays.json). */
int ras_outbox_new(const struct ras_config *cfg, const char *mappings, struct ras_outbox **out);
/* The same with a MESH client the caller made (ras_mesh_new_config) and
 * keeps: lib/runtime.c shares one with the MESH inbox, so rasd does one
 * handshake per [mesh] handshake_interval.  mesh and http are NULL when
 * [mesh] is not enabled; they must outlive the outbox. */
int ras_outbox_new_shared(const struct ras_config *cfg, const char *mappings, struct ras_mesh *mesh,
    struct ras_http *http, struct ras_outbox **out);
/* The outbox's MESH client and its http handle (both NULL when [mesh] is
 * not enabled), for a MESH inbox that is to share it
 * (ras_mesh_inbox_new_shared); they live as long as the outbox. */
void ras_outbox_mesh_client(const struct ras_outbox *o, struct ras_mesh **mesh, struct ras_http **http);
void ras_outbox_free(struct ras_outbox *o);

int ras_outbox_render_pending(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_stats *st);
int ras_outbox_deliver_pending(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_stats *st);

/* How much work a delivery round did, for the stage runner, which goes
 * again at once when a run did `limit`: a round cut short by
 * RAS_DELIVER_BATCH_BYTES (st->cut) counts as `limit`, so that the letters it
 * left due go in the next round, not after the stage interval. */
size_t ras_outbox_deliver_work(const struct ras_outbox_stats *st, size_t limit);

/*
 * An endpoint that refuses connections (docs/design/delivery.md).  When a
 * FHIR letter's connection is refused, or its host's name does not resolve
 * (nothing was sent: ras_http_request.unreached), the endpoint is held: its
 * other letters are not claimed, and so not attempted or counted towards
 * [outbox] max_attempts, until the endpoint's own back-off ([outbox]
 * backoff_base doubling to backoff_max, by refusals in a row) has passed;
 * then one letter, the earliest due, probes it.  Any answer from the
 * endpoint (even an error status) releases it, and the rest follow at once.
 * Never on a timeout, a dropped answer or a 5xx, where a letter may have
 * arrived.  The held letters stay 'ready' with their deadlines running
 * (ras_outbox_deadlines_check flags a letter late whatever the reason).
 * The state lives in this process; after a restart or a reload every due letter is
 * tried once more.
 */
struct ras_outbox_held {
	const char *address;     /* the endpoint base URL (no patient data) */
	int64_t since;           /* first refusal of this spell */
	int64_t next_try;        /* when one letter probes it */
	int refusals;            /* rounds in a row it refused */
};

/* The i-th held endpoint (0-based): false past the last. */
bool ras_outbox_deliver_held(const struct ras_outbox *o, size_t i, struct ras_outbox_held *out);

/*
 * ITK3 acknowledgements (schema 008).  Responses the MESH inbox kept
 * (workflow *_ACK, ITK008M) are parsed and matched to their letter by the
 * MessageHeader id they name (response.identifier) or the SenderReference
 * they echo (rasd's local id); the infrastructure (20013 success, any other
 * code a failure) and business (30001 patient known; 30002 not known,
 * 30003 no longer registered, 30004 recently deceased) acknowledgement is
 * recorded on the letter.  A negative one, and a missing one past
 * [outbox] ack_infrastructure_timeout (seconds after delivery) or
 * ack_business_working_days, puts the letter in front of a person: state
 * dead with the meaning in last_error, an event (document-ack-negative,
 * document-ack-missing), rasctl outbox dead and status.  The clocks the
 * delivery met stay met.  A response that matches no letter, or is not one,
 * is kept with its reason (mesh_inbox.process_error).
 */
struct ras_outbox_ack_stats {
	int responses;    /* ITK3 responses read */
	int matched;      /* recorded on their letter */
	int negative;     /* of those, negative: letters dead */
	int unmatched;    /* kept with a reason */
	int missing;      /* letters dead for want of an acknowledgement */
};
int ras_outbox_acks(struct ras_outbox *o, struct ras_db *db, int64_t now,
    struct ras_outbox_ack_stats *st);

/*
 * Settle sends a dead process left in flight: rows still 'sending' whose
 * claiming database session is gone become 'unknown', due at `now`, so the
 * next delivery checks them first (MESH: tracking by mex-LocalID, resent
 * only if MESH never received it; FHIR: the same conditional create or
 * message id, which the receiver de-duplicates).  Rows of a process that is
 * still sending are left alone.  *n is how many were settled.  The daemon
 * calls this at start-up, before taking new work, and before each delivery
 * run; [outbox] lease remains the safety net.
 */
int ras_outbox_recover(struct ras_db *db, int64_t now, int *n);

/*
 * Store an episode summary (an episode-summary QuestionnaireResponse, JSON)
 * for the referral named by `what` (a UBRN, latest version, or a referral
 * id) and enqueue its document: kind "contact" -> notification letter
 * (deadline: [profile] working days after the contact, the day of `now`),
 * "discharge" -> discharge summary (+ the patient's copy; deadline from the
 * discharge-date).  Working days are the calendar's (bank holidays
 * skipped), the day of the event being day 0.  Refused with RAS_EINVALID, nothing stored, when the
 * summary is malformed, the service's spec has no such document, or a
 * required item is missing (the message lists them); RAS_ENOTFOUND when
 * there is no such referral.
 */
int ras_outbox_episode_put(struct ras_outbox *o, struct ras_db *db, const char *what,
    const char *kind, const char *data, size_t len, const char *actor, int64_t now,
    int64_t *episode_id);

/* Outbox rows, newest first, without patient data (GPPROVIDER addresses
 * masked): a JSON array.  `state` filters when not NULL. */
int ras_outbox_list(struct ras_db *db, const char *state, int limit, json_t **out);

/* Requeue a dead row (re-rendered, attempts reset). RAS_ENOTFOUND: no such
 * row; RAS_ECONFLICT: not dead (an 'unknown' send is left to tracking). */
int ras_outbox_retry(struct ras_db *db, int64_t id, int64_t now);

/* The delay before retry number `attempts` (1-based): base * 2^(attempts-1)
 * capped at max, then jittered uniformly into [delay/2, delay]. */
int64_t ras_outbox_backoff(int attempts, int64_t base, int64_t max);

/* The XML form maps an episode summary in XML is read through (the
 * runtime's; NULL: none, the default).  Not owned. */
struct ras_xmlform_maps;
void ras_outbox_set_form_maps(struct ras_outbox *o, const struct ras_xmlform_maps *maps);

/* True when the service's specification calls for documents of `doc_kind`
 * (its profile in mappings/documents has that kind). */
bool ras_outbox_has_document(struct ras_outbox *o, const char *service, const char *doc_kind);

#endif
