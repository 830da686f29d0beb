/* receive: intake of payloads from the HTTP listener and the spool (see receive.h). */
#define _GNU_SOURCE   /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/intake.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/log.h"
#include "ras/runtime.h"
#include "ras/store.h"
#include "ras/time.h"
#include "ras/triage.h"
#include "receive.h"
#include "stage.h"
#include "stages.h"

/* Cheap test first (the code system must appear in the bytes), then the
 * real one on the parsed JSON. */
static bool
is_epr(const struct ras_inbox_item *it)
{
	static const char needle[] = RAS_SYS_EPR_EVENT;
	json_t *j = NULL;
	bool yes;

	if (it->len > RAS_PAYLOAD_MAX || it->full_size > it->len ||
	    memmem(it->data, it->len, needle, sizeof(needle) - 1) == NULL)
		return false;
	if (ras_json_parse(it->data, it->len, RAS_PAYLOAD_MAX, &j) < 0)
		return false;
	yes = ras_epr_detect(j);
	json_decref(j);
	return yes;
}

static void
receive_epr(struct ras_daemon *d, struct ras_db *db, const struct ras_inbox_item *it,
    struct ras_receipt *r, int *err)
{
	struct ras_epr_result res;
	const struct ras_runtime *rt = ras_stages_runtime(d->units);
	struct ras_epr_ctx ctx = { NULL, NULL };
	char pid[24];

	/* A clinician's decision takes its clocks from the rule sets, an
	 * episode summary goes to the outbox: those of the configuration in
	 * use (the runtime the stages run on). */
	if (rt)
		ctx = ras_runtime_epr(rt);
	*err = ras_epr_receive(db, &ctx, it, &res);
	if (*err < 0)
		return;
	r->epr = true;
	r->payload_id = res.payload_id;
	r->new_payload = !(res.duplicate && res.event_id == 0);
	r->state = strcmp(res.state, "recorded") == 0 ? "recorded" : res.state;
	r->kind = res.kind ? res.kind : "epr-event";
	snprintf(r->ubrn, sizeof(r->ubrn), "%s", res.ubrn);
	snprintf(r->message, sizeof(r->message), "%s", res.message);
	snprintf(pid, sizeof(pid), "%lld", (long long)res.payload_id);
	{
		struct ras_log_field f[] = { { "STAGE", "epr" }, { "PAYLOAD_ID", pid },
			{ "UBRN", res.ubrn[0] ? res.ubrn : NULL },
			{ "CORRELATION_ID", it->correlation_id }, { NULL, NULL } };

		ras_log_fields(strcmp(res.state, "rejected") == 0 ? RAS_LOG_WARNING : RAS_LOG_INFO, f,
		    "EPR message #%s %s: %s", pid, res.state, res.message);
	}
	if (strcmp(res.state, "recorded") == 0) {
		d->stats.epr_recorded++;
		/* a clinician's decision or an episode summary: work for e-RS
		 * and the letters now */
		ras_units_kick_all(d->units);
	}
}

/* The static name of a payload kind read back from the database. */
static const char *
static_kind(const char *k)
{
	for (int i = RAS_PAYLOAD_UNKNOWN; i <= RAS_PAYLOAD_FORM; i++)
		if (strcmp(ras_referral_payload_kind_name((enum ras_payload_kind)i), k) == 0)
			return ras_referral_payload_kind_name((enum ras_payload_kind)i);
	return "unknown";
}

/* What the group's receipts say of payloads whose outcome the group does
 * not know exactly (see final_row): their inbox row after the commit and
 * the UBRN of the first referral they brought. */
static const char SQL_FINAL[] =
    "SELECT i.id::text, i.state, coalesce(i.kind, ''), coalesce(i.error, ''),"
    " (SELECT r.ubrn FROM referrals r WHERE r.payload_id = i.id ORDER BY r.id LIMIT 1)"
    " FROM inbox i WHERE i.id = ANY ($1::bigint[])";

/* A payload's inbox row after the commit, as SQL_FINAL reads it. */
struct final_row {
	const char *state, *kind, *error, *ubrn;
};

