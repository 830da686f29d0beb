/*
 * mesh: the NHS England MESH API (v2), as reference/mesh/NOTES.md
 * describes it: the NHSMESH authorization header (HMAC-SHA256, a fresh
 * nonce count on every request, retries included), handshake, send
 * (chunked above the configured size), tracking, inbox, download (with
 * chunks) and acknowledge.  mTLS and the CA bundle are the http handle's
 * (struct ras_http_opts client_cert/client_key/ca_file).
 *
 * Requests are *prepared* here and performed by the caller with
 * ras_http_perform(), so the outbox can run many transfers concurrently
 * through the libcurl multi handle; the *_result() functions read the
 * responses.  Header strings live in the arena given to prepare.
 *
 * Sending is never retried here: a first POST whose response was lost may
 * have created a message, so the caller checks with tracking first
 * (ras_mesh_prep_track_local) and never blindly resends.
 *
 * Every chunk is gzipped on its own (Content-Encoding: gzip, the same on
 * every chunk POST) after splitting the uncompressed payload, as the MESH
 * specification asks (reference/mesh/NOTES.md §1.6).
 */
#ifndef RAS_MESH_H
#define RAS_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/http.h"

struct ras_arena;
struct ras_config;
struct ras_mesh;

#define RAS_MESH_ID_MAX 128

struct ras_mesh_opts {
	const char *url;          /* base, e.g. https://msg.intspineservices.nhs.uk */
	const char *mailbox;      /* our mailbox id (upper case) */
	const char *password;     /* mailbox password (secret) */
	const char *shared_key;   /* environment shared secret (secret) */
	size_t chunk_size;        /* bytes per chunk; larger payloads are chunked */
	long timeout_ms;
};

int ras_mesh_new(const struct ras_mesh_opts *opts, struct ras_mesh **out);
void ras_mesh_free(struct ras_mesh *m);

/* The client and its http handle from [mesh] (secrets from their files or
 * credentials; [outbox] allow_http_loopback).  Both NULL, and 0 returned,
 * when [mesh] enabled is false. */
int ras_mesh_new_config(const struct ras_config *cfg, struct ras_mesh **mesh,
    struct ras_http **http);

/* A handshake through h when none succeeded in the last `interval`
 * seconds of this client (MESH wants one at least daily). */
int ras_mesh_handshake_if_due(struct ras_mesh *m, struct ras_http *h, struct ras_arena *a,
    int64_t now, int64_t interval);
const char *ras_mesh_mailbox(const struct ras_mesh *m);

/* The Authorization header value for one request (pure; test vectors in
 * reference/mesh/nhsmesh-auth-test-vectors.json):
 * "NHSMESH <mailbox>:<nonce>:<count>:<yyyyMMddHHmm>:<hex hmac>". */
int ras_mesh_auth_header(const char *mailbox, const char *password, const char *shared_key,
    const char *nonce, unsigned long count, const char *timestamp, char *out, size_t size);

/* UTC "yyyyMMddHHmm" of t. */
void ras_mesh_timestamp(int64_t t, char out[13]);

/* Number of chunks a payload of len bytes is sent in (at least 1). */
size_t ras_mesh_chunks(const struct ras_mesh *m, size_t len);

struct ras_mesh_send {
	const char *to;           /* mailbox, or GPPROVIDER_<nhs>_<yyyymmdd>_<surname> */
	const char *workflow;
	const char *local_id;     /* mex-LocalID: never patient data */
	const char *subject;      /* mex-Subject (the Send Document format names the patient: never logged) */
	const char *content_type; /* of the whole payload */
	const char *filename;     /* mex-FileName: never patient data */
	const void *body;         /* the whole payload */
	size_t len;
	size_t chunk;             /* 1..n */
	const char *message_id;   /* for chunk >= 2: the id chunk 1 returned */
};

