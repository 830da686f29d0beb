/* outbox_acks: ITK3 acknowledgements matched to their letters, and the
 * letters whose acknowledgements never came (see include/ras/outbox.h). */
#include <stdio.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/calendar.h"
#include "ras/date.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/itk3.h"
#include "ras/limits.h"
#include "ras/outbox.h"
#include "ras/time.h"

#include "outbox_impl.h"

static const char SQL_CLAIM_ACKS[] =
	"SELECT message_id, workflow, convert_from(payload, 'UTF8') FROM mesh_inbox "
	"WHERE payload IS NOT NULL AND processed_at IS NULL ORDER BY received_at, message_id "
	"LIMIT $1 FOR UPDATE SKIP LOCKED";

/* The letter a response names: its MessageHeader id (response.identifier),
 * else rasd's local id echoed as SenderReference. */
static const char SQL_MATCH[] =
	"SELECT id FROM outbox WHERE message_format IN ('gp-connect-send-document', 'toc-outpatient-letter') "
	"AND ((length($1) > 0 AND itk3_header_id = $1) OR (length($2) > 0 AND local_id = $2)) "
	"ORDER BY (itk3_header_id = $1) DESC, id DESC LIMIT 1 FOR UPDATE";

static const char SQL_PROCESSED[] =
	"UPDATE mesh_inbox SET processed_at = $2, process_error = $3, outbox_id = $4::bigint "
	"WHERE message_id = $1";

/* Record one acknowledgement ($3 inf or bus).  A negative one puts the
 * letter in front of a person: dead, with the meaning; the clocks the
 * delivery met stay met.  Both positive: acknowledged. */
static const char SQL_ACK[] =
	"UPDATE outbox SET "
	"inf_ack_code = CASE WHEN $3 = 'inf' THEN $4 ELSE inf_ack_code END, "
	"inf_ack_at = CASE WHEN $3 = 'inf' THEN $2::timestamptz ELSE inf_ack_at END, "
	"inf_ack_text = CASE WHEN $3 = 'inf' THEN $5 ELSE inf_ack_text END, "
	"bus_ack_code = CASE WHEN $3 = 'bus' THEN $4 ELSE bus_ack_code END, "
	"bus_ack_at = CASE WHEN $3 = 'bus' THEN $2::timestamptz ELSE bus_ack_at END, "
	"bus_ack_text = CASE WHEN $3 = 'bus' THEN $5 ELSE bus_ack_text END, "
	"ack_state = CASE WHEN NOT $6::boolean THEN 'negative' "
	"  WHEN ack_state = 'negative' THEN ack_state "
	"  WHEN (CASE WHEN $3 = 'inf' THEN $4 ELSE inf_ack_code END) = '20013' "
	"   AND (CASE WHEN $3 = 'bus' THEN $4 ELSE bus_ack_code END) = '30001' THEN 'acknowledged' "
	"  ELSE coalesce(ack_state, 'awaiting') END, "
	"state = CASE WHEN NOT $6::boolean THEN 'dead' ELSE state END, "
	"last_error = CASE WHEN NOT $6::boolean THEN $7 ELSE last_error END, "
	"acknowledged_at = CASE WHEN $6::boolean THEN coalesce(acknowledged_at, $2::timestamptz) "
	"  ELSE acknowledged_at END, "
	"updated_at = $2 WHERE id = $1::bigint RETURNING ack_state";

static const char SQL_ACK_EVENT[] =
	"INSERT INTO events (referral_id, kind, actor, detail) "
	"SELECT referral_id, $2, 'rasd', jsonb_build_object('outbox_id', id, 'kind', kind, "
	"'recipient', recipient_role, 'ack', $3::text, 'code', $4::text, 'meaning', $5::text) "
	"FROM outbox WHERE id = $1::bigint";

/* Letters whose infrastructure acknowledgement is overdue. */
static const char SQL_INF_MISSING[] =
	"UPDATE outbox SET state = 'dead', ack_state = 'missing', updated_at = $1, "
	"last_error = 'no ITK3 infrastructure acknowledgement within ' || $3 || ': the GP system may not "
	"have received the letter' "
	"WHERE ack_state = 'awaiting' AND inf_ack_at IS NULL "
	"AND delivered_at < $1::timestamptz - make_interval(secs => $2::bigint) RETURNING id";

