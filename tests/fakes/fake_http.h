/*
 * fake_http: a loopback HTTP server for protocol tests and the demo.
 *
 * It runs libmicrohttpd on 127.0.0.1 with an ephemeral port, passes each
 * request to a handler that fills in the response, and records every
 * request (method, path with query, headers, body) so tests can assert on
 * exactly what rasd sent.  The e-RS, MESH and FHIR fakes are handlers on
 * top of this.
 *
 * Faults, in one place for every fake: a test arms a fault on a fake's
 * server (fake_http_fault) and the next matching request(s) get it instead
 * of, or on top of, the fake's normal answer — a dropped connection, a
 * delay, a body cut off halfway, an oversize body, a header line that does
 * not end within any sane limit, a body dripped a byte at a time, a TLS
 * handshake that fails.  A fake opts in with one call: it exposes its
 * server (fake_ers_http, fake_mesh_http, fake_fhir_http, fake_pds_http) and the test
 * arms faults on that.  Every fault applied is counted.
 */
#ifndef RAS_FAKE_HTTP_H
#define RAS_FAKE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define FAKE_HEADERS_MAX 64
#define FAKE_BODY_MAX (64u * 1024u * 1024u)

struct fake_header {
	char *name;
	char *value;
};

struct fake_req {
	char *method;
	char *path;        /* URL path and query, e.g. "/STU3/Task?focus=…" */
	char *body;        /* NUL-terminated (may contain NULs before body_len) */
	size_t body_len;
	struct fake_header headers[FAKE_HEADERS_MAX];
	size_t nheaders;
	bool client_cert_verified;   /* TLS server: the client presented a certificate the CA signed */
};

struct fake_resp {
	int status;                          /* 0 = 200 */
	const char *content_type;
	struct fake_header headers[16];      /* extra response headers (not freed) */
	size_t nheaders;
	const char *body;                    /* copied; NULL = empty */
	size_t body_len;                     /* 0 = strlen(body) */
	bool drop;                           /* close the connection without answering */
	int delay_ms;                        /* wait before answering */
	void *owned;                         /* freed once the answer is built (a malloc'd body) */
};

typedef void (*fake_handler)(void *ctx, const struct fake_req *req, struct fake_resp *resp);

struct fake_http;

struct fake_http *fake_http_start(fake_handler handler, void *ctx);
/* The same on a given loopback port (0 = any free one). */
struct fake_http *fake_http_start_port(fake_handler handler, void *ctx, unsigned port);
void fake_http_stop(struct fake_http *f);

/* The same over TLS (PEM strings); with client_ca_pem, client certificates
 * are requested and checked against it (fake_req.client_cert_verified).
 * The URL is then "https://127.0.0.1:PORT". */
struct fake_tls {
	const char *cert_pem, *key_pem, *client_ca_pem;
};
struct fake_http *fake_http_start_tls(fake_handler handler, void *ctx, const struct fake_tls *tls);

unsigned fake_http_port(const struct fake_http *f);
/* "http://127.0.0.1:PORT" */
const char *fake_http_url(const struct fake_http *f);

/* Recorded requests (copies owned by the server until reset/stop). */
size_t fake_http_count(struct fake_http *f);
const struct fake_req *fake_http_req(struct fake_http *f, size_t i);
void fake_http_reset(struct fake_http *f);
/* Connections accepted so far (a keep-alive client opens few; reset does
 * not clear it). */
size_t fake_http_connections(struct fake_http *f);

enum fake_fault_kind {
	FAKE_FAULT_DROP = 1,       /* close the connection without answering (after `ms`) */
	FAKE_FAULT_DELAY,          /* the normal answer, `ms` late */
	FAKE_FAULT_TRUNCATE,       /* the normal answer, its body cut off halfway (the
	                              Content-Length promised all of it) */
	FAKE_FAULT_OVERSIZE,       /* 200 with a body of `bytes` bytes (chunked, no length) */
	FAKE_FAULT_ENDLESS_HEADER, /* the normal status with one header line of `bytes`
	                              bytes (default 1 MiB) */
	FAKE_FAULT_SLOW_DRIP,      /* the normal answer, its body one byte every `ms` */
	FAKE_FAULT_TLS,            /* the next connection's TLS handshake fails (the server
	                              sends a handshake_failure alert and hangs up); on a
	                              plain-HTTP server the client gets that alert as garbage */
};

struct fake_fault {
	enum fake_fault_kind kind;
	const char *path_has;      /* substring of the path and query; NULL = any (not TLS) */
	int times;                 /* requests (connections for TLS) it applies to; 0 = 1, -1 = all */
	int ms;
	size_t bytes;
};

/* Arm a fault (up to 16 at once; the first that matches applies). */
void fake_http_fault(struct fake_http *f, const struct fake_fault *fault);
void fake_http_faults_clear(struct fake_http *f);
/* How many requests (or connections) got a fault so far. */
size_t fake_http_faulted(struct fake_http *f);

/* Case-insensitive header lookup; NULL when absent. */
const char *fake_req_header(const struct fake_req *r, const char *name);

/* Add a response header. */
void fake_resp_header(struct fake_resp *r, const char *name, const char *value);

#endif