int ras_mesh_prep_handshake(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    struct ras_http_request *r);
int ras_mesh_prep_send(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const struct ras_mesh_send *s, struct ras_http_request *r);
int ras_mesh_prep_track_local(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const char *local_id, struct ras_http_request *r);
int ras_mesh_prep_track(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const char *message_id, struct ras_http_request *r);
int ras_mesh_prep_inbox(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    struct ras_http_request *r);
int ras_mesh_prep_download(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const char *message_id, size_t chunk, struct ras_http_request *r);
int ras_mesh_prep_ack(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const char *message_id, struct ras_http_request *r);
/* MESH endpoint lookup: GET /messageexchange/endpointlookup/{ods}/{workflow}. */
int ras_mesh_prep_lookup(struct ras_mesh *m, struct ras_arena *a, int64_t now, const char *ods,
    const char *workflow, struct ras_http_request *r);

/* Send (or chunk) accepted (202): message id copied out.  Otherwise the
 * MESH error as a message (v1 or v2 body) and RAS_EINVALID for a business
 * refusal (400, 417, 422, 423: do not resend), RAS_ERATELIMITED for 429,
 * RAS_EIO for 403 and other 4xx, RAS_ETIMEDOUT for 5xx (outcome unknown),
 * or the transfer's own error. */
int ras_mesh_send_result(const struct ras_http_request *r, char *message_id, size_t size);

/* A chunk POST (chunk >= 2) accepted: 202, whatever the body (the sandbox
 * answers `null`).  Errors as for ras_mesh_send_result; a 423 means the
 * message was already complete (the caller decides what that proves). */
int ras_mesh_chunk_result(const struct ras_http_request *r);

/* Tracking: *found false on 404; else the message id and status.  Both
 * answer shapes are read: v2 {"message_id","status":"accepted"} and v1
 * {"messageId" (or "messageID"),"status":"Acknowledged"}; the status is
 * lower-cased.  A 300 (several messages for one local id) picks one that
 * is not still `uploading` when there is one. */
struct ras_mesh_tracking {
	bool found;
	char message_id[RAS_MESH_ID_MAX];
	char status[32];          /* accepted, acknowledged, uploading, undeliverable, … */
};

/* What a tracked status means for the sender. */
enum ras_mesh_track_state {
	RAS_MESH_TRACK_DELIVERED,   /* accepted / acknowledged: MESH has the whole message */
	RAS_MESH_TRACK_INCOMPLETE,  /* uploading: not every chunk arrived; never delivered */
	RAS_MESH_TRACK_FAILED,      /* undeliverable, rejected, expired, error, … */
};
enum ras_mesh_track_state ras_mesh_track_state(const struct ras_mesh_tracking *t);
int ras_mesh_track_result(const struct ras_http_request *r, struct ras_mesh_tracking *out);
/* The same for tracking by a local id several messages share (an ITK3
 * sender's ODS code): only the message with this mex-FileName counts;
 * none is *found false. */
int ras_mesh_track_result_file(const struct ras_http_request *r, const char *filename,
    struct ras_mesh_tracking *out);

/* The mailbox an endpoint lookup found (v2 results[].mailbox_id, v1
 * results[].address): RAS_ENOTFOUND when none is registered for the ODS
 * code and workflow, RAS_ECONFLICT when several are (a person chooses),
 * RAS_EIO/RAS_ETIMEDOUT when MESH could not answer. */
int ras_mesh_lookup_result(const struct ras_http_request *r, char *mailbox, size_t size);

/* Inbox: message ids (arena strings). */
int ras_mesh_inbox_result(struct ras_arena *a, const struct ras_http_request *r,
    const char ***ids, size_t *n);

/* The reason MESH gave in an error answer (v2 detail[0].code/msg, v1
 * errorCode/errorDescription, or a short plain-text body), "" if none. */
void ras_mesh_error_reason(const struct ras_http_request *r, char *buf, size_t size);

/* Headers of a downloaded message. */
struct ras_mesh_meta {
	char message_type[16];    /* DATA, REPORT */
	char workflow[128];
	char local_id[128];
	char linked_id[RAS_MESH_ID_MAX];
	char status_code[16];
	char status_event[32];
	char status_success[16];
	char status_description[256];
	char content_type[128];
	size_t chunk, nchunks;    /* from mex-chunk-range; 1:1 when absent */
};
void ras_mesh_meta(const struct ras_http_request *r, struct ras_mesh_meta *out);

#endif
