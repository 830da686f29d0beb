/* http: libcurl adapter (see include/ras/http.h). */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "ras/error.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras/time.h"
#include "ras_config.h"

struct ras_http {
	CURLM *multi;
	CURLSH *share;
	struct ras_http_opts opts;
	char ua[64];
	uint32_t id;                 /* names the handle in the reactor's events */
	int64_t due_ms;              /* libcurl's timer (monotonic ms), -1 when none */
	struct ras_http *next;       /* the thread's handles */
};

/*
 * The reactor: one per thread.  Every socket libcurl opens for any of this
 * thread's handles is in one epoll set (each event names its handle and
 * descriptor, never a pointer that a closed socket could leave dangling),
 * and each handle's libcurl timer is a deadline; ras_http_loop_dispatch()
 * hands whatever is ready to curl_multi_socket_action().
 */
struct reactor {
	int epfd;
	uint32_t next_id;
	struct ras_http *handles;
	struct ras_http_driver drv;
	bool has_drv;
	int64_t sleep_until;         /* ras_http_sleep_ms() deadline (monotonic ms), -1 none */
};

static _Thread_local struct reactor rx = { .epfd = -1, .sleep_until = -1 };
static int curl_ready;

/* A socket is in the epoll set once libcurl has been given this marker
 * for it (curl_multi_assign). */
static char in_set;

static int
reactor_open(void)
{
	if (rx.epfd >= 0)
		return 0;
	rx.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (rx.epfd < 0)
		return ras_error_code(RAS_EIO, "could not create the HTTP epoll set: %s", strerror(errno));
	return 0;
}

/* Milliseconds to the earliest libcurl deadline of this thread, -1 when none. */
static long
next_due(void)
{
	int64_t now = ras_time_mono_ms(), best = -1;

	if (rx.sleep_until >= 0)
		best = rx.sleep_until > now ? rx.sleep_until - now : 0;
	for (struct ras_http *h = rx.handles; h; h = h->next)
		if (h->due_ms >= 0) {
			int64_t d = h->due_ms > now ? h->due_ms - now : 0;

			if (best < 0 || d < best)
				best = d;
		}
	return (long)best;
}

static void
rearm(void)
{
	if (rx.has_drv && rx.drv.timer)
		rx.drv.timer(rx.drv.ctx, next_due());
}

