/* triage: the batch triage stage and decision storage (see include/ras/triage.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/clinicians.h"
#include "ras/config.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mappings.h"
#include "ras/pds_store.h"
#include "ras/referral_json.h"
#include "ras/rules.h"
#include "ras/store.h"
#include "ras/triage.h"

struct ers_map {
	char *ers_service_id;
	char *service;
};

struct ras_triage {
	struct ras_mappings *m;
	struct ras_clinicians *clinicians;
	char *default_service;
	size_t n_ers, cap_ers;
	struct ers_map *ers;
	/* [pds] base_url set: referrals that need demographics wait for them
	 * (the demographics stage, pds_store.h); with verify, every referral */
	bool pds, pds_verify;
};

/* ---- setup ------------------------------------------------------------------ */

struct list_ctx {
	struct ras_triage *t;
	const char *service;
};

static int
add_ers(const char *item, void *vctx)
{
	struct list_ctx *c = vctx;
	struct ras_triage *t = c->t;

	if (strlen(item) > RAS_ID_MAX)
		return ras_error_code(RAS_EINVALID, "[service %s] ers_service_ids: an id is too long", c->service);
	for (size_t i = 0; i < t->n_ers; i++)
		if (strcmp(t->ers[i].ers_service_id, item) == 0) {
			if (strcmp(t->ers[i].service, c->service) == 0)
				return 0;
			return ras_error_code(RAS_EINVALID,
			    "e-RS service id %s is listed for both [service %s] and [service %s]", item,
			    t->ers[i].service, c->service);
		}
	if (t->n_ers == t->cap_ers) {
		size_t cap = t->cap_ers ? t->cap_ers * 2 : 8;
		struct ers_map *nv = realloc(t->ers, cap * sizeof(*nv));

		if (nv == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		t->ers = nv;
		t->cap_ers = cap;
	}
	t->ers[t->n_ers].ers_service_id = strdup(item);
	t->ers[t->n_ers].service = strdup(c->service);
	if (t->ers[t->n_ers].ers_service_id == NULL || t->ers[t->n_ers].service == NULL) {
		free(t->ers[t->n_ers].ers_service_id);
		free(t->ers[t->n_ers].service);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	t->n_ers++;
	return 0;
}

int
ras_triage_new(const struct ras_config *cfg, const char *mappings_dir, struct ras_triage **out)
{
	struct ras_triage *t = calloc(1, sizeof(*t));
	const char *names[RAS_SERVICES_MAX], *def;
	size_t n;
	int err;

	if (t == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = ras_mappings_load(mappings_dir, &t->m)) < 0)
		goto fail;
	n = ras_config_instances(cfg, "service", names, RAS_SERVICES_MAX);
	if (n > RAS_SERVICES_MAX) {
		err = ras_error_code(RAS_ETOOBIG, "more than %d [service] sections", RAS_SERVICES_MAX);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		const char *autom = ras_config_get(cfg, "service", names[i], "automation");
		const char *ids = ras_config_get(cfg, "service", names[i], "ers_service_ids");
		struct list_ctx lc = { t, names[i] };

		if (ras_mappings_ruleset(t->m, names[i]) == NULL) {
			err = ras_error_code(RAS_EINVALID, "[service %s]: no rule set %s/services/%s.json",
			    names[i], mappings_dir, names[i]);
			goto fail;
		}
		if (autom) {
			int a = ras_rules_automation_parse(autom);

			if (a < 0) {
				err = ras_error_code(RAS_EINVALID,
				    "[service %s] automation must be administrative, all or none", names[i]);
				goto fail;
			}
			if ((err = ras_mappings_set_automation(t->m, names[i], (enum ras_automation)a)) < 0)
				goto fail;
		}
		if (ids && (err = ras_config_list_each(ids, add_ers, &lc)) < 0)
			goto fail;
	}
	if ((err = ras_clinicians_from_config(cfg, &t->clinicians)) < 0)
		goto fail;
	for (size_t i = 0; i < ras_clinicians_count(t->clinicians); i++) {
		const struct ras_clinician *c = ras_clinicians_at(t->clinicians, i);

		for (size_t k = 0; k < c->n_services; k++)
			if (ras_mappings_ruleset(t->m, c->services[k]) == NULL) {
				err = ras_error_code(RAS_EINVALID, "[clinician %s] services: \"%.60s\" has no rule set",
				    c->sds_id, c->services[k]);
				goto fail;
			}
	}
	t->pds = cfg && ras_config_get(cfg, "pds", NULL, "base_url") != NULL;
	t->pds_verify = t->pds && ras_config_bool(cfg, "pds", NULL, "verify");
	def = ras_config_get(cfg, "triage", NULL, "default_service");
	if (def && *def) {
		if (ras_mappings_ruleset(t->m, def) == NULL) {
			err = ras_error_code(RAS_EINVALID, "[triage] default_service \"%s\" has no rule set", def);
			goto fail;
		}
		if ((t->default_service = strdup(def)) == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto fail;
		}
	}
	*out = t;
	return 0;
fail:
	ras_triage_free(t);
	return err;
}

void
ras_triage_free(struct ras_triage *t)
{
	if (t == NULL)
		return;
	ras_mappings_free(t->m);
	ras_clinicians_free(t->clinicians);
	for (size_t i = 0; i < t->n_ers; i++) {
		free(t->ers[i].ers_service_id);
		free(t->ers[i].service);
	}
	free(t->ers);
	free(t->default_service);
	free(t);
}

const struct ras_mappings *
ras_triage_mappings(const struct ras_triage *t)
{
	return t->m;
}

const struct ras_clinicians *
ras_triage_clinicians(const struct ras_triage *t)
{
	return t->clinicians;
}

const char *
ras_triage_assign(const struct ras_triage *t, const char *stored, const char *ers_service_id,
    const char **why)
{
	*why = NULL;
	if (stored && *stored) {
		if (ras_mappings_ruleset(t->m, stored))
			return ras_rules_service(ras_mappings_ruleset(t->m, stored));
		*why = "the referral's service has no rule set in the mappings";
		return NULL;
	}
	for (size_t i = 0; ers_service_id && i < t->n_ers; i++)
		if (strcmp(t->ers[i].ers_service_id, ers_service_id) == 0)
			return ras_rules_service(ras_mappings_ruleset(t->m, t->ers[i].service));
	if (t->default_service)
		return ras_rules_service(ras_mappings_ruleset(t->m, t->default_service));
	*why = ers_service_id ?
	    "its e-RS service id is in no [service ID] ers_service_ids and there is no [triage] default_service" :
	    "it came with no service and there is no [triage] default_service";
	return NULL;
}

/* ---- summaries -------------------------------------------------------------- */

void
ras_triage_summary(const struct ras_decision *d, char *buf, size_t size)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	(void)ras_buf_printf(&b, "%s: %s", d->service ? d->service : "?", ras_decision_outcome_name(d->outcome));
	if (d->onward_target)
		(void)ras_buf_printf(&b, " to %s", d->onward_target);
	(void)ras_buf_puts(&b, d->final ? " (final)" : " (recommendation)");
	for (size_t i = 0; i < d->n_reasons; i++)
		(void)ras_buf_printf(&b, "%s%s [%s]", i ? ", " : " ", d->reasons[i].rule,
		    d->reasons[i].clause);
	for (size_t i = 0; i < d->n_deadlines; i++) {
		char due[RAS_TIME_STR_MAX];

		if (d->deadlines[i].hours)
			ras_time_format_uk(d->deadlines[i].due_at, due);
		else
			ras_date_format(&d->deadlines[i].due_date, due);
		(void)ras_buf_printf(&b, "%s%s %s", i ? ", " : "; ", d->deadlines[i].kind, due);
	}
	snprintf(buf, size, "%s", b.data ? b.data : "");
	ras_buf_free(&b);
}