/* The row of payload `pid` when the group knows it exactly: a referral
 * payload stored whole, its one referral created by it and touched by
 * nothing else in the group (store.h, whole_payload): inbox state
 * "stored", its kind, no error, and that referral's UBRN (the only
 * referral whose payload_id it is).  Everything else (duplicates of rows
 * stored before, rejected and partial payloads with their reasons, merges,
 * revisions, forms) is read by SQL_FINAL. */
static bool
final_row(const struct ras_store_handover *h, int64_t pid, struct final_row *out)
{
	const struct ras_store_handed *e = ras_store_handover_payload(h, pid);

	if (e == NULL)
		return false;
	out->state = "stored";
	out->kind = e->kind ? e->kind : "";
	out->error = "";
	out->ubrn = e->ubrn;
	return true;
}

/* Fill receipt r (payload pid) from its row, as the receipts always read it. */
static void
apply_final(struct ras_receipt *r, const struct final_row *f)
{
	const char *st = f->state;

	r->state = strcmp(st, "stored") == 0 ? "stored" :
	    strcmp(st, "partial") == 0 ? "partial" :
	    strcmp(st, "duplicate") == 0 ? "duplicate" :
	    strcmp(st, "rejected") == 0 ? "rejected" : "queued";
	if (!r->new_payload && strcmp(r->state, "queued") != 0)
		r->state = strcmp(st, "rejected") == 0 ? "rejected" : "duplicate";
	r->kind = *f->kind ? static_kind(f->kind) : NULL;
	if (f->ubrn)
		snprintf(r->ubrn, sizeof(r->ubrn), "%s", f->ubrn);
	if (strcmp(st, "rejected") == 0 || strcmp(st, "partial") == 0)
		snprintf(r->message, sizeof(r->message), "%s", f->error);
}

/* The form maps of the runtime the stages run on (NULL before the first
 * configuration loads). */
static const struct ras_xmlform_maps *
form_maps(struct ras_daemon *d)
{
	const struct ras_runtime *rt = ras_stages_runtime(d->units);

	return rt ? ras_runtime_form_maps(rt) : NULL;
}

/* Whether a received group is triaged before its commit: when the
 * configuration loaded and no demographics stage stands between normalise
 * and triage (with [pds], referrals wait for their PDS lookups first). */
static bool
triage_inline(struct ras_daemon *d)
{
	const struct ras_runtime *rt = ras_stages_runtime(d->units);

	return rt && ras_runtime_triage(rt) && ras_runtime_pds(rt, NULL) == NULL;
}

/* One group's referral payloads, from ras_receive_prepare to
 * ras_receive_finish (receive.h). */
struct ras_receive_job {
	struct ras_receipt *out;       /* the caller's, n of them */
	struct ras_inbox_item *refs;   /* the referral payloads, nref of them */
	size_t *map;                   /* refs[k] is items[map[k]] */
	size_t nref;
	/* what the stages' runtime gives the group (read on the loop's thread) */
	const struct ras_xmlform_maps *maps;
	const struct ras_triage *triage;   /* NULL: not triaged here */
	/* what ras_receive_run leaves */
	struct ras_inbox_put_result *put;
	int64_t *pids;
	struct ras_normalise_report *rep;
	struct ras_triage_report *trep;
	size_t nrep, ntrep;
	bool committed, normalised, triaged;
	int err;
	char why[512];                 /* err's message (ras_error_last is per thread) */
};

static void
job_free(struct ras_receive_job *job)
{
	if (job == NULL)
		return;
	free(job->trep);
	free(job->rep);
	free(job->refs);
	free(job->map);
	free(job->put);
	free(job->pids);
	free(job);
}

int
ras_receive_prepare(struct ras_daemon *d, const struct ras_inbox_item *items, size_t n,
    struct ras_receipt *out, struct ras_receive_job **jobp)
{
	struct ras_receive_job *job;
	struct ras_db *db = NULL;
	int err = 0;