static int
on_socket(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct ras_http *h = userp;
	struct epoll_event ev = { 0 };

	(void)e;
	if (what == CURL_POLL_REMOVE) {
		if (socketp) {
			(void)epoll_ctl(rx.epfd, EPOLL_CTL_DEL, fd, NULL);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
	ev.data.u64 = ((uint64_t)h->id << 32) | (uint32_t)fd;
	if (socketp == NULL) {
		if (epoll_ctl(rx.epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
		    (errno != EEXIST || epoll_ctl(rx.epfd, EPOLL_CTL_MOD, fd, &ev) < 0))
			return -1;
		curl_multi_assign(h->multi, fd, &in_set);
	} else if (epoll_ctl(rx.epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
		return -1;
	}
	return 0;
}

static int
on_timer(CURLM *m, long ms, void *userp)
{
	struct ras_http *h = userp;

	(void)m;
	h->due_ms = ms < 0 ? -1 : ras_time_mono_ms() + ms;
	rearm();
	return 0;
}

int
ras_http_new(const struct ras_http_opts *opts, struct ras_http **out)
{
	struct ras_http *h;

	if (!curl_ready) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return ras_error_set("could not initialise libcurl");
		curl_ready = 1;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	if (opts)
		h->opts = *opts;
	snprintf(h->ua, sizeof(h->ua), "rasd/%s", RAS_VERSION);
	h->due_ms = -1;
	h->id = ++rx.next_id;
	h->next = rx.handles;
	rx.handles = h;
	h->multi = curl_multi_init();
	h->share = curl_share_init();
	if (h->multi == NULL || h->share == NULL || reactor_open() < 0) {
		ras_http_free(h);
		return ras_error_set("could not create libcurl handles");
	}
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	/* DNS and TLS sessions shared between transfers; connections are
	 * cached by the multi handle itself. */
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(h->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
	    h->opts.max_host_connections ? h->opts.max_host_connections : 6L);
	*out = h;
	return 0;
}

void
ras_http_free(struct ras_http *h)
{
	if (h == NULL)
		return;
	if (h->multi)
		curl_multi_cleanup(h->multi);
	if (h->share)
		curl_share_cleanup(h->share);
	for (struct ras_http **p = &rx.handles; *p; p = &(*p)->next)
		if (*p == h) {
			*p = h->next;
			break;
		}
	free(h);
	rearm();
}

void
ras_http_request_init(struct ras_http_request *r, const char *method, const char *url)
{
	memset(r, 0, sizeof(*r));
	r->method = method;
	r->url = url;
}

int
ras_http_request_header(struct ras_http_request *r, const char *name, const char *value)
{
	if (r->nheaders >= RAS_HTTP_MAX_REQ_HEADERS)
		return ras_error_code(RAS_ETOOBIG, "too many request headers");
	r->headers[r->nheaders].name = name;
	r->headers[r->nheaders].value = value;
	r->nheaders++;
	return 0;
}

void
ras_http_request_release(struct ras_http_request *r)
{
	ras_buf_free(&r->body_out);
	ras_buf_free(&r->headers_out);
	r->status = 0;
	r->err = 0;
	r->unreached = false;
	r->errmsg[0] = '\0';
}

/* Is the URL's host a loopback address? */
static bool
is_loopback(const char *url)
{
	static const char *hosts[] = { "http://127.0.0.1:", "http://127.0.0.1/", "http://localhost:",
		"http://localhost/", "http://[::1]:", "http://[::1]/" };

	for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
		if (strncasecmp(url, hosts[i], strlen(hosts[i])) == 0)
			return true;
	return false;
}

struct batch {
	size_t left;                 /* transfers not finished yet */
};

struct xfer {
	struct ras_http_request *r;
	struct curl_slist *hdrs;
	struct batch *b;
	CURL *e;
	bool added, done;
	bool too_big;
	bool header_too_big;
};

static size_t
on_body(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	if (ras_buf_append(&x->r->body_out, p, len) < 0) {
		x->too_big = true;
		return 0;
	}
	return len;
}

static size_t
on_header(char *p, size_t size, size_t n, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * n;

	/* One header line past the ceiling fails the transfer: a server
	 * that never ends a line must not make rasd hold it. */
	if (len > RAS_HTTP_HEADER_MAX) {
		x->header_too_big = true;
		return 0;
	}
	/* A new status line starts a new header block (1xx, then final). */
	if (len >= 5 && strncmp(p, "HTTP/", 5) == 0)
		ras_buf_reset(&x->r->headers_out);
	if (ras_buf_append(&x->r->headers_out, p, len) < 0) {
		x->header_too_big = true;
		return 0;
	}
	return len;
}

static int
setup(struct ras_http *h, struct xfer *x, CURL **out)
{
	struct ras_http_request *r = x->r;
	CURL *e;
	char line[RAS_HTTP_HEADER_MAX];
	bool plain = strncasecmp(r->url, "http://", 7) == 0;

	if (plain && !(h->opts.allow_http_loopback && is_loopback(r->url))) {
		r->err = RAS_EINVALID;
		snprintf(r->errmsg, sizeof(r->errmsg), "plain http is refused (https only)");
		return -1;
	}
	if (!plain && strncasecmp(r->url, "https://", 8) != 0) {
		r->err = RAS_EINVALID;
		snprintf(r->errmsg, sizeof(r->errmsg), "unsupported URL scheme");
		return -1;
	}
	ras_buf_init(&r->body_out, r->max_body ? r->max_body : RAS_HTTP_BODY_MAX);
	ras_buf_init(&r->headers_out, 64 * 1024);
	e = curl_easy_init();
	if (e == NULL) {
		r->err = RAS_ENOMEM;
		snprintf(r->errmsg, sizeof(r->errmsg), "out of memory");
		return -1;
	}
	for (size_t i = 0; i < r->nheaders; i++) {
		struct curl_slist *n;

		/* "Name:" with nothing after the colon removes a header libcurl
		 * would add by itself (e.g. Content-Type on a body-less POST). */
		if (r->headers[i].value == NULL || r->headers[i].value[0] == '\0')
			snprintf(line, sizeof(line), "%s:", r->headers[i].name);
		else
			snprintf(line, sizeof(line), "%s: %s", r->headers[i].name, r->headers[i].value);
		n = curl_slist_append(x->hdrs, line);
		if (n == NULL) {
			curl_easy_cleanup(e);
			r->err = RAS_ENOMEM;
			return -1;
		}
		x->hdrs = n;
	}
	/* libcurl adds "Expect: 100-continue" to large POSTs; the e-RS and MESH
	 * gateways gain nothing from the extra round trip. */
	x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	curl_easy_setopt(e, CURLOPT_URL, r->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, plain ? "http" : "https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(e, CURLOPT_USERAGENT, h->opts.user_agent ? h->opts.user_agent : h->ua);
	curl_easy_setopt(e, CURLOPT_SHARE, h->share);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->opts.ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, h->opts.ca_file);
	if (h->opts.client_cert) {
		curl_easy_setopt(e, CURLOPT_SSLCERT, h->opts.client_cert);
		curl_easy_setopt(e, CURLOPT_SSLKEY, h->opts.client_key);
	}
	if (r->no_replay) {
		curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	}
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
	    h->opts.connect_timeout_ms ? h->opts.connect_timeout_ms : 10000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms ? r->timeout_ms : 60000L);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)(r->max_body ? r->max_body : RAS_HTTP_BODY_MAX));
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	if (strcmp(r->method, "GET") == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(r->method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(r->method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	}
	*out = e;
	return 0;
}

static void
finish(struct xfer *x, CURL *e, CURLcode rc)
{
	struct ras_http_request *r = x->r;
	long ver = 0;

	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_getinfo(e, CURLINFO_TOTAL_TIME, &r->seconds);
	curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &ver);
	snprintf(r->http_version, sizeof(r->http_version), "%s",
	    ver == CURL_HTTP_VERSION_2_0 ? "2" : ver == CURL_HTTP_VERSION_3 ? "3" : "1.1");
	if (r->body_out.data == NULL)
		(void)ras_buf_append(&r->body_out, "", 0);
	if (rc == CURLE_OK)
		return;
	snprintf(r->errmsg, sizeof(r->errmsg), "%s", curl_easy_strerror(rc));
	if (x->header_too_big) {
		/* the status line may have arrived, the answer did not */
		r->err = RAS_ETOOBIG;
		snprintf(r->errmsg, sizeof(r->errmsg),
		    "response header line longer than %u bytes (RAS_HTTP_HEADER_MAX)",
		    (unsigned)RAS_HTTP_HEADER_MAX);
		return;
	}
	switch (rc) {
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			r->err = RAS_ETOOBIG;
			snprintf(r->errmsg, sizeof(r->errmsg), "response larger than %zu bytes%s",
			    r->max_body ? r->max_body : (size_t)RAS_HTTP_BODY_MAX,
			    r->max_body ? "" : " (RAS_HTTP_BODY_MAX)");
		} else {
			r->err = RAS_ETIMEDOUT;
		}
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		/* never sent, and retrying will not help until the trust or
		 * client-certificate configuration changes */
		r->err = RAS_EINVALID;
		break;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		/* no connection at all (the outbox holds back a route's other
		 * letters on this: docs/design/delivery.md) */
		r->unreached = true;
		r->err = RAS_EIO;
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* the request never reached the server */
		r->err = RAS_EIO;
		break;
	case CURLE_OUT_OF_MEMORY:
		/* libcurl refuses a header line past its own ceiling (100 kB,
		 * over RAS_HTTP_HEADER_MAX) this way, before any body */
		if (r->body_out.len == 0) {
			r->err = RAS_ETOOBIG;
			snprintf(r->errmsg, sizeof(r->errmsg),
			    "response header line longer than %u bytes (RAS_HTTP_HEADER_MAX)",
			    (unsigned)RAS_HTTP_HEADER_MAX);
		} else {
			r->err = RAS_ENOMEM;
		}
		break;
	default:
		/* timed out or dropped after sending: the outcome is unknown */
		r->err = RAS_ETIMEDOUT;
		break;
	}
	if (r->status == 0 || r->err == RAS_ETOOBIG)
		return;
	/* A status arrived but the body did not complete: still unknown. */
}

/* Every finished transfer of h: its request gets its outcome, its batch
 * one fewer to wait for. */
static void
drain(struct ras_http *h)
{
	CURLMsg *m;
	int left;

	while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
		struct xfer *x = NULL;
		CURL *e = m->easy_handle;
		CURLcode rc = m->data.result;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
		curl_multi_remove_handle(h->multi, e);
		if (x == NULL || x->done)
			continue;
		x->added = false;
		x->done = true;
		finish(x, e, rc);
		x->b->left--;
	}
}

