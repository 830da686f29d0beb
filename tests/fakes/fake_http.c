/* fake_http: recording loopback HTTP server (see tests/fake_http.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/types.h>

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

#define FAULTS_MAX 16
/* Every fake's connections may carry a header line of this much (the
 * endless-header fault); MHD builds headers in the connection's pool. */
#define CONN_MEMORY (4u * 1024u * 1024u)
#define ENDLESS_DEFAULT (1024u * 1024u)

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
	struct fake_fault faults[FAULTS_MAX];
	char fault_paths[FAULTS_MAX][256];
	size_t nfaults, faulted;
	size_t connections;          /* accepted so far */
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

void
fake_http_fault(struct fake_http *f, const struct fake_fault *fault)
{
	pthread_mutex_lock(&f->lock);
	if (f->nfaults < FAULTS_MAX) {
		struct fake_fault *x = &f->faults[f->nfaults];

		*x = *fault;
		if (x->times == 0)
			x->times = 1;
		if (fault->path_has) {
			snprintf(f->fault_paths[f->nfaults], sizeof(f->fault_paths[0]), "%s", fault->path_has);
			x->path_has = f->fault_paths[f->nfaults];
		}
		f->nfaults++;
	}
	pthread_mutex_unlock(&f->lock);
}

void
fake_http_faults_clear(struct fake_http *f)
{
	pthread_mutex_lock(&f->lock);
	f->nfaults = 0;
	pthread_mutex_unlock(&f->lock);
}

size_t
fake_http_faulted(struct fake_http *f)
{
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->faulted;
	pthread_mutex_unlock(&f->lock);
	return n;
}

/* The first armed fault for this request (TLS: for a new connection),
 * used up by one; kind 0 when none. */
static struct fake_fault
take_fault(struct fake_http *f, const char *path, bool tls)
{
	struct fake_fault out = { 0 };

	pthread_mutex_lock(&f->lock);
	for (size_t i = 0; i < f->nfaults; i++) {
		struct fake_fault *x = &f->faults[i];

		if (x->times == 0 || (x->kind == FAKE_FAULT_TLS) != tls)
			continue;
		if (!tls && x->path_has && (path == NULL || strstr(path, x->path_has) == NULL))
			continue;
		out = *x;
		if (x->times > 0)
			x->times--;
		f->faulted++;
		break;
	}
	pthread_mutex_unlock(&f->lock);
	return out;
}

/* A body served piece by piece: cut off (truncate), dripped, or made up
 * (oversize). */
struct stream {
	enum fake_fault_kind kind;
	char *data;
	size_t len, cut, total;
	int drip_ms;
};

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream *s = cls;
	size_t n;

	if (s->kind == FAKE_FAULT_OVERSIZE) {
		if (pos >= s->total)
			return MHD_CONTENT_READER_END_OF_STREAM;
		n = s->total - (size_t)pos < max ? s->total - (size_t)pos : max;
		memset(buf, ' ', n);
		return (ssize_t)n;
	}
	if (pos >= s->cut)
		return s->cut < s->len ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
	if (s->drip_ms) {
		usleep((useconds_t)s->drip_ms * 1000);
		buf[0] = s->data[pos];
		return 1;
	}
	n = s->cut - (size_t)pos < max ? s->cut - (size_t)pos : max;
	memcpy(buf, s->data + pos, n);
	return (ssize_t)n;
}

static void
stream_free(void *cls)
{
	struct stream *s = cls;

	free(s->data);
	free(s);
}

static struct MHD_Response *
fault_response(const struct fake_fault *ft, const struct fake_resp *resp, int *status)
{
	size_t len = resp->body ? (resp->body_len ? resp->body_len : strlen(resp->body)) : 0;
	struct stream *st = calloc(1, sizeof(*st));

	st->kind = ft->kind;
	if (ft->kind == FAKE_FAULT_OVERSIZE) {
		st->total = ft->bytes;
		*status = 200;
		return MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, stream_read, st,
		    stream_free);
	}
	st->data = malloc(len ? len : 1);
	if (len)
		memcpy(st->data, resp->body, len);
	st->len = len;
	st->cut = ft->kind == FAKE_FAULT_TRUNCATE ? len / 2 : len;
	st->drip_ms = ft->kind == FAKE_FAULT_SLOW_DRIP ? (ft->ms ? ft->ms : 1000) : 0;
	return MHD_create_response_from_callback(len, 4096, stream_read, st, stream_free);
}