	*jobp = NULL;
	memset(out, 0, n * sizeof(*out));
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	job->out = out;
	job->refs = calloc(n ? n : 1, sizeof(*job->refs));
	job->map = calloc(n ? n : 1, sizeof(*job->map));
	job->put = calloc(n ? n : 1, sizeof(*job->put));
	job->pids = calloc(n ? n : 1, sizeof(*job->pids));
	if (job->refs == NULL || job->map == NULL || job->put == NULL || job->pids == NULL) {
		job_free(job);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		if (is_epr(&items[i])) {
			/* (rare: kept and recorded here, on the loop's connection) */
			if (db == NULL && (db = ras_daemon_db(d)) == NULL) {
				err = RAS_EIO;
				break;
			}
			receive_epr(d, db, &items[i], &out[i], &err);
			if (err < 0)
				break;
			continue;
		}
		job->map[job->nref] = i;
		job->refs[job->nref++] = items[i];
	}
	if (err < 0) {
		job_free(job);
		return err;
	}
	job->maps = form_maps(d);
	job->triage = triage_inline(d) ? ras_runtime_triage(ras_stages_runtime(d->units)) : NULL;
	*jobp = job;
	return 0;
}

void
ras_receive_run(struct ras_receive_job *job, struct ras_db *db)
{
	struct ras_store_handover *h = NULL;
	struct ras_db_res *res = NULL;
	struct ras_buf ids = RAS_BUF_INIT(0);
	size_t nref = job->nref, nask = 0;
	int64_t *pids = job->pids;
	int err = 0;

	if (nref == 0)
		return;
	if (db == NULL) {
		job->err = RAS_EIO;
		goto fail_all;
	}
	if (ras_store_handover_new(&h) < 0) {
		job->err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail_all;
	}

	/*
	 * Referral payloads: kept, normalised and triaged in one transaction
	 * (one commit, one WAL flush for the group), each part in a savepoint
	 * of its own (ras_db_hold): a group whose normalising or
	 * triage fails in the database is still kept, and the stage takes it
	 * later.  Nobody is answered before the commit (the caller answers
	 * after ras_receive_finish); if the commit fails, nobody is told the
	 * payloads were kept.
	 */
	if ((err = ras_db_hold(db)) < 0)
		goto fail;
	if ((err = ras_store_inbox_put(db, job->refs, nref, job->put)) < 0)
		goto abandon;
	for (size_t k = 0; k < nref; k++) {
		struct ras_receipt *r = &job->out[job->map[k]];

		r->payload_id = pids[k] = job->put[k].id;
		r->new_payload = !job->put[k].duplicate;
		r->state = "queued";
		snprintf(r->message, sizeof(r->message), "kept as payload #%lld; waiting to be normalised",
		    (long long)job->put[k].id);
	}
	/* normalise hands what it created to the triage step below (store.h) */
	job->normalised = true;
	if (ras_store_normalise_handed(db, job->maps, pids, job->refs, job->put, nref, nref, h, &job->rep,
	    &job->nrep) < 0) {
		/* Kept but not normalised: the normalise stage takes them later. */
		ras_log(RAS_LOG_WARNING, "received payloads kept but not yet normalised: %s",
		    ras_error_last());
		free(job->rep);
		job->rep = NULL;
		job->nrep = 0;
		job->normalised = false;
	} else if (job->triage) {
		/* What the group's payloads made, decided before the same commit
		 * (the triage stage decides whatever is left). */
		if (ras_triage_pending_handed(db, job->triage, ras_time_now(), 2 * nref, pids, nref, h,
		    &job->trep, &job->ntrep) < 0) {
			ras_log(RAS_LOG_WARNING, "received referrals normalised but not yet triaged: %s",
			    ras_error_last());
			job->ntrep = 0;
		} else {
			job->triaged = job->ntrep < 2 * nref;
		}
	}
	/* (fails, rolling it all back, if anything inside was left open or
	 * rolled back whole) */
	if ((err = ras_db_hold_commit(db)) < 0)
		goto fail;
	job->committed = true;
	if (!job->normalised)
		goto done;

	/* Each receipt from what the group knows where that is exact
	 * (final_row), the others from one query after the commit. */
	(void)ras_buf_putc(&ids, '{');
	for (size_t k = 0; k < nref; k++) {
		struct final_row f;

		if (!final_row(h, pids[k], &f))
			(void)ras_buf_printf(&ids, "%s%lld", nask++ ? "," : "", (long long)pids[k]);
	}
	(void)ras_buf_putc(&ids, '}');
	if (nask && (ids.data == NULL || ras_db_query(db, &res, SQL_FINAL, 1, &RAS_DB_TEXT(ids.data)) < 0)) {
		/* unknown ones stay "queued" (kept, waiting to be normalised) */
		ras_db_res_free(res);
		res = NULL;
	}
	for (size_t k = 0; k < nref; k++) {
		struct ras_receipt *r = &job->out[job->map[k]];
		struct final_row f;
		char pid[24];

		if (final_row(h, pids[k], &f)) {
			apply_final(r, &f);
		} else if (res == NULL) {
			continue;
		} else {
			snprintf(pid, sizeof(pid), "%lld", (long long)pids[k]);
			for (int row = 0; row < ras_db_res_rows(res); row++) {
				if (strcmp(ras_db_res_get(res, row, 0), pid) != 0)
					continue;
				f.state = ras_db_res_get(res, row, 1);
				f.kind = ras_db_res_get(res, row, 2);
				f.error = ras_db_res_get(res, row, 3);
				f.ubrn = ras_db_res_get(res, row, 4);
				apply_final(r, &f);
			}
		}
		for (size_t q = 0; q < job->nrep; q++)
			if (job->rep[q].payload_id == pids[k] && strcmp(job->rep[q].state, "received") != 0 &&
			    strcmp(job->rep[q].state, "rejected") != 0)
				snprintf(r->message, sizeof(r->message), "%s", job->rep[q].message);
		if (!r->new_payload && strcmp(r->state, "queued") != 0) {
			char prev[sizeof(r->message)];

			memcpy(prev, r->message, sizeof(prev));
			(void)ras_buf_format(r->message, sizeof(r->message),
			    "the same payload was received before (payload #%lld)%s%s", (long long)pids[k],
			    prev[0] && strcmp(r->state, "rejected") == 0 ? ": " : "",
			    strcmp(r->state, "rejected") == 0 ? prev : "");
		}
	}
	goto done;
abandon:
	ras_db_hold_abandon(db);
fail:
	job->err = err;
fail_all:
	snprintf(job->why, sizeof(job->why), "%s", ras_error_last());
	/* nothing of the group is known to be kept: no receipt says so */
	for (size_t k = 0; k < nref; k++) {
		struct ras_receipt *r = &job->out[job->map[k]];

		r->payload_id = 0;
		r->new_payload = false;
		r->state = NULL;
		r->message[0] = '\0';
	}
	free(job->rep);
	free(job->trep);
	job->rep = NULL;
	job->trep = NULL;
	job->nrep = job->ntrep = 0;
done:
	ras_db_res_free(res);
	ras_store_handover_free(h);
	ras_buf_free(&ids);
}

