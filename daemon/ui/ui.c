/* ui: the clinicians' pages over HTTP(S) (see ui.h, docs/design/ui.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "../daemon.h"
#include "../loop.h"
#include "../stages.h"
#include "ras_config.h"
#include "ras/buf.h"
#include "ras/clinicians.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/db.h"
#include "ras/epr.h"
#include "ras/error.h"
#include "ras/html.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/log.h"
#include "ras/mappings.h"
#include "ras/oidc.h"
#include "ras/outbox.h"
#include "ras/runtime.h"
#include "ras/time.h"
#include "ras/triage.h"
#include "ras/uipages.h"
#include "ras/uisession.h"
#include "ui.h"
#include "../listen.h"

#define UI_CONN_MEMORY (64u * 1024u)
#define UI_ROLES_MAX 32

struct ras_ui {
	struct ras_daemon *d;
	struct MHD_Daemon *mhd;
	int epfd;
	struct ras_loop_timer *timer;
	struct ras_oidc *oidc;
	bool tls;
	char address[80];
	char callback[256];          /* path of [ui] redirect_url */
	char assets[4096];
	char *cert, *key;
	int lifetime;
	char *clinician_roles[UI_ROLES_MAX], *admin_roles[UI_ROLES_MAX];
	size_t nclinician_roles, nadmin_roles;
};

struct req {
	struct MHD_PostProcessor *pp;
	bool post, toobig, done;
	size_t posted;
	char csrf[RAS_UISESSION_TOKEN_LEN + 8];
	char outcome[16], kind[16], id[24];
	char target[RAS_ID_MAX + 1];
	struct ras_buf advice;
	bool has_advice;
};

/* ---- responses ----------------------------------------------------------- */

enum kind { PAGE, ASSET, ATTACHMENT, REDIRECT, TEXT };

/* Patient pages: nothing from elsewhere, nothing inline, never framed. */
static const char CSP_PAGE[] = "default-src 'none'; style-src 'self'; img-src 'self'; "
    "object-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
static const char CSP_ATTACHMENT[] = "default-src 'none'; object-src 'self'; plugin-types application/pdf; "
    "frame-ancestors 'self'";

static enum MHD_Result
respond(struct ras_ui *u, struct MHD_Connection *c, unsigned status, enum kind k, const char *ctype,
    const void *body, size_t len, const char *location, const char *const *cookies)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(len, (void *)body,
	    MHD_RESPMEM_MUST_COPY);
	enum MHD_Result ret;

	if (resp == NULL)
		return MHD_NO;
	if (ctype)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	(void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	(void)MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	if (u->tls)
		(void)MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
	if (k == ASSET) {
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "public, max-age=3600");
	} else {
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
		(void)MHD_add_response_header(resp, "Pragma", "no-cache");
		(void)MHD_add_response_header(resp, "Content-Security-Policy",
		    k == ATTACHMENT ? CSP_ATTACHMENT : CSP_PAGE);
		(void)MHD_add_response_header(resp, "X-Frame-Options", k == ATTACHMENT ? "SAMEORIGIN" : "DENY");
	}
	if (location)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	for (size_t i = 0; cookies && cookies[i]; i++)
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_SET_COOKIE, cookies[i]);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	if (status / 100 >= 1 && status / 100 <= 5)
		u->d->stats.http[status / 100]++;
	return ret;
}

static enum MHD_Result
page(struct ras_ui *u, struct MHD_Connection *c, unsigned status, struct ras_buf *b)
{
	return respond(u, c, status, PAGE, "text/html; charset=utf-8", b->data ? b->data : "", b->len,
	    NULL, NULL);
}

static enum MHD_Result
redirect(struct ras_ui *u, struct MHD_Connection *c, const char *to, const char *const *cookies)
{
	return respond(u, c, MHD_HTTP_SEE_OTHER, REDIRECT, "text/plain; charset=utf-8", "", 0, to, cookies);
}

static enum MHD_Result
message(struct ras_ui *u, struct MHD_Connection *c, unsigned status, const struct ras_uiviewer *v,
    const char *title, const char *text, const char *link, const char *link_text)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_UI_PAGE_MAX);
	enum MHD_Result ret;

	(void)ras_uipages_message(v, title, text, link, link_text, &b);
	ret = page(u, c, status, &b);
	ras_buf_free(&b);
	return ret;
}

/* ---- cookies ----------------------------------------------------------------- */

static const char *
session_cookie(const struct ras_ui *u)
{
	/* __Host-: the browser keeps it to this exact origin, Secure, path /. */
	return u->tls ? "__Host-rasd-session" : "rasd-session";
}

static const char *
login_cookie(const struct ras_ui *u)
{
	return u->tls ? "__Host-rasd-login" : "rasd-login";
}

static void
cookie(char *buf, size_t size, const char *name, const char *value, int max_age)
{
	snprintf(buf, size, "%s=%s; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=%d", name, value,
	    max_age);
}

/* ---- the clinician register -------------------------------------------------- */

/* The services `sds` is registered for in the clinician register
 * ([clinician SDS_USER_ID], ras/clinicians.h) of the configuration in
 * use, or -1 when `sds` is not in it.  The register is the one the
 * decisions are checked against (ras_triage_clinicians), so a reload that
 * drops a clinician ends their pages at once. */
static int
register_services(struct ras_ui *u, const char *sds, const char **out, size_t max)
{
	const struct ras_runtime *rt = ras_stages_runtime(u->d->units);
	const struct ras_clinicians *reg = rt ? ras_triage_clinicians(ras_runtime_triage(rt)) : NULL;
	const struct ras_clinician *c = ras_clinicians_find(reg, sds);
	size_t n = 0;

	if (c == NULL) {
		ras_error_code(RAS_ENOTFOUND, "%s is not in the clinician register", sds);
		return -1;
	}
	for (size_t i = 0; i < c->n_services && n < max; i++)
		out[n++] = c->services[i];
	return (int)n;
}

/* ---- sessions ---------------------------------------------------------------- */

struct viewer {
	struct ras_uisession s;
	struct ras_uiviewer v;
	const char *services[RAS_SERVICES_MAX];
	char mappings[4096];
};

static const struct ras_runtime *
runtime(struct ras_ui *u)
{
	return ras_stages_runtime(u->d->units);
}

/* The signed-in viewer of this request: false when there is none (or the
 * clinician left the register since they signed in). */