/* ---- storing decisions ------------------------------------------------------- */

/* ras_store_decisions() (schema/014): a batch [{referral, doc, deadlines}]
 * in one statement; one row (ord, decision_id) per decision, in order. */
static const char SQL_STORE_DECISIONS[] =
    "SELECT ord, decision_id FROM ras_store_decisions($1::jsonb) ORDER BY ord";

/* Referrals that get no decision: a state and an event saying why, for a
 * batch [{id, state, event, reason}] in one statement. */
static const char SQL_MARK[] =
    "WITH m AS (SELECT (j.x ->> 'id')::bigint AS id, j.x ->> 'state' AS state, j.x ->> 'event' AS event,"
    "                  j.x ->> 'reason' AS reason, j.n"
    "           FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS j(x, n)),"
    " u AS (UPDATE referrals r SET state = m.state, updated_at = now() FROM m WHERE r.id = m.id"
    "       RETURNING r.id, r.ubrn, m.event, m.reason, m.n)"
    " INSERT INTO events (referral_id, ubrn, kind, actor, detail)"
    " SELECT id, ubrn, event, 'rasd', jsonb_build_object('reason', reason) FROM u ORDER BY n";

/* The decision as ras_store_decisions() reads it: doc is
 * ras_decision_to_json(full), deadlines the clocks to start. */
