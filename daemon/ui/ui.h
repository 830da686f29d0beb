/*
 * ui: the clinicians' pages, served by rasd on their own address ([ui]
 * listen, HTTPS with [ui] tls_certificate) so that they can be offered to
 * the clinical network while the intake endpoint is not
 * (docs/design/ui.md).  libmicrohttpd, driven by the daemon's loop as the
 * intake listener is.
 *
 *   GET  /login                    start a CIS2 sign-in (redirect)
 *   GET  <redirect_url's path>     the identity provider's answer
 *   POST /logout                   sign out
 *   GET  /worklist                 ?service= &state=
 *   GET  /referral/KEY             the referral (audit: ui-view)
 *   GET  /referral/KEY/attachment/ID
 *   GET  /referral/KEY/decide      the decision form
 *   POST /referral/KEY/decide      a decision, exactly as rasctl decide
 *   GET  /admin/dead-letters       admin role
 *   POST /admin/requeue            admin role
 *   GET  /report/kpi               ?service= &from= &to=
 *   GET  /assets/NAME              styles (NHS.UK frontend)
 *   GET  /healthz
 *
 * Every page needs a session (else a redirect to /login); every POST a
 * CSRF token of the session; patient pages are sent with no-store,
 * Content-Security-Policy and X-Frame-Options.
 */
#ifndef RAS_DAEMON_UI_H
#define RAS_DAEMON_UI_H

struct ras_buf;
struct ras_config;
struct ras_daemon;
struct ras_ui;

/* Start serving when [ui] enabled (no-op, *out = NULL, otherwise). */
int ras_ui_start(struct ras_daemon *d, const struct ras_config *cfg, struct ras_ui **out);
void ras_ui_stop(struct ras_daemon *d, struct ras_ui *u);

/* Take the reloadable settings (roles, session lifetime). */
int ras_ui_reconfigure(struct ras_ui *u, const struct ras_config *cfg);

/* "127.0.0.1:8444" as bound. */
const char *ras_ui_address(const struct ras_ui *u);

/* --check-config and reload checks; returns the number of problems appended. */
int ras_ui_check(const struct ras_config *cfg, struct ras_buf *problems);

#endif