static bool
viewer_get(struct ras_ui *u, struct MHD_Connection *c, struct ras_db *db, struct viewer *w)
{
	const char *tok = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, session_cookie(u));
	const struct ras_runtime *rt = runtime(u);
	int n;

	memset(w, 0, sizeof(*w));
	if (tok == NULL || ras_uisession_get(db, tok, &w->s) < 0)
		return false;
	if ((n = register_services(u, w->s.sds_user_id, w->services, RAS_SERVICES_MAX)) < 0)
		return false;
	w->v.sds_user_id = w->s.sds_user_id;
	w->v.name = w->s.name;
	w->v.role_names = ras_uisession_role_names(w->s.roles);
	w->v.clinician = (w->s.roles & RAS_UI_ROLE_CLINICIAN) != 0;
	w->v.admin = (w->s.roles & RAS_UI_ROLE_ADMIN) != 0;
	w->v.csrf = w->s.csrf;
	w->v.services = w->services;
	w->v.nservices = (size_t)n;
	if (rt && ras_runtime_mappings(rt))
		snprintf(w->mappings, sizeof(w->mappings), "%s", ras_runtime_mappings(rt));
	w->v.mappings = w->mappings[0] ? w->mappings : NULL;
	return true;
}

static bool
csrf_ok(const struct viewer *w, const struct req *r)
{
	return r->csrf[0] && ras_uisession_token_eq(r->csrf, w->s.csrf);
}

static void
audit(struct ras_db *db, const char *kind, const char *actor, const char *referral, json_t *detail)
{
	if (ras_uisession_audit(db, kind, actor, referral, detail) < 0)
		ras_log(RAS_LOG_ERR, "ui: could not write the %s audit entry for %s: %s", kind, actor,
		    ras_error_last());
	json_decref(detail);
}

/* ---- sign-in ------------------------------------------------------------------- */

/* A path on this site to come back to after signing in. */
static bool
local_path(const char *p)
{
	return p && p[0] == '/' && p[1] != '/' && p[1] != '\\' && strlen(p) < 200 &&
	    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-_.:?=&%") == strlen(p);
}

static enum MHD_Result
login(struct ras_ui *u, struct MHD_Connection *c, struct ras_db *db)
{
	struct ras_oidc_start st;
	const char *to = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to");
	char ck[200];
	const char *cookies[2] = { ck, NULL };
	enum MHD_Result ret;

	if (ras_oidc_begin(u->oidc, &st) < 0) {
		ras_log(RAS_LOG_ERR, "ui: cannot start a sign-in: %s", ras_error_last());
		return message(u, c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Sign-in is not available",
		    "rasd cannot reach NHS CIS2 at the moment. Try again in a few minutes.", "/login", "Try again");
	}
	if (ras_uisession_login_put(db, st.state, st.nonce, st.verifier, local_path(to) ? to : "/worklist") < 0) {
		ras_log(RAS_LOG_ERR, "ui: cannot keep a sign-in: %s", ras_error_last());
		ras_oidc_start_release(&st);
		return message(u, c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Sign-in is not available",
		    "rasd's database is not available. Try again in a few minutes.", "/login", "Try again");
	}
	/* The state is also bound to this browser: the callback must come
	 * back with the cookie that matches it (no login CSRF). */
	cookie(ck, sizeof(ck), login_cookie(u), st.state, 600);
	ret = redirect(u, c, st.url, cookies);
	ras_oidc_start_release(&st);
	return ret;
}

struct role_match {
	struct ras_ui *u;
	unsigned roles;
	char code[RAS_ID_MAX + 1];
};

static bool
role_listed(char *const *list, size_t n, const char *code)
{
	const char *last = strrchr(code, ':');

	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], code) == 0 || (last && strcmp(list[i], last + 1) == 0))
			return true;
	return false;
}

static void
on_role(const char *code, void *ctx)
{
	struct role_match *m = ctx;
	unsigned before = m->roles;

	if (role_listed(m->u->clinician_roles, m->u->nclinician_roles, code))
		m->roles |= RAS_UI_ROLE_CLINICIAN;
	if (role_listed(m->u->admin_roles, m->u->nadmin_roles, code))
		m->roles |= RAS_UI_ROLE_ADMIN;
	if (m->roles != before || m->code[0] == '\0')
		snprintf(m->code, sizeof(m->code), "%s", code);
}

static bool
sds_ok(const char *s)
{
	return strlen(s) == 12 && strspn(s, "0123456789") == 12;
}

static enum MHD_Result
refuse_sign_in(struct ras_ui *u, struct MHD_Connection *c, struct ras_db *db, const char *sub,
    const char *why, const char *text)
{
	ras_log(RAS_LOG_WARNING, "ui: sign-in refused%s%s: %s", sub ? " for " : "", sub ? sub : "", why);
	audit(db, "ui-sign-in-refused", sub && sds_ok(sub) ? sub : "unknown", NULL,
	    json_pack("{s:s}", "reason", why));
	return message(u, c, MHD_HTTP_FORBIDDEN, NULL, "You cannot sign in to rasd", text, "/login",
	    "Sign in again");
}

