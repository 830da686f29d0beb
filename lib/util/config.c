/*
 * config: INI parser, option table and secrets (see include/ras/config.h).
 *
 * To add an option, add a row to ras_config_options[]: its help text is its
 * entry in rasd.conf(5), whose options table is generated from this table at
 * build time (docs/man/gen-conf-options.c), and in systemd/rasd.conf.example.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/error.h"
#include "ras/limits.h"

static const char *
no_password(const char *v, char *buf, size_t size)
{
	/* A conninfo is "key=value" words or a URI; either way a password
	 * written here would be a secret in the main config. */
	if (strstr(v, "password=") || strstr(v, "password ="))
		return "must not contain a password: use passfile= or PGPASSFILE, or a systemd credential";
	if ((strncmp(v, "postgres://", 11) == 0 || strncmp(v, "postgresql://", 13) == 0)) {
		const char *at = strchr(v, '@'), *colon = strchr(v + 13, ':');

		if (at && colon && colon < at)
			return "must not contain a password: use passfile= or PGPASSFILE";
	}
	(void)buf;
	(void)size;
	return NULL;
}

/* e-RS (issue 4) validators */
static const char *
ers_mode_ok(const char *v, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	if (strcmp(v, "application") && strcmp(v, "user") && strcmp(v, "sandbox"))
		return "must be application, user or sandbox";
	return NULL;
}

static const char *
ers_token_ok(const char *v, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	if (*v == '\0' || strlen(v) > RAS_ID_MAX)
		return "must be 1 to 128 characters";
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\')
			return "must be printable characters without spaces or quotes";
	return NULL;
}

static const char *
ers_business_function_ok(const char *v, char *buf, size_t size)
{
	static const char *const ok[] = { "SERVICE_PROVIDER_CLINICIAN", "SERVICE_PROVIDER_CLINICIAN_ADMIN",
		"SERVICE_PROVIDER_ADMIN", NULL };

	for (int i = 0; ok[i]; i++)
		if (strcmp(v, ok[i]) == 0)
			return NULL;
	snprintf(buf, size, "must be a provider business function: SERVICE_PROVIDER_CLINICIAN, "
	    "SERVICE_PROVIDER_CLINICIAN_ADMIN or SERVICE_PROVIDER_ADMIN");
	return buf;
}

static const char *
ers_poll_days_ok(const char *v, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	return strcmp(v, "working") == 0 || strcmp(v, "all") == 0 ? NULL : "must be working or all";
}

static const char *
gpprovider_dob_ok(const char *v, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	return strcmp(v, "YYYYMMDD") == 0 || strcmp(v, "DDMMYYYY") == 0 ? NULL :
	    "must be YYYYMMDD or DDMMYYYY";
}

static const char *
ers_schedule_ok(const char *v, char *buf, size_t size)
{
	int prev = -1, n = 0;
	const char *p = v;

	while (*p) {
		int hh, mm, used = 0;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		if (sscanf(p, "%2d:%2d%n", &hh, &mm, &used) != 2 || used != 5 || hh > 23 || mm > 59 ||
		    hh < 0 || mm < 0)
			return "must be HH:MM times separated by commas";
		if (hh * 60 + mm <= prev)
			return "times must be in ascending order";
		prev = hh * 60 + mm;
		if (++n > 2) {
			snprintf(buf, size, "lists more than two times: e-RS allows two worklist calls a day");
			return buf;
		}
		p += used;
		while (*p == ' ')
			p++;
		if (*p && *p != ',')
			return "must be HH:MM times separated by commas";
	}
	return NULL;
}

/* daemon (issue 6) validators */
static const char *
listen_address(const char *v, char *buf, size_t size)
{
	/* host:port, [v6]:port, or a Unix socket path is not supported. */
	const char *colon = strrchr(v, ':');
	char *end;
	long port;

	if (colon == NULL || colon == v)
		return "must be HOST:PORT, e.g. 127.0.0.1:8443 or [::1]:8443";
	if (v[0] == '[' && colon[-1] != ']')
		return "must be [IPv6]:PORT";
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || end == colon + 1 || port < 0 || port > 65535) {
		snprintf(buf, size, "has a bad port \"%.16s\" (0..65535)", colon + 1);
		return buf;
	}
	return NULL;
}

static const char *
log_level(const char *v, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	if (strcmp(v, "debug") && strcmp(v, "info") && strcmp(v, "notice") && strcmp(v, "warning") &&
	    strcmp(v, "err"))
		return "must be debug, info, notice, warning or err";
	return NULL;
}