static int
decision_params(struct ras_arena *a, const struct ras_decision *d, const char **doc_text,
    const char **deadlines_text)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	json_t *doc = NULL, *dls = NULL;
	/* an engine decision whose facts are not written out yet: written
	 * as text straight from its typed facts (rules.h), not as a tree */
	bool facts_text = d->facts == NULL && d->trace != NULL;
	int err;

	if (d->service == NULL || d->outcome == 0 || d->decided_by == NULL)
		return ras_error_code(RAS_EINVALID, "a decision needs a service, an outcome and who decided");
	if ((dls = json_array()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if ((err = ras_decision_to_json(d, true, &doc)) < 0)
		goto done;
	for (size_t i = 0; i < d->n_deadlines; i++) {
		const struct ras_deadline *dl = &d->deadlines[i];
		char date[RAS_DATE_STR_MAX], at[RAS_TIME_STR_MAX];
		json_t *x;

		ras_date_format(&dl->due_date, date);
		ras_time_format_utc(dl->due_at, at);
		x = json_pack("{s:s, s:s?, s:s, s:s}", "kind", dl->kind, "clause", dl->clause,
		    "due_date", date, "due_at", at);
		if ((err = ras_json_append_new(dls, x)) < 0)
			goto done;
	}
	if ((err = ras_json_dump(doc, RAS_JSON_COMPACT, &b)) < 0)
		goto done;
	if (facts_text) {
		/* {...} becomes {...,"facts":{...}}: the store reads the
		 * document as jsonb, so where the key stands is no matter */
		if (b.len < 2 || b.data[b.len - 1] != '}') {
			err = ras_error_code(RAS_EINVALID, "the decision document is not an object");
			goto done;
		}
		b.len--;
		if ((err = ras_buf_append(&b, ",\"facts\":", 9)) < 0 ||
		    (err = ras_rules_facts_text(d, &b)) < 0 || (err = ras_buf_putc(&b, '}')) < 0)
			goto done;
	}
	*doc_text = ras_arena_strndup(a, b.data, b.len);
	ras_buf_reset(&b);
	if ((err = ras_json_dump(dls, RAS_JSON_COMPACT, &b)) < 0)
		goto done;
	*deadlines_text = ras_arena_strndup(a, b.data, b.len);
	if (*doc_text == NULL || *deadlines_text == NULL)
		err = ras_error_code(RAS_ENOMEM, "out of memory");
done:
	ras_buf_free(&b);
	json_decref(doc);
	json_decref(dls);
	return err;
}

/* One decision into the batch array being built in b (its opening '['
 * and separators included; the caller closes it). */
static int
batch_add(struct ras_buf *b, int64_t referral_id, const char *doc, const char *dls)
{
	return ras_buf_printf(b, "%s{\"referral\":%lld,\"doc\":%s,\"deadlines\":%s}", b->len ? "," : "[",
	    (long long)referral_id, doc, dls);
}

/* Close the batch array (an empty batch is "[]"). */
static int
batch_close(struct ras_buf *b)
{
	if (b->len == 0 && ras_buf_putc(b, '[') < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (ras_buf_putc(b, ']') < 0)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	return 0;
}

/* The decision ids of a ras_store_decisions() result, in batch order. */
static int
batch_ids(struct ras_db_res *res, size_t n, int64_t *ids)
{
	if ((size_t)ras_db_res_rows(res) != n)
		return ras_error_set("storing %zu decisions returned %d ids", n, ras_db_res_rows(res));
	for (size_t i = 0; i < n; i++)
		if (!ras_db_res_int(res, (int)i, 1, &ids[i]) || ids[i] <= 0)
			return ras_error_set("storing the decisions returned no id for the %zu-th", i + 1);
	return 0;
}

int
ras_triage_store_decisions(struct ras_db *db, const int64_t *referral_ids,
    const struct ras_decision *d, size_t n, int64_t *decision_ids)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_buf batch = RAS_BUF_INIT(0);
	struct ras_db_res *res = NULL;
	int64_t *ids = NULL;
	int err = 0;

	if (a == NULL || (ids = calloc(n ? n : 1, sizeof(*ids))) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n && err == 0; i++) {
		const char *doc, *dls;

		if ((err = decision_params(a, &d[i], &doc, &dls)) == 0 &&
		    batch_add(&batch, referral_ids[i], doc, dls) < 0)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
	}
	if (err == 0)
		err = batch_close(&batch);
	if (err == 0)
		err = ras_db_query(db, &res, SQL_STORE_DECISIONS, 1, &RAS_DB_TEXT(batch.data));
	if (err == 0)
		err = batch_ids(res, n, ids);
	if (err == 0 && decision_ids)
		memcpy(decision_ids, ids, n * sizeof(*ids));
done:
	ras_db_res_free(res);
	ras_buf_free(&batch);
	free(ids);
	ras_arena_free(a);
	return err;
}

int
ras_triage_store_decision(struct ras_db *db, int64_t referral_id, const struct ras_decision *d,
    int64_t *decision_id)
{
	return ras_triage_store_decisions(db, &referral_id, d, 1, decision_id);
}

/* ---- the stage -------------------------------------------------------------- */

struct row {
	int64_t id, received, payload, version;
	int64_t doc_size;           /* referrals.doc as stored (pg_column_size) */
	/* read a chunk at a time (fetch_rows), into the chunk's arena */
	const char *service, *ers_service, *doc, *ubrn, *key;
	const char *pds;            /* the referral's PDS answer (pds_store.h), NULL when none */
	/* handed over by normalise (store.h): the document as stored, not read
	 * back; the fields above are the handover's */
	json_t *docj;
};

struct plan {
	struct row *row;
	struct ras_triage_report *rep;
	enum { PLAN_NONE, PLAN_DECISION, PLAN_MARK } kind;
	const char *doc, *dls;      /* PLAN_DECISION: ras_store_decisions' doc and deadlines */
	const char *state, *event, *why;   /* PLAN_MARK */
};

/* The claim takes ids and sizes only (index on (state, id), LIMIT, SKIP
 * LOCKED): reading the documents of the whole backlog to sort it would make
 * every batch cost as much as the backlog, and holding each claimed row's
 * details would make a batch's memory grow with batch_size.  Details and
 * documents are read a chunk at a time (SQL_ROWS), as they are decided. */
static const char SQL_CLAIM[] =
    "SELECT r.id::text, pg_column_size(r.doc)::text FROM referrals r"
    "  WHERE r.state = 'new'"
    "   AND ($1::bigint[] IS NULL OR r.id IN (SELECT e.referral_id FROM events e"
    "        WHERE e.payload_id = ANY ($1::bigint[]) AND e.referral_id IS NOT NULL))"
    "   AND ($3::bigint IS NULL OR r.id = $3::bigint)"
    /* with PDS on, a referral that needs demographics waits for its answer */
    "   AND NOT ($4::boolean AND r.doc -> 'patient' ->> 'nhs_number_status' = 'valid'"
    "        AND ($5::boolean OR r.doc -> 'patient' ->> 'birth_date' IS NULL"
    "             OR r.doc -> 'patient' ->> 'family' IS NULL OR r.doc -> 'patient' ->> 'practice_ods' IS NULL)"
    "        AND NOT EXISTS (SELECT 1 FROM pds_checks k WHERE k.referral_id = r.id AND k.state = 'done'))"
    "  ORDER BY r.id LIMIT $2::int FOR UPDATE OF r SKIP LOCKED";

/* A chunk's claimed referrals, whole ($1: their ids; $2: the payloads of
 * the filter, whose latest that touched each referral is reported). */
static const char SQL_ROWS[] =
    "SELECT r.id::text, r.service, r.ers_service_id,"
    "  floor(extract(epoch FROM r.received_at))::bigint::text, r.doc::text, r.ubrn,"
    "  r.referral_key, r.version::text,"
    "  (SELECT max(e.payload_id) FROM events e WHERE e.referral_id = r.id"
    "    AND e.payload_id = ANY ($2::bigint[]))::text,"
    "  (SELECT jsonb_build_object('result', k.result, 'version', l.version_id, 'summary', l.summary,"
    "    'lookup_id', l.id) FROM pds_checks k LEFT JOIN pds_lookups l ON l.id = k.lookup_id"
    "    WHERE k.referral_id = r.id AND k.state = 'done')::text"
    " FROM referrals r WHERE r.id = ANY ($1::bigint[]) ORDER BY r.id";

static const char *
cell(struct ras_arena *a, struct ras_db_res *res, int r, int c)
{
	return ras_db_res_isnull(res, r, c) ? NULL : ras_arena_strdup(a, ras_db_res_get(res, r, c));
}

/* Claim up to `limit` referrals (or only `only_id`): their ids and sizes. */
static int
claim(struct ras_db *db, const struct ras_triage *t, struct ras_arena *a, const char *payloads,
    size_t limit, const char *only_id, struct row **out, size_t *n)
{
	struct ras_db_res *res = NULL;
	char lim[24];
	int err, rows;

	*n = 0;
	snprintf(lim, sizeof(lim), "%zu", limit);
	if ((err = ras_db_query(db, &res, SQL_CLAIM, 5, (struct ras_db_param[]){
	    RAS_DB_TEXT(payloads), RAS_DB_TEXT(lim), RAS_DB_TEXT(only_id),
	    RAS_DB_TEXT(t->pds ? "true" : "false"), RAS_DB_TEXT(t->pds_verify ? "true" : "false") })) < 0)
		return err;
	rows = ras_db_res_rows(res);
	*out = ras_arena_calloc(a, rows ? (size_t)rows : 1, sizeof(**out));
	if (*out == NULL) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (int i = 0; i < rows; i++) {
		(void)ras_db_res_int(res, i, 0, &(*out)[i].id);
		(void)ras_db_res_int(res, i, 1, &(*out)[i].doc_size);
	}
	*n = (size_t)rows;
	ras_db_res_free(res);
	return 0;
}

/* The details and documents of rows[0..n) (sorted by id, as claimed), into
 * arena a. */
static int
fetch_rows(struct ras_db *db, struct ras_arena *a, const char *payloads, struct row *rows, size_t n)
{
	struct ras_buf ids = RAS_BUF_INIT(0);
	struct ras_db_res *res = NULL;
	int err, got;
	size_t k = 0, asked = 0;

	(void)ras_buf_putc(&ids, '{');
	for (size_t i = 0; i < n; i++)
		if (rows[i].docj == NULL)   /* handed over: nothing to read */
			(void)ras_buf_printf(&ids, "%s%lld", asked++ ? "," : "", (long long)rows[i].id);
	if (asked == 0) {
		ras_buf_free(&ids);
		return 0;
	}
	if (ras_buf_putc(&ids, '}') < 0) {
		ras_buf_free(&ids);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	err = ras_db_query(db, &res, SQL_ROWS, 2,
	    (struct ras_db_param[]){ RAS_DB_TEXT(ids.data), RAS_DB_TEXT(payloads) });
	ras_buf_free(&ids);
	if (err < 0)
		return err;
	got = ras_db_res_rows(res);
	for (int r = 0; r < got; r++) {
		int64_t id = 0;
		struct row *w;

		(void)ras_db_res_int(res, r, 0, &id);
		while (k < n && (rows[k].id != id || rows[k].docj != NULL))
			k++;
		if (k == n)
			break;
		w = &rows[k];
		(void)ras_db_res_int(res, r, 3, &w->received);
		(void)ras_db_res_int(res, r, 7, &w->version);
		w->payload = 0;
		(void)ras_db_res_int(res, r, 8, &w->payload);
		w->service = cell(a, res, r, 1);
		w->ers_service = cell(a, res, r, 2);
		w->doc = cell(a, res, r, 4);
		w->ubrn = cell(a, res, r, 5);
		w->key = cell(a, res, r, 6);
		w->pds = cell(a, res, r, 9);
		if (w->doc == NULL || w->key == NULL) {
			ras_db_res_free(res);
			return ras_error_code(RAS_ENOMEM, "out of memory");
		}
	}
	ras_db_res_free(res);
	for (size_t i = 0; i < n; i++)
		if (rows[i].doc == NULL && rows[i].docj == NULL)
			return ras_error_code(RAS_EIO, "referral #%lld was claimed but its document was not read",
			    (long long)rows[i].id);
	return 0;
}

/* What a row held of its chunk's arena, forgotten when the chunk is freed. */
static void
forget_row(struct row *w)
{
	w->service = w->ers_service = w->doc = w->ubrn = w->key = w->pds = NULL;
	w->docj = NULL;
}

/* Is x in the sorted ids[0..n)? */
static bool
sorted_has(const int64_t *ids, size_t n, int64_t x)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ids[mid] < x)
			lo = mid + 1;
		else if (ids[mid] > x)
			hi = mid;
		else
			return true;
	}
	return false;
}