static enum MHD_Result
callback(struct ras_ui *u, struct MHD_Connection *c, struct ras_db *db)
{
	const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
	const char *code = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "code");
	const char *error = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "error");
	const char *bound = MHD_lookup_connection_value(c, MHD_COOKIE_KIND, login_cookie(u));
	char nonce[RAS_UISESSION_TOKEN_LEN], verifier[RAS_UISESSION_TOKEN_LEN], to[256];
	char token[RAS_UISESSION_TOKEN_LEN], ck[300], clear[200], why[300];
	const char *cookies[3] = { ck, clear, NULL };
	struct ras_oidc_identity id;
	struct ras_uisession s, made;
	struct role_match m;
	const char *svc[RAS_SERVICES_MAX];
	int n;

	if (state == NULL || bound == NULL || strlen(state) > 64 || !ras_uisession_token_eq(state, bound))
		return refuse_sign_in(u, c, db, NULL, "the sign-in did not start in this browser",
		    "This sign-in did not start here, or took too long. Sign in again.");
	if (ras_uisession_login_take(db, state, nonce, verifier, to) < 0)
		return refuse_sign_in(u, c, db, NULL, "no sign-in in progress for this state",
		    "This sign-in has expired or was already used. Sign in again.");
	if (error) {
		snprintf(why, sizeof(why), "the identity provider answered %.60s", error);
		return refuse_sign_in(u, c, db, NULL, why, "NHS CIS2 did not sign you in.");
	}
	if (ras_oidc_finish(u->oidc, code, verifier, nonce, ras_time_now(), &id) < 0) {
		snprintf(why, sizeof(why), "%s", ras_error_last());
		return refuse_sign_in(u, c, db, NULL, why,
		    "rasd could not confirm your identity with NHS CIS2. Sign in again; if it happens again, "
		    "tell your system administrator.");
	}
	if (!sds_ok(id.sub)) {
		ras_oidc_identity_release(&id);
		return refuse_sign_in(u, c, db, NULL, "the subject is not an SDS user id",
		    "Your NHS CIS2 identity has no SDS user id.");
	}
	if ((n = register_services(u, id.sub, svc, RAS_SERVICES_MAX)) < 0) {
		snprintf(why, sizeof(why), "not in the clinician register");
		ras_oidc_identity_release(&id);
		return refuse_sign_in(u, c, db, id.sub, why,
		    "You are not in this service's clinician register. Ask the service's clinical lead to add you.");
	}
	memset(&m, 0, sizeof(m));
	m.u = u;
	(void)ras_oidc_role_codes(&id, on_role, &m);
	if (m.roles == 0) {
		ras_oidc_identity_release(&id);
		return refuse_sign_in(u, c, db, id.sub, "no role of the identity is mapped to clinician or admin",
		    "The role you selected in NHS CIS2 does not allow you to triage referrals. Sign in again "
		    "with your clinical role.");
	}
	memset(&s, 0, sizeof(s));
	snprintf(s.sds_user_id, sizeof(s.sds_user_id), "%s", id.sub);
	snprintf(s.name, sizeof(s.name), "%s", id.name);
	snprintf(s.role_code, sizeof(s.role_code), "%s", m.code);
	s.roles = m.roles;
	ras_oidc_identity_release(&id);
	if (ras_uisession_create(db, &s, u->lifetime, token, &made) < 0) {
		ras_log(RAS_LOG_ERR, "ui: cannot start a session: %s", ras_error_last());
		return message(u, c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Sign-in is not available",
		    "rasd's database is not available. Try again in a few minutes.", "/login", "Try again");
	}
	ras_log(RAS_LOG_NOTICE, "ui: %s signed in (%s, %s)", s.sds_user_id, ras_uisession_role_names(s.roles),
	    s.role_code);
	audit(db, "ui-sign-in", s.sds_user_id, NULL, json_pack("{s:s, s:s, s:I}", "roles",
	    ras_uisession_role_names(s.roles), "role_code", s.role_code, "session", (json_int_t)made.id));
	cookie(ck, sizeof(ck), session_cookie(u), token, u->lifetime);
	cookie(clear, sizeof(clear), login_cookie(u), "", 0);
	explicit_bzero(token, sizeof(token));
	return redirect(u, c, local_path(to) ? to : "/worklist", cookies);
}

/* ---- forms ---------------------------------------------------------------------- */

static enum MHD_Result
post_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
    const char *content_type, const char *encoding, const char *data, uint64_t off, size_t size)
{
	struct req *r = cls;
	char *dst = NULL;
	size_t cap = 0;

	(void)kind;
	(void)filename;
	(void)content_type;
	(void)encoding;
	if (strcmp(key, "advice") == 0) {
		r->has_advice = true;
		if (ras_buf_append(&r->advice, data, size) < 0)
			r->toobig = true;
		return MHD_YES;
	}
	if (strcmp(key, "csrf") == 0)
		dst = r->csrf, cap = sizeof(r->csrf);
	else if (strcmp(key, "outcome") == 0)
		dst = r->outcome, cap = sizeof(r->outcome);
	else if (strcmp(key, "target") == 0)
		dst = r->target, cap = sizeof(r->target);
	else if (strcmp(key, "kind") == 0)
		dst = r->kind, cap = sizeof(r->kind);
	else if (strcmp(key, "id") == 0)
		dst = r->id, cap = sizeof(r->id);
	if (dst == NULL)
		return MHD_YES;
	if (off + size + 1 > cap) {
		r->toobig = true;
		return MHD_YES;
	}
	memcpy(dst + off, data, size);
	dst[off + size] = '\0';
	return MHD_YES;
}

/* ---- pages ------------------------------------------------------------------------ */

/* "/referral/KEY[/rest]": KEY (decoded by us: MHD gives the path as sent). */
static bool
split_referral(const char *url, char *key, size_t size, const char **rest)
{
	const char *p = url + strlen("/referral/"), *slash = strchr(p, '/');
	size_t n = slash ? (size_t)(slash - p) : strlen(p), o = 0;

	if (n == 0 || n >= size)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (ch == '%' && i + 2 < n) {
			char hex[3] = { p[i + 1], p[i + 2], 0 };
			char *end;
			long v = strtol(hex, &end, 16);

			if (*end || v <= 0)
				return false;
			ch = (char)v;
			i += 2;
		}
		key[o++] = ch;
	}
	key[o] = '\0';
	*rest = slash ? slash : "";
	return o > 0 && o <= RAS_ID_MAX + 16;
}

static enum MHD_Result
pages_error(struct ras_ui *u, struct MHD_Connection *c, const struct viewer *w, int err)
{
	if (err == RAS_ENOTFOUND)
		return message(u, c, MHD_HTTP_NOT_FOUND, &w->v, "Referral not found",
		    "There is no such referral.", "/worklist", "Back to the worklist");
	if (err == RAS_EINVALID)
		return message(u, c, MHD_HTTP_FORBIDDEN, &w->v, "Not one of your services",
		    "This referral belongs to a service you are not registered to triage.", "/worklist",
		    "Back to the worklist");
	ras_log(RAS_LOG_ERR, "ui: cannot make a page: %s", ras_error_last());
	return message(u, c, MHD_HTTP_INTERNAL_SERVER_ERROR, &w->v, "Sorry, there is a problem",
	    "rasd could not show this page. Try again in a few minutes.", "/worklist", "Back to the worklist");
}