/* Candidates for an overdue business acknowledgement: N working days are
 * at least N calendar days, the calendar decides the rest. */
static const char SQL_BUS_CANDIDATES[] =
	"SELECT id, to_char(delivered_at AT TIME ZONE 'Europe/London', 'YYYY-MM-DD') FROM outbox "
	"WHERE ack_state = 'awaiting' AND bus_ack_at IS NULL "
	"AND delivered_at < $1::timestamptz - make_interval(days => $2::int) ORDER BY id LIMIT 1000";

static const char SQL_BUS_MISSING[] =
	"UPDATE outbox SET state = 'dead', ack_state = 'missing', updated_at = $2, "
	"last_error = 'no ITK3 business acknowledgement within ' || $3 || ' working days: the GP practice "
	"has not confirmed the patient is known there' WHERE id = $1::bigint AND ack_state = 'awaiting'";

static int
process_one(struct ras_outbox *o, struct ras_db *db, struct ras_arena *a, const char *mid,
    const char *payload, const char *at, struct ras_outbox_ack_stats *st)
{
	struct ras_itk3_response r;
	struct ras_db_res *res = NULL;
	const char *outbox_id = NULL, *why = NULL, *meaning, *type;
	const char *text;
	int err;

	(void)o;
	if (ras_itk3_parse_response(a, payload, strlen(payload), &r) < 0) {
		/* kept with its reason, the batch goes on */
		why = ras_arena_printf(a, "not an ITK3 response: %s", ras_error_last());
		goto mark;
	}
	if ((err = ras_db_query(db, &res, SQL_MATCH, 2, (struct ras_db_param[]){
	    RAS_DB_TEXT(r.request_id), RAS_DB_TEXT(r.sender_reference) })) < 0)
		return err;
	if (ras_db_res_rows(res) == 0) {
		why = "no letter matches its response identifier or SenderReference";
		goto mark;
	}
	outbox_id = ras_arena_strdup(a, ras_db_res_get(res, 0, 0));
	ras_db_res_free(res);
	res = NULL;
	meaning = ras_itk3_code_meaning(r.itk_code) ? ras_itk3_code_meaning(r.itk_code) : r.itk_display;
	type = r.type == RAS_ITK3_ACK_BUSINESS ? "bus" : "inf";
	text = ras_arena_printf(a, "%s %s%s%s", r.itk_code, meaning ? meaning : "",
	    r.diagnostics[0] ? ": " : "", r.diagnostics);
	if ((err = ras_db_query(db, NULL, SQL_ACK, 7, (struct ras_db_param[]){ RAS_DB_TEXT(outbox_id),
	    RAS_DB_TEXT(at), RAS_DB_TEXT(type), RAS_DB_TEXT(r.itk_code), RAS_DB_TEXT(text),
	    RAS_DB_TEXT(r.success ? "true" : "false"),
	    RAS_DB_TEXT(ras_arena_printf(a, "ITK3 %s acknowledgement %s: %s", r.type ==
	    RAS_ITK3_ACK_BUSINESS ? "business" : "infrastructure", r.itk_code, meaning ? meaning :
	    "unknown code")) })) < 0)
		return err;
	if ((err = ras_db_query(db, NULL, SQL_ACK_EVENT, 5, (struct ras_db_param[]){
	    RAS_DB_TEXT(outbox_id), RAS_DB_TEXT(r.success ? "document-acknowledged" :
	    "document-ack-negative"), RAS_DB_TEXT(r.type == RAS_ITK3_ACK_BUSINESS ? "business" :
	    "infrastructure"), RAS_DB_TEXT(r.itk_code), RAS_DB_TEXT(meaning) })) < 0)
		return err;
	if (st) {
		st->matched++;
		if (!r.success)
			st->negative++;
	}
mark:
	if (why && st)
		st->unmatched++;
	return ras_db_query(db, NULL, SQL_PROCESSED, 4, (struct ras_db_param[]){ RAS_DB_TEXT(mid),
	    RAS_DB_TEXT(at), RAS_DB_TEXT(why), RAS_DB_TEXT(outbox_id) });
}

static int
overdue(struct ras_outbox *o, struct ras_db *db, struct ras_arena *a, int64_t now, const char *at,
    struct ras_outbox_ack_stats *st)
{
	struct ras_db_res *res = NULL;
	struct ras_date today;
	const char *hours;
	int err, rows;

