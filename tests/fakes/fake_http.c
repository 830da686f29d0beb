/* fake_http: recording loopback HTTP server (see tests/fake_http.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "fake_http.h"

struct fake_http {
	struct MHD_Daemon *d;
	fake_handler handler;
	void *ctx;
	bool tls;
	unsigned port;
	char url[64];
	pthread_mutex_t lock;
	struct fake_req **reqs;
	size_t n, cap;
};

struct conn {
	struct fake_req *req;
	size_t cap;
	bool too_big;
	bool recorded;
};

static int
collect_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	struct fake_req *r = cls;

	(void)kind;
	if (r->nheaders < FAKE_HEADERS_MAX) {
		r->headers[r->nheaders].name = strdup(key);
		r->headers[r->nheaders].value = strdup(value ? value : "");
		r->nheaders++;
	}
	return MHD_YES;
}

static void
free_req(struct fake_req *r)
{
	if (r == NULL)
		return;
	free(r->method);
	free(r->path);
	free(r->body);
	for (size_t i = 0; i < r->nheaders; i++) {
		free(r->headers[i].name);
		free(r->headers[i].value);
	}
	free(r);
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct fake_http *f = cls;
	struct conn *cn = *con_cls;
	struct fake_resp resp = { 0 };
	struct MHD_Response *mr;
	enum MHD_Result ret;

	(void)version;
	if (cn->req->method == NULL) {
		/* First call for this request: the raw URI (with its query) was
		 * recorded by uri_log() before MHD parsed it. */
		cn->req->method = strdup(method);
		if (cn->req->path == NULL)
			cn->req->path = strdup(url);
		MHD_get_connection_values(c, MHD_HEADER_KIND, (MHD_KeyValueIterator)collect_header, cn->req);
		if (f->tls) {
			const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c,
			    MHD_CONNECTION_INFO_GNUTLS_SESSION);
			unsigned status = 1, n = 0;

			if (ci && ci->tls_session &&
			    gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &n) && n > 0 &&
			    gnutls_certificate_verify_peers2((gnutls_session_t)ci->tls_session, &status) == 0)
				cn->req->client_cert_verified = status == 0;
		}
		return MHD_YES;
	}
	if (*upload_size) {
		if (cn->req->body_len + *upload_size > FAKE_BODY_MAX) {
			cn->too_big = true;
		} else {
			if (cn->req->body_len + *upload_size + 1 > cn->cap) {
				cn->cap = (cn->req->body_len + *upload_size + 1) * 2;
				cn->req->body = realloc(cn->req->body, cn->cap);
			}
			memcpy(cn->req->body + cn->req->body_len, upload, *upload_size);
			cn->req->body_len += *upload_size;
			cn->req->body[cn->req->body_len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (cn->req->body == NULL)
		cn->req->body = calloc(1, 1);
	pthread_mutex_lock(&f->lock);
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->reqs = realloc(f->reqs, f->cap * sizeof(*f->reqs));
	}
	f->reqs[f->n++] = cn->req;
	cn->recorded = true;
	pthread_mutex_unlock(&f->lock);

	if (cn->too_big) {
		resp.status = 413;
		resp.body = "too big";
	} else {
		f->handler(f->ctx, cn->req, &resp);
	}
	if (resp.delay_ms)
		usleep((useconds_t)resp.delay_ms * 1000);
	if (resp.drop)
		return MHD_NO;   /* MHD closes the connection without a response */
	mr = MHD_create_response_from_buffer(resp.body ? (resp.body_len ? resp.body_len :
	    strlen(resp.body)) : 0, (void *)(resp.body ? resp.body : ""), MHD_RESPMEM_MUST_COPY);
	if (resp.content_type)
		MHD_add_response_header(mr, "Content-Type", resp.content_type);
	for (size_t i = 0; i < resp.nheaders; i++)
		MHD_add_response_header(mr, resp.headers[i].name, resp.headers[i].value);
	ret = MHD_queue_response(c, (unsigned)(resp.status ? resp.status : 200), mr);
	MHD_destroy_response(mr);
	return ret;
}

static void *
uri_log(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct conn *cn = calloc(1, sizeof(*cn));

	(void)cls;
	(void)c;
	cn->req = calloc(1, sizeof(*cn->req));
	cn->req->path = strdup(uri);
	return cn;
}

static void
completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode t)
{
	struct conn *cn = *con_cls;

	(void)cls;
	(void)c;
	(void)t;
	if (cn == NULL)
		return;
	/* A recorded request belongs to the recording; one that never got
	 * that far is freed here. */
	if (!cn->recorded)
		free_req(cn->req);
	free(cn);
	*con_cls = NULL;
}