static enum MHD_Result
attachment(struct ras_ui *u, struct MHD_Connection *c, struct ras_db *db, const struct viewer *w,
    const char *key, const char *idtext)
{
	struct ras_db_res *res = NULL;
	char *end;
	long long id = strtoll(idtext, &end, 10);
	enum MHD_Result ret;
	const char *ct;

	if (*end || id < 1 || ras_db_query_binary(db, &res,
	    "SELECT a.content, coalesce(a.content_type, 'application/octet-stream')"
	    " FROM attachments a JOIN referrals r ON r.id = a.referral_id"
	    " WHERE a.id = $1::bigint AND (r.referral_key = $2 OR r.ubrn = $2) AND a.state = 'fetched'"
	    "   AND a.content IS NOT NULL", 2,
	    (struct ras_db_param[]){ RAS_DB_TEXT(idtext), RAS_DB_TEXT(key) }) < 0 ||
	    ras_db_res_rows(res) != 1) {
		ras_db_res_free(res);
		return message(u, c, MHD_HTTP_NOT_FOUND, &w->v, "Attachment not found",
		    "There is no such attachment, or rasd has not fetched it yet.", "/worklist",
		    "Back to the worklist");
	}
	/* Only types a browser shows without running anything; else a download. */
	ct = ras_db_res_get(res, 0, 1);
	audit(db, "ui-view", w->s.sds_user_id, key, json_pack("{s:s, s:I, s:s}", "page", "attachment",
	    "attachment_id", (json_int_t)id, "role", ras_uisession_role_names(w->s.roles)));
	{
		bool inline_ok = strcmp(ct, "application/pdf") == 0 || strcmp(ct, "text/plain") == 0 ||
		    strcmp(ct, "image/png") == 0 || strcmp(ct, "image/jpeg") == 0;
		struct MHD_Response *resp = MHD_create_response_from_buffer(ras_db_res_len(res, 0, 0),
		    (void *)ras_db_res_get(res, 0, 0), MHD_RESPMEM_MUST_COPY);

		if (resp == NULL) {
			ras_db_res_free(res);
			return MHD_NO;
		}
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		    inline_ok ? ct : "application/octet-stream");
		(void)MHD_add_response_header(resp, "Content-Disposition", inline_ok ? "inline" : "attachment");
		(void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
		(void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
		(void)MHD_add_response_header(resp, "Content-Security-Policy", CSP_ATTACHMENT);
		(void)MHD_add_response_header(resp, "X-Frame-Options", "SAMEORIGIN");
		ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
		MHD_destroy_response(resp);
	}
	ras_db_res_free(res);
	return ret;
}

static enum MHD_Result
decide_post(struct ras_ui *u, struct MHD_Connection *c, struct ras_db *db, const struct viewer *w,
    const char *key, struct req *r)
{
	struct ras_epr_event ev;
	struct ras_epr_result res;
	struct ras_epr_ctx ctx;
	const struct ras_runtime *rt = runtime(u);
	struct ras_buf b = RAS_BUF_INIT(RAS_UI_PAGE_MAX), loc = RAS_BUF_INIT(0);
	const char *error = NULL;
	char svc[RAS_ID_MAX + 1];
	bool awaiting;
	int err;
	enum MHD_Result ret;

	if ((err = ras_uipages_referral_service(db, key, svc, sizeof(svc), &awaiting)) < 0)
		return pages_error(u, c, w, err);
	if (!ras_uipages_serves(&w->v, svc))
		return pages_error(u, c, w, RAS_EINVALID);
	memset(&ev, 0, sizeof(ev));
	ev.kind = RAS_EPR_DECISION;
	ev.first_appointment = -1;
	ev.actor = w->s.sds_user_id;
	ev.advice = r->advice.data ? r->advice.data : "";
	if (strncmp(key, "local:", 6) == 0)
		ev.referral_key = key;
	else
		ev.ubrn = key;
	if (strcmp(r->outcome, "mdt") == 0) {
		ev.outcome = RAS_OUTCOME_ONWARD;
		ev.target = "mdt";
	} else {
		ev.outcome = ras_decision_outcome_parse(r->outcome);
		if (ev.outcome == RAS_OUTCOME_ONWARD)
			ev.target = r->target[0] ? r->target : NULL;
	}
	if (r->toobig)
		error = "The advice is too long.";
	else if (ev.outcome == 0 || ev.outcome == RAS_OUTCOME_REVIEW)
		error = "Choose a decision.";
	else if (ev.outcome == RAS_OUTCOME_ONWARD && ev.target == NULL)
		error = "Give the pathway of the onward referral.";
	else if (ev.outcome == RAS_OUTCOME_RETURN && strspn(ev.advice, " \t\r\n") == strlen(ev.advice))
		error = "Give the advice for the referrer: a return always carries advice.";
	else if (!awaiting)
		error = "This referral does not await a decision (it may have been decided meanwhile).";
	if (error == NULL) {
		ev.occurred_at = ras_time_now();
		ctx = rt ? ras_runtime_epr(rt) : (struct ras_epr_ctx){ NULL, NULL };
		/* Exactly what `rasctl decide` does, with the signed-in clinician. */
		if ((err = ras_epr_decide(db, &ctx, &ev, &res)) < 0) {
			if (err != RAS_EINVALID && err != RAS_ENOTFOUND) {
				ras_log(RAS_LOG_ERR, "ui: cannot record %s's decision on %s: %s", w->s.sds_user_id, key,
				    ras_error_last());
				error = "rasd could not record the decision. Try again in a few minutes.";
			} else {
				error = ras_error_last();
			}
		}
	}
	if (error) {
		err = ras_uipages_decide(db, &w->v, key, error, r->outcome, ev.advice, r->target, &b);
		ret = err < 0 ? pages_error(u, c, w, err) : page(u, c, MHD_HTTP_UNPROCESSABLE_CONTENT, &b);
		ras_buf_free(&b);
		return ret;
	}
	ras_log(RAS_LOG_NOTICE, "ui: %s decided %s: %s (decision #%lld)", w->s.sds_user_id, key,
	    ras_decision_outcome_name(ev.outcome), (long long)res.decision_id);
	audit(db, "ui-decision", w->s.sds_user_id, key, json_pack("{s:s, s:s?, s:I, s:s, s:s}", "outcome",
	    ras_decision_outcome_name(ev.outcome), "target", ev.target, "decision_id",
	    (json_int_t)res.decision_id, "role", ras_uisession_role_names(w->s.roles), "role_code",
	    w->s.role_code));
	(void)ras_buf_puts(&loc, "/referral/");
	(void)ras_html_urlenc(&loc, key);
	(void)ras_buf_puts(&loc, "?decided=1");
	ret = redirect(u, c, loc.data, NULL);
	ras_buf_free(&loc);
	return ret;
}

static enum MHD_Result
requeue(struct ras_ui *u, struct MHD_Connection *c, struct ras_db *db, const struct viewer *w,
    struct req *r)
{
	char *end;
	long long id = strtoll(r->id, &end, 10);
	char note[160];
	struct ras_buf b = RAS_BUF_INIT(RAS_UI_PAGE_MAX);
	enum MHD_Result ret;
	int err;

	if (*end || id < 1 || (strcmp(r->kind, "outbox") && strcmp(r->kind, "ers")))
		return message(u, c, MHD_HTTP_BAD_REQUEST, &w->v, "Cannot requeue", "Nothing to requeue.",
		    "/admin/dead-letters", "Back to the dead letters");
	err = strcmp(r->kind, "outbox") == 0 ? ras_outbox_retry(db, id, ras_time_now()) :
	    ras_uipages_ers_requeue(db, id);
	if (err == 0) {
		snprintf(note, sizeof(note), "%s %lld was requeued.", strcmp(r->kind, "outbox") == 0 ?
		    "Outbox document" : "e-RS outcome", id);
		ras_log(RAS_LOG_NOTICE, "ui: %s requeued %s %lld", w->s.sds_user_id, r->kind, id);
		audit(db, "ui-requeue", w->s.sds_user_id, NULL, json_pack("{s:s, s:I, s:s}", "what", r->kind,
		    "id", (json_int_t)id, "role", ras_uisession_role_names(w->s.roles)));
	} else {
		snprintf(note, sizeof(note), "Could not requeue %s %lld: %.100s", r->kind, id, ras_error_last());
	}
	if ((err = ras_uipages_admin(db, &w->v, note, &b)) < 0) {
		ras_buf_free(&b);
		return pages_error(u, c, w, err);
	}
	ret = page(u, c, MHD_HTTP_OK, &b);
	ras_buf_free(&b);
	return ret;
}

static enum MHD_Result
asset(struct ras_ui *u, struct MHD_Connection *c, const char *name)
{
	static const char *const types[][2] = {
		{ ".css", "text/css; charset=utf-8" }, { ".svg", "image/svg+xml" }, { ".ico", "image/x-icon" },
		{ ".png", "image/png" },
	};
	struct ras_buf b = RAS_BUF_INIT(8u * 1024u * 1024u);
	char path[4400];
	const char *ct = NULL;
	size_t n = strlen(name);
	enum MHD_Result ret;

	if (n == 0 || n > 100 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-") != n || name[0] == '.')
		return respond(u, c, MHD_HTTP_NOT_FOUND, TEXT, "text/plain", "not found\n", 10, NULL, NULL);
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (n > strlen(types[i][0]) && strcmp(name + n - strlen(types[i][0]), types[i][0]) == 0)
			ct = types[i][1];
	snprintf(path, sizeof(path), "%s/%s", u->assets, name);
	if (ct == NULL || ras_buf_read_file(&b, path) < 0) {
		ras_buf_free(&b);
		return respond(u, c, MHD_HTTP_NOT_FOUND, TEXT, "text/plain", "not found\n", 10, NULL, NULL);
	}
	ret = respond(u, c, MHD_HTTP_OK, ASSET, ct, b.data ? b.data : "", b.len, NULL, NULL);
	ras_buf_free(&b);
	return ret;
}

static enum MHD_Result
dispatch(struct ras_ui *u, struct MHD_Connection *c, const char *url, bool post, struct req *r)
{
	struct ras_db *db;
	struct viewer *w = NULL;
	struct ras_buf b = RAS_BUF_INIT(RAS_UI_PAGE_MAX);
	enum MHD_Result ret;
	int err = 0;

	if (!post && strcmp(url, "/healthz") == 0)
		return respond(u, c, MHD_HTTP_OK, TEXT, "text/plain; charset=utf-8", "ok\n", 3, NULL, NULL);
	if (!post && strncmp(url, "/assets/", 8) == 0)
		return asset(u, c, url + 8);
	if ((db = ras_daemon_db(u->d)) == NULL)
		return message(u, c, MHD_HTTP_SERVICE_UNAVAILABLE, NULL, "Sorry, rasd is not available",
		    "rasd's database is not available. Try again in a few minutes.", NULL, NULL);
	if (!post && strcmp(url, "/login") == 0)
		return login(u, c, db);
	if (!post && strcmp(url, u->callback) == 0)
		return callback(u, c, db);
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return MHD_NO;
	if (!viewer_get(u, c, db, w)) {
		free(w);
		if (post)
			return message(u, c, MHD_HTTP_FORBIDDEN, NULL, "Your session has ended",
			    "Sign in again, then repeat what you were doing.", "/login", "Sign in");
		{
			struct ras_buf to = RAS_BUF_INIT(0);
			enum MHD_Result rr;

			(void)ras_buf_puts(&to, "/login?to=");
			(void)ras_html_urlenc(&to, strcmp(url, "/") == 0 ? "/worklist" : url);
			rr = redirect(u, c, to.data, NULL);
			ras_buf_free(&to);
			return rr;
		}
	}
	if (post && !csrf_ok(w, r)) {
		ras_log(RAS_LOG_WARNING, "ui: a form without this session's CSRF token (%s, %s)",
		    w->s.sds_user_id, url);
		ret = message(u, c, MHD_HTTP_FORBIDDEN, &w->v, "This form has expired",
		    "Open the page again and repeat what you were doing.", "/worklist", "Back to the worklist");
		goto done;
	}
	if (post && strcmp(url, "/logout") == 0) {
		char clear[200];
		const char *cookies[2] = { clear, NULL };

		(void)ras_uisession_end(db, w->s.id);
		audit(db, "ui-sign-out", w->s.sds_user_id, NULL, json_pack("{s:I}", "session", (json_int_t)w->s.id));
		cookie(clear, sizeof(clear), session_cookie(u), "", 0);
		(void)ras_uipages_message(NULL, "You have signed out", "You have signed out of rasd.", "/login",
		    "Sign in again", &b);
		ret = respond(u, c, MHD_HTTP_OK, PAGE, "text/html; charset=utf-8", b.data ? b.data : "", b.len,
		    NULL, cookies);
		goto done;
	}
	if (strcmp(url, "/") == 0 && !post) {
		ret = redirect(u, c, w->v.clinician ? "/worklist" : "/admin/dead-letters", NULL);
		goto done;
	}
	if (strncmp(url, "/admin/", 7) == 0) {
		if (!w->v.admin) {
			ret = message(u, c, MHD_HTTP_FORBIDDEN, &w->v, "Admin role needed",
			    "Dead letters and requeues need the admin role.", "/worklist", "Back to the worklist");
			goto done;
		}
		if (!post && strcmp(url, "/admin/dead-letters") == 0) {
			if ((err = ras_uipages_admin(db, &w->v, NULL, &b)) == 0)
				ret = page(u, c, MHD_HTTP_OK, &b);
			else
				ret = pages_error(u, c, w, RAS_ERROR);
			goto done;
		}
		if (post && strcmp(url, "/admin/requeue") == 0) {
			ret = requeue(u, c, db, w, r);
			goto done;
		}
	}
	if (!w->v.clinician) {
		ret = message(u, c, MHD_HTTP_FORBIDDEN, &w->v, "Clinician role needed",
		    "Referrals are shown to clinicians who triage them.", w->v.admin ? "/admin/dead-letters" : NULL,
		    "Dead letters");
		goto done;
	}
	if (!post && strcmp(url, "/worklist") == 0) {
		err = ras_uipages_worklist(db, &w->v, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND,
		    "service"), MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state"), &b);
		ret = err < 0 ? pages_error(u, c, w, RAS_ERROR) : page(u, c, MHD_HTTP_OK, &b);
		goto done;
	}
	if (!post && strcmp(url, "/report/kpi") == 0) {
		const struct ras_runtime *rt = runtime(u);

		err = ras_uipages_kpi(db, &w->v, rt ? ras_runtime_calendar(rt) : NULL,
		    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "service"),
		    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "from"),
		    MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "to"), &b);
		if (err == RAS_EINVALID)
			ret = message(u, c, MHD_HTTP_BAD_REQUEST, &w->v, "KPI report", ras_error_last(), "/report/kpi",
			    "Back to the report");
		else
			ret = err < 0 ? pages_error(u, c, w, RAS_ERROR) : page(u, c, MHD_HTTP_OK, &b);
		goto done;
	}
	if (strncmp(url, "/referral/", 10) == 0) {
		char key[RAS_ID_MAX + 32];
		const char *rest;

		if (!split_referral(url, key, sizeof(key), &rest)) {
			ret = pages_error(u, c, w, RAS_ENOTFOUND);
			goto done;
		}
		if (!post && *rest == '\0') {
			const char *decided = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "decided");

			err = ras_uipages_referral(db, &w->v, key, decided ? "Your decision has been recorded." : NULL,
			    &b);
			if (err == 0)
				audit(db, "ui-view", w->s.sds_user_id, key, json_pack("{s:s, s:s}", "page", "referral",
				    "role", ras_uisession_role_names(w->s.roles)));
			ret = err < 0 ? pages_error(u, c, w, err) : page(u, c, MHD_HTTP_OK, &b);
			goto done;
		}
		if (strcmp(rest, "/decide") == 0) {
			if (post) {
				ret = decide_post(u, c, db, w, key, r);
				goto done;
			}
			err = ras_uipages_decide(db, &w->v, key, NULL, NULL, NULL, NULL, &b);
			if (err == 0)
				audit(db, "ui-view", w->s.sds_user_id, key, json_pack("{s:s, s:s}", "page", "decide",
				    "role", ras_uisession_role_names(w->s.roles)));
			ret = err < 0 ? pages_error(u, c, w, err) : page(u, c, MHD_HTTP_OK, &b);
			goto done;
		}
		if (!post && strncmp(rest, "/attachment/", 12) == 0) {
			char svc[RAS_ID_MAX + 1];
			bool awaiting;

			if ((err = ras_uipages_referral_service(db, key, svc, sizeof(svc), &awaiting)) < 0 ||
			    !ras_uipages_serves(&w->v, svc)) {
				ret = pages_error(u, c, w, err < 0 ? err : RAS_EINVALID);
				goto done;
			}
			ret = attachment(u, c, db, w, key, rest + 12);
			goto done;
		}
	}
	ret = message(u, c, MHD_HTTP_NOT_FOUND, &w->v, "Page not found", "There is no such page.", "/worklist",
	    "Back to the worklist");