const struct ras_option ras_config_options[] = {
	{ "database", "conninfo", RAS_OPT_STRING, NULL, 0, 0, false, false, no_password,
	  "libpq connection string (no password: use passfile= or a credential)" },
	{ "database", "batch_size", RAS_OPT_INT, "200", 1, 10000, true, false, NULL,
	  "rows a stage claims per transaction" },
	{ "general", "mappings", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "directory of rule sets, forms, practice lists and the bank-holiday file" },
	{ "general", "instance", RAS_OPT_STRING, NULL, 0, 0, false, false, NULL,
	  "name of this rasd instance in logs and metrics (default: host name)" },
	/* triage (issue 3): [service ID] … */
	{ "service", "ers_service_ids", RAS_OPT_LIST, NULL, 0, 0, true, true, NULL,
	  "e-RS service ids whose referrals belong to this rasd service (mappings/services/ID.json)" },
	{ "service", "automation", RAS_OPT_STRING, NULL, 0, 0, true, true, NULL,
	  "overrides the rule set's automation: administrative (default), all or none (checked with the rule sets)" },
	/* clinical safety (issue 12): [clinician SDS_USER_ID], the clinician register */
	{ "clinician", "name", RAS_OPT_STRING, NULL, 0, 0, true, true, NULL,
	  "the clinician's name, as decisions and letters show it" },
	{ "clinician", "registration", RAS_OPT_STRING, NULL, 0, 0, true, true, NULL,
	  "professional registration, e.g. GMC 1234567" },
	{ "clinician", "role", RAS_OPT_STRING, NULL, 0, 0, true, true, NULL,
	  "role, e.g. Consultant in pain medicine" },
	{ "clinician", "services", RAS_OPT_LIST, NULL, 0, 0, true, true, NULL,
	  "rasd services this clinician decides for (rasctl decide --by, EPR decisions)" },
	{ "triage", "default_service", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "rasd service for referrals that arrive with no service and no configured e-RS service id" },

	/* e-RS (issue 4): [ers] … */
	{ "ers", "base_url", RAS_OPT_URL, NULL, 0, 0, true, false, NULL,
	  "e-RS FHIR base, e.g. https://api.service.nhs.uk/referrals/FHIR (unset: e-RS off)" },
	{ "ers", "token_url", RAS_OPT_URL, NULL, 0, 0, true, false, NULL,
	  "OAuth2 token endpoint; the JWT aud is exactly this (application mode)" },
	{ "ers", "mode", RAS_OPT_STRING, "application", 0, 0, true, false, ers_mode_ok,
	  "application (signed JWT), user (CIS2 bearer token file) or sandbox (no auth)" },
	{ "ers", "api_key", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_token_ok,
	  "APIM application API key: iss and sub of the client assertion" },
	{ "ers", "kid", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_token_ok,
	  "key id of the signing key in the application's JWKS" },
	{ "ers", "private_key", RAS_OPT_SECRET, NULL, 0, 0, true, false, NULL,
	  "RSA private key (PEM) file or systemd credential name, for RS512 signing" },
	{ "ers", "bearer_token_file", RAS_OPT_SECRET, NULL, 0, 0, true, false, NULL,
	  "user mode: file (or credential) holding the CIS2 access token; re-read when it changes" },
	{ "ers", "business_function", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_business_function_ok,
	  "user mode: NHSD-eRS-Business-Function (SERVICE_PROVIDER_CLINICIAN, …)" },
	{ "ers", "ods_code", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_token_ok,
	  "user mode: NHSD-End-User-Organisation-ODS" },
	{ "ers", "obo_user_id", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_token_ok,
	  "user mode with SERVICE_PROVIDER_CLINICIAN_ADMIN: NHSD-eRS-On-Behalf-Of-User-ID" },
	{ "ers", "ca_file", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "PEM CA bundle for the e-RS and token hosts (default: the system bundle)" },
	{ "ers", "client_cert", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "PEM client certificate, when the network path needs mutual TLS" },
	{ "ers", "client_key", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "PEM key of client_cert (a file or a path under $CREDENTIALS_DIRECTORY)" },
	{ "ers", "service_ids", RAS_OPT_LIST, NULL, 0, 0, true, false, NULL,
	  "e-RS service ids to poll, each optionally =rasd-service: 21012=midnotts, 11002" },
	{ "ers", "schedule", RAS_OPT_LIST, "08:00,13:00", 0, 0, true, false, ers_schedule_ok,
	  "working-day times (UK) of the worklist polls; at most two" },
	{ "ers", "rate_limit", RAS_OPT_INT, "10", 1, 10, true, false, NULL,
	  "e-RS calls started per second by this process (e-RS allows 10 per application)" },
	{ "ers", "timeout", RAS_OPT_INT, "200", 5, 900, true, false, NULL,
	  "seconds an e-RS call may take (the gateway gives up at 180: shorter cuts off answers it"
	  " would still give, which are then read back)" },
	{ "ers", "max_attempts", RAS_OPT_INT, "5", 1, 50, true, false, NULL,
	  "attempts per call on 429/503, and per fetch or outcome before it is parked" },
	{ "ers", "accept_comment", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "reviewComments of an acceptance whose decision gives no advice" },
	{ "ers", "poll_days", RAS_OPT_STRING, "working", 0, 0, true, false, ers_poll_days_ok,
	  "days the daemon polls the worklists on schedule: working (Mon-Fri less bank holidays) or all" },

	/* PDS (issue 10): [pds] (docs/design/pds.md) */
	{ "pds", "base_url", RAS_OPT_URL, NULL, 0, 0, true, false, NULL,
	  "PDS FHIR R4 base, e.g. https://api.service.nhs.uk/personal-demographics/FHIR/R4 (unset: PDS off)" },
	{ "pds", "mode", RAS_OPT_STRING, "application", 0, 0, true, false, ers_mode_ok,
	  "application (signed JWT), user (bearer token file) or sandbox (no auth)" },
	{ "pds", "token_url", RAS_OPT_URL, NULL, 0, 0, true, false, NULL,
	  "NHS API platform token endpoint (application mode); the JWT aud is exactly this" },
	{ "pds", "api_key", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_token_ok,
	  "APIM application API key: iss and sub of the client assertion" },
	{ "pds", "kid", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_token_ok,
	  "key id of the signing key in the application's JWKS" },
	{ "pds", "private_key", RAS_OPT_SECRET, NULL, 0, 0, true, false, NULL,
	  "RSA private key (PEM) file or systemd credential name, for RS512 signing" },
	{ "pds", "bearer_token_file", RAS_OPT_SECRET, NULL, 0, 0, true, false, NULL,
	  "user mode: file (or credential) holding the access token; re-read when it changes" },
	{ "pds", "end_user_ods", RAS_OPT_STRING, NULL, 0, 0, true, false, ers_token_ok,
	  "NHSD-End-User-Organisation-ODS, for an installation serving several organisations" },
	{ "pds", "ca_file", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "PEM CA bundle for the PDS and token hosts (default: the system bundle)" },
	{ "pds", "client_cert", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "PEM client certificate, when the network path needs mutual TLS" },
	{ "pds", "client_key", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "PEM key of client_cert" },
	{ "pds", "rate_limit", RAS_OPT_INT, "5", 1, 100, true, false, NULL,
	  "PDS requests started per second by this process (PDS allows 5 per application)" },
	{ "pds", "timeout", RAS_OPT_INT, "10", 1, 120, true, false, NULL,
	  "seconds one PDS call may take" },
	{ "pds", "max_attempts", RAS_OPT_INT, "4", 1, 20, true, false, NULL,
	  "attempts per lookup on 408/429/5xx/timeouts (same X-Request-ID) before it waits" },
	{ "pds", "max_age", RAS_OPT_INT, "24", 1, 720, true, false, NULL,
	  "hours a stored PDS record may be used for a referral's letters before a fresh lookup" },
	{ "pds", "verify", RAS_OPT_BOOL, "false", 0, 0, true, false, NULL,
	  "look up every referral's patient (R4 too) and send differences from PDS to review" },

	/* documents and delivery (issue 5): [mesh], [fhir], [routing], [outbox] … */
	{ "mesh", "enabled", RAS_OPT_BOOL, "false", 0, 0, true, false, NULL,
	  "send documents and poll the inbox over MESH" },
	{ "mesh", "url", RAS_OPT_URL, NULL, 0, 0, false, false, NULL,
	  "MESH base URL, e.g. https://msg.intspineservices.nhs.uk" },
	{ "mesh", "mailbox", RAS_OPT_STRING, NULL, 0, 0, false, false, NULL, "our MESH mailbox id" },
	{ "mesh", "password", RAS_OPT_SECRET, NULL, 0, 0, false, false, NULL,
	  "file (or credential) holding the mailbox password" },
	{ "mesh", "shared_key", RAS_OPT_SECRET, NULL, 0, 0, false, false, NULL,
	  "file (or credential) holding the environment's shared secret" },
	{ "mesh", "client_cert", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM client certificate for mTLS" },
	{ "mesh", "client_key", RAS_OPT_SECRET, NULL, 0, 0, false, false, NULL,
	  "file (or credential) holding the PEM private key of client_cert" },
	{ "mesh", "ca_file", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM bundle of the MESH environment's CAs" },
	{ "mesh", "chunk_size", RAS_OPT_INT, "20971520", 1024, 104857600, true, false, NULL,
	  "payloads larger than this are sent in chunks (MESH caps one request at 100 MB)" },
	{ "mesh", "timeout", RAS_OPT_INT, "600", 1, 3600, true, false, NULL,
	  "seconds one MESH request may take" },
	{ "mesh", "handshake_interval", RAS_OPT_INT, "86400", 60, 86400, true, false, NULL,
	  "seconds between handshakes (MESH wants one at least daily)" },
	{ "mesh", "workflow_triage_outcome", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "MESH workflow id for triage outcome letters (unless the route names one)" },
	{ "mesh", "workflow_gp_2ww_notice", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "MESH workflow id for 2WW GP notices" },
	{ "mesh", "workflow_notification_letter", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "MESH workflow id for notification letters" },
	{ "mesh", "workflow_discharge_summary", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "MESH workflow id for discharge summaries" },
	{ "fhir", "ca_file", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM CA bundle for FHIR endpoints (default: the system's)" },
	{ "fhir", "client_cert", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM client certificate for FHIR endpoints that want mTLS" },
	{ "fhir", "client_key", RAS_OPT_SECRET, NULL, 0, 0, false, false, NULL,
	  "file (or credential) holding the key of [fhir] client_cert" },
	{ "fhir", "token", RAS_OPT_SECRET, NULL, 0, 0, true, false, NULL,
	  "file (or credential) holding a bearer token for FHIR endpoints" },
	{ "fhir", "timeout", RAS_OPT_INT, "60", 1, 600, true, false, NULL,
	  "seconds one FHIR request may take" },
	{ "routing", "table", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "JSON routing table: ODS code -> MESH mailbox and workflow, or FHIR endpoint" },
	{ "routing", "gp_auto_routing", RAS_OPT_BOOL, "false", 0, 0, true, false, NULL,
	  "send to a GP practice without a route through MESH GPPROVIDER auto-routing" },
	/* ITK3 (issue 11) */
	{ "routing", "gpprovider_dob_format", RAS_OPT_STRING, "YYYYMMDD", 0, 0, true, false,
	  gpprovider_dob_ok, "date of birth in GPPROVIDER_<NHS>_<DOB>_<Surname> auto-routing addresses: "
	  "YYYYMMDD (MESH endpoint lookup guide, GP Connect Send Document 2.x) or DDMMYYYY "
	  "(GP Connect Messaging 1.x)" },
	{ "outbox", "ack_infrastructure_timeout", RAS_OPT_INT, "86400", 60, 2592000, true, false, NULL,
	  "seconds after delivery an ITK3 letter waits for its infrastructure acknowledgement before a "
	  "person is told" },
	{ "outbox", "ack_business_working_days", RAS_OPT_INT, "5", 1, 60, true, false, NULL,
	  "working days after delivery an ITK3 letter waits for its business acknowledgement before a "
	  "person is told" },
	{ "outbox", "batch_size", RAS_OPT_INT, "100", 1, 10000, true, false, NULL,
	  "outbox rows a stage claims at a time (a delivery round also stops at 1 MiB of payloads)" },
	{ "outbox", "max_attempts", RAS_OPT_INT, "12", 1, 1000, true, false, NULL,
	  "delivery attempts before a document is dead-lettered (a letter held back behind a FHIR "
	  "endpoint that refuses connections is not attempted, so not counted)" },
	{ "outbox", "backoff_base", RAS_OPT_INT, "60", 1, 86400, true, false, NULL,
	  "seconds before the first retry (doubling, jittered); a FHIR endpoint that refuses "
	  "connections is tried again by one letter on the same back-off" },
	{ "outbox", "backoff_max", RAS_OPT_INT, "21600", 1, 604800, true, false, NULL,
	  "longest wait between retries, in seconds" },
	{ "outbox", "lease", RAS_OPT_INT, "900", 30, 86400, true, false, NULL,
	  "seconds after which a send left 'sending' (a crash) is treated as unknown" },
	{ "outbox", "print_dir", RAS_OPT_PATH, NULL, 0, 0, true, false, NULL,
	  "directory where patients' printable copies (HTML, and the letter as PDF) are written; unset: none" },
	{ "outbox", "allow_http_loopback", RAS_OPT_BOOL, "false", 0, 0, false, false, NULL,
	  "tests and demo only: allow plain http:// MESH/FHIR URLs on 127.0.0.1" },

	/* daemon (issue 6): [http], [spool], [daemon] … */
	{ "daemon", "stage_interval", RAS_OPT_INT, "2", 1, 3600, true, false, NULL,
	  "seconds between looks for new work when a stage is idle" },
	{ "daemon", "log_level", RAS_OPT_STRING, "info", 0, 0, true, false, log_level,
	  "debug, info, notice, warning or err" },
	{ "daemon", "heartbeat", RAS_OPT_INT, "30", 5, 3600, true, false, NULL,
	  "seconds between heartbeats in daemon_instances (rasctl status)" },
	{ "http", "listen", RAS_OPT_STRING, NULL, 0, 0, false, false, listen_address,
	  "HOST:PORT of the intake endpoint and /metrics (unset: no HTTP listener)" },
	{ "http", "token", RAS_OPT_SECRET, NULL, 0, 0, true, false, NULL,
	  "file or credential holding the bearer token senders present" },
	{ "http", "tls_certificate", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM certificate chain: serve HTTPS" },
	{ "http", "tls_key", RAS_OPT_SECRET, NULL, 0, 0, false, false, NULL,
	  "file or credential holding the PEM private key of tls_certificate" },
	{ "http", "client_ca", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM CA bundle: require a client certificate it signed (mTLS)" },
	{ "http", "max_body", RAS_OPT_INT, "8388608", 1024, 8388608, true, false, NULL,
	  "largest request body accepted, in bytes (413 above)" },
	{ "http", "max_connections", RAS_OPT_INT, "64", 1, 4096, false, false, NULL,
	  "concurrent connections" },
	{ "http", "timeout", RAS_OPT_INT, "30", 1, 3600, false, false, NULL,
	  "seconds an idle connection is kept" },
	{ "http", "commit_delay", RAS_OPT_INT, "2", 0, 5000, true, false, NULL,
	  "milliseconds an intake POST waits for others to share its commit (group commit)" },
	{ "http", "commit_workers", RAS_OPT_INT, "1", 1, RAS_WORKERS_MAX, false, false, NULL,
	  "groups of intake POSTs kept side by side, each by a thread with a database connection of its"
	  " own (1: one group at a time, in the event loop, the faster where commits are quick; 2 may"
	  " pay where each commit waits milliseconds for the disk: measure with scripts/bench;"
	  " ~1 MiB more memory)" },
	{ "spool", "directory", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "directory watched for payload files (unset: no spool)" },
	{ "spool", "done", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "where stored files go (default DIRECTORY/done)" },
	{ "spool", "rejected", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "where rejected files go, each with a .reason file (default DIRECTORY/rejected)" },
	{ "spool", "service", RAS_OPT_STRING, NULL, 0, 0, true, false, NULL,
	  "rasd service id recorded for referrals that arrive through the spool" },
	{ "spool", "rescan", RAS_OPT_INT, "60", 1, 86400, true, false, NULL,
	  "seconds between full scans (inotify picks files up at once; this is the safety net)" },
	{ "spool", "settle", RAS_OPT_INT, "2", RAS_SPOOL_SETTLE_MIN_S, 3600, true, false, NULL,
	  "seconds a file must have been left alone before a scan takes it (a file closed after"
	  " writing or renamed in is taken at once); 0 is refused: a file still being written"
	  " would be taken half-written" },

	/* clinician UI (issue 13): [ui] … */
	{ "ui", "enabled", RAS_OPT_BOOL, "false", 0, 0, false, false, NULL,
	  "serve the clinicians' worklist (needs listen, issuer, client_id, client_key, redirect_url)" },
	{ "ui", "listen", RAS_OPT_STRING, NULL, 0, 0, false, false, listen_address,
	  "HOST:PORT of the clinicians' pages, apart from the intake's [http] listen" },
	{ "ui", "tls_certificate", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM certificate chain: serve the pages over HTTPS (required off loopback)" },
	{ "ui", "tls_key", RAS_OPT_SECRET, NULL, 0, 0, false, false, NULL,
	  "file or credential holding the PEM private key of tls_certificate" },
	{ "ui", "issuer", RAS_OPT_URL, NULL, 0, 0, false, false, NULL,
	  "OpenID Connect issuer (NHS CIS2), e.g. https://am.nhsidentity.spineservices.nhs.uk/openam/oauth2/realms/root/realms/NHSIdentity/realms/Healthcare" },
	{ "ui", "client_id", RAS_OPT_STRING, NULL, 0, 0, false, false, ers_token_ok,
	  "the client id CIS2 gave rasd (the ID token's audience)" },
	{ "ui", "client_key", RAS_OPT_SECRET, NULL, 0, 0, false, false, NULL,
	  "file or credential: rasd's private key (PEM RSA or JWK) for private_key_jwt" },
	{ "ui", "client_key_id", RAS_OPT_STRING, NULL, 0, 0, false, false, ers_token_ok,
	  "kid of client_key in the JWKS registered with CIS2" },
	{ "ui", "redirect_url", RAS_OPT_URL, NULL, 0, 0, false, false, NULL,
	  "the redirect URI registered with CIS2: https://HOST/callback on this listener" },
	{ "ui", "scope", RAS_OPT_STRING, "openid profile nationalrbacaccess", 0, 0, false, false, NULL,
	  "scopes asked for (nationalrbacaccess gives the RBAC roles)" },
	{ "ui", "acr_values", RAS_OPT_STRING, NULL, 0, 0, false, false, NULL,
	  "acr_values sent to CIS2 (e.g. AAL3_ANY); unset: none" },
	{ "ui", "clinician_roles", RAS_OPT_LIST, NULL, 0, 0, true, false, NULL,
	  "CIS2 RBAC role codes (R8000, or S8000:G8000:R8000) that make a user a clinician" },
	{ "ui", "admin_roles", RAS_OPT_LIST, NULL, 0, 0, true, false, NULL,
	  "CIS2 RBAC role codes that make a user an admin (dead letters, requeue)" },
	{ "ui", "session_lifetime", RAS_OPT_INT, "28800", 300, 86400, true, false, NULL,
	  "seconds a sign-in lasts (then the clinician signs in again)" },
	{ "ui", "ca_file", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "PEM CA bundle for the issuer (default: the system's)" },
	{ "ui", "allow_http_loopback", RAS_OPT_BOOL, "false", 0, 0, false, false, NULL,
	  "tests and demo only: an http:// issuer on 127.0.0.1" },
	{ "ui", "assets", RAS_OPT_PATH, NULL, 0, 0, false, false, NULL,
	  "directory of the NHS.UK frontend styles (default: the installed share/rasd/ui)" },

	{ NULL, NULL, 0, NULL, 0, 0, false, false, NULL, NULL },
};

struct entry {
	char *section, *instance, *name, *value;
	int line;
};

struct ras_config {
	char *path;
	struct entry *v;
	size_t n, cap;
	char *instances[256];
	char *instance_sections[256];
	size_t ninst;
};

static const struct ras_option *
find_option(const char *section, const char *name)
{
	for (const struct ras_option *o = ras_config_options; o->name; o++)
		if (strcmp(o->section, section) == 0 && strcmp(o->name, name) == 0)
			return o;
	return NULL;
}

static bool
section_known(const char *section, bool instanced)
{
	for (const struct ras_option *o = ras_config_options; o->name; o++)
		if (strcmp(o->section, section) == 0 && o->instanced == instanced)
			return true;
	return false;
}

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\n'))
		*--e = '\0';
	return s;
}

static int
add_entry(struct ras_config *c, const char *sec, const char *inst, const char *name,
    const char *value, int line)
{
	struct entry *e;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		struct entry *nv = realloc(c->v, cap * sizeof(*nv));

		if (nv == NULL)
			return ras_error_code(RAS_ENOMEM, "out of memory");
		c->v = nv;
		c->cap = cap;
	}
	e = &c->v[c->n];
	e->section = strdup(sec);
	e->instance = strdup(inst);
	e->name = strdup(name);
	e->value = strdup(value);
	e->line = line;
	if (!e->section || !e->instance || !e->name || !e->value) {
		free(e->section);
		free(e->instance);
		free(e->name);
		free(e->value);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	c->n++;
	return 0;
}

static const char *
check_value(const struct ras_option *o, const char *v, char *buf, size_t size)
{
	switch (o->type) {
	case RAS_OPT_INT: {
		char *end;
		long long n;

		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno || end == v || *end != '\0')
			return "is not an integer";
		if (n < o->min || n > o->max) {
			snprintf(buf, size, "must be between %lld and %lld", (long long)o->min,
			    (long long)o->max);
			return buf;
		}
		break;
	}
	case RAS_OPT_BOOL:
		if (strcmp(v, "true") && strcmp(v, "false") && strcmp(v, "yes") && strcmp(v, "no") &&
		    strcmp(v, "on") && strcmp(v, "off") && strcmp(v, "1") && strcmp(v, "0"))
			return "must be true or false";
		break;
	case RAS_OPT_URL:
		if (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0)
			return "must be an http(s) URL";
		break;
	default:
		break;
	}
	if (o->validate)
		return o->validate(v, buf, size);
	return NULL;
}

static void
problem(struct ras_buf *problems, const char *path, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
problem(struct ras_buf *problems, const char *path, int line, const char *fmt, ...)
{
	va_list ap;

	if (problems == NULL)
		return;
	if (line > 0)
		(void)ras_buf_printf(problems, "%s:%d: ", path, line);
	else
		(void)ras_buf_printf(problems, "%s: ", path);
	va_start(ap, fmt);
	(void)ras_buf_vprintf(problems, fmt, ap);
	va_end(ap);
	(void)ras_buf_putc(problems, '\n');
}

int
ras_config_defaults(struct ras_config **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}

int
ras_config_load(const char *path, struct ras_config **out, struct ras_buf *problems)
{
	struct ras_buf text = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
	struct ras_config *c;
	char section[128] = "", instance[128] = "";
	bool section_ok = true;
	int err, line = 0, nprob = 0;
	char *p, *next;

	if ((err = ras_buf_read_file(&text, path)) < 0) {
		ras_buf_free(&text);
		return err;
	}
	if ((err = ras_config_defaults(&c)) < 0) {
		ras_buf_free(&text);
		return err;
	}
	c->path = strdup(path);
	for (p = text.data; p && *p; p = next) {
		char *l;

		next = strchr(p, '\n');
		if (next)
			*next++ = '\0';
		line++;
		if (strlen(p) > RAS_CONFIG_LINE_MAX) {
			problem(problems, path, line, "line longer than %d characters", RAS_CONFIG_LINE_MAX);
			nprob++;
			continue;
		}
		l = trim(p);
		if (*l == '\0' || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *end = strchr(l, ']'), *sp;

			if (end == NULL || *trim(end + 1) != '\0') {
				problem(problems, path, line, "malformed section header");
				nprob++;
				section_ok = false;
				continue;
			}
			*end = '\0';
			l = trim(l + 1);
			sp = strpbrk(l, " \t");
			instance[0] = '\0';
			if (sp) {
				*sp = '\0';
				snprintf(instance, sizeof(instance), "%s", trim(sp + 1));
			}
			snprintf(section, sizeof(section), "%s", l);
			section_ok = section_known(section, instance[0] != '\0');
			if (!section_ok) {
				if (section_known(section, instance[0] == '\0'))
					problem(problems, path, line, instance[0] ?
					    "section [%s] takes no name" : "section [%s] needs a name, e.g. [%s ID]",
					    section, section);
				else
					problem(problems, path, line, "unknown section [%s]", section);
				nprob++;
			} else if (instance[0] && c->ninst < sizeof(c->instances) / sizeof(c->instances[0])) {
				bool seen = false;

				for (size_t i = 0; i < c->ninst; i++)
					if (strcmp(c->instance_sections[i], section) == 0 &&
					    strcmp(c->instances[i], instance) == 0)
						seen = true;
				if (!seen) {
					c->instance_sections[c->ninst] = strdup(section);
					c->instances[c->ninst++] = strdup(instance);
				}
			}
			continue;
		}
		{
			char *eq = strchr(l, '='), *name, *value, buf[256];
			const struct ras_option *o;
			const char *why;

			if (eq == NULL) {
				problem(problems, path, line, "expected \"name = value\"");
				nprob++;
				continue;
			}
			*eq = '\0';
			name = trim(l);
			value = trim(eq + 1);
			/* A comment may follow a value after whitespace: "x = 1  # why". */
			for (char *h = value; *h; h++)
				if ((*h == '#' || *h == ';') && h > value && (h[-1] == ' ' || h[-1] == '\t')) {
					*h = '\0';
					value = trim(value);
					break;
				}
			if (!section_ok)
				continue;
			if (section[0] == '\0') {
				problem(problems, path, line, "option \"%s\" outside any section", name);
				nprob++;
				continue;
			}
			o = find_option(section, name);
			if (o == NULL) {
				problem(problems, path, line, "unknown option \"%s\" in [%s]", name, section);
				nprob++;
				continue;
			}
			if ((why = check_value(o, value, buf, sizeof(buf))) != NULL) {
				problem(problems, path, line, "%s.%s %s", section, name, why);
				nprob++;
				continue;
			}
			if ((err = add_entry(c, section, instance, name, value, line)) < 0) {
				ras_config_free(c);
				ras_buf_free(&text);
				return err;
			}
		}
	}
	ras_buf_free(&text);
	*out = c;
	if (nprob)
		return ras_error_code(RAS_EINVALID, "%d configuration problem(s) in %s", nprob, path);
	return 0;
}

void
ras_config_free(struct ras_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->v[i].section);
		free(c->v[i].instance);
		free(c->v[i].name);
		free(c->v[i].value);
	}
	for (size_t i = 0; i < c->ninst; i++) {
		free(c->instances[i]);
		free(c->instance_sections[i]);
	}
	free(c->v);
	free(c->path);
	free(c);
}

const char *
ras_config_get(const struct ras_config *c, const char *section, const char *instance,
    const char *name)
{
	const struct ras_option *o = find_option(section, name);

	if (instance == NULL)
		instance = "";
	/* The last assignment wins, like most INI readers. */
	for (size_t i = c ? c->n : 0; i-- > 0;) {
		const struct entry *e = &c->v[i];

		if (strcmp(e->section, section) == 0 && strcmp(e->instance, instance) == 0 &&
		    strcmp(e->name, name) == 0)
			return e->value;
	}
	return o ? o->def : NULL;
}

int64_t
ras_config_int(const struct ras_config *c, const char *section, const char *instance,
    const char *name)
{
	const char *v = ras_config_get(c, section, instance, name);

	return v ? strtoll(v, NULL, 10) : 0;
}

bool
ras_config_bool(const struct ras_config *c, const char *section, const char *instance,
    const char *name)
{
	const char *v = ras_config_get(c, section, instance, name);

	return v && (strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 || strcmp(v, "on") == 0 ||
	    strcmp(v, "1") == 0);
}

size_t
ras_config_instances(const struct ras_config *c, const char *section, const char **names,
    size_t max)
{
	size_t n = 0;

	for (size_t i = 0; c && i < c->ninst; i++)
		if (strcmp(c->instance_sections[i], section) == 0) {
			if (n < max)
				names[n] = c->instances[i];
			n++;
		}
	return n;
}

int
ras_config_secret(const struct ras_config *c, const char *section, const char *instance,
    const char *name, struct ras_buf *out)
{
	const char *v = ras_config_get(c, section, instance, name);
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char path[PATH_MAX];
	int err;

	if (v == NULL || *v == '\0')
		return ras_error_code(RAS_ENOTFOUND, "%s.%s is not set", section, name);
	if (v[0] == '/') {
		snprintf(path, sizeof(path), "%s", v);
	} else if (creds && strchr(v, '/') == NULL) {
		/* A bare name is a systemd credential (LoadCredential=). */
		if (snprintf(path, sizeof(path), "%s/%s", creds, v) >= (int)sizeof(path))
			return ras_error_code(RAS_EINVALID, "credential path too long");
	} else {
		snprintf(path, sizeof(path), "%s", v);
	}
	out->max = RAS_SECRET_MAX;
	if ((err = ras_buf_read_file(out, path)) < 0) {
		ras_error_context("secret %s.%s", section, name);
		return err;
	}
	while (out->len && (out->data[out->len - 1] == '\n' || out->data[out->len - 1] == '\r'))
		out->data[--out->len] = '\0';
	return 0;
}

int
ras_config_secret_string(const struct ras_config *c, struct ras_arena *a, const char *section,
    const char *name, const char **out)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_SECRET_MAX);
	int err;

	*out = NULL;
	if (ras_config_get(c, section, NULL, name) == NULL)
		return 0;
	if ((err = ras_config_secret(c, section, NULL, name, &b)) < 0) {
		ras_buf_free(&b);
		return err;
	}
	*out = ras_arena_strdup(a, b.data ? b.data : "");
	if (b.data)
		memset(b.data, 0, b.len);
	ras_buf_free(&b);
	return *out ? 0 : ras_error_code(RAS_ENOMEM, "out of memory");
}

const char *
ras_config_secret_path(const struct ras_config *c, struct ras_arena *a, const char *section,
    const char *name)
{
	const char *v = ras_config_get(c, section, NULL, name);
	const char *creds = getenv("CREDENTIALS_DIRECTORY");

	if (v == NULL || *v == '\0')
		return NULL;
	if (v[0] != '/' && creds && strchr(v, '/') == NULL)
		return ras_arena_printf(a, "%s/%s", creds, v);
	return ras_arena_strdup(a, v);
}

const char *
ras_config_path(const struct ras_config *c)
{
	return c ? c->path : NULL;
}

int
ras_config_list_each(const char *value, int (*fn)(const char *item, void *ctx), void *ctx)
{
	char item[RAS_CONFIG_LINE_MAX];
	const char *p = value;
	int err;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		char *t;

		if (len >= sizeof(item))
			return ras_error_code(RAS_ETOOBIG, "list item too long");
		memcpy(item, p, len);
		item[len] = '\0';
		t = trim(item);
		if (*t && (err = fn(t, ctx)) < 0)
			return err;
		p = comma ? comma + 1 : NULL;
	}
	return 0;
}
