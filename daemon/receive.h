/*
 * receive: what happens to a payload the HTTP listener or the spool takes
 * in.  Referral payloads are kept in the inbox (one transaction for the
 * batch) and normalised at once, so the sender hears whether its referral
 * was stored or why not; EPR event messages are kept and recorded in one
 * transaction (epr.h).  Either way the payload is in the database before
 * the sender is answered or the file is moved.
 */
#ifndef RAS_DAEMON_RECEIVE_H
#define RAS_DAEMON_RECEIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/limits.h"

struct ras_daemon;
struct ras_inbox_item;

struct ras_receipt {
	int64_t payload_id;
	/* stored, partial, duplicate (same bytes or same referral version or
	 * same EPR message, nothing new), rejected (kept, with the reason),
	 * queued (kept; another process or a later pass will normalise it),
	 * recorded (EPR event) */
	const char *state;
	const char *kind;          /* payload kind, "epr-event:<kind>" for EPR messages; may be NULL */
	bool epr;
	bool new_payload;          /* these bytes were not in the inbox before */
	char ubrn[RAS_ID_MAX + 1];
	char message[512];         /* one line, no patient data */
};

/* Receive n payloads.  Returns 0 when every payload is kept (each
 * receipt says what became of it), or a negative code when the database
 * failed before they were kept (nothing to answer but "try again"). */
int ras_receive(struct ras_daemon *d, const struct ras_inbox_item *items, size_t n,
    struct ras_receipt *out);

#endif
