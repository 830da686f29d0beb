/* ers_pending: what on the e-RS side waits for a person (see include/ras/ers_pending.h). */
#include <string.h>

#include "ras/db.h"
#include "ras/error.h"
#include "ras/ers_pending.h"

/* Each section: one SQL statement returning a json array, in the order of
 * ras_ers_pending_sections. */
static const char *const sections[] = {
	  /* outcomes */
	  "SELECT coalesce(json_agg(x ORDER BY x.id), '[]'::json)::text FROM ("
	  " SELECT o.ubrn, o.version, o.review_outcome, o.state, o.id, o.attempts,"
	  "  to_char(o.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS next_attempt,"
	  "  o.last_status, o.error_code, o.error, o.ers_state, o.ers_reason"
	  " FROM ers_outcomes o WHERE o.state NOT IN ('done', 'superseded')) x",
	  /* waiting */
	  "SELECT coalesce(json_agg(x ORDER BY x.decision), '[]'::json)::text FROM ("
	  " SELECT r.ubrn, r.version, d.outcome, d.onward_target, d.final, d.decided_by,"
	  "  d.id AS decision,"
	  "  CASE WHEN d.outcome = 'onward' THEN 'onward referral: act in the e-RS Professional Application'"
	  "       WHEN d.outcome = 'review' THEN 'a clinician or MDT must decide'"
	  "       ELSE 'recommendation: a clinician must decide' END AS action"
	  " FROM current_decisions d JOIN referrals r ON r.id = d.referral_id"
	  " WHERE r.ubrn IS NOT NULL AND r.source IN ('ers-worklist', 'ers-referral')"
	  "   AND (d.outcome IN ('onward', 'review') OR (d.decided_by = 'rules' AND NOT d.final))"
	  "   AND NOT EXISTS (SELECT 1 FROM decisions n JOIN referrals r2 ON r2.id = n.referral_id"
	  "                   WHERE r2.ubrn = r.ubrn AND n.id > d.id)) x",
	  /* fetches */
	  "SELECT coalesce(json_agg(x ORDER BY x.ubrn), '[]'::json)::text FROM ("
	  " SELECT e.ubrn, e.service_id, e.worklist_version, e.fetch_state, e.attempts,"
	  "  to_char(e.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS next_attempt,"
	  "  e.error_code, e.error"
	  " FROM ers_referrals e WHERE e.fetch_state IN ('failed', 'parked')) x",
	  /* attachments */
	  "SELECT coalesce(json_agg(x ORDER BY x.id), '[]'::json)::text FROM ("
	  " SELECT t.ubrn, t.url, t.availability, t.state, t.id, t.attempts, t.attached_by_org,"
	  "  to_char(t.next_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS next_attempt,"
	  "  t.error"
	  " FROM attachments t WHERE t.ubrn IS NOT NULL"
	  "   AND t.state IN ('pending', 'blocked', 'failed', 'too-big')) x",
};

#define NSECTIONS (sizeof(sections) / sizeof(sections[0]))

const struct ras_ers_pending_section ras_ers_pending_sections[NSECTIONS] = {
	{ "outcomes", "review outcomes not (yet) recorded on e-RS" },
	{ "waiting", "e-RS referrals waiting for a person (onward, review, or a recommendation)" },
	{ "fetches", "referrals e-RS could not give rasd" },
	{ "attachments", "attachments not fetched" },
};
const size_t ras_ers_pending_nsections = NSECTIONS;

int
ras_ers_pending_list(struct ras_db *db, json_t **out)
{
	json_t *all = json_object();
	int err = 0;

	if (all == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t s = 0; s < NSECTIONS && err == 0; s++) {
		struct ras_db_res *res = NULL;
		json_t *arr = NULL;

		if ((err = ras_db_query(db, &res, sections[s], 0, NULL)) < 0)
			break;
		err = ras_json_parse(ras_db_res_get(res, 0, 0), strlen(ras_db_res_get(res, 0, 0)), 0, &arr);
		ras_db_res_free(res);
		if (err == 0)
			err = ras_json_set_new(all, ras_ers_pending_sections[s].key, arr);
	}
	if (err < 0) {
		json_decref(all);
		return err;
	}
	*out = all;
	return 0;
}
