/*
 * http: the libcurl adapter; the only file that includes curl.h.
 *
 * One struct ras_http per process (or thread) holds a curl multi handle,
 * so connections are reused across calls and HTTP/2 is negotiated where
 * the server offers it.  ras_http_perform() runs a batch of requests
 * concurrently and fills in each one's response; a failure of one request
 * never fails the others.
 *
 * Every transfer runs on libcurl's multi socket interface: the sockets of
 * all the handles of a thread are kept in one epoll set
 * (ras_http_loop_fd()) and libcurl's timers in one deadline;
 * ras_http_loop_dispatch() drives whatever is ready.  A handle is used on
 * the thread that created it.  Without a driver, ras_http_perform() waits
 * on that set itself (rasctl, tests).  A daemon with an event loop watches
 * the descriptor, arms a timer when the driver's timer() says so, and
 * installs a driver whose wait() keeps running its loop until the batch is
 * done: the caller of ras_http_perform() sees the same blocking call, and
 * the process goes on serving while a remote service is slow.
 *
 * Policy, always on: TLS peer and host verification (CA bundle
 * configurable, client certificate optional), https only (plain http is
 * allowed only to loopback addresses and only when the client was created
 * with allow_http_loopback, for tests and local fakes), redirects never
 * followed (callers follow a 307 themselves and decide which headers go
 * with it), response bodies bounded by max_body, gzip/deflate decoded.
 *
 * A failed transfer says whether the request may have reached the server:
 * RAS_EIO means it certainly did not (DNS, connect, TLS handshake), so a
 * retry is safe; RAS_EINVALID means it was refused before sending and a
 * retry will not help until configuration changes (plain http to a host
 * that is not loopback, a server certificate that does not verify, an
 * unreadable CA bundle or client certificate); RAS_ETIMEDOUT means the
 * outcome is unknown (timeout, connection dropped after sending), so a
 * write must be checked before it is retried.
 */
#ifndef RAS_HTTP_H
#define RAS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ras/buf.h"

struct ras_http;

struct ras_http_opts {
	const char *ca_file;          /* PEM bundle; NULL = system default */
	const char *client_cert;      /* PEM client certificate (mTLS), optional */
	const char *client_key;       /* PEM private key file for client_cert */
	bool allow_http_loopback;     /* permit http:// to 127.0.0.1 / ::1 / localhost */
	long connect_timeout_ms;      /* 0 = 10 s */
	long max_host_connections;    /* 0 = 6 */
	const char *user_agent;       /* NULL = "rasd/<version>" */
	/* Wait for this handle's transfers here, never through the loop
	 * driver: for callers that are themselves inside a loop callback (the
	 * clinicians' pages answer sign-in from libmicrohttpd's callback, and
	 * the loop must not re-enter it).  Such a call blocks the loop for at
	 * most its timeout. */
	bool wait_here;
};

struct ras_http_header {
	const char *name;
	const char *value;
};

#define RAS_HTTP_MAX_REQ_HEADERS 24

struct ras_http_request {
	/* in */
	const char *method;           /* GET, POST, PUT, HEAD, DELETE */
	const char *url;
	struct ras_http_header headers[RAS_HTTP_MAX_REQ_HEADERS];
	size_t nheaders;
	const void *body;
	size_t body_len;
	long timeout_ms;              /* whole transfer; 0 = 60 s */
	size_t max_body;              /* response ceiling; 0 = RAS_HTTP_BODY_MAX */
	bool no_replay;               /* a write that must never be sent twice (an e-RS
	                                 A028, a MESH first chunk): use a new connection
	                                 and close it after, because libcurl silently
	                                 re-sends a request whose reused connection died
	                                 before any answer */

	/* out */
	int err;                      /* 0, or RAS_EIO / RAS_ETIMEDOUT / RAS_ETOOBIG / RAS_EINVALID */
	bool unreached;               /* no connection was made (the host's name did not
	                                 resolve, or it refused or did not answer the
	                                 connection): nothing of the request was sent */
	char errmsg[256];
	long status;                  /* HTTP status, 0 when no response */
	struct ras_buf body_out;      /* response body (NUL-terminated) */
	struct ras_buf headers_out;   /* raw response header block of the final response */
	double seconds;               /* total time */
	char http_version[8];         /* "1.1", "2" */
};

int ras_http_new(const struct ras_http_opts *opts, struct ras_http **out);
void ras_http_free(struct ras_http *h);

/* Initialise a request (zeroes it). */
void ras_http_request_init(struct ras_http_request *r, const char *method, const char *url);

/* Add a request header; RAS_ETOOBIG past RAS_HTTP_MAX_REQ_HEADERS. The
 * strings must outlive the perform call.  An empty (or NULL) value removes
 * a header libcurl would otherwise add itself (Content-Type on a POST
 * without a body, Accept). */
int ras_http_request_header(struct ras_http_request *r, const char *name, const char *value);

/* Free the response parts; the request can then be reused. */
void ras_http_request_release(struct ras_http_request *r);

/* Run n requests concurrently. Returns 0 when every request ran (each has
 * its own err/status), negative only when the batch could not start. */
int ras_http_perform(struct ras_http *h, struct ras_http_request *reqs, size_t n);

/* Event-loop integration (see the top of this file). */
struct ras_http_driver {
	void *ctx;
	/* ras_http_loop_dispatch() is due in `ms` milliseconds (-1: nothing
	 * is due; 0: at once).  Called whenever libcurl's deadlines change. */
	void (*timer)(void *ctx, long ms);
	/* Run the caller's event loop until done(arg) is true (it calls
	 * ras_http_loop_dispatch() when the descriptor is readable or the
	 * timer fires); negative gives the batch up (its unfinished requests
	 * end with RAS_ETIMEDOUT, "transfer abandoned"). */
	int (*wait)(void *ctx, bool (*done)(void *arg), void *arg);
};

/* Install (NULL: remove) this thread's driver. */
void ras_http_set_driver(const struct ras_http_driver *drv);
/* The epoll descriptor of this thread's transfers (readable when one of
 * them has something to do); -1 when it cannot be created. */
int ras_http_loop_fd(void);
/* Act on every ready socket and expired libcurl timer of this thread. */
void ras_http_loop_dispatch(void);
/* Wait ms milliseconds (a client's back-off before a retry): through the
 * driver, so the caller's loop goes on meanwhile; without one, asleep. */
void ras_http_sleep_ms(int64_t ms);

/* A response header value (case-insensitive name) copied into buf; NULL
 * when absent. */
const char *ras_http_response_header(const struct ras_http_request *r, const char *name,
    char *buf, size_t size);

#endif
