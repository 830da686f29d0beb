/*
 * mesh_inbox: rasd's own MESH mailbox, polled as an intake source (the
 * daemon's mesh-poll unit; `rasctl outbox run`).  Every collected message
 * is stored before it is acknowledged:
 *
 *   - REPORT messages about rasd's sends: an error report marks its outbox
 *     row dead (and reopens its deadline), a delivery report acknowledges it;
 *   - ITK3 acknowledgements (workflow *_ACK): kept in mesh_inbox (payload)
 *     for the delivery stage to match to their letters (ras_outbox_acks),
 *     not referrals;
 *   - any other DATA message goes into the intake inbox, to be parsed by the
 *     normalise stage like every other payload.
 *
 * Claims nothing in the database: one poller per mailbox (the daemon's
 * unit holds the source's advisory lock).
 */
#ifndef RAS_MESH_INBOX_H
#define RAS_MESH_INBOX_H

#include <stdint.h>

struct ras_config;
struct ras_db;
struct ras_http;
struct ras_mesh;
struct ras_mesh_inbox;

struct ras_mesh_inbox_stats {
	int reports;      /* MESH reports processed */
	int received;     /* MESH messages put into the intake inbox */
	int acknowledged; /* MESH messages acknowledged */
	int dead;         /* documents an error REPORT killed: dead letters */
	int itk3_responses; /* ITK3 acknowledgements kept for the delivery stage */
};

/* From [mesh] (and [outbox] batch_size, allow_http_loopback).  When [mesh]
 * is not enabled the inbox exists and every poll does nothing. */
int ras_mesh_inbox_new(const struct ras_config *cfg, struct ras_mesh_inbox **out);
/* The same with a MESH client the caller made (ras_mesh_new_config) and
 * keeps, shared with the outbox by lib/runtime.c: one handshake per [mesh]
 * handshake_interval for both.  mesh and http are NULL when [mesh] is not
 * enabled; they must outlive the inbox. */
int ras_mesh_inbox_new_shared(const struct ras_config *cfg, struct ras_mesh *mesh, struct ras_http *http,
    struct ras_mesh_inbox **out);
void ras_mesh_inbox_free(struct ras_mesh_inbox *in);

/* One poll: at most [outbox] batch_size messages downloaded, stored,
 * acknowledged.  st (may be NULL) is added to. */
int ras_mesh_inbox_poll(struct ras_mesh_inbox *in, struct ras_db *db, int64_t now,
    struct ras_mesh_inbox_stats *st);

#endif