/* A claimed row from the handover instead of the database: what fetch_rows
 * would read (SQL_ROWS).  payload is the latest payload of the filter with
 * an event on the referral: only its creation names it (store.h), so its
 * payload when the filter holds it, else none.  No PDS answer: the handover
 * is not used with PDS on. */
static void
take_handed(struct row *w, const struct ras_store_handed *e, const int64_t *filter, size_t nfilter)
{
	w->received = e->received;
	w->version = e->version;
	w->payload = sorted_has(filter, nfilter, e->payload_id) ? e->payload_id : 0;
	w->service = e->service;
	w->ers_service = e->ers_service_id;
	w->ubrn = e->ubrn;
	w->key = e->key;
	w->pds = NULL;
	w->doc = NULL;
	w->docj = e->doc;
}

static void
mark(struct ras_arena *a, struct plan *p, const char *state, const char *event, const char *why)
{
	p->rep->state = state;
	snprintf(p->rep->message, sizeof(p->rep->message), "%s", why);
	p->kind = PLAN_MARK;
	p->state = state;
	p->event = event;
	p->why = ras_arena_strdup(a, why);
}

/* Decide one claimed referral and build its statement.  Bad data becomes a
 * triage-failed or unassigned plan; only out-of-memory is an error. */
static int
plan_row(struct ras_arena *a, const struct ras_triage *t, int64_t now, struct row *w,
    struct ras_triage_report *rep, struct plan *p)
{
	struct ras_referral r;
	struct ras_decision d;
	struct ras_pds_findings pf;
	const struct ras_ruleset *rs;
	const char *service, *why, *doc, *dls;
	json_t *j = NULL;
	int err = 0;

	memset(p, 0, sizeof(*p));
	memset(rep, 0, sizeof(*rep));
	p->row = w;
	p->rep = rep;
	rep->referral_id = w->id;
	rep->payload_id = w->payload;
	if (w->ubrn)
		snprintf(rep->referral, sizeof(rep->referral), "%s v%lld", w->ubrn, (long long)w->version);
	else
		snprintf(rep->referral, sizeof(rep->referral), "%.80s", w->key);

