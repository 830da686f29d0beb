/*
 * httpd: the HTTP listener (libmicrohttpd, driven by the daemon's loop
 * through MHD's epoll descriptor; the only file that includes
 * microhttpd.h and gnutls).
 *
 *   POST /fhir/Bundle             a FHIR R4 referral Bundle, or an EPR message
 *   POST /fhir/$process-message   the same (the FHIR messaging URL)
 *   GET  /healthz                 200 while the loop runs (liveness)
 *   GET  /readyz                  200 when the database is reachable and at
 *                                 the right schema and rasd is not stopping
 *   GET  /metrics                 Prometheus text format
 *
 * Senders authenticate with a bearer token ([http] token, from a file or a
 * systemd credential) and/or a client certificate signed by [http]
 * client_ca (mTLS); when both are configured both are required.  The
 * health and metrics endpoints carry no patient data and need neither.
 * Every answer to a POST is an OperationOutcome: 201 kept and stored (or
 * recorded), 200 already received, 202 kept and queued, 400 not FHIR JSON,
 * 401/403 authentication, 404/405, 413 over [http] max_body, 415 not JSON,
 * 422 kept but refused (the reason says why), 503 database unavailable
 * (nothing kept: retry).
 */
#ifndef RAS_DAEMON_HTTPD_H
#define RAS_DAEMON_HTTPD_H

struct ras_buf;
struct ras_config;
struct ras_daemon;
struct ras_httpd;

/* Start listening on [http] listen (no-op, *out = NULL, when unset). */
int ras_httpd_start(struct ras_daemon *d, const struct ras_config *cfg, struct ras_httpd **out);
void ras_httpd_stop(struct ras_daemon *d, struct ras_httpd *h);

/* Take the reloadable settings (token, max_body) from cfg; RAS_EINVALID
 * (nothing changed) when the new token cannot be read. */
int ras_httpd_reconfigure(struct ras_httpd *h, const struct ras_config *cfg);

/* "127.0.0.1:8443" as bound (the real port when 0 was asked for). */
/* Wait for the groups workers are keeping ([http] commit_workers) and
 * answer them: before a reload frees the configuration they use. */
void ras_httpd_drain(struct ras_httpd *h);
const char *ras_httpd_address(const struct ras_httpd *h);

/* Configuration checks for --check-config and reloads. Returns the
 * number of problems appended. */
int ras_httpd_check(const struct ras_config *cfg, struct ras_buf *problems);

#endif