done:
	ras_buf_free(&b);
	free(w);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **req_cls)
{
	struct ras_ui *u = cls;
	struct req *r = *req_cls;

	(void)version;
	if (r == NULL) {
		bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
		bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;

		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		ras_buf_init(&r->advice, RAS_STRING_MAX);
		*req_cls = r;
		if (!post && !get)
			return respond(u, c, MHD_HTTP_METHOD_NOT_ALLOWED, TEXT, "text/plain", "method not allowed\n", 19,
			    NULL, NULL);
		if (get)
			return dispatch(u, c, url, false, r);
		r->post = true;
		r->pp = MHD_create_post_processor(c, 16 * 1024, post_field, r);
		if (r->pp == NULL)
			return respond(u, c, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, TEXT, "text/plain",
			    "send a form\n", 12, NULL, NULL);
		return MHD_YES;
	}
	if (*upload_size) {
		r->posted += *upload_size;
		if (r->posted > RAS_UI_FORM_MAX)
			r->toobig = true;
		else if (MHD_post_process(r->pp, upload, *upload_size) != MHD_YES)
			r->toobig = true;
		*upload_size = 0;
		return MHD_YES;
	}
	if (!r->post || r->done)
		return MHD_NO;
	r->done = true;
	if (r->toobig && !r->has_advice)
		return respond(u, c, MHD_HTTP_CONTENT_TOO_LARGE, TEXT, "text/plain", "form too large\n", 15, NULL,
		    NULL);
	return dispatch(u, c, url, true, r);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **req_cls, enum MHD_RequestTerminationCode t)
{
	struct req *r = *req_cls;

	(void)cls;
	(void)c;
	(void)t;
	if (r) {
		if (r->pp)
			(void)MHD_destroy_post_processor(r->pp);
		ras_buf_free(&r->advice);
		explicit_bzero(r->csrf, sizeof(r->csrf));
		free(r);
		*req_cls = NULL;
	}
}

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	char msg[512];

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	ras_log(RAS_LOG_WARNING, "ui: http: %s", msg);
}
#pragma GCC diagnostic pop