	hours = o->ack_inf_timeout % 3600 == 0 ? ras_arena_printf(a, "%lld h",
	    (long long)(o->ack_inf_timeout / 3600)) : ras_arena_printf(a, "%lld s",
	    (long long)o->ack_inf_timeout);
	if ((err = ras_db_query(db, &res, SQL_INF_MISSING, 3, (struct ras_db_param[]){ RAS_DB_TEXT(at),
	    RAS_DB_TEXT(ras_outbox_num(a, o->ack_inf_timeout)), RAS_DB_TEXT(hours) })) < 0)
		return err;
	rows = ras_db_res_rows(res);
	for (int i = 0; i < rows; i++)
		if ((err = ras_db_query(db, NULL, SQL_ACK_EVENT, 5, (struct ras_db_param[]){
		    RAS_DB_TEXT(ras_db_res_get(res, i, 0)), RAS_DB_TEXT("document-ack-missing"),
		    RAS_DB_TEXT("infrastructure"), RAS_DB_TEXT(NULL),
		    RAS_DB_TEXT("no infrastructure acknowledgement in time") })) < 0)
			goto done;
	if (st)
		st->missing += rows;
	ras_db_res_free(res);
	res = NULL;
	ras_time_uk_date(now, &today, NULL);
	if ((err = ras_db_query(db, &res, SQL_BUS_CANDIDATES, 2, (struct ras_db_param[]){
	    RAS_DB_TEXT(at), RAS_DB_TEXT(ras_outbox_num(a, o->ack_bus_days)) })) < 0)
		return err;
	rows = ras_db_res_rows(res);
	for (int i = 0; i < rows; i++) {
		struct ras_date from, due;

		if (ras_date_parse(ras_db_res_get(res, i, 1), &from) < 0 ||
		    ras_calendar_add_working_days(o->cal, &from, o->ack_bus_days, &due, NULL) < 0)
			continue;
		/* due by the end of `due`: overdue from the day after */
		if (ras_date_cmp(&today, &due) <= 0)
			continue;
		if ((err = ras_db_query(db, NULL, SQL_BUS_MISSING, 3, (struct ras_db_param[]){
		    RAS_DB_TEXT(ras_db_res_get(res, i, 0)), RAS_DB_TEXT(at),
		    RAS_DB_TEXT(ras_outbox_num(a, o->ack_bus_days)) })) < 0 ||
		    (err = ras_db_query(db, NULL, SQL_ACK_EVENT, 5, (struct ras_db_param[]){
		    RAS_DB_TEXT(ras_db_res_get(res, i, 0)), RAS_DB_TEXT("document-ack-missing"),
		    RAS_DB_TEXT("business"), RAS_DB_TEXT(NULL),
		    RAS_DB_TEXT("no business acknowledgement in time") })) < 0)
			goto done;
		if (st)
			st->missing++;
	}
done:
	ras_db_res_free(res);
	return err;
}

int
ras_outbox_acks(struct ras_outbox *o, struct ras_db *db, int64_t now, struct ras_outbox_ack_stats *st)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_db_res *res = NULL;
	const char *at;
	int err, rows;

	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	at = ras_outbox_ts(a, now);
	if ((err = ras_db_begin(db)) < 0)
		goto out;
	if ((err = ras_db_query(db, &res, SQL_CLAIM_ACKS, 1, (struct ras_db_param[]){
	    RAS_DB_TEXT(ras_outbox_num(a, o->batch)) })) < 0)
		goto fail;
	rows = ras_db_res_rows(res);
	for (int i = 0; i < rows; i++) {
		const char *mid = ras_arena_strdup(a, ras_db_res_get(res, i, 0));
		const char *payload = ras_arena_strdup(a, ras_db_res_get(res, i, 2));

		if (st)
			st->responses++;
		if ((err = process_one(o, db, a, mid, payload ? payload : "", at, st)) < 0)
			goto fail;
	}
	ras_db_res_free(res);
	res = NULL;
	if ((err = overdue(o, db, a, now, at, st)) < 0)
		goto fail;
	err = ras_db_commit(db);
	goto out;
fail:
	ras_db_rollback(db);
out:
	ras_db_res_free(res);
	ras_arena_free(a);
	return err;
}