/* The TLS fault: a handshake_failure alert instead of the server's hello,
 * and the connection shut. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
	static const unsigned char alert[] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 };
	struct fake_http *f = cls;
	const union MHD_ConnectionInfo *ci;
	struct fake_fault ft;

	(void)socket_context;
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	pthread_mutex_lock(&f->lock);
	f->connections++;
	pthread_mutex_unlock(&f->lock);
	ft = take_fault(f, NULL, true);
	if (ft.kind != FAKE_FAULT_TLS)
		return;
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return;
	(void)!write(ci->connect_fd, alert, sizeof(alert));
	shutdown(ci->connect_fd, SHUT_RDWR);
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct fake_http *f = cls;
	struct conn *cn = *con_cls;
	struct fake_resp resp = { 0 };
	struct fake_fault ft;
	struct MHD_Response *mr;
	enum MHD_Result ret;
	int code;

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

	ft = take_fault(f, cn->req->path, false);
	if (ft.kind == FAKE_FAULT_DROP) {
		if (ft.ms)
			usleep((useconds_t)ft.ms * 1000);
		return MHD_NO;
	}
	if (cn->too_big) {
		resp.status = 413;
		resp.body = "too big";
	} else if (ft.kind != FAKE_FAULT_OVERSIZE) {
		f->handler(f->ctx, cn->req, &resp);
	}
	if (resp.delay_ms)
		usleep((useconds_t)resp.delay_ms * 1000);
	if (ft.kind == FAKE_FAULT_DELAY)
		usleep((useconds_t)ft.ms * 1000);
	if (resp.drop) {
		free(resp.owned);
		return MHD_NO;   /* MHD closes the connection without a response */
	}
	code = resp.status ? resp.status : 200;
	if (ft.kind == FAKE_FAULT_TRUNCATE || ft.kind == FAKE_FAULT_OVERSIZE ||
	    ft.kind == FAKE_FAULT_SLOW_DRIP)
		mr = fault_response(&ft, &resp, &code);
	else
		mr = MHD_create_response_from_buffer(resp.body ? (resp.body_len ? resp.body_len :
		    strlen(resp.body)) : 0, (void *)(resp.body ? resp.body : ""), MHD_RESPMEM_MUST_COPY);
	if (ft.kind == FAKE_FAULT_ENDLESS_HEADER) {
		size_t n = ft.bytes ? ft.bytes : ENDLESS_DEFAULT;
		char *v = malloc(n + 1);

		memset(v, 'a', n);
		v[n] = '\0';
		MHD_add_response_header(mr, "X-Fault", v);
		free(v);
	}
	free(resp.owned);   /* the body was copied (or, faulted, copied by fault_response) */
	if (resp.content_type)
		MHD_add_response_header(mr, "Content-Type", resp.content_type);
	for (size_t i = 0; i < resp.nheaders; i++)
		MHD_add_response_header(mr, resp.headers[i].name, resp.headers[i].value);
	ret = MHD_queue_response(c, (unsigned)code, mr);
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
	    MHD_OPTION_NOTIFY_CONNECTION, on_connection, f,
	    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
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

size_t
fake_http_connections(struct fake_http *f)
{
	size_t n;

	pthread_mutex_lock(&f->lock);
	n = f->connections;
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
		    MHD_OPTION_NOTIFY_CONNECTION, on_connection, f,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
		    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
		    MHD_OPTION_HTTPS_MEM_CERT, tls->cert_pem, MHD_OPTION_HTTPS_MEM_KEY, tls->key_pem,
		    MHD_OPTION_HTTPS_MEM_TRUST, tls->client_ca_pem, MHD_OPTION_END);
	else
		f->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		    MHD_USE_ERROR_LOG | MHD_USE_TLS, 0, NULL, NULL, handle, f,
		    MHD_OPTION_NOTIFY_COMPLETED, completed, f, MHD_OPTION_URI_LOG_CALLBACK, uri_log, f,
		    MHD_OPTION_NOTIFY_CONNECTION, on_connection, f,
		    MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONN_MEMORY,
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
