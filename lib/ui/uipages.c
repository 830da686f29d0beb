/* uipages: the clinicians' pages (see include/ras/uipages.h, docs/design/ui.md). */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/db.h"
#include "ras/error.h"
#include "ras/html.h"
#include "ras/json.h"
#include "ras/kpi.h"
#include "ras/limits.h"
#include "ras/ops.h"
#include "ras/outbox.h"
#include "ras/date.h"
#include "ras/time.h"
#include "ras/uipages.h"

#define P(...) (void)ras_html_printf(out, __VA_ARGS__)
#define RAW(s) (void)ras_buf_puts(out, (s))

bool
ras_uipages_serves(const struct ras_uiviewer *v, const char *service)
{
	for (size_t i = 0; service && i < v->nservices; i++)
		if (strcmp(v->services[i], service) == 0)
			return true;
	return false;
}

/* ---- the page shell --------------------------------------------------- */

static void
page_head(struct ras_buf *out, const struct ras_uiviewer *v, const char *title, const char *active)
{
	RAW("<!DOCTYPE html>\n<html lang=\"en-GB\">\n<head>\n<meta charset=\"utf-8\">\n"
	    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
	P("<title>%s - rasd triage</title>\n", title);
	RAW("<link rel=\"stylesheet\" href=\"/assets/nhsuk-frontend.min.css\">\n"
	    "<link rel=\"stylesheet\" href=\"/assets/rasd-ui.css\">\n"
	    "<link rel=\"icon\" href=\"/assets/favicon.svg\" type=\"image/svg+xml\">\n</head>\n"
	    "<body>\n<a class=\"nhsuk-skip-link\" href=\"#maincontent\">Skip to main content</a>\n"
	    "<header class=\"nhsuk-header\">\n<div class=\"nhsuk-header__container nhsuk-width-container\">\n"
	    "<div class=\"nhsuk-header__service\"><a class=\"nhsuk-header__service-name rasd-service-name\" "
	    "href=\"/worklist\">rasd triage</a></div>\n");
	if (v) {
		P("<p class=\"rasd-signed-in\">Signed in as %s (%s) - %s</p>\n",
		    v->name && *v->name ? v->name : v->sds_user_id, v->sds_user_id, v->role_names);
	}
	RAW("</div>\n");
	if (v) {
		static const char *const links[][3] = {
			{ "worklist", "/worklist", "Worklist" },
			{ "kpi", "/report/kpi", "KPI report" },
			{ "admin", "/admin/dead-letters", "Dead letters" },
		};

		RAW("<nav class=\"nhsuk-header__navigation\" aria-label=\"Menu\">\n"
		    "<div class=\"nhsuk-header__navigation-container nhsuk-width-container\">\n"
		    "<ul class=\"nhsuk-header__navigation-list rasd-nav\">\n");
		for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
			if (i == 0 && !v->clinician)
				continue;
			if (i == 2 && !v->admin)
				continue;
			P("<li class=\"nhsuk-header__navigation-item\"><a class=\"nhsuk-header__navigation-link\" "
			    "href=\"%s\"", links[i][1]);
			if (active && strcmp(active, links[i][0]) == 0)
				RAW(" aria-current=\"page\"");
			P(">%s</a></li>\n", links[i][2]);
		}
		P("<li class=\"nhsuk-header__navigation-item\"><form method=\"post\" action=\"/logout\">"
		    "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
		    "<button class=\"rasd-link-button\" type=\"submit\">Sign out</button></form></li>\n", v->csrf);
		RAW("</ul>\n</div>\n</nav>\n");
	}
	RAW("</header>\n<div class=\"nhsuk-width-container\">\n"
	    "<main class=\"nhsuk-main-wrapper\" id=\"maincontent\">\n");
}

static void
page_foot(struct ras_buf *out)
{
	RAW("</main>\n</div>\n<footer class=\"nhsuk-footer\">\n<div class=\"nhsuk-width-container\">\n"
	    "<p class=\"nhsuk-body-s\">rasd: referral assessment for community pain management services. "
	    "Patient information: use only for the care of the patient.</p>\n</div>\n</footer>\n"
	    "</body>\n</html>\n");
}

int
ras_uipages_message(const struct ras_uiviewer *v, const char *title, const char *text,
    const char *link, const char *link_text, struct ras_buf *out)
{
	page_head(out, v, title, NULL);
	P("<h1>%s</h1>\n<p>%s</p>\n", title, text);
	if (link)
		P("<p><a href=\"%s\">%s</a></p>\n", link, link_text ? link_text : link);
	page_foot(out);
	return 0;
}

/* ---- helpers ------------------------------------------------------------ */

static int
query_json(struct ras_db *db, const char *sql, int n, const struct ras_db_param *p, json_t **out)
{
	struct ras_db_res *res = NULL;
	const char *v;
	int err;

	*out = NULL;
	if ((err = ras_db_query(db, &res, sql, n, p)) < 0)
		return err;
	v = ras_db_res_rows(res) == 1 && !ras_db_res_isnull(res, 0, 0) ? ras_db_res_get(res, 0, 0) : NULL;
	if (v == NULL)
		err = ras_error_code(RAS_ENOTFOUND, "not found");
	else
		err = ras_json_parse(v, strlen(v), 0, out);
	ras_db_res_free(res);
	return err;
}

/* "{a,b}" for a text[] parameter (service ids are [a-z0-9-]). */
static void
services_array(const struct ras_uiviewer *v, struct ras_buf *b)
{
	(void)ras_buf_putc(b, '{');
	for (size_t i = 0; i < v->nservices; i++) {
		if (strspn(v->services[i], "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(v->services[i]))
			continue;
		(void)ras_buf_printf(b, "%s%s", b->len > 1 ? "," : "", v->services[i]);
	}
	(void)ras_buf_putc(b, '}');
}

static const char *
s_or(const json_t *o, const char *k, const char *def)
{
	const char *s = ras_json_str(o, k);

	return s ? s : def;
}

/* "943 476 5919" */
static void
nhs_number(struct ras_buf *out, const char *n)
{
	if (n && strlen(n) == 10 && strspn(n, "0123456789") == 10)
		P("%s %s %s", (char[4]){ n[0], n[1], n[2], 0 }, (char[4]){ n[3], n[4], n[5], 0 }, n + 6);
	else
		P("%s", n ? n : "not known");
}

/* "2026-07-20T10:00:00Z" as "20 Jul 2026 11:00" (UK time). */
static void
when(struct ras_buf *out, const char *iso)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep",
		"Oct", "Nov", "Dec" };
	int64_t t;
	char uk[40];

	if (iso == NULL || ras_time_parse(iso, false, &t) < 0) {
		P("%s", iso ? iso : "-");
		return;
	}
	ras_time_format_uk(t, uk);   /* YYYY-MM-DDThh:mm:ss+hh:mm */
	{
		int m = (uk[5] - '0') * 10 + (uk[6] - '0');

		P("%s %s %s %s", (char[3]){ uk[8] == '0' ? uk[9] : uk[8], uk[8] == '0' ? 0 : uk[9], 0 },
		    m >= 1 && m <= 12 ? mon[m - 1] : "?", (char[5]){ uk[0], uk[1], uk[2], uk[3], 0 },
		    (char[6]){ uk[11], uk[12], uk[13], uk[14], uk[15], 0 });
	}
}