	ras_error_clear();
	if (w->docj) {
		/* handed over: the tree the stored text was written from */
		j = w->docj;
		json_incref(j);
	} else {
		err = ras_json_parse(w->doc, strlen(w->doc), 0, &j);
	}
	if (err < 0 || (err = ras_referral_json_load(a, j, &r)) < 0) {
		json_decref(j);
		if (err == RAS_ENOMEM)
			return err;
		mark(a, p, "triage-failed", "triage-failed",
		    ras_arena_printf(a, "cannot read the stored referral: %s", ras_error_last()));
		return 0;
	}
	json_decref(j);   /* the arena holds its own reference */
	/* PDS demographics fill what the referral lacks (pds_store.h) */
	if ((err = ras_pds_store_overlay(a, w->pds, &r, &pf)) < 0) {
		if (err == RAS_ENOMEM)
			return err;
		mark(a, p, "triage-failed", "triage-failed",
		    ras_arena_printf(a, "cannot read the PDS answer: %s", ras_error_last()));
		return 0;
	}
	service = ras_triage_assign(t, w->service, w->ers_service ? w->ers_service : r.ers_service_id, &why);
	if (service == NULL) {
		mark(a, p, "unassigned", "triage-unassigned",
		    ras_arena_printf(a, "no rasd service: %s", why));
		return 0;
	}
	snprintf(rep->service, sizeof(rep->service), "%s", service);
	rs = ras_mappings_ruleset(t->m, service);
	if ((err = ras_rules_decide(a, rs, &r, w->received, ras_mappings_calendar(t->m), now, &d)) < 0) {
		if (err == RAS_ENOMEM)
			return err;
		mark(a, p, "triage-failed", "triage-failed",
		    ras_arena_printf(a, "cannot decide: %s", ras_error_last()));
		return 0;
	}
	/* With PDS findings the facts are an object, which gains a "pds" fact;
	 * without, they are written once as text when stored (decision_params) */
	if (pf.have && (err = ras_rules_facts_json(a, &d)) < 0)
		return err;
	if (ras_pds_store_findings_apply(a, &pf, &d)) {
		/* sent to review on what PDS said: the clocks of a review */
		bool urgent = r.priority == RAS_PRIORITY_URGENT || r.priority == RAS_PRIORITY_TWO_WEEK_WAIT;
		bool covered;

		if ((err = ras_rules_deadlines(a, rs, d.outcome, NULL, urgent, false, w->received,
		    ras_mappings_calendar(t->m), &d.deadlines, &d.n_deadlines, &covered)) < 0) {
			if (err == RAS_ENOMEM)
				return err;
			mark(a, p, "triage-failed", "triage-failed",
			    ras_arena_printf(a, "cannot set the clocks: %s", ras_error_last()));
			return 0;
		}
	}
	if ((err = decision_params(a, &d, &doc, &dls)) < 0)
		return err;
	rep->state = d.final ? "decided" : "review";
	rep->outcome = d.outcome;
	rep->final = d.final;
	if (d.onward_target)
		snprintf(rep->onward_target, sizeof(rep->onward_target), "%s", d.onward_target);
	ras_triage_summary(&d, rep->message, sizeof(rep->message));
	p->kind = PLAN_DECISION;
	p->doc = doc;
	p->dls = dls;
	return 0;
}

/* The marks of plans[0..n) as one JSON array [{id, state, event, reason}]. */
static int
marks_json(struct plan *plans, size_t n, struct ras_buf *out)
{
	json_t *arr = json_array();
	int err = 0;

	if (arr == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && err == 0; i++)
		if (plans[i].kind == PLAN_MARK)
			err = ras_json_append_new(arr, json_pack("{s:I, s:s, s:s, s:s}", "id",
			    (json_int_t)plans[i].row->id, "state", plans[i].state, "event", plans[i].event,
			    "reason", plans[i].why ? plans[i].why : ""));
	if (err == 0)
		err = ras_json_dump(arr, RAS_JSON_COMPACT, out);
	json_decref(arr);
	return err;
}

/* Write the plans of a chunk (the transaction is already open): every
 * decision in one ras_store_decisions() statement, every referral that
 * gets none in one more, pipelined. */
static int
run_plans(struct ras_db *db, struct plan *plans, size_t n)
{
	struct ras_buf batch = RAS_BUF_INIT(0), marks = RAS_BUF_INIT(0);
	size_t n_dec = 0, n_mark = 0, nq = 0;
	int64_t *ids = NULL;
	int err = 0, first = 0;

	for (size_t i = 0; i < n && err == 0; i++) {
		if (plans[i].kind == PLAN_DECISION) {
			if (batch_add(&batch, plans[i].row->id, plans[i].doc, plans[i].dls) < 0)
				err = ras_error_code(RAS_ENOMEM, "out of memory");
			n_dec++;
		} else if (plans[i].kind == PLAN_MARK)
			n_mark++;
	}
	if (err == 0 && n_dec)
		err = batch_close(&batch);
	if (err == 0 && n_mark)
		err = marks_json(plans, n, &marks);
	if (err == 0 && (ids = calloc(n_dec ? n_dec : 1, sizeof(*ids))) == NULL)
		err = ras_error_code(RAS_ENOMEM, "out of memory");
	if (err < 0 || (err = ras_db_pipeline_enter(db)) < 0)
		goto done;
	if (n_dec && (err = ras_db_pipeline_send(db, SQL_STORE_DECISIONS, 1, &RAS_DB_TEXT(batch.data))) == 0)
		nq++;
	if (err == 0 && n_mark && (err = ras_db_pipeline_send(db, SQL_MARK, 1, &RAS_DB_TEXT(marks.data))) == 0)
		nq++;
	if (err == 0)
		err = ras_db_pipeline_sync(db);
	for (size_t q = 0; q < nq && err == 0; q++) {
		struct ras_db_res *res = NULL;
		bool decisions = q == 0 && n_dec;
		int e = ras_db_pipeline_result(db, &res);

		if (e == 0 && decisions)
			e = batch_ids(res, n_dec, ids);
		if (e < 0 && first == 0) {
			first = e;
			if (n == 1)
				ras_error_context("referral %s", plans[0].rep->referral);
			else
				ras_error_context("a batch of %zu referrals", n);
		}
		ras_db_res_free(res);
	}
	{
		int e2 = ras_db_pipeline_exit(db);

		if (err == 0)
			err = first ? first : e2;
	}
	for (size_t i = 0, k = 0; err == 0 && i < n; i++)
		if (plans[i].kind == PLAN_DECISION)
			plans[i].rep->decision_id = ids[k++];
done:
	free(ids);
	ras_buf_free(&batch);
	ras_buf_free(&marks);
	return err;
}

static int
cmp_id(const void *x, const void *y)
{
	int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

	return a < b ? -1 : a > b;
}

