/*
 * rasctl pds: PDS lookups by hand (issue 10; docs/design/pds.md).
 *
 *   rasctl pds lookup NHS_NUMBER   look the patient up, store the answer
 *                                  (pds_lookups) and print it as JSON
 *   rasctl pds refresh UBRN|ID     look a referral's patient up again now;
 *                                  the answer is stored and applied, and a
 *                                  referral in new/review/demographics is
 *                                  triaged again
 *
 * Exit codes: 0 found; 65 not found, invalidated or invalid; 69 PDS
 * unavailable; 78 PDS refuses us (401/403: configuration) or [pds] is not
 * configured.  The output is patient data: it goes to stdout only, never
 * to a log.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/pds.h"
#include "ras/pds_store.h"

static int
exit_for(enum ras_pds_result r)
{
	switch (r) {
	case RAS_PDS_FOUND: return CTL_OK;
	case RAS_PDS_NOT_FOUND:
	case RAS_PDS_INVALIDATED:
	case RAS_PDS_INVALID: return CTL_DATAERR;
	case RAS_PDS_REFUSED: return CTL_CONFIG;
	case RAS_PDS_UNAVAILABLE: return CTL_UNAVAILABLE;
	}
	return CTL_SOFTWARE;
}

static void
print(const struct ras_pds_lookup *l, int64_t lookup_id, int64_t referral_id)
{
	json_t *o = json_object();
	struct ras_buf b = RAS_BUF_INIT(0);

	(void)ras_json_set_str(o, "nhs_number", l->asked);
	(void)ras_json_set_str(o, "result", ras_pds_result_name(l->result));
	if (l->status)
		(void)ras_json_set_new(o, "status", json_integer(l->status));
	if (l->code[0])
		(void)ras_json_set_str(o, "code", l->code);
	if (l->request_id[0])
		(void)ras_json_set_str(o, "request_id", l->request_id);
	(void)ras_json_set_new(o, "attempts", json_integer(l->attempts));
	if (l->etag[0])
		(void)ras_json_set_str(o, "etag", l->etag);
	if (lookup_id)
		(void)ras_json_set_new(o, "lookup_id", json_integer(lookup_id));
	if (referral_id)
		(void)ras_json_set_new(o, "referral_id", json_integer(referral_id));
	if (l->have_patient)
		(void)ras_json_set_new(o, "patient", ras_pds_patient_to_json(&l->patient, l->asked));
	if (l->result != RAS_PDS_FOUND && l->error[0])
		(void)ras_json_set_str(o, "error", l->error);
	if (ras_json_dump(o, RAS_JSON_PRETTY | RAS_JSON_SORTED, &b) == 0)
		printf("%s\n", b.data);
	ras_buf_free(&b);
	json_decref(o);
}

static int
client(struct ras_ctl *ctl, struct ras_pds **out)
{
	struct ras_config *cfg;
	int rc, err;

	if ((rc = ras_ctl_config(ctl, &cfg)) != 0)
		return rc;
	if ((err = ras_pds_from_config(cfg, out)) < 0) {
		ras_ctl_fail(ctl, "cannot use PDS");
		return CTL_CONFIG;
	}
	return 0;
}

static int
lookup(struct ras_ctl *ctl, const char *nhs)
{
	struct ras_pds *c = NULL;
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_db *db;
	struct ras_date today;
	int64_t id = 0;
	int rc, err, secs;

	memset(&l, 0, sizeof(l));
	if ((rc = ras_ctl_db(ctl, &db)) != 0 || (rc = client(ctl, &c)) != 0)
		goto done;
	ras_time_uk_date(ras_time_now(), &today, &secs);
	if ((err = ras_pds_get(c, a, nhs, &today, &l)) < 0) {
		ras_ctl_fail(ctl, "PDS lookup failed");
		rc = CTL_SOFTWARE;
		goto done;
	}
	/* stored before it is shown */
	if ((err = ras_pds_store_lookup(db, &l, 0, "rasctl", &id)) < 0) {
		ras_ctl_fail(ctl, "cannot store the PDS answer");
		rc = ras_ctl_exit_for(err);
		goto done;
	}
	print(&l, id, 0);
	rc = exit_for(l.result);
done:
	ras_pds_lookup_release(&l);
	ras_pds_free(c);
	ras_arena_free(a);
	return rc;
}

static int
refresh(struct ras_ctl *ctl, const char *ref)
{
	struct ras_pds *c = NULL;
	struct ras_arena *a = ras_arena_new();
	struct ras_pds_lookup l;
	struct ras_db *db;
	int64_t rid = 0, lid = 0;
	int rc, err;

	memset(&l, 0, sizeof(l));
	if ((rc = ras_ctl_db(ctl, &db)) != 0 || (rc = client(ctl, &c)) != 0)
		goto done;
	if ((err = ras_pds_store_refresh(db, c, a, ref, "rasctl", &rid, &lid, &l)) < 0) {
		ras_ctl_fail(ctl, "cannot refresh the referral's demographics");
		rc = ras_ctl_exit_for(err);
		goto done;
	}
	print(&l, lid, rid);
	rc = exit_for(l.result);
done:
	ras_pds_lookup_release(&l);
	ras_pds_free(c);
	ras_arena_free(a);
	return rc;
}

int
ras_ctl_pds(struct ras_ctl *ctl, int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "lookup") == 0)
		return lookup(ctl, argv[2]);
	if (argc == 3 && strcmp(argv[1], "refresh") == 0)
		return refresh(ctl, argv[2]);
	fprintf(stderr, "usage: rasctl pds lookup NHS_NUMBER\n"
	    "       rasctl pds refresh UBRN|ID\n");
	return CTL_USAGE;
}