/* "FAMILY, Given" as NHS patient banners write it. */
static void
patient_name(struct ras_buf *out, const char *family, const char *given)
{
	if (family == NULL && given == NULL) {
		RAW("Name not known");
		return;
	}
	P("%s", family ? family : "");
	if (family && given)
		RAW(", ");
	P("%s", given ? given : "");
}

static void
clock_tag(struct ras_buf *out, const char *status)
{
	if (status == NULL)
		return;
	if (strcmp(status, "breached") == 0)
		RAW("<strong class=\"nhsuk-tag nhsuk-tag--red\">Breached</strong>");
	else if (strcmp(status, "near-breach") == 0)
		RAW("<strong class=\"nhsuk-tag nhsuk-tag--orange\">Near breach</strong>");
	else if (strcmp(status, "on-time") == 0)
		RAW("<strong class=\"nhsuk-tag nhsuk-tag--green\">On time</strong>");
}

static const char *
outcome_label(const char *o, const char *target)
{
	if (o == NULL)
		return "none";
	if (strcmp(o, "accept") == 0)
		return "Accept";
	if (strcmp(o, "return") == 0)
		return "Return with advice";
	if (strcmp(o, "onward") == 0)
		return target && strcmp(target, "mdt") == 0 ? "Refer to the MDT" : "Onward referral";
	if (strcmp(o, "review") == 0)
		return "Needs a clinician or MDT";
	return o;
}

/* ---- worklist ------------------------------------------------------------ */

static const char SQL_WORKLIST[] =
    "WITH w AS ("
    " SELECT r.id, r.referral_key, r.ubrn, r.service, r.state, r.priority, r.received_at,"
    "   r.doc -> 'patient' AS p, pt.pds_family, pt.pds_given, pt.pds_birth_date,"
    "   coalesce(pt.pds_restricted, false) AS pds_restricted, d.outcome, d.onward_target, d.final,"
    "   (SELECT min(dl.due_at) FROM deadlines dl WHERE dl.referral_id = r.id"
    "     AND dl.met_at IS NULL AND dl.cancelled_at IS NULL) AS due,"
    "   (SELECT dl.kind FROM deadlines dl WHERE dl.referral_id = r.id"
    "     AND dl.met_at IS NULL AND dl.cancelled_at IS NULL ORDER BY dl.due_at LIMIT 1) AS due_kind,"
    "   d.decided_at"
    " FROM referrals r JOIN current_decisions d ON d.referral_id = r.id"
    "   LEFT JOIN patients pt ON pt.id = r.patient_id"
    " WHERE r.service = ANY ($1::text[]) AND ($2 = '' OR r.service = $2)"
    "   AND r.state IN ('review', 'decided')"
    "   AND NOT EXISTS (SELECT 1 FROM referrals n WHERE n.referral_key = r.referral_key"
    "                   AND n.version > r.version)),"
    " s AS (SELECT w.*, CASE WHEN w.due IS NULL THEN NULL WHEN w.due < now() THEN 'breached'"
    "   WHEN w.due < now() + make_interval(hours => $4::int) THEN 'near-breach' ELSE 'on-time' END AS clock"
    "   FROM w)"
    " SELECT coalesce(json_agg(json_build_object('key', referral_key, 'ubrn', ubrn, 'service', service,"
    "   'state', state, 'priority', priority, 'received_at', to_char(received_at AT TIME ZONE 'UTC',"
    "   'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'family', coalesce(p ->> 'family', pds_family),"
    "   'given', coalesce(p ->> 'given', pds_given), 'nhs_number', p ->> 'nhs_number',"
    "   'birth_date', coalesce(p ->> 'birth_date', pds_birth_date),"
    "   'restricted', coalesce(p ->> 'restricted', 'false') = 'true' OR pds_restricted,"
    "   'outcome', outcome, 'onward_target', onward_target, 'final', final,"
    "   'due', to_char(due AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'due_kind', due_kind,"
    "   'clock', clock) ORDER BY due NULLS LAST, received_at, id), '[]')::text"
    " FROM (SELECT * FROM s WHERE CASE $3"
    "   WHEN 'decided' THEN state = 'decided' AND decided_at > now() - interval '14 days'"
    "   WHEN 'breached' THEN state = 'review' AND clock = 'breached'"
    "   WHEN 'near-breach' THEN state = 'review' AND clock = 'near-breach'"
    "   ELSE state = 'review' END"
    "  ORDER BY due NULLS LAST, received_at, id LIMIT " "500" ") x";

static void
select_box(struct ras_buf *out, const char *id, const char *label, const char *const *values,
    const char *const *labels, size_t n, const char *chosen)
{
	P("<div class=\"nhsuk-form-group rasd-inline\">\n<label class=\"nhsuk-label\" for=\"%s\">%s</label>\n"
	    "<select class=\"nhsuk-select\" id=\"%s\" name=\"%s\">\n", id, label, id, id);
	for (size_t i = 0; i < n; i++)
		P("<option value=\"%s\"%s>%s</option>\n", values[i],
		    chosen && strcmp(chosen, values[i]) == 0 ? " selected" : "", labels[i]);
	RAW("</select>\n</div>\n");
}