struct fake_http *
fake_http_start(fake_handler handler, void *ctx)
{
	return fake_http_start_port(handler, ctx, 0);
}

struct fake_http *
fake_http_start_port(fake_handler handler, void *ctx, unsigned port)
{
	struct fake_http *f = calloc(1, sizeof(*f));
	const union MHD_DaemonInfo *info;

	f->handler = handler;
	f->ctx = ctx;
	pthread_mutex_init(&f->lock, NULL);
	/* Port 0: the kernel picks a free one; bound to loopback only. */
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, f,
	    MHD_OPTION_NOTIFY_COMPLETED, completed, f,
	    MHD_OPTION_URI_LOG_CALLBACK, uri_log, f,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	    MHD_OPTION_END);
	if (f->d == NULL) {
		fprintf(stderr, "fake_http: cannot start server on port %u\n", port);
		exit(1);
	}
	info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
	f->port = info ? info->port : 0;
	snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", f->port);
	return f;
}

void
fake_http_stop(struct fake_http *f)
{
	if (f == NULL)
		return;
	MHD_stop_daemon(f->d);
	fake_http_reset(f);
	free(f->reqs);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

unsigned
fake_http_port(const struct fake_http *f)
{
	return f->port;
}

const char *
fake_http_url(const struct fake_http *f)
{
	return f->url;
}

size_t
fake_http_count(struct fake_http *f)
{
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->n;
	pthread_mutex_unlock(&f->lock);
	return n;
}

const struct fake_req *
fake_http_req(struct fake_http *f, size_t i)
{
	const struct fake_req *r = NULL;

	pthread_mutex_lock(&f->lock);
	if (i < f->n)
		r = f->reqs[i];
	pthread_mutex_unlock(&f->lock);
	return r;
}

void
fake_http_reset(struct fake_http *f)
{
	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->n; i++)
		free_req(f->reqs[i]);
	f->n = 0;
	pthread_mutex_unlock(&f->lock);
}

const char *
fake_req_header(const struct fake_req *r, const char *name)
{
	for (size_t i = 0; i < r->nheaders; i++)
		if (strcasecmp(r->headers[i].name, name) == 0)
			return r->headers[i].value;
	return NULL;
}

void
fake_resp_header(struct fake_resp *r, const char *name, const char *value)
{
	if (r->nheaders < sizeof(r->headers) / sizeof(r->headers[0])) {
		r->headers[r->nheaders].name = (char *)name;
		r->headers[r->nheaders].value = (char *)value;
		r->nheaders++;
	}
}

/* TLS variant (documents and delivery, issue 5: the MESH client's mTLS). */
struct fake_http *
fake_http_start_tls(fake_handler handler, void *ctx, const struct fake_tls *tls)
{
	struct fake_http *f = calloc(1, sizeof(*f));
	const union MHD_DaemonInfo *info;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = 0,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };

	f->handler = handler;
	f->ctx = ctx;
	f->tls = true;
	pthread_mutex_init(&f->lock, NULL);
	if (tls->client_ca_pem)
		f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		    MHD_USE_ERROR_LOG | MHD_USE_TLS, 0, NULL, NULL, handle, f,
		    MHD_OPTION_NOTIFY_COMPLETED, completed, f, MHD_OPTION_URI_LOG_CALLBACK, uri_log, f,
		    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		    MHD_OPTION_HTTPS_MEM_CERT, tls->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, tls->key_pem,
		    MHD_OPTION_HTTPS_MEM_TRUST, tls->client_ca_pem, MHD_OPTION_END);
	else
		f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		    MHD_USE_ERROR_LOG | MHD_USE_TLS, 0, NULL, NULL, handle, f,
		    MHD_OPTION_NOTIFY_COMPLETED, completed, f, MHD_OPTION_URI_LOG_CALLBACK, uri_log, f,
		    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		    MHD_OPTION_HTTPS_MEM_CERT, tls->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, tls->key_pem,
		    MHD_OPTION_END);
	if (f->d == NULL) {
		fprintf(stderr, "fake_http: cannot start TLS server\n");
		exit(1);
	}
	info = MHD_get_daemon_info(f->d, MHD_DAEMON_INFO_BIND_PORT);
	f->port = info ? info->port : 0;
	snprintf(f->url, sizeof(f->url), "https://127.0.0.1:%u", f->port);
	return f;
}