/* ---- loop --------------------------------------------------------------------- */

static void
rearm(struct ras_ui *u)
{
	MHD_UNSIGNED_LONG_LONG ms = 0;

	if (MHD_get_timeout(u->mhd, &ms) == MHD_YES)
		ras_loop_timer_after(u->timer, ms > 60000 ? 60000 : (int64_t)ms);
	else
		ras_loop_timer_stop(u->timer);
}

static void
on_ready(struct ras_loop *l, int fd, uint32_t events, void *ctx)
{
	struct ras_ui *u = ctx;

	(void)l;
	(void)fd;
	(void)events;
	(void)MHD_run(u->mhd);
	rearm(u);
}

static void
on_timeout(struct ras_loop *l, struct ras_loop_timer *t, void *ctx)
{
	struct ras_ui *u = ctx;

	(void)l;
	(void)t;
	(void)MHD_run(u->mhd);
	rearm(u);
}

/* ---- configuration ---------------------------------------------------------------- */

static int
parse_listen(const char *v, struct sockaddr_storage *ss, bool *v6, bool *loopback)
{
	struct ras_listen_addr a;
	int err;

	if ((err = ras_listen_parse("ui", v, &a)) < 0)
		return err;
	*ss = a.ss;
	*v6 = a.v6;
	*loopback = a.loopback;
	return 0;
}