int
ras_uipages_worklist(struct ras_db *db, const struct ras_uiviewer *v, const char *service,
    const char *state, struct ras_buf *out)
{
	static const char *const states[] = { "awaiting", "breached", "near-breach", "decided" };
	static const char *const state_labels[] = { "Awaiting a decision", "Breached clock",
		"Near breach", "Decided (last 14 days)" };
	struct ras_buf svc = RAS_BUF_INIT(0);
	struct ras_db_param p[4];
	char hours[8];
	json_t *rows = NULL, *r;
	size_t i;
	int err;

	if (state == NULL || *state == '\0')
		state = "awaiting";
	if (service && *service && !ras_uipages_serves(v, service))
		service = "";
	services_array(v, &svc);
	snprintf(hours, sizeof(hours), "%d", RAS_UIPAGES_NEAR_HOURS);
	p[0] = RAS_DB_TEXT(svc.data);
	p[1] = RAS_DB_TEXT(service ? service : "");
	p[2] = RAS_DB_TEXT(state);
	p[3] = RAS_DB_TEXT(hours);
	err = query_json(db, SQL_WORKLIST, 4, p, &rows);
	ras_buf_free(&svc);
	if (err < 0)
		return err;
	page_head(out, v, "Worklist", "worklist");
	RAW("<h1>Worklist</h1>\n");
	P("<p class=\"nhsuk-body\">Referrals awaiting a clinician's decision in the services you triage, "
	    "earliest clock first. A clock within %d hours of its due time is near breach.</p>\n",
	    RAS_UIPAGES_NEAR_HOURS);
	RAW("<form method=\"get\" action=\"/worklist\" class=\"rasd-filters\">\n");
	{
		const char *vals[RAS_SERVICES_MAX + 1], *labs[RAS_SERVICES_MAX + 1];
		size_t n = 0;

		vals[n] = "";
		labs[n++] = "All my services";
		for (size_t k = 0; k < v->nservices && n < RAS_SERVICES_MAX + 1; k++) {
			vals[n] = v->services[k];
			labs[n++] = v->services[k];
		}
		select_box(out, "service", "Service", vals, labs, n, service);
	}
	select_box(out, "state", "Show", states, state_labels, 4, state);
	RAW("<button class=\"nhsuk-button nhsuk-button--secondary rasd-inline-button\" type=\"submit\">"
	    "Filter</button>\n</form>\n");
	if (json_array_size(rows) == 0) {
		RAW("<p class=\"nhsuk-body\" id=\"worklist-empty\">No referrals match.</p>\n");
	} else {
		P("<table class=\"nhsuk-table\" id=\"worklist\">\n<caption class=\"nhsuk-table__caption\">"
		    "%zu referral(s)</caption>\n<thead class=\"nhsuk-table__head\"><tr>"
		    "<th scope=\"col\">Patient</th><th scope=\"col\">NHS number</th><th scope=\"col\">UBRN</th>"
		    "<th scope=\"col\">Service</th><th scope=\"col\">Priority</th><th scope=\"col\">Recommendation</th>"
		    "<th scope=\"col\">Due</th><th scope=\"col\">Clock</th></tr></thead>\n<tbody>\n",
		    json_array_size(rows));
		json_array_foreach(rows, i, r) {
			const char *key = s_or(r, "ubrn", s_or(r, "key", ""));

			RAW("<tr class=\"nhsuk-table__row\">");
			RAW("<td class=\"nhsuk-table__cell\"><a href=\"/referral/");
			(void)ras_html_urlenc(out, key);
			RAW("\">");
			patient_name(out, ras_json_str(r, "family"), ras_json_str(r, "given"));
			RAW("</a>");
			if (json_is_true(json_object_get(r, "restricted")))
				RAW(" <strong class=\"nhsuk-tag nhsuk-tag--purple\">Restricted</strong>");
			RAW("</td><td class=\"nhsuk-table__cell rasd-nowrap\">");
			nhs_number(out, ras_json_str(r, "nhs_number"));
			P("</td><td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s</td>"
			    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s%s</td>"
			    "<td class=\"nhsuk-table__cell\">", s_or(r, "ubrn", "-"), s_or(r, "service", "-"),
			    s_or(r, "priority", "-"), outcome_label(ras_json_str(r, "outcome"),
			    ras_json_str(r, "onward_target")),
			    json_is_true(json_object_get(r, "final")) ? " (final)" : "");
			when(out, ras_json_str(r, "due"));
			if (ras_json_str(r, "due_kind"))
				P(" <span class=\"nhsuk-body-s\">(%s)</span>", ras_json_str(r, "due_kind"));
			RAW("</td><td class=\"nhsuk-table__cell\">");
			clock_tag(out, ras_json_str(r, "clock"));
			RAW("</td></tr>\n");
		}
		RAW("</tbody>\n</table>\n");
	}
	page_foot(out);
	json_decref(rows);
	return 0;
}

/* ---- referral --------------------------------------------------------------- */

static const char SQL_REFERRAL[] =
    "WITH r AS (SELECT * FROM referrals WHERE referral_key = $1 OR ubrn = $1"
    "           ORDER BY version DESC LIMIT 1)"
    " SELECT json_build_object('id', r.id, 'key', r.referral_key, 'ubrn', r.ubrn, 'version', r.version,"
    "   'service', r.service, 'state', r.state, 'priority', r.priority,"
    "   'received_at', to_char(r.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    "   'doc', r.doc,"
    "   'pds', (SELECT json_build_object('family', pt.pds_family, 'given', pt.pds_given,"
    "       'birth_date', pt.pds_birth_date, 'restricted', coalesce(pt.pds_restricted, false),"
    "       'address', pt.pds_address, 'practice_ods', pt.pds_practice_ods)"
    "     FROM patients pt WHERE pt.id = r.patient_id),"
    "   'decision', (SELECT json_build_object('id', d.id, 'outcome', d.outcome, 'onward_target',"
    "       d.onward_target, 'final', d.final, 'reasons', d.reasons, 'facts', d.facts,"
    "       'ruleset_version', d.ruleset_version, 'decided_by', d.decided_by,"
    "       'decided_at', to_char(d.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
    "     FROM current_decisions d WHERE d.referral_id = r.id),"
    "   'recommendation', (SELECT json_build_object('outcome', d.outcome, 'onward_target', d.onward_target,"
    "       'reasons', d.reasons) FROM decisions d WHERE d.referral_id = r.id AND d.decided_by = 'rules'"
    "       ORDER BY d.id DESC LIMIT 1),"
    "   'attachments', (SELECT coalesce(json_agg(json_build_object('id', a.id, 'title', a.title,"
    "       'content_type', a.content_type, 'state', a.state, 'size', a.content_size,"
    "       'availability', a.availability) ORDER BY a.id), '[]')"
    "     FROM attachments a WHERE a.referral_id IN (SELECT id FROM referrals x"
    "       WHERE x.referral_key = r.referral_key) OR (r.ubrn IS NOT NULL AND a.ubrn = r.ubrn)))::text"
    " FROM r";

/* Question texts of the referral's form, from mappings/forms. */
static void
walk_items(json_t *items, json_t *map)
{
	size_t i;
	json_t *it;

	json_array_foreach(items, i, it) {
		const char *id = ras_json_str(it, "linkId"), *text = ras_json_str(it, "text");

		if (id && text)
			(void)json_object_set_new(map, id, json_string(text));
		walk_items(json_object_get(it, "item"), map);
	}
}

