/* http: libcurl adapter (see include/ras/http.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "ras/error.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras_config.h"

struct ras_http {
	CURLM *multi;
	CURLSH *share;
	struct ras_http_opts opts;
	char ua[64];
};

static int curl_ready;

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
	h->multi = curl_multi_init();
	h->share = curl_share_init();
	if (h->multi == NULL || h->share == NULL) {
		ras_http_free(h);
		return ras_error_set("could not create libcurl handles");
	}
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
	free(h);
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

struct xfer {
	struct ras_http_request *r;
	struct curl_slist *hdrs;
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
	switch (rc) {
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		if (x->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			r->err = RAS_ETOOBIG;
			snprintf(r->errmsg, sizeof(r->errmsg), "response larger than %zu bytes",
			    r->max_body ? r->max_body : (size_t)RAS_HTTP_BODY_MAX);
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
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_UNSUPPORTED_PROTOCOL:
		/* the request never reached the server */
		r->err = RAS_EIO;
		break;
	default:
		/* timed out or dropped after sending: the outcome is unknown */
		if (x->header_too_big) {
			r->err = RAS_ETOOBIG;
			snprintf(r->errmsg, sizeof(r->errmsg), "response header too large");
		} else {
			r->err = RAS_ETIMEDOUT;
		}
		break;
	}
	if (r->status == 0 || r->err == RAS_ETOOBIG)
		return;
	/* A status arrived but the body did not complete: still unknown. */
}

int
ras_http_perform(struct ras_http *h, struct ras_http_request *reqs, size_t n)
{
	struct xfer *xs = calloc(n ? n : 1, sizeof(*xs));
	CURL **easies = calloc(n ? n : 1, sizeof(*easies));
	int running = 0;

	if (xs == NULL || easies == NULL) {
		free(xs);
		free(easies);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		xs[i].r = &reqs[i];
		reqs[i].err = 0;
		reqs[i].status = 0;
		reqs[i].errmsg[0] = '\0';
		if (setup(h, &xs[i], &easies[i]) < 0)
			continue;
		curl_multi_add_handle(h->multi, easies[i]);
	}
	do {
		CURLMcode mc = curl_multi_perform(h->multi, &running);
		CURLMsg *m;
		int left;

		if (mc == CURLM_OK && running)
			mc = curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
		while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
			struct xfer *x = NULL;

			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			finish(x, m->easy_handle, m->data.result);
		}
		if (mc != CURLM_OK)
			break;
	} while (running);
	for (size_t i = 0; i < n; i++) {
		if (easies[i]) {
			curl_multi_remove_handle(h->multi, easies[i]);
			curl_easy_cleanup(easies[i]);
		}
		curl_slist_free_all(xs[i].hdrs);
	}
	free(xs);
	free(easies);
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