int
ras_receive_finish(struct ras_daemon *d, struct ras_receive_job *job)
{
	int err;

	if (job == NULL)
		return 0;
	err = job->err;
	if (job->committed) {
		d->stats.received += job->nref;
		if (job->nrep)
			ras_stages_log_normalised(job->rep, job->nrep);
		if (job->ntrep) {
			/* counted as the triage stage's work (its metrics), which it is */
			struct ras_unit_stats *st = ras_daemon_unit_stats(d, "triage");

			st->rows += (uint64_t)ras_stages_log_triaged(job->trep, job->ntrep);
			st->last_ok = ras_time_now();
		}
		/* with the group triaged here, the stages after triage have work */
		ras_units_kick_next(d->units, job->triaged ? "triage" : "normalise");
	} else if (err < 0) {
		/* (the message, on this thread, for the caller) */
		(void)ras_error_code(err, "%s", job->why);
	}
	job_free(job);
	return err;
}

int
ras_receive(struct ras_daemon *d, const struct ras_inbox_item *items, size_t n,
    struct ras_receipt *out)
{
	struct ras_receive_job *job;
	int err;

	if ((err = ras_receive_prepare(d, items, n, out, &job)) < 0)
		return err;
	if (job->nref)
		ras_receive_run(job, ras_daemon_db(d));
	return ras_receive_finish(d, job);
}