static char *
payload_array(const int64_t *ids, size_t n)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	(void)ras_buf_putc(&b, '{');
	for (size_t i = 0; i < n; i++)
		(void)ras_buf_printf(&b, "%s%lld", i ? "," : "", (long long)ids[i]);
	if (ras_buf_putc(&b, '}') < 0) {
		ras_buf_free(&b);
		return NULL;
	}
	return ras_buf_detach(&b, NULL);
}

/* A batch's reports are kept, until it commits, packed (ras_buf_pack): the
 * fixed part, then the four strings at their length (~150 bytes a referral
 * instead of the ~760 of a struct ras_triage_report), so that a batch of
 * 10,000 holds ~1.5 MB of reports whatever batch_size is. */
struct packed_report {
	int64_t referral_id, payload_id, decision_id;
	const char *state;          /* a static string */
	enum ras_outcome outcome;
	bool final;
};

static int
pack_report(struct ras_buf *pool, const struct ras_triage_report *r)
{
	const char *str[4] = { r->referral, r->service, r->onward_target, r->message };
	struct packed_report pk = { r->referral_id, r->payload_id, r->decision_id, r->state, r->outcome,
		r->final };

	return ras_buf_pack(pool, &pk, sizeof(pk), str, 4);
}

static size_t
unpack_reports(const struct ras_buf *pool, ras_triage_report_fn *fn, void *ctx)
{
	struct ras_triage_report r;
	struct packed_report pk;
	char *const dst[4] = { r.referral, r.service, r.onward_target, r.message };
	static const size_t cap[4] = { sizeof(r.referral), sizeof(r.service), sizeof(r.onward_target),
		sizeof(r.message) };
	size_t off = 0, n = 0;

	memset(&r, 0, sizeof(r));
	while (ras_buf_unpack(pool, &off, &pk, sizeof(pk), dst, cap, 4)) {
		r.referral_id = pk.referral_id;
		r.payload_id = pk.payload_id;
		r.decision_id = pk.decision_id;
		r.state = pk.state;
		r.outcome = pk.outcome;
		r.final = pk.final;
		fn(&r, ctx);
		n++;
	}
	return n;
}

