/*
 * fake_mesh: a loopback MESH server for protocol tests and the demo, on top
 * of fake_http.  It follows reference/mesh/mesh-api-openapi.json and the
 * sandbox capture (v2 JSON), and adds the checks the sandbox leaves out:
 * every request's NHSMESH token is verified (HMAC with the mailbox
 * password and shared key, mailbox matching the path, timestamp within two
 * hours of the server's clock, no token used twice).  Mailboxes come from
 * tests/fixtures/mesh/sandbox-mailboxes.json (X26ABC1..3, "password"),
 * the shared key is the sandbox's "TestKey".
 *
 * It answers as the official sandbox does (reference/mesh/
 * sandbox-captured-exchange.json): chunk POSTs after the first are answered
 * 202 with the body `null`; a chunk after completion 423 with the generic
 * `{"message": ...}` body; chunks may be gzipped (Content-Encoding: gzip,
 * the same on every chunk, 417 otherwise; any other encoding 422) and are
 * stored decoded, and served gzipped again to a client that accepts gzip;
 * tracking has the v2 shape (message_id, status "uploading" until the last
 * chunk) with the v2 Accept header and the v1 shape (messageId, "status":
 * "Accepted"/"Acknowledged") without; refusals (403 too) carry the v2
 * {"detail":[{event,code,msg}]} body; REPORTs carry mex-chunk-range 1:0,
 * mex-total-chunks 0 and no body.
 *
 * Supported: handshake, send (single and chunked: mex-Chunk-Range, chunk
 * POSTs, 423 after completion), tracking by message id and (deprecated) by
 * local id, inbox, download (206 with mex-chunk-range while chunks
 * remain), acknowledge; admin endpoints without auth: POST
 * /messageexchange/admin/report (inject an error REPORT, like the sandbox)
 * and GET /admin/messages (what was sent, for assertions and the demo).
 * Faults: drop the connection after storing the next N sends (outcome
 * unknown), answer the next N sends with 503.
 */
#ifndef RAS_FAKE_MESH_H
#define RAS_FAKE_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FAKE_MESH_SHARED_KEY "TestKey"

struct fake_mesh;

struct fake_mesh_msg {
	char id[40];
	char from[32], to[128], workflow[128], local_id[128], subject[512], content_type[128];
	char filename[128];
	bool gzip;                  /* sent with Content-Encoding: gzip (body here is decoded) */
	char type[8];               /* DATA, REPORT */
	char status_code[8], status_event[16], status_success[16], description[128], linked_id[40];
	char *body;
	size_t len;
	size_t nchunks, chunks_got;
	size_t *chunk_off;          /* where each chunk starts in body */
	bool acked;
};

/* Start on 127.0.0.1 (ephemeral port). NULL mailboxes file: the fixture. */
struct fake_mesh *fake_mesh_start(const char *mailboxes_json);
/* Over TLS; with tls->client_ca_pem every request without a client
 * certificate signed by that CA is refused (403), as MESH refuses it. */
struct fake_tls;
struct fake_mesh *fake_mesh_start_tls(const char *mailboxes_json, const struct fake_tls *tls);
void fake_mesh_stop(struct fake_mesh *m);
const char *fake_mesh_url(const struct fake_mesh *m);
struct fake_http *fake_mesh_http(struct fake_mesh *m);

/* The server's clock for the 2-hour token window (0: the real clock). */
void fake_mesh_set_time(struct fake_mesh *m, int64_t t);
void fake_mesh_drop_sends(struct fake_mesh *m, int n);
void fake_mesh_fail_sends(struct fake_mesh *m, int n);
/* Store each send at once but answer it `ms` later (0: at once): a slow
 * MESH, so that a test can stop the sender while answers are on their way. */
void fake_mesh_delay_sends(struct fake_mesh *m, int ms);

/* Counters and messages (under the lock; copies are stable until stop). */
size_t fake_mesh_count(struct fake_mesh *m);
const struct fake_mesh_msg *fake_mesh_msg(struct fake_mesh *m, size_t i);
int fake_mesh_auth_failures(struct fake_mesh *m);
int fake_mesh_sends(struct fake_mesh *m);   /* first-chunk POSTs to /outbox */

/* Put a REPORT into `mailbox`'s inbox about linked_id (error when code != "00"). */
void fake_mesh_report(struct fake_mesh *m, const char *mailbox, const char *linked_id,
    const char *local_id, const char *workflow, const char *code, const char *description);
/* Register `mailbox` for (ods, workflow): what endpoint lookup
 * (GET /messageexchange/endpointlookup/{ods}/{workflow}, v2 shape, as the
 * sandbox answers it) finds. */
void fake_mesh_register(struct fake_mesh *m, const char *ods, const char *workflow, const char *mailbox);

/* Put a DATA message into `mailbox`'s inbox. */
void fake_mesh_deliver(struct fake_mesh *m, const char *from, const char *to,
    const char *workflow, const char *content_type, const char *body);

#endif