/* The path of [ui] redirect_url: where the provider sends the browser back. */
static int
callback_path(const char *url, char *out, size_t size)
{
	const char *p = url ? strstr(url, "://") : NULL;

	if (p == NULL || (p = strchr(p + 3, '/')) == NULL || strchr(p, '?') || strlen(p) >= size ||
	    strcmp(p, "/") == 0)
		return ras_error_code(RAS_EINVALID, "[ui] redirect_url must be an absolute URL with a path "
		    "(e.g. https://rasd.example.nhs.uk/callback)");
	snprintf(out, size, "%s", p);
	return 0;
}

int
ras_ui_check(const struct ras_config *cfg, struct ras_buf *problems)
{
	static const char *const need[] = { "listen", "issuer", "client_id", "client_key", "redirect_url",
		"clinician_roles" };
	const char *listen = ras_config_get(cfg, "ui", NULL, "listen");
	const char *cert = ras_config_get(cfg, "ui", NULL, "tls_certificate");
	const char *key = ras_config_get(cfg, "ui", NULL, "tls_key");
	struct sockaddr_storage ss;
	bool v6, loop = false;
	char cb[256];
	int n = 0;

	if (!ras_config_bool(cfg, "ui", NULL, "enabled"))
		return 0;
	for (size_t i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (ras_config_get(cfg, "ui", NULL, need[i]) == NULL) {
			(void)ras_buf_printf(problems, "[ui] %s is required when [ui] enabled\n", need[i]);
			n++;
		}
	if (listen && parse_listen(listen, &ss, &v6, &loop) < 0) {
		(void)ras_buf_printf(problems, "%s\n", ras_error_last());
		n++;
	}
	if ((cert == NULL) != (key == NULL)) {
		(void)ras_buf_printf(problems, "[ui] tls_certificate and tls_key go together\n");
		n++;
	}
	if (listen && cert == NULL && !loop) {
		(void)ras_buf_printf(problems, "[ui] off loopback the pages are served over HTTPS only: set "
		    "tls_certificate and tls_key\n");
		n++;
	}
	if (ras_config_get(cfg, "ui", NULL, "redirect_url") &&
	    callback_path(ras_config_get(cfg, "ui", NULL, "redirect_url"), cb, sizeof(cb)) < 0) {
		(void)ras_buf_printf(problems, "%s\n", ras_error_last());
		n++;
	}
	if (ras_config_get(cfg, "ui", NULL, "client_key")) {
		struct ras_buf k = RAS_BUF_INIT(RAS_SECRET_MAX);
		struct ras_oidc *o = NULL;
		struct ras_oidc_opts oo;

		if (ras_config_secret(cfg, "ui", NULL, "client_key", &k) < 0) {
			(void)ras_buf_printf(problems, "%s\n", ras_error_last());
			n++;
		} else if (ras_config_get(cfg, "ui", NULL, "issuer") && ras_config_get(cfg, "ui", NULL, "client_id") &&
		    ras_config_get(cfg, "ui", NULL, "redirect_url")) {
			memset(&oo, 0, sizeof(oo));
			oo.issuer = ras_config_get(cfg, "ui", NULL, "issuer");
			oo.client_id = ras_config_get(cfg, "ui", NULL, "client_id");
			oo.client_key = k.data;
			oo.client_key_len = k.len;
			oo.redirect_url = ras_config_get(cfg, "ui", NULL, "redirect_url");
			if (ras_oidc_new(&oo, &o) < 0) {
				(void)ras_buf_printf(problems, "%s\n", ras_error_last());
				n++;
			}
			ras_oidc_free(o);
		}
		if (k.data)
			explicit_bzero(k.data, k.len);
		ras_buf_free(&k);
	}
	if (key) {
		struct ras_buf t = RAS_BUF_INIT(RAS_SECRET_MAX);

		if (ras_config_secret(cfg, "ui", NULL, "tls_key", &t) < 0) {
			(void)ras_buf_printf(problems, "%s\n", ras_error_last());
			n++;
		}
		if (t.data)
			explicit_bzero(t.data, t.len);
		ras_buf_free(&t);
	}
	return n;
}

struct list_ctx {
	char **v;
	size_t n;
};

static int
list_add(const char *item, void *ctx)
{
	struct list_ctx *l = ctx;

	if (l->n >= UI_ROLES_MAX)
		return 0;
	if ((l->v[l->n] = strdup(item)) == NULL)
		return RAS_ENOMEM;
	l->n++;
	return 0;
}

static void
roles_free(struct ras_ui *u)
{
	for (size_t i = 0; i < u->nclinician_roles; i++)
		free(u->clinician_roles[i]);
	for (size_t i = 0; i < u->nadmin_roles; i++)
		free(u->admin_roles[i]);
	u->nclinician_roles = u->nadmin_roles = 0;
}

int
ras_ui_reconfigure(struct ras_ui *u, const struct ras_config *cfg)
{
	struct list_ctx lc, la;
	const char *v;

	if (u == NULL)
		return 0;
	roles_free(u);
	lc = (struct list_ctx){ u->clinician_roles, 0 };
	la = (struct list_ctx){ u->admin_roles, 0 };
	if ((v = ras_config_get(cfg, "ui", NULL, "clinician_roles")))
		(void)ras_config_list_each(v, list_add, &lc);
	if ((v = ras_config_get(cfg, "ui", NULL, "admin_roles")))
		(void)ras_config_list_each(v, list_add, &la);
	u->nclinician_roles = lc.n;
	u->nadmin_roles = la.n;
	u->lifetime = (int)ras_config_int(cfg, "ui", NULL, "session_lifetime");
	return 0;
}

static char *
read_pem(const char *path)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_SECRET_MAX);

	if (ras_buf_read_file(&b, path) < 0) {
		ras_buf_free(&b);
		return NULL;
	}
	return ras_buf_detach(&b, NULL);
}