static int
pending_each(struct ras_db *db, const struct ras_triage *t, int64_t now, size_t limit,
    const int64_t *payload_ids, size_t n_payload_ids, const struct ras_store_handover *h,
    ras_triage_report_fn *fn, void *ctx, size_t *n_out)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_triage_report *reps = NULL;
	struct ras_buf pool = RAS_BUF_INIT(0);
	struct plan *plans = NULL;
	struct row *rows = NULL;
	char *payloads = NULL;
	int64_t *filter = NULL;     /* payload_ids sorted, for the handed rows */
	size_t n = 0, cap, nfilter = 0;
	int err;

	*n_out = 0;
	if (a == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (payload_ids && n_payload_ids && (payloads = payload_array(payload_ids, n_payload_ids)) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	/* With PDS on a referral may carry a PDS answer: always read back. */
	if (t->pds || ras_store_handover_count(h, NULL) == 0)
		h = NULL;
	if (h && payloads) {
		if ((filter = ras_arena_calloc(a, n_payload_ids, sizeof(*filter))) == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		memcpy(filter, payload_ids, n_payload_ids * sizeof(*filter));
		qsort(filter, n_payload_ids, sizeof(*filter), cmp_id);
		nfilter = n_payload_ids;
	}
	if (limit == 0)
		limit = 1;
	if ((err = ras_db_begin(db)) < 0)
		goto done;
	if ((err = claim(db, t, a, payloads, limit, NULL, &rows, &n)) < 0)
		goto fail;
	if (n == 0) {
		ras_db_rollback(db);
		goto done;
	}
	cap = n < RAS_TRIAGE_CHUNK_ROWS ? n : RAS_TRIAGE_CHUNK_ROWS;
	reps = calloc(cap, sizeof(*reps));
	plans = calloc(cap, sizeof(*plans));
	if (reps == NULL || plans == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	/* Decided and written a chunk at a time (RAS_TRIAGE_CHUNK_BYTES of
	 * stored documents, at most RAS_TRIAGE_CHUNK_ROWS referrals), in the one
	 * transaction: what a batch holds in memory is its claimed ids and
	 * packed reports, whatever batch_size is. */
	err = 0;
	for (size_t s = 0, e; s < n && err == 0; s = e) {
		struct ras_arena *ca = ras_arena_new();
		int64_t bytes = rows[s].doc_size;

		for (e = s + 1; e < n && e - s < cap && bytes + rows[e].doc_size <= (int64_t)RAS_TRIAGE_CHUNK_BYTES;
		    e++)
			bytes += rows[e].doc_size;
		if (ca == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		for (size_t i = s; h && i < e; i++) {
			const struct ras_store_handed *x = ras_store_handover_find(h, rows[i].id);

			if (x && x->doc)
				take_handed(&rows[i], x, filter, nfilter);
		}
		if (err == 0)
			err = fetch_rows(db, ca, payloads, rows + s, e - s);
		for (size_t i = s; i < e && err == 0; i++)
			err = plan_row(ca, t, now, &rows[i], &reps[i - s], &plans[i - s]);
		if (err == 0)
			err = run_plans(db, plans, e - s);
		for (size_t i = s; i < e && err == 0; i++)
			err = pack_report(&pool, &reps[i - s]);
		for (size_t i = s; i < e; i++) {
			forget_row(&rows[i]);
			memset(&plans[i - s], 0, sizeof(plans[i - s]));   /* its strings were in ca */
		}
		ras_arena_free(ca);
	}
	if (err == RAS_ENOMEM)
		goto fail;
	if (err == 0 && (err = ras_db_commit(db)) == 0)
		goto report;
	ras_db_rollback(db);
	if (err == RAS_EIO || err == RAS_ENOMEM)
		goto done;

	/* The batch failed in the database (say a trigger of a later stage
	 * refused one decision): take the referrals one at a time so that one
	 * cannot hold up the rest. */
	pool.len = 0;
	for (size_t i = 0; i < n; i++) {
		struct ras_triage_report *rep = &reps[0];
		struct row *one = NULL;
		struct ras_arena *ca = NULL;
		char id[24];
		size_t got = 0;

		memset(rep, 0, sizeof(*rep));
		snprintf(id, sizeof(id), "%lld", (long long)rows[i].id);
		if ((err = ras_db_begin(db)) < 0)
			goto done;
		if ((err = claim(db, t, a, NULL, 1, id, &one, &got)) < 0) {
			ras_db_rollback(db);
			goto done;
		}
		if (got == 0) {
			ras_db_rollback(db);
			rep->referral_id = rows[i].id;
			rep->state = "new";
			snprintf(rep->message, sizeof(rep->message), "taken by another process");
			if ((err = pack_report(&pool, rep)) < 0)
				goto done;
			continue;
		}
		if ((ca = ras_arena_new()) == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		else if ((err = fetch_rows(db, ca, payloads, one, 1)) == 0 &&
		    (err = plan_row(ca, t, now, one, rep, &plans[0])) == 0)
			err = run_plans(db, &plans[0], 1);
		memset(&plans[0], 0, sizeof(plans[0]));
		ras_arena_free(ca);
		if (err == 0 && (err = ras_db_commit(db)) == 0) {
			if ((err = pack_report(&pool, rep)) < 0)
				goto done;
			continue;
		}
		ras_db_rollback(db);
		if (err == RAS_EIO || err == RAS_ENOMEM)
			goto done;
		{
			char why[400];
			struct plan fail;

			snprintf(why, sizeof(why), "could not store the decision: %s", ras_error_last());
			memset(&fail, 0, sizeof(fail));
			fail.row = &rows[i];
			fail.rep = rep;
			mark(a, &fail, "triage-failed", "triage-failed", why);
			rep->outcome = 0;
			rep->decision_id = 0;
			if ((err = ras_db_begin(db)) < 0)
				goto done;
			if ((err = run_plans(db, &fail, 1)) < 0 || (err = ras_db_commit(db)) < 0) {
				ras_db_rollback(db);
				goto done;
			}
			if ((err = pack_report(&pool, rep)) < 0)
				goto done;
		}
	}
report:
	*n_out = unpack_reports(&pool, fn, ctx);
	err = 0;
	goto done;
fail:
	ras_db_rollback(db);
done:
	free(plans);
	free(reps);
	free(payloads);
	ras_buf_free(&pool);
	ras_arena_free(a);
	return err;
}

int
ras_triage_pending_each(struct ras_db *db, const struct ras_triage *t, int64_t now, size_t limit,
    const int64_t *payload_ids, size_t n_payload_ids, ras_triage_report_fn *fn, void *ctx,
    size_t *n_out)
{
	return pending_each(db, t, now, limit, payload_ids, n_payload_ids, NULL, fn, ctx, n_out);
}

/* The array form: the reports appended to a buffer as they come, which
 * becomes the caller's array. */
struct report_array {
	struct ras_buf b;
	int err;
};

static void
collect_report(const struct ras_triage_report *r, void *ctx)
{
	struct report_array *x = ctx;

	if (x->err == 0)
		x->err = ras_buf_append(&x->b, r, sizeof(*r));
}

int
ras_triage_pending_handed(struct ras_db *db, const struct ras_triage *t, int64_t now, size_t limit,
    const int64_t *payload_ids, size_t n_payload_ids, const struct ras_store_handover *h,
    struct ras_triage_report **out, size_t *n_out)
{
	struct report_array x = { RAS_BUF_INIT(0), 0 };
	size_t n = 0;
	int err;

	*out = NULL;
	*n_out = 0;
	err = pending_each(db, t, now, limit, payload_ids, n_payload_ids, h, collect_report, &x, &n);
	if (err == 0)
		err = x.err;   /* out of memory for the reports of a stored batch */
	if (err < 0) {
		ras_buf_free(&x.b);
		return err;
	}
	*n_out = x.b.len / sizeof(**out);
	*out = (struct ras_triage_report *)(void *)ras_buf_detach(&x.b, NULL);
	return 0;
}

int
ras_triage_pending(struct ras_db *db, const struct ras_triage *t, int64_t now, size_t limit,
    const int64_t *payload_ids, size_t n_payload_ids, struct ras_triage_report **out,
    size_t *n_out)
{
	return ras_triage_pending_handed(db, t, now, limit, payload_ids, n_payload_ids, NULL, out, n_out);
}

/* ---- re-triage ------------------------------------------------------------- */

static const char SQL_REQUEUE_STALE[] =
    "WITH stale AS ("
    "  UPDATE referrals r SET state = 'new', updated_at = now()"
    "  FROM (SELECT DISTINCT ON (referral_id) referral_id, service, ruleset_version, decided_by"
    "        FROM decisions ORDER BY referral_id, id DESC) d"
    "  WHERE d.referral_id = r.id AND r.state = 'review' AND d.decided_by = 'rules'"
    "    AND d.service = $1 AND d.ruleset_version <> $2"
    "  RETURNING r.id, r.ubrn, d.ruleset_version AS old)"
    " INSERT INTO events (referral_id, ubrn, kind, actor, detail)"
    " SELECT id, ubrn, 'triage-requeued', 'rasd',"
    "   jsonb_build_object('reason', 'rule set changed', 'from', old, 'to', $2::text) FROM stale";

static const char SQL_REQUEUE_UNASSIGNED[] =
    "WITH u AS (UPDATE referrals SET state = 'new', updated_at = now()"
    "           WHERE state = 'unassigned' RETURNING id, ubrn)"
    " INSERT INTO events (referral_id, ubrn, kind, actor, detail)"
    " SELECT id, ubrn, 'triage-requeued', 'rasd', jsonb_build_object('reason', 'retry service assignment')"
    " FROM u";

int
ras_triage_requeue(struct ras_db *db, const struct ras_triage *t, int64_t *n)
{
	const char *ids[RAS_SERVICES_MAX];
	size_t ns = ras_mappings_services(t->m, ids, RAS_SERVICES_MAX);
	int64_t total = 0;
	int err;

	if ((err = ras_db_begin(db)) < 0)
		return err;
	for (size_t i = 0; i < ns && i < RAS_SERVICES_MAX; i++) {
		struct ras_db_res *res = NULL;
		const struct ras_ruleset *rs = ras_mappings_ruleset(t->m, ids[i]);

		if ((err = ras_db_query(db, &res, SQL_REQUEUE_STALE, 2, (struct ras_db_param[]){
		    RAS_DB_TEXT(ids[i]), RAS_DB_TEXT(ras_rules_version(rs)) })) < 0)
			goto fail;
		total += ras_db_res_affected(res);
		ras_db_res_free(res);
	}
	{
		struct ras_db_res *res = NULL;

		if ((err = ras_db_query(db, &res, SQL_REQUEUE_UNASSIGNED, 0, NULL)) < 0)
			goto fail;
		total += ras_db_res_affected(res);
		ras_db_res_free(res);
	}
	if ((err = ras_db_commit(db)) < 0)
		return err;
	if (n)
		*n = total;
	return 0;
fail:
	ras_db_rollback(db);
	return err;
}

/* ---- replay ---------------------------------------------------------------- */

static const char SQL_REPLAY[] =
    "SELECT r.id::text, r.ubrn, r.referral_key, r.version::text,"
    "  floor(extract(epoch FROM r.received_at))::bigint::text, r.doc::text,"
    "  d.outcome, d.onward_target, d.final::text,"
    "  (SELECT c.decided_by <> 'rules' FROM current_decisions c WHERE c.referral_id = r.id)::text"
    " FROM referrals r"
    " LEFT JOIN LATERAL (SELECT dd.* FROM decisions dd WHERE dd.referral_id = r.id"
    "                    AND dd.decided_by = 'rules' ORDER BY dd.id DESC LIMIT 1) d ON true"
    " WHERE r.service = $1 AND r.received_at >= $2::timestamptz AND r.received_at < $3::timestamptz"
    "   AND r.version = (SELECT max(v.version) FROM referrals v WHERE v.referral_key = r.referral_key)"
    " ORDER BY r.received_at, r.id";

static bool
same_target(const char *a, const char *b)
{
	return (a == NULL || *a == '\0') ? (b == NULL || *b == '\0') : (b && strcmp(a, b) == 0);
}

int
ras_triage_replay(struct ras_db *db, const struct ras_triage *t, const char *service,
    const struct ras_date *from, const struct ras_date *to, int64_t now,
    struct ras_triage_replay **out, size_t *n, size_t *same)
{
	const struct ras_ruleset *rs = ras_mappings_ruleset(t->m, service);
	struct ras_triage_replay *v = NULL;
	struct ras_db_res *res = NULL;
	struct ras_date end_day;
	char start[RAS_TIME_STR_MAX], end[RAS_TIME_STR_MAX];
	size_t k = 0, unchanged = 0;
	int err, rows;

	*out = NULL;
	*n = 0;
	*same = 0;
	if (rs == NULL)
		return ras_error_code(RAS_ENOTFOUND, "no rule set for service \"%.60s\"", service);
	ras_date_add_days(to, 1, &end_day);
	ras_time_format_utc(ras_time_uk_midnight(from), start);
	ras_time_format_utc(ras_time_uk_midnight(&end_day), end);
	/* Read-only: a replay must not change anything, whatever goes wrong. */
	if ((err = ras_db_exec(db, "BEGIN TRANSACTION READ ONLY")) < 0)
		return err;
	if ((err = ras_db_query(db, &res, SQL_REPLAY, 3, (struct ras_db_param[]){
	    RAS_DB_TEXT(service), RAS_DB_TEXT(start), RAS_DB_TEXT(end) })) < 0)
		goto done;
	rows = ras_db_res_rows(res);
	if ((v = calloc(rows ? (size_t)rows : 1, sizeof(*v))) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < rows; i++) {
		struct ras_triage_replay *x = &v[k];
		struct ras_arena *a = ras_arena_new();
		const char *doc = ras_db_res_get(res, i, 5), *ubrn = ras_db_res_get(res, i, 1);
		struct ras_referral r;
		struct ras_decision d;
		int64_t received = 0;
		json_t *j = NULL;

		if (a == NULL) {
			err = ras_error_code(RAS_ENOMEM, "out of memory");
			goto done;
		}
		memset(x, 0, sizeof(*x));
		(void)ras_db_res_int(res, i, 0, &x->referral_id);
		(void)ras_db_res_int(res, i, 4, &received);
		if (ubrn)
			snprintf(x->referral, sizeof(x->referral), "%s v%s", ubrn, ras_db_res_get(res, i, 3));
		else
			snprintf(x->referral, sizeof(x->referral), "%.80s", ras_db_res_get(res, i, 2));
		if (ras_db_res_get(res, i, 6)) {
			x->had = true;
			x->was = ras_decision_outcome_parse(ras_db_res_get(res, i, 6));
			snprintf(x->was_target, sizeof(x->was_target), "%s",
			    ras_db_res_get(res, i, 7) ? ras_db_res_get(res, i, 7) : "");
			x->was_final = strcmp(ras_db_res_get(res, i, 8), "true") == 0;
		}
		x->was_by = ras_db_res_get(res, i, 9) && strcmp(ras_db_res_get(res, i, 9), "true") == 0 ?
		    "clinician" : "rules";
		ras_error_clear();
		if ((err = ras_json_parse(doc, strlen(doc), 0, &j)) < 0 ||
		    (err = ras_referral_json_load(a, j, &r)) < 0 ||
		    (err = ras_rules_decide(a, rs, &r, received, ras_mappings_calendar(t->m), now, &d)) < 0) {
			json_decref(j);
			ras_arena_free(a);
			if (err == RAS_ENOMEM)
				goto done;
			snprintf(x->message, sizeof(x->message), "cannot decide: %s", ras_error_last());
			err = 0;
			k++;
			continue;
		}
		json_decref(j);
		x->now = d.outcome;
		x->now_final = d.final;
		snprintf(x->now_target, sizeof(x->now_target), "%s", d.onward_target ? d.onward_target : "");
		ras_triage_summary(&d, x->message, sizeof(x->message));
		ras_arena_free(a);
		if (x->had && x->was == x->now && x->was_final == x->now_final &&
		    same_target(x->was_target, x->now_target))
			unchanged++;
		else
			k++;
	}
	*out = v;
	*n = k;
	*same = unchanged;
	v = NULL;
	err = 0;
done:
	ras_db_res_free(res);
	(void)ras_db_exec(db, "ROLLBACK");
	free(v);
	return err;
}