int
ras_http_loop_fd(void)
{
	return reactor_open() < 0 ? -1 : rx.epfd;
}

void
ras_http_loop_dispatch(void)
{
	struct epoll_event evs[64];
	int64_t now;
	int n, running;

	if (rx.epfd < 0)
		return;
	n = epoll_wait(rx.epfd, evs, 64, 0);
	for (int i = 0; i < n; i++) {
		uint32_t id = (uint32_t)(evs[i].data.u64 >> 32);
		int fd = (int)(uint32_t)evs[i].data.u64, mask = 0;

		if (evs[i].events & EPOLLIN)
			mask |= CURL_CSELECT_IN;
		if (evs[i].events & EPOLLOUT)
			mask |= CURL_CSELECT_OUT;
		if (evs[i].events & (EPOLLERR | EPOLLHUP))
			mask |= CURL_CSELECT_ERR;
		/* libcurl ignores a socket it has already let go of */
		for (struct ras_http *h = rx.handles; h; h = h->next)
			if (h->id == id) {
				(void)curl_multi_socket_action(h->multi, fd, mask, &running);
				break;
			}
	}
	now = ras_time_mono_ms();
	for (struct ras_http *h = rx.handles; h; h = h->next)
		if (h->due_ms >= 0 && h->due_ms <= now) {
			h->due_ms = -1;
			(void)curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
	for (struct ras_http *h = rx.handles; h; h = h->next)
		drain(h);
	rearm();
}

void
ras_http_set_driver(const struct ras_http_driver *drv)
{
	if (drv) {
		rx.drv = *drv;
		rx.has_drv = true;
		rearm();
	} else {
		memset(&rx.drv, 0, sizeof(rx.drv));
		rx.has_drv = false;
	}
}

static bool
batch_done(void *arg)
{
	const struct batch *b = arg;

	return b->left == 0;
}

static bool
slept(void *arg)
{
	return ras_time_mono_ms() >= *(const int64_t *)arg;
}

void
ras_http_sleep_ms(int64_t ms)
{
	int64_t until = ras_time_mono_ms() + ms, saved = rx.sleep_until;

	if (ms <= 0)
		return;
	if (!(rx.has_drv && rx.drv.wait)) {
		struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		return;
	}
	/* the driver's timer wakes the loop at the deadline */
	rx.sleep_until = saved >= 0 && saved < until ? saved : until;
	rearm();
	(void)rx.drv.wait(rx.drv.ctx, slept, &until);
	rx.sleep_until = saved;
	rearm();
}

/* No driver (rasctl, tests): wait on the reactor here. */
static void
wait_here(void)
{
	struct pollfd p = { .fd = rx.epfd, .events = POLLIN };
	long ms = next_due();

	if (ms < 0 || ms > 1000)
		ms = 1000;
	(void)poll(&p, 1, (int)ms);
	ras_http_loop_dispatch();
}

int
ras_http_perform(struct ras_http *h, struct ras_http_request *reqs, size_t n)
{
	struct xfer *xs = calloc(n ? n : 1, sizeof(*xs));
	struct batch b = { 0 };
	int running;

	if (xs == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		xs[i].r = &reqs[i];
		xs[i].b = &b;
		reqs[i].err = 0;
		reqs[i].unreached = false;
		reqs[i].status = 0;
		reqs[i].errmsg[0] = '\0';
		if (setup(h, &xs[i], &xs[i].e) < 0)
			continue;
		if (curl_multi_add_handle(h->multi, xs[i].e) != CURLM_OK) {
			reqs[i].err = RAS_ENOMEM;
			snprintf(reqs[i].errmsg, sizeof(reqs[i].errmsg), "could not start the transfer");
			continue;
		}
		xs[i].added = true;
		b.left++;
	}
	/* Start what can start now; then wait, in the caller's event loop
	 * when it installed a driver (it keeps serving meanwhile), or here. */
	(void)curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	drain(h);
	rearm();
	while (b.left > 0) {
		if (rx.has_drv && rx.drv.wait && !h->opts.wait_here) {
			if (rx.drv.wait(rx.drv.ctx, batch_done, &b) < 0)
				break;
		} else {
			wait_here();
		}
	}
	for (size_t i = 0; i < n; i++) {
		if (xs[i].added) {
			/* the wait was given up: the outcome is unknown */
			curl_multi_remove_handle(h->multi, xs[i].e);
			reqs[i].err = RAS_ETIMEDOUT;
			snprintf(reqs[i].errmsg, sizeof(reqs[i].errmsg), "transfer abandoned");
			if (reqs[i].body_out.data == NULL)
				(void)ras_buf_append(&reqs[i].body_out, "", 0);
		}
		if (xs[i].e)
			curl_easy_cleanup(xs[i].e);
		curl_slist_free_all(xs[i].hdrs);
	}
	free(xs);
	rearm();
	return 0;
}

const char *
ras_http_response_header(const struct ras_http_request *r, const char *name, char *buf,
    size_t size)
{
	const char *p = r->headers_out.data;
	size_t nl = strlen(name);

	while (p && *p) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);

		if (len > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
			const char *v = p + nl + 1;
			size_t vl = len - nl - 1;

			while (vl && (*v == ' ' || *v == '\t')) {
				v++;
				vl--;
			}
			while (vl && (v[vl - 1] == '\r' || v[vl - 1] == ' '))
				vl--;
			if (vl >= size)
				vl = size - 1;
			memcpy(buf, v, vl);
			buf[vl] = '\0';
			return buf;
		}
		p = eol ? eol + 1 : NULL;
	}
	return NULL;
}