int
ras_ui_start(struct ras_daemon *d, const struct ras_config *cfg, struct ras_ui **out)
{
	const char *listen = ras_config_get(cfg, "ui", NULL, "listen");
	const char *cert = ras_config_get(cfg, "ui", NULL, "tls_certificate");
	const char *assets = ras_config_get(cfg, "ui", NULL, "assets");
	struct ras_buf ck = RAS_BUF_INIT(RAS_SECRET_MAX);
	struct ras_oidc_opts oo;
	struct ras_ui *u;
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	unsigned flags = MHD_USE_EPOLL;
	bool v6, loop;
	int err;

	*out = NULL;
	if (!ras_config_bool(cfg, "ui", NULL, "enabled"))
		return 0;
	if ((err = parse_listen(listen ? listen : "", &ss, &v6, &loop)) < 0)
		return err;
	if ((u = calloc(1, sizeof(*u))) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	u->d = d;
	u->epfd = -1;
	snprintf(u->assets, sizeof(u->assets), "%s", assets ? assets : RAS_DATADIR "/ui");
	if ((err = callback_path(ras_config_get(cfg, "ui", NULL, "redirect_url"), u->callback,
	    sizeof(u->callback))) < 0)
		goto fail;
	(void)ras_ui_reconfigure(u, cfg);
	if ((err = ras_config_secret(cfg, "ui", NULL, "client_key", &ck)) < 0)
		goto fail;
	memset(&oo, 0, sizeof(oo));
	oo.issuer = ras_config_get(cfg, "ui", NULL, "issuer");
	oo.client_id = ras_config_get(cfg, "ui", NULL, "client_id");
	oo.client_key = ck.data;
	oo.client_key_len = ck.len;
	oo.client_key_id = ras_config_get(cfg, "ui", NULL, "client_key_id");
	oo.redirect_url = ras_config_get(cfg, "ui", NULL, "redirect_url");
	oo.scope = ras_config_get(cfg, "ui", NULL, "scope");
	oo.acr_values = ras_config_get(cfg, "ui", NULL, "acr_values");
	oo.ca_file = ras_config_get(cfg, "ui", NULL, "ca_file");
	oo.allow_http_loopback = ras_config_bool(cfg, "ui", NULL, "allow_http_loopback");
	err = ras_oidc_new(&oo, &u->oidc);
	explicit_bzero(ck.data, ck.len);
	ras_buf_free(&ck);
	if (err < 0)
		goto fail;
	if (v6)
		flags |= MHD_USE_IPv6;
	if (cert) {
		struct ras_buf key = RAS_BUF_INIT(RAS_SECRET_MAX);

		flags |= MHD_USE_TLS;
		u->tls = true;
		if (ras_config_secret(cfg, "ui", NULL, "tls_key", &key) < 0) {
			ras_buf_free(&key);
			err = RAS_EINVALID;
			goto fail;
		}
		u->key = ras_buf_detach(&key, NULL);
		u->cert = read_pem(cert);
		if (u->key == NULL || u->cert == NULL) {
			err = ras_error_code(RAS_EINVALID, "cannot read [ui] tls_certificate or tls_key");
			goto fail;
		}
	}
	{
		struct MHD_OptionItem tls[] = {
			{ cert ? MHD_OPTION_HTTPS_MEM_KEY : MHD_OPTION_END, 0, u->key },
			{ MHD_OPTION_HTTPS_MEM_CERT, 0, u->cert },
			{ MHD_OPTION_END, 0, NULL },
		};

		u->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, u,
		    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		    MHD_OPTION_NOTIFY_COMPLETED, on_completed, u,
		    MHD_OPTION_CONNECTION_LIMIT, 64u,
		    MHD_OPTION_CONNECTION_TIMEOUT, 60u,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)UI_CONN_MEMORY,
		    MHD_OPTION_EXTERNAL_LOGGER, mhd_log, u,
		    MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
		    MHD_OPTION_ARRAY, tls,
		    MHD_OPTION_END);
	}
	if (u->mhd == NULL) {
		err = ras_error_code(RAS_EIO, "could not listen on [ui] %s (address in use, not permitted, "
		    "or bad TLS material)", listen);
		goto fail;
	}
	info = MHD_get_daemon_info(u->mhd, MHD_DAEMON_INFO_EPOLL_FD);
	u->epfd = info ? info->epoll_fd : -1;
	info = MHD_get_daemon_info(u->mhd, MHD_DAEMON_INFO_BIND_PORT);
	{
		const char *colon = strrchr(listen, ':');

		snprintf(u->address, sizeof(u->address), "%.*s:%u", (int)(colon - listen), listen,
		    info ? (unsigned)info->port : 0u);
	}
	if (u->epfd < 0) {
		err = ras_error_code(RAS_EIO, "libmicrohttpd gave no epoll descriptor");
		goto fail;
	}
	u->timer = ras_loop_timer_new(d->loop, "ui", on_timeout, u);
	if (u->timer == NULL || (err = ras_loop_add_fd(d->loop, u->epfd, EPOLLIN, on_ready, u)) < 0) {
		if (u->timer == NULL)
			err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto fail;
	}
	rearm(u);
	*out = u;
	return 0;
fail:
	ras_ui_stop(d, u);
	return err;
}

void
ras_ui_stop(struct ras_daemon *d, struct ras_ui *u)
{
	if (u == NULL)
		return;
	if (u->epfd >= 0)
		ras_loop_del_fd(d->loop, u->epfd);
	if (u->timer)
		ras_loop_timer_free(d->loop, u->timer);
	if (u->mhd)
		MHD_stop_daemon(u->mhd);
	ras_oidc_free(u->oidc);
	roles_free(u);
	free(u->cert);
	if (u->key) {
		explicit_bzero(u->key, strlen(u->key));
		free(u->key);
	}
	free(u);
}

const char *
ras_ui_address(const struct ras_ui *u)
{
	return u ? u->address : NULL;
}