static json_t *
form_questions(const char *mappings, const char *url, const char *version)
{
	char dir[4096];
	DIR *d;
	struct dirent *e;
	json_t *map = json_object();

	if (mappings == NULL || url == NULL || map == NULL)
		return map;
	snprintf(dir, sizeof(dir), "%s/forms", mappings);
	if ((d = opendir(dir)) == NULL)
		return map;
	while ((e = readdir(d)) != NULL) {
		struct ras_buf b = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
		char path[8192];
		json_t *q = NULL;
		size_t n = strlen(e->d_name);

		if (n < 6 || strcmp(e->d_name + n - 5, ".json") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (ras_buf_read_file(&b, path) == 0 && ras_json_parse(b.data, b.len, 0, &q) == 0 &&
		    ras_json_str(q, "url") && strcmp(ras_json_str(q, "url"), url) == 0 &&
		    (version == NULL || (ras_json_str(q, "version") &&
		    strcmp(ras_json_str(q, "version"), version) == 0)))
			walk_items(json_object_get(q, "item"), map);
		json_decref(q);
		ras_buf_free(&b);
	}
	closedir(d);
	return map;
}

static void
answer_value(struct ras_buf *out, const json_t *a)
{
	json_t *v = json_object_get(a, "value");

	if (ras_json_str(a, "display") || ras_json_str(a, "code"))
		P("%s", s_or(a, "display", s_or(a, "code", "")));
	else if (json_is_true(v))
		RAW("Yes");
	else if (json_is_false(v))
		RAW("No");
	else if (json_is_integer(v))
		P("%lld", (long long)json_integer_value(v));
	else if (json_is_real(v)) {
		char num[48];

		snprintf(num, sizeof(num), "%g", json_real_value(v));
		P("%s", num);
	} else if (json_is_string(v))
		P("%s", json_string_value(v));
	else
		RAW("-");
}

static void
summary_row(struct ras_buf *out, const char *key, const char *value)
{
	P("<div class=\"nhsuk-summary-list__row\"><dt class=\"nhsuk-summary-list__key\">%s</dt>"
	    "<dd class=\"nhsuk-summary-list__value\">%s</dd></div>\n", key, value ? value : "-");
}

/* The address PDS gave ({use, lines, postcode}) on one line, or NULL. */
static char *
pds_address(const json_t *a)
{
	struct ras_buf b = RAS_BUF_INIT(0);
	size_t i;
	json_t *l;

	if (!json_is_object(a))
		return NULL;
	json_array_foreach(json_object_get(a, "lines"), i, l)
		if (json_is_string(l))
			(void)ras_buf_printf(&b, "%s%s", b.len ? ", " : "", json_string_value(l));
	if (ras_json_str(a, "postcode"))
		(void)ras_buf_printf(&b, "%s%s", b.len ? ", " : "", ras_json_str(a, "postcode"));
	return ras_buf_detach(&b, NULL);
}

static void
banner(struct ras_buf *out, const json_t *ref)
{
	json_t *p = json_object_get(json_object_get(ref, "doc"), "patient");
	json_t *pds = json_object_get(ref, "pds");
	bool restricted = json_is_true(json_object_get(p, "restricted")) ||
	    json_is_true(json_object_get(pds, "restricted"));

	RAW("<section class=\"rasd-banner\" aria-label=\"Patient\">\n"
	    "<h1 class=\"nhsuk-heading-l rasd-banner__name\">");
	patient_name(out, ras_json_str(p, "family") ? ras_json_str(p, "family") : ras_json_str(pds, "family"),
	    ras_json_str(p, "given") ? ras_json_str(p, "given") : ras_json_str(pds, "given"));
	if (restricted)
		RAW(" <strong class=\"nhsuk-tag nhsuk-tag--purple\">Restricted</strong>");
	RAW("</h1>\n<dl class=\"nhsuk-summary-list rasd-banner__list\">\n");
	RAW("<div class=\"nhsuk-summary-list__row\"><dt class=\"nhsuk-summary-list__key\">NHS number</dt>"
	    "<dd class=\"nhsuk-summary-list__value\" id=\"nhs-number\">");
	nhs_number(out, ras_json_str(p, "nhs_number"));
	RAW("</dd></div>\n");
	summary_row(out, "Born", ras_json_str(p, "birth_date") ? ras_json_str(p, "birth_date") :
	    ras_json_str(pds, "birth_date"));
	{
		char practice[300];
		const char *ods = ras_json_str(p, "practice_ods") ? ras_json_str(p, "practice_ods") :
		    ras_json_str(pds, "practice_ods");

		snprintf(practice, sizeof(practice), "%s%s%s%s", s_or(p, "practice_name", ""),
		    ras_json_str(p, "practice_name") ? " (" : "", ods ? ods : "not known",
		    ras_json_str(p, "practice_name") ? ")" : "");
		summary_row(out, "GP practice", practice);
	}
	if (restricted) {
		summary_row(out, "Address", "Hidden: this patient's record is restricted");
	} else {
		char *addr = pds_address(json_object_get(pds, "address"));

		summary_row(out, "Address", addr ? addr : ras_json_str(p, "postcode") ?
		    ras_json_str(p, "postcode") : "not known");
		free(addr);
	}
	RAW("</dl>\n</section>\n");
}

static void
reasons_list(struct ras_buf *out, const json_t *reasons)
{
	size_t i;
	json_t *x;

	RAW("<table class=\"nhsuk-table\"><caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">"
	    "Reasons</caption><thead class=\"nhsuk-table__head\"><tr><th scope=\"col\">Rule</th>"
	    "<th scope=\"col\">Clause</th><th scope=\"col\">Stage</th><th scope=\"col\">Advice</th></tr>"
	    "</thead><tbody>\n");
	json_array_foreach(reasons, i, x)
		P("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">%s</td>"
		    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s</td>"
		    "<td class=\"nhsuk-table__cell\">%s</td></tr>\n", s_or(x, "rule", "-"), s_or(x, "clause", "-"),
		    s_or(x, "stage", "-"), s_or(x, "advice", "-"));
	RAW("</tbody></table>\n");
}

static void
facts_list(struct ras_buf *out, const json_t *facts)
{
	const char *k;
	json_t *val;
	struct ras_buf t = RAS_BUF_INIT(0);

	if (!json_is_object(facts) || json_object_size(facts) == 0)
		return;
	RAW("<details class=\"nhsuk-details\"><summary class=\"nhsuk-details__summary\">"
	    "<span class=\"nhsuk-details__summary-text\">Facts the rules used</span></summary>"
	    "<div class=\"nhsuk-details__text\"><dl class=\"nhsuk-summary-list\">\n");
	json_object_foreach((json_t *)facts, k, val) {
		ras_buf_reset(&t);
		if (json_is_string(val))
			(void)ras_buf_puts(&t, json_string_value(val));
		else
			(void)ras_json_dump(val, RAS_JSON_COMPACT, &t);
		summary_row(out, k, t.data ? t.data : "");
	}
	RAW("</dl></div></details>\n");
	ras_buf_free(&t);
}

int
ras_uipages_referral_service(struct ras_db *db, const char *what, char *service, size_t size,
    bool *awaiting)
{
	struct ras_db_res *res = NULL;
	int err;

	if ((err = ras_db_query(db, &res, "SELECT coalesce(service, ''), state FROM referrals"
	    " WHERE referral_key = $1 OR ubrn = $1 ORDER BY version DESC LIMIT 1", 1,
	    &RAS_DB_TEXT(what))) < 0)
		return err;
	if (ras_db_res_rows(res) != 1) {
		ras_db_res_free(res);
		return ras_error_code(RAS_ENOTFOUND, "no such referral");
	}
	snprintf(service, size, "%s", ras_db_res_get(res, 0, 0));
	*awaiting = strcmp(ras_db_res_get(res, 0, 1), "review") == 0;
	ras_db_res_free(res);
	return 0;
}

static int
load_referral(struct ras_db *db, const struct ras_uiviewer *v, const char *what, json_t **ref)
{
	int err;

	if ((err = query_json(db, SQL_REFERRAL, 1, &RAS_DB_TEXT(what), ref)) < 0) {
		if (err == RAS_ENOTFOUND)
			ras_error_code(RAS_ENOTFOUND, "no such referral");
		return err;
	}
	if (!ras_uipages_serves(v, ras_json_str(*ref, "service"))) {
		json_decref(*ref);
		*ref = NULL;
		return ras_error_code(RAS_EINVALID, "this referral belongs to a service you are not registered for");
	}
	return 0;
}

/* Characters of an audit entry's detail shown in the trail (rasctl events
 * shows them whole). */
#define TRAIL_DETAIL_MAX 240

static void
trail_section(struct ras_buf *out, struct ras_db *db, const char *what)
{
	json_t *t = NULL, *x;
	size_t i;

	if (ras_ops_trail(db, what, &t) < 0)
		return;
	RAW("<h2 id=\"clocks\">Clocks</h2>\n");
	if (json_array_size(json_object_get(t, "deadlines")) == 0) {
		RAW("<p>No clocks.</p>\n");
	} else {
		RAW("<table class=\"nhsuk-table\" id=\"clock-table\"><caption class=\"nhsuk-table__caption "
		    "nhsuk-u-visually-hidden\">Clocks</caption><thead class=\"nhsuk-table__head\"><tr>"
		    "<th scope=\"col\">Clock</th><th scope=\"col\">Clause</th><th scope=\"col\">Due</th>"
		    "<th scope=\"col\">Status</th></tr></thead><tbody>\n");
		json_array_foreach(json_object_get(t, "deadlines"), i, x) {
			P("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">%s</td>"
			    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">",
			    s_or(x, "kind", "-"), s_or(x, "clause", "-"));
			when(out, ras_json_str(x, "due"));
			RAW("</td><td class=\"nhsuk-table__cell\">");
			if (ras_json_str(x, "cancelled_at"))
				RAW("Cancelled (a later decision)");
			else if (ras_json_str(x, "met_at")) {
				RAW(json_is_true(json_object_get(x, "late")) ? "Met late, " : "Met, ");
				when(out, ras_json_str(x, "met_at"));
			} else
				RAW(json_is_true(json_object_get(x, "late")) ?
				    "<strong class=\"nhsuk-tag nhsuk-tag--red\">Breached</strong>" : "Open");
			RAW("</td></tr>\n");
		}
		RAW("</tbody></table>\n");
	}
	RAW("<h2 id=\"trail\">Audit trail</h2>\n<table class=\"nhsuk-table\" id=\"audit-trail\">"
	    "<caption class=\"nhsuk-table__caption nhsuk-u-visually-hidden\">Audit trail</caption>"
	    "<thead class=\"nhsuk-table__head\"><tr><th scope=\"col\">When</th><th scope=\"col\">What</th>"
	    "<th scope=\"col\">Who</th><th scope=\"col\">Detail</th></tr></thead><tbody>\n");
	json_array_foreach(json_object_get(t, "events"), i, x) {
		struct ras_buf d = RAS_BUF_INIT(0);
		json_t *det = json_object_get(x, "detail");

		if (json_is_object(det) && json_object_size(det))
			(void)ras_json_dump(det, RAS_JSON_COMPACT, &d);
		if (d.len > TRAIL_DETAIL_MAX) {
			/* cut on a character boundary */
			size_t n = TRAIL_DETAIL_MAX;

			while (n > 0 && ((unsigned char)d.data[n] & 0xc0) == 0x80)
				n--;
			d.len = n;
			d.data[n] = '\0';
			(void)ras_buf_puts(&d, " …");
		}
		RAW("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell rasd-nowrap\">");
		when(out, ras_json_str(x, "at"));
		P("</td><td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s</td>"
		    "<td class=\"nhsuk-table__cell rasd-detail\">%s</td></tr>\n", s_or(x, "kind", "-"),
		    s_or(x, "actor", "-"), d.data ? d.data : "");
		ras_buf_free(&d);
	}
	RAW("</tbody></table>\n");
	json_decref(t);
}

int
ras_uipages_referral(struct ras_db *db, const struct ras_uiviewer *v, const char *what,
    const char *notice, struct ras_buf *out)
{
	json_t *ref = NULL, *doc, *form, *dec, *rec, *qs = NULL, *x;
	const char *key;
	size_t i;
	int err;

	if ((err = load_referral(db, v, what, &ref)) < 0)
		return err;
	doc = json_object_get(ref, "doc");
	form = json_object_get(doc, "form");
	dec = json_object_get(ref, "decision");
	rec = json_object_get(ref, "recommendation");
	key = s_or(ref, "ubrn", s_or(ref, "key", ""));
	page_head(out, v, "Referral", NULL);
	RAW("<a class=\"nhsuk-back-link\" href=\"/worklist\">Back to the worklist</a>\n");
	if (notice)
		P("<div class=\"nhsuk-inset-text\" id=\"notice\"><span class=\"nhsuk-u-visually-hidden\">"
		    "Information: </span><p>%s</p></div>\n", notice);
	banner(out, ref);
	RAW("<dl class=\"nhsuk-summary-list\" id=\"referral-summary\">\n");
	summary_row(out, "UBRN", ras_json_str(ref, "ubrn"));
	summary_row(out, "Service", ras_json_str(ref, "service"));
	summary_row(out, "Priority", ras_json_str(ref, "priority"));
	summary_row(out, "State", strcmp(s_or(ref, "state", ""), "review") == 0 ?
	    "Awaiting a clinician's decision" : s_or(ref, "state", "-"));
	{
		json_t *rr = json_object_get(doc, "referrer");
		char who[400];

		snprintf(who, sizeof(who), "%s%s%s", s_or(rr, "name", "not known"),
		    ras_json_str(rr, "org_name") || ras_json_str(rr, "org_ods") ? ", " : "",
		    s_or(rr, "org_name", s_or(rr, "org_ods", "")));
		summary_row(out, "Referrer", who);
	}
	RAW("<div class=\"nhsuk-summary-list__row\"><dt class=\"nhsuk-summary-list__key\">Received</dt>"
	    "<dd class=\"nhsuk-summary-list__value\">");
	when(out, ras_json_str(ref, "received_at"));
	RAW("</dd></div>\n</dl>\n");

	/* rasd's recommendation and the decision in force */
	RAW("<h2 id=\"recommendation\">rasd's recommendation</h2>\n");
	if (rec) {
		P("<p class=\"nhsuk-body-l\">%s%s%s</p>\n", outcome_label(ras_json_str(rec, "outcome"),
		    ras_json_str(rec, "onward_target")), ras_json_str(rec, "onward_target") ? ": " : "",
		    s_or(rec, "onward_target", ""));
		reasons_list(out, json_object_get(rec, "reasons"));
	} else {
		RAW("<p>rasd has made no recommendation for this referral.</p>\n");
	}
	if (dec) {
		bool by_rules = strcmp(s_or(dec, "decided_by", ""), "rules") == 0;

		RAW("<h2 id=\"decision\">Decision in force</h2>\n<dl class=\"nhsuk-summary-list\">\n");
		{
			char o[200];

			snprintf(o, sizeof(o), "%s%s%s", outcome_label(ras_json_str(dec, "outcome"),
			    ras_json_str(dec, "onward_target")), ras_json_str(dec, "onward_target") ? ": " : "",
			    s_or(dec, "onward_target", ""));
			summary_row(out, "Outcome", o);
		}
		summary_row(out, "Final", json_is_true(json_object_get(dec, "final")) ? "Yes" :
		    "No: a recommendation awaiting a clinician");
		summary_row(out, "Decided by", by_rules ? "rasd's rules" : ras_json_str(dec, "decided_by"));
		summary_row(out, "Rule set version", ras_json_str(dec, "ruleset_version"));
		RAW("</dl>\n");
		if (!by_rules)
			reasons_list(out, json_object_get(dec, "reasons"));
		facts_list(out, json_object_get(dec, "facts"));
	}
	if (v->clinician && strcmp(s_or(ref, "state", ""), "review") == 0) {
		RAW("<p><a class=\"nhsuk-button\" id=\"decide-link\" href=\"/referral/");
		(void)ras_html_urlenc(out, key);
		RAW("/decide\">Decide</a></p>\n");
	}

	/* the form, grouped as the form is */
	RAW("<h2 id=\"form\">Referral form</h2>\n");
	if (!json_is_object(form) || json_array_size(json_object_get(form, "answers")) == 0) {
		RAW("<p>The referral came without a form.</p>\n");
	} else {
		const char *group = "\x01";
		bool open = false;

		qs = form_questions(v->mappings, ras_json_str(form, "questionnaire"),
		    ras_json_str(form, "version"));
		json_array_foreach(json_object_get(form, "answers"), i, x) {
			const char *g = s_or(x, "group", "");
			const char *q = ras_json_str(qs, s_or(x, "link_id", ""));

			if (strcmp(g, group) != 0) {
				if (open)
					RAW("</dl>\n");
				if (*g)
					P("<h3>%s</h3>\n", ras_json_str(qs, g) ? ras_json_str(qs, g) : g);
				RAW("<dl class=\"nhsuk-summary-list rasd-form\">\n");
				open = true;
				group = g;
			}
			P("<div class=\"nhsuk-summary-list__row\"><dt class=\"nhsuk-summary-list__key\">%s</dt>"
			    "<dd class=\"nhsuk-summary-list__value\">", q ? q : s_or(x, "link_id", "?"));
			answer_value(out, x);
			RAW("</dd></div>\n");
		}
		if (open)
			RAW("</dl>\n");
	}
	if (ras_json_str(doc, "reason_text"))
		P("<h3>Reason for referral</h3>\n<p class=\"rasd-pre\">%s</p>\n", ras_json_str(doc, "reason_text"));

	/* attachments: the e-RS clinical information PDF inline */
	RAW("<h2 id=\"attachments\">Attachments</h2>\n");
	if (json_array_size(json_object_get(ref, "attachments")) == 0) {
		RAW("<p>No attachments.</p>\n");
	} else {
		RAW("<ul class=\"nhsuk-list\">\n");
		json_array_foreach(json_object_get(ref, "attachments"), i, x) {
			json_int_t id = json_integer_value(json_object_get(x, "id"));
			bool fetched = strcmp(s_or(x, "state", ""), "fetched") == 0;
			const char *ct = s_or(x, "content_type", "");

			P("<li>%s (%s) ", s_or(x, "title", "attachment"), *ct ? ct : "type not known");
			if (fetched) {
				RAW("<a href=\"/referral/");
				(void)ras_html_urlenc(out, key);
				P("/attachment/%lld\">Open</a>", (long long)id);
				if (strcmp(ct, "application/pdf") == 0) {
					RAW("<object class=\"rasd-pdf\" type=\"application/pdf\" data=\"/referral/");
					(void)ras_html_urlenc(out, key);
					P("/attachment/%lld\" aria-label=\"%s\"><p>This browser cannot show the PDF here: "
					    "use the link.</p></object>", (long long)id, s_or(x, "title", "attachment"));
				}
			} else {
				P("- not available (%s)", s_or(x, "state", "?"));
			}
			RAW("</li>\n");
		}
		RAW("</ul>\n");
	}
	trail_section(out, db, what);
	page_foot(out);
	json_decref(qs);
	json_decref(ref);
	return 0;
}

/* ---- decide ------------------------------------------------------------------ */

static void
radio(struct ras_buf *out, const char *value, const char *label, const char *hint, const char *chosen)
{
	P("<div class=\"nhsuk-radios__item\"><input class=\"nhsuk-radios__input\" id=\"outcome-%s\" "
	    "name=\"outcome\" type=\"radio\" value=\"%s\"", value, value);
	if (chosen && strcmp(chosen, value) == 0)
		RAW(" checked");
	if (hint)
		P(" aria-describedby=\"outcome-%s-hint\"", value);
	P("><label class=\"nhsuk-label nhsuk-radios__label\" for=\"outcome-%s\">%s</label>", value, label);
	if (hint)
		P("<div class=\"nhsuk-hint nhsuk-radios__hint\" id=\"outcome-%s-hint\">%s</div>", value, hint);
	RAW("</div>\n");
}

int
ras_uipages_decide(struct ras_db *db, const struct ras_uiviewer *v, const char *what,
    const char *error, const char *outcome, const char *advice, const char *target,
    struct ras_buf *out)
{
	json_t *ref = NULL, *rec, *x;
	struct ras_buf adv = RAS_BUF_INIT(0);
	const char *key;
	size_t i;
	int err;

	if ((err = load_referral(db, v, what, &ref)) < 0)
		return err;
	rec = json_object_get(ref, "recommendation");
	key = s_or(ref, "ubrn", s_or(ref, "key", ""));
	if (advice == NULL) {
		/* rasd's advice, pre-filled: every reason's, one paragraph each */
		json_array_foreach(json_object_get(rec, "reasons"), i, x)
			if (ras_json_str(x, "advice"))
				(void)ras_buf_printf(&adv, "%s%s", adv.len ? "\n\n" : "", ras_json_str(x, "advice"));
		advice = adv.data ? adv.data : "";
	}
	if (outcome == NULL && rec) {
		const char *o = ras_json_str(rec, "outcome");

		outcome = o && strcmp(o, "onward") == 0 && ras_json_str(rec, "onward_target") &&
		    strcmp(ras_json_str(rec, "onward_target"), "mdt") == 0 ? "mdt" : o;
		if (target == NULL && o && strcmp(o, "onward") == 0)
			target = ras_json_str(rec, "onward_target");
	}
	page_head(out, v, error ? "Error: Decide" : "Decide", NULL);
	RAW("<a class=\"nhsuk-back-link\" href=\"/referral/");
	(void)ras_html_urlenc(out, key);
	RAW("\">Back to the referral</a>\n");
	if (error)
		P("<div class=\"nhsuk-error-summary\" aria-labelledby=\"error-summary-title\" role=\"alert\" "
		    "tabindex=\"-1\"><h2 class=\"nhsuk-error-summary__title\" id=\"error-summary-title\">"
		    "There is a problem</h2><div class=\"nhsuk-error-summary__body\"><ul class=\"nhsuk-list "
		    "nhsuk-error-summary__list\"><li><a href=\"#outcome-accept\">%s</a></li></ul></div></div>\n",
		    error);
	banner(out, ref);
	P("<form method=\"post\" action=\"/referral/");
	(void)ras_html_urlenc(out, key);
	P("/decide\" novalidate>\n<input type=\"hidden\" name=\"csrf\" value=\"%s\">\n", v->csrf);
	RAW("<div class=\"nhsuk-form-group\"><fieldset class=\"nhsuk-fieldset\">"
	    "<legend class=\"nhsuk-fieldset__legend nhsuk-fieldset__legend--m\">"
	    "<h2 class=\"nhsuk-fieldset__heading\">Your decision</h2></legend>\n"
	    "<div class=\"nhsuk-radios\">\n");
	radio(out, "accept", "Accept into the service", NULL, outcome);
	radio(out, "return", "Return to the referrer with advice", NULL, outcome);
	radio(out, "onward", "Onward referral", "Give the pathway below.", outcome);
	radio(out, "mdt", "Refer to the MDT", "Recorded as an onward referral to the multidisciplinary team.",
	    outcome);
	RAW("</div></fieldset></div>\n");
	P("<div class=\"nhsuk-form-group\"><label class=\"nhsuk-label\" for=\"target\">Onward pathway "
	    "(onward referral only)</label><div class=\"nhsuk-hint\" id=\"target-hint\">For example "
	    "secondary-care, two-week-wait, mental-health</div><input class=\"nhsuk-input "
	    "nhsuk-input--width-20\" id=\"target\" name=\"target\" type=\"text\" aria-describedby=\"target-hint\" "
	    "value=\"%s\"></div>\n", target && strcmp(target, "mdt") != 0 ? target : "");
	P("<div class=\"nhsuk-form-group\"><label class=\"nhsuk-label nhsuk-label--s\" for=\"advice\">Advice "
	    "for the referrer</label><div class=\"nhsuk-hint\" id=\"advice-hint\">rasd's advice is filled in: "
	    "edit it as you see fit. It goes to the referrer with a return.</div><textarea "
	    "class=\"nhsuk-textarea\" id=\"advice\" name=\"advice\" rows=\"8\" aria-describedby=\"advice-hint\">"
	    "%s</textarea></div>\n", advice);
	RAW("<button class=\"nhsuk-button\" type=\"submit\" id=\"record\">Record the decision</button>\n"
	    "</form>\n");
	page_foot(out);
	ras_buf_free(&adv);
	json_decref(ref);
	return 0;
}

/* ---- admin: dead letters and parked e-RS outcomes ---------------------------- */

static const char SQL_PARKED[] =
    "SELECT coalesce(json_agg(json_build_object('id', o.id, 'ubrn', o.ubrn, 'review_outcome',"
    " o.review_outcome, 'state', o.state, 'attempts', o.attempts, 'error', o.error,"
    " 'updated_at', to_char(o.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
    " ORDER BY o.id), '[]')::text FROM ers_outcomes o WHERE o.state = 'parked'";

int
ras_uipages_ers_requeue(struct ras_db *db, int64_t id)
{
	struct ras_db_res *res = NULL;
	char v[24];
	int err;

	snprintf(v, sizeof(v), "%lld", (long long)id);
	/* "unknown": the e-RS stage reads the referral before it writes again,
	 * so an outcome that did land is not recorded twice. */
	if ((err = ras_db_query(db, &res, "UPDATE ers_outcomes SET state = 'unknown', attempts = 0,"
	    " next_attempt_at = now(), updated_at = now() WHERE id = $1::bigint AND state = 'parked'"
	    " RETURNING id", 1, &RAS_DB_TEXT(v))) < 0)
		return err;
	if (ras_db_res_affected(res) != 1)
		err = ras_error_code(RAS_ENOTFOUND, "e-RS outcome %s is not parked", v);
	ras_db_res_free(res);
	return err;
}

static void
requeue_button(struct ras_buf *out, const struct ras_uiviewer *v, const char *kind, long long id)
{
	P("<form method=\"post\" action=\"/admin/requeue\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">"
	    "<input type=\"hidden\" name=\"kind\" value=\"%s\"><input type=\"hidden\" name=\"id\" value=\"%lld\">"
	    "<button class=\"nhsuk-button nhsuk-button--secondary rasd-small-button\" type=\"submit\" "
	    "id=\"requeue-%s-%lld\">Requeue<span class=\"nhsuk-u-visually-hidden\"> %s %lld</span></button>"
	    "</form>", v->csrf, kind, id, kind, id, kind, id);
}

int
ras_uipages_admin(struct ras_db *db, const struct ras_uiviewer *v, const char *notice,
    struct ras_buf *out)
{
	json_t *dead = NULL, *parked = NULL, *x;
	size_t i;
	int err;

	if ((err = ras_outbox_list(db, "dead", 200, &dead)) < 0 ||
	    (err = query_json(db, SQL_PARKED, 0, NULL, &parked)) < 0) {
		json_decref(dead);
		return err;
	}
	page_head(out, v, "Dead letters", "admin");
	RAW("<h1>Dead letters and failed e-RS outcomes</h1>\n");
	if (notice)
		P("<div class=\"nhsuk-inset-text\" id=\"notice\"><span class=\"nhsuk-u-visually-hidden\">"
		    "Information: </span><p>%s</p></div>\n", notice);
	RAW("<h2>Documents that could not be delivered</h2>\n");
	if (json_array_size(dead) == 0) {
		RAW("<p id=\"no-dead\">None.</p>\n");
	} else {
		RAW("<table class=\"nhsuk-table\" id=\"dead-letters\"><caption class=\"nhsuk-table__caption "
		    "nhsuk-u-visually-hidden\">Dead letters</caption><thead class=\"nhsuk-table__head\"><tr>"
		    "<th scope=\"col\">Outbox id</th><th scope=\"col\">Document</th><th scope=\"col\">UBRN</th>"
		    "<th scope=\"col\">To</th><th scope=\"col\">Attempts</th><th scope=\"col\">Last error</th>"
		    "<th scope=\"col\">Action</th></tr></thead><tbody>\n");
		json_array_foreach(dead, i, x) {
			long long id = (long long)json_integer_value(json_object_get(x, "id"));

			P("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">%lld</td>"
			    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s</td>"
			    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%lld</td>"
			    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">", id,
			    s_or(x, "kind", "-"), s_or(x, "ubrn", s_or(x, "referral_key", "-")),
			    s_or(x, "destination", "-"), (long long)json_integer_value(json_object_get(x, "attempts")),
			    s_or(x, "last_error", s_or(x, "error", "-")));
			requeue_button(out, v, "outbox", id);
			RAW("</td></tr>\n");
		}
		RAW("</tbody></table>\n");
	}
	RAW("<h2>e-RS outcomes rasd stopped trying to record</h2>\n");
	if (json_array_size(parked) == 0) {
		RAW("<p id=\"no-parked\">None.</p>\n");
	} else {
		RAW("<table class=\"nhsuk-table\" id=\"parked-outcomes\"><caption class=\"nhsuk-table__caption "
		    "nhsuk-u-visually-hidden\">Parked e-RS outcomes</caption><thead class=\"nhsuk-table__head\">"
		    "<tr><th scope=\"col\">Id</th><th scope=\"col\">UBRN</th><th scope=\"col\">Outcome</th>"
		    "<th scope=\"col\">Attempts</th><th scope=\"col\">Error</th><th scope=\"col\">Action</th>"
		    "</tr></thead><tbody>\n");
		json_array_foreach(parked, i, x) {
			long long id = (long long)json_integer_value(json_object_get(x, "id"));

			P("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">%lld</td>"
			    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s</td>"
			    "<td class=\"nhsuk-table__cell\">%lld</td><td class=\"nhsuk-table__cell\">%s</td>"
			    "<td class=\"nhsuk-table__cell\">", id, s_or(x, "ubrn", "-"), s_or(x, "review_outcome", "-"),
			    (long long)json_integer_value(json_object_get(x, "attempts")), s_or(x, "error", "-"));
			requeue_button(out, v, "ers", id);
			RAW("</td></tr>\n");
		}
		RAW("</tbody></table>\n");
	}
	page_foot(out);
	json_decref(dead);
	json_decref(parked);
	return 0;
}

/* ---- KPI ----------------------------------------------------------------------- */

int
ras_uipages_kpi(struct ras_db *db, const struct ras_uiviewer *v, const struct ras_calendar *cal,
    const char *service, const char *from, const char *to, struct ras_buf *out)
{
	struct ras_arena *a = NULL;
	struct ras_kpi_data data;
	struct ras_kpi_report rep;
	struct ras_date f, t;
	char fs[16], ts[16];
	int64_t now = ras_time_now();
	int err = 0;

	if (service == NULL || *service == '\0' || !ras_uipages_serves(v, service))
		service = v->nservices ? v->services[0] : NULL;
	ras_time_uk_date(now, &t, NULL);
	f = t;
	f.day = 1;
	if (from && *from && ras_date_parse(from, &f) < 0)
		return ras_error_code(RAS_EINVALID, "the from date is not YYYY-MM-DD");
	if (to && *to && ras_date_parse(to, &t) < 0)
		return ras_error_code(RAS_EINVALID, "the to date is not YYYY-MM-DD");
	if (ras_date_cmp(&f, &t) > 0)
		return ras_error_code(RAS_EINVALID, "the from date is after the to date");
	ras_date_format(&f, fs);
	ras_date_format(&t, ts);
	page_head(out, v, "KPI report", "kpi");
	RAW("<h1>KPI report</h1>\n<form method=\"get\" action=\"/report/kpi\" class=\"rasd-filters\">\n");
	{
		const char *vals[RAS_SERVICES_MAX], *labs[RAS_SERVICES_MAX];
		size_t n = 0;

		for (size_t k = 0; k < v->nservices && n < RAS_SERVICES_MAX; k++)
			vals[n] = labs[n] = v->services[k], n++;
		select_box(out, "service", "Service", vals, labs, n, service);
	}
	P("<div class=\"nhsuk-form-group rasd-inline\"><label class=\"nhsuk-label\" for=\"from\">From</label>"
	    "<input class=\"nhsuk-input nhsuk-input--width-10\" id=\"from\" name=\"from\" type=\"text\" "
	    "value=\"%s\"></div>\n<div class=\"nhsuk-form-group rasd-inline\"><label class=\"nhsuk-label\" "
	    "for=\"to\">To</label><input class=\"nhsuk-input nhsuk-input--width-10\" id=\"to\" name=\"to\" "
	    "type=\"text\" value=\"%s\"></div>\n", fs, ts);
	RAW("<button class=\"nhsuk-button nhsuk-button--secondary rasd-inline-button\" type=\"submit\">"
	    "Show</button>\n</form>\n");
	if (service == NULL || !ras_kpi_known(service)) {
		P("<p>rasd has no quality requirements for %s.</p>\n", service ? service : "your services");
		goto foot;
	}
	if ((a = ras_arena_new()) == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto foot;
	}
	if ((err = ras_kpi_load(db, a, service, &f, &t, &data)) < 0 ||
	    (err = ras_kpi_compute(a, &data, service, &f, &t, now, cal, &rep)) < 0) {
		P("<p>The report could not be made: %s</p>\n", ras_error_last());
		err = 0;
		goto foot;
	}
	P("<h2>%s</h2>\n<p>%s. %lld referral(s) received from %s to %s.%s</p>\n", rep.title ? rep.title : service,
	    rep.spec ? rep.spec : "", (long long)rep.referrals, fs, ts,
	    rep.holidays ? "" : " Bank holidays were not known: working days are Monday to Friday.");
	RAW("<table class=\"nhsuk-table\" id=\"kpi\"><caption class=\"nhsuk-table__caption "
	    "nhsuk-u-visually-hidden\">Measures</caption><thead class=\"nhsuk-table__head\"><tr>"
	    "<th scope=\"col\">Measure</th><th scope=\"col\">Clause</th><th scope=\"col\">Value</th>"
	    "<th scope=\"col\">Target</th><th scope=\"col\">Met</th></tr></thead><tbody>\n");
	for (size_t i = 0; i < rep.n; i++) {
		const struct ras_kpi_result *m = &rep.m[i];
		char val[64], tgt[64];

		if (!m->has_value)
			snprintf(val, sizeof(val), "no data");
		else if (m->percent)
			snprintf(val, sizeof(val), "%.1f%% (%lld of %lld)", m->value, (long long)m->num,
			    (long long)m->den);
		else
			snprintf(val, sizeof(val), "%lld", (long long)m->num);
		snprintf(tgt, sizeof(tgt), m->percent ? "%s%.0f%%" : "%s%.0f", m->higher_better ? "at least " :
		    "at most ", m->target);
		P("<tr class=\"nhsuk-table__row\"><td class=\"nhsuk-table__cell\">%s</td>"
		    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s</td>"
		    "<td class=\"nhsuk-table__cell\">%s</td><td class=\"nhsuk-table__cell\">%s</td></tr>\n",
		    m->label, m->clause, val, tgt, !m->has_value ? "-" : m->met ? "Yes" : "No");
	}
	RAW("</tbody></table>\n");
foot:
	page_foot(out);
	ras_arena_free(a);
	return err;
}
