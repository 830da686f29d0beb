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
struct ras_db;
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

/*
 * The same in three parts, for a group kept by a worker thread
 * (workers.h) while the loop goes on:
 *   ras_receive_prepare, on the loop's thread: EPR messages are kept and
 *     recorded at once (on the loop's connection); the referral payloads
 *     go into *job with what the configuration in use gives them.  0, or a
 *     negative code (nothing to run; no receipt says kept).
 *   ras_receive_run, on any thread, with a connection nobody else uses
 *     during the call (NULL: fails the group): keeps, normalises and
 *     triages the referral payloads in one transaction and fills their
 *     receipts.  It touches nothing of the daemon but the job and `out`.
 *   ras_receive_finish, on the loop's thread: counts and logs what was
 *     done, wakes the stages after it, frees the job; returns what
 *     ras_receive returns.  Only then may the senders be answered.
 * A reload must wait for jobs that have been prepared (they use the
 * configuration's triage engine and form maps) to finish.
 */
struct ras_receive_job;

int ras_receive_prepare(struct ras_daemon *d, const struct ras_inbox_item *items, size_t n,
    struct ras_receipt *out, struct ras_receive_job **job);
void ras_receive_run(struct ras_receive_job *job, struct ras_db *db);
int ras_receive_finish(struct ras_daemon *d, struct ras_receive_job *job);

#endif
