/* mesh: the MESH API client (see include/ras/mesh.h). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/utsname.h>
#include <zlib.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/config.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mesh.h"
#include "ras/time.h"
#include "ras_config.h"

struct ras_mesh {
	char *url, *mailbox, *password, *shared_key;
	size_t chunk_size;
	long timeout_ms;
	char nonce[RAS_UUID_STR_LEN];
	unsigned long count;
	char os_name[64], os_version[128];
	int64_t last_handshake;
};

static char *
sdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int
ras_mesh_new(const struct ras_mesh_opts *o, struct ras_mesh **out)
{
	struct ras_mesh *m;
	struct utsname u;
	int err;

	if (o->url == NULL || o->mailbox == NULL || o->password == NULL || o->shared_key == NULL)
		return ras_error_code(RAS_EINVALID, "MESH needs url, mailbox, password and shared key");
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	m->url = sdup(o->url);
	m->mailbox = sdup(o->mailbox);
	m->password = sdup(o->password);
	m->shared_key = sdup(o->shared_key);
	if (!m->url || !m->mailbox || !m->password || !m->shared_key) {
		ras_mesh_free(m);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	/* the path must not end in '/', the mailbox id is upper case */
	while (strlen(m->url) && m->url[strlen(m->url) - 1] == '/')
		m->url[strlen(m->url) - 1] = '\0';
	for (char *p = m->mailbox; *p; p++)
		if (*p >= 'a' && *p <= 'z')
			*p = (char)(*p - 'a' + 'A');
	m->chunk_size = o->chunk_size ? o->chunk_size : 20u * 1024u * 1024u;
	m->timeout_ms = o->timeout_ms ? o->timeout_ms : 600000;
	/* One nonce per client session, the count going up on every request
	 * (mesh-client does the same): a token is valid for one request. */
	if ((err = ras_crypto_uuid(m->nonce)) < 0) {
		ras_mesh_free(m);
		return err;
	}
	if (uname(&u) == 0) {
		/* header values for MESH's statistics: a cut one is still useful */
		(void)ras_buf_format(m->os_name, sizeof(m->os_name), "%s", u.sysname);
		(void)ras_buf_format(m->os_version, sizeof(m->os_version), "%s", u.release);
	} else {
		snprintf(m->os_name, sizeof(m->os_name), "Linux");
		snprintf(m->os_version, sizeof(m->os_version), "unknown");
	}
	*out = m;
	return 0;
}

int
ras_mesh_new_config(const struct ras_config *cfg, struct ras_mesh **mesh, struct ras_http **http)
{
	struct ras_arena *a;
	int err;

	*mesh = NULL;
	*http = NULL;
	if (!ras_config_bool(cfg, "mesh", NULL, "enabled"))
		return 0;
	if ((a = ras_arena_new()) == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	{
		struct ras_mesh_opts mo = { .url = ras_config_get(cfg, "mesh", NULL, "url"),
			.mailbox = ras_config_get(cfg, "mesh", NULL, "mailbox"),
			.chunk_size = (size_t)ras_config_int(cfg, "mesh", NULL, "chunk_size"),
			.timeout_ms = (long)ras_config_int(cfg, "mesh", NULL, "timeout") * 1000 };
		struct ras_http_opts ho = { .ca_file = ras_config_get(cfg, "mesh", NULL, "ca_file"),
			.client_cert = ras_config_get(cfg, "mesh", NULL, "client_cert"),
			.client_key = ras_config_secret_path(cfg, a, "mesh", "client_key"),
			.allow_http_loopback = ras_config_bool(cfg, "outbox", NULL, "allow_http_loopback") };

		if ((err = ras_config_secret_string(cfg, a, "mesh", "password", &mo.password)) < 0 ||
		    (err = ras_config_secret_string(cfg, a, "mesh", "shared_key", &mo.shared_key)) < 0 ||
		    (err = ras_mesh_new(&mo, mesh)) < 0 || (err = ras_http_new(&ho, http)) < 0) {
			ras_mesh_free(*mesh);
			*mesh = NULL;
		}
	}
	ras_arena_free(a);
	return err;
}

int
ras_mesh_handshake_if_due(struct ras_mesh *m, struct ras_http *h, struct ras_arena *a, int64_t now,
    int64_t interval)
{
	struct ras_http_request r;
	int err;

	if (m->last_handshake && now - m->last_handshake < interval)
		return 0;
	if ((err = ras_mesh_prep_handshake(m, a, now, &r)) < 0)
		return err;
	if ((err = ras_http_perform(h, &r, 1)) < 0)
		return err;
	if (r.err) {
		err = ras_error_code(r.err, "MESH handshake failed: %s", r.errmsg);
	} else if (r.status != 200) {
		char why[256];

		/* MESH's own reason (a 403 says which check failed) */
		ras_mesh_error_reason(&r, why, sizeof(why));
		err = ras_error_code(RAS_EIO, "MESH handshake answered %ld%s%s", r.status,
		    why[0] ? ": " : "", why);
	} else {
		m->last_handshake = now;
	}
	ras_http_request_release(&r);
	return err;
}

void
ras_mesh_free(struct ras_mesh *m)
{
	if (m == NULL)
		return;
	free(m->url);
	free(m->mailbox);
	if (m->password)
		memset(m->password, 0, strlen(m->password));
	if (m->shared_key)
		memset(m->shared_key, 0, strlen(m->shared_key));
	free(m->password);
	free(m->shared_key);
	free(m);
}

const char *
ras_mesh_mailbox(const struct ras_mesh *m)
{
	return m->mailbox;
}

void
ras_mesh_timestamp(int64_t t, char out[13])
{
	char iso[RAS_TIME_STR_MAX];

	ras_time_format_utc(t, iso);   /* YYYY-MM-DDThh:mm:ssZ */
	snprintf(out, 13, "%.4s%.2s%.2s%.2s%.2s", iso, iso + 5, iso + 8, iso + 11, iso + 14);
}

int
ras_mesh_auth_header(const char *mailbox, const char *password, const char *shared_key,
    const char *nonce, unsigned long count, const char *timestamp, char *out, size_t size)
{
	char msg[1024], hex[RAS_SHA256_HEX_LEN];
	int n, err;

	n = snprintf(msg, sizeof(msg), "%s:%s:%lu:%s:%s", mailbox, nonce, count, password, timestamp);
	if (n < 0 || (size_t)n >= sizeof(msg))
		return ras_error_code(RAS_ETOOBIG, "MESH credentials are too long");
	err = ras_crypto_hmac_sha256_hex(shared_key, strlen(shared_key), msg, (size_t)n, hex);
	memset(msg, 0, sizeof(msg));
	if (err < 0)
		return err;
	n = snprintf(out, size, "NHSMESH %s:%s:%lu:%s:%s", mailbox, nonce, count, timestamp, hex);
	if (n < 0 || (size_t)n >= size)
		return ras_error_code(RAS_ETOOBIG, "MESH authorization header buffer too small");
	return 0;
}

size_t
ras_mesh_chunks(const struct ras_mesh *m, size_t len)
{
	if (len <= m->chunk_size)
		return 1;
	return (len + m->chunk_size - 1) / m->chunk_size;
}

static int
base(struct ras_mesh *m, struct ras_arena *a, int64_t now, const char *method, const char *url,
    struct ras_http_request *r)
{
	char ts[13], auth[512];
	const char *hdr;
	int err;

	if (url == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_mesh_timestamp(now, ts);
	if ((err = ras_mesh_auth_header(m->mailbox, m->password, m->shared_key, m->nonce, m->count++,
	    ts, auth, sizeof(auth))) < 0)
		return err;
	hdr = ras_arena_strdup(a, auth);
	if (hdr == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_http_request_init(r, method, url);
	r->timeout_ms = m->timeout_ms;
	if ((err = ras_http_request_header(r, "Authorization", hdr)) < 0 ||
	    (err = ras_http_request_header(r, "Accept", "application/vnd.mesh.v2+json")) < 0 ||
	    (err = ras_http_request_header(r, "mex-ClientVersion", "rasd;" RAS_VERSION)) < 0 ||
	    (err = ras_http_request_header(r, "mex-OSName", m->os_name)) < 0 ||
	    (err = ras_http_request_header(r, "mex-OSVersion", m->os_version)) < 0)
		return err;
	return 0;
}

/* URL path segments come from MESH (message ids) or from rasd (local ids):
 * refuse anything that could change the path. */
static int
check_segment(const char *what, const char *s)
{
	if (s == NULL || *s == '\0' || strlen(s) >= RAS_MESH_ID_MAX)
		return ras_error_code(RAS_EINVALID, "MESH %s is empty or too long", what);
	for (const char *p = s; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.'))
			return ras_error_code(RAS_EINVALID, "MESH %s has an unexpected character", what);
	return 0;
}

int
ras_mesh_prep_handshake(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    struct ras_http_request *r)
{
	return base(m, a, now, "POST", ras_arena_printf(a, "%s/messageexchange/%s", m->url, m->mailbox),
	    r);
}

/* Header values MESH rejects: control characters, and URLs in the
 * addressing headers (NOTES §1.3, MalformedControlFile). */
static int
check_header(const char *name, const char *v, size_t max)
{
	if (v == NULL)
		return 0;
	if (strlen(v) > max)
		return ras_error_code(RAS_EINVALID, "%s is longer than %zu characters", name, max);
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20)
			return ras_error_code(RAS_EINVALID, "%s contains a control character", name);
	if (strstr(v, "http://") || strstr(v, "https://"))
		return ras_error_code(RAS_EINVALID, "%s must not contain a URL", name);
	return 0;
}

/* One chunk gzipped on its own (RFC 1952; mtime 0, so the same bytes for
 * the same chunk), into the arena. */
static int
gzip_chunk(struct ras_arena *a, const void *in, size_t len, const void **out, size_t *out_len)
{
	z_stream z;
	unsigned char *buf;
	uLong bound;
	int rc;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return ras_error_code(RAS_ENOMEM, "gzip: cannot start");
	bound = deflateBound(&z, (uLong)len) + 32;
	buf = ras_arena_alloc(a, bound);
	if (buf == NULL) {
		deflateEnd(&z);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = buf;
	z.avail_out = (uInt)bound;
	rc = deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	if (rc != Z_STREAM_END)
		return ras_error_code(RAS_EIO, "gzip of a MESH chunk failed");
	*out = buf;
	return 0;
}

int
ras_mesh_prep_send(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const struct ras_mesh_send *s, struct ras_http_request *r)
{
	size_t n = ras_mesh_chunks(m, s->len), off, len;
	const char *url;
	int err;

	if (s->chunk < 1 || s->chunk > n)
		return ras_error_code(RAS_EINVALID, "MESH chunk %zu of %zu", s->chunk, n);
	if ((err = check_header("mex-To", s->to, 100)) < 0 ||
	    (err = check_header("mex-WorkflowID", s->workflow, 300)) < 0 ||
	    (err = check_header("mex-LocalID", s->local_id, 300)) < 0 ||
	    (err = check_header("mex-Subject", s->subject, 500)) < 0 ||
	    (err = check_header("mex-FileName", s->filename, 300)) < 0 ||
	    (err = check_header("mex-Content-Type", s->content_type, 100)) < 0)
		return err;
	if (s->to == NULL || s->workflow == NULL)
		return ras_error_code(RAS_EINVALID, "a MESH send needs mex-To and mex-WorkflowID");
	if (s->chunk == 1) {
		url = ras_arena_printf(a, "%s/messageexchange/%s/outbox", m->url, m->mailbox);
	} else {
		if ((err = check_segment("message id", s->message_id)) < 0)
			return err;
		url = ras_arena_printf(a, "%s/messageexchange/%s/outbox/%s/%zu", m->url, m->mailbox,
		    s->message_id, s->chunk);
	}
	if ((err = base(m, a, now, "POST", url, r)) < 0)
		return err;
	if ((err = ras_http_request_header(r, "mex-From", m->mailbox)) < 0 ||
	    (err = ras_http_request_header(r, "mex-To", s->to)) < 0 ||
	    (err = ras_http_request_header(r, "mex-WorkflowID", s->workflow)) < 0)
		return err;
	if (s->local_id && (err = ras_http_request_header(r, "mex-LocalID", s->local_id)) < 0)
		return err;
	if (s->subject && (err = ras_http_request_header(r, "mex-Subject", s->subject)) < 0)
		return err;
	if (s->filename && (err = ras_http_request_header(r, "mex-FileName", s->filename)) < 0)
		return err;
	if (s->content_type &&
	    (err = ras_http_request_header(r, "mex-Content-Type", s->content_type)) < 0)
		return err;
	/* For a chunked message Content-Type is always octet-stream and
	 * mex-Content-Type carries the real type (NOTES §1.3). */
	if ((err = ras_http_request_header(r, "Content-Type", n == 1 && s->content_type ?
	    s->content_type : "application/octet-stream")) < 0)
		return err;
	if (n > 1 && (err = ras_http_request_header(r, "mex-Chunk-Range",
	    ras_arena_printf(a, "%zu:%zu", s->chunk, n))) < 0)
		return err;
	/* A first chunk creates a message: it must never be sent twice, not
	 * even by libcurl retrying on a reused connection that died. */
	r->no_replay = s->chunk == 1;
	/* Split the uncompressed payload, then gzip each chunk on its own. */
	off = (s->chunk - 1) * m->chunk_size;
	len = s->len - off < m->chunk_size ? s->len - off : m->chunk_size;
	if ((err = gzip_chunk(a, (const char *)s->body + off, len, &r->body, &r->body_len)) < 0 ||
	    (err = ras_http_request_header(r, "Content-Encoding", "gzip")) < 0)
		return err;
	return 0;
}

int
ras_mesh_prep_track_local(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const char *local_id, struct ras_http_request *r)
{
	int err;

	if ((err = check_segment("local id", local_id)) < 0)
		return err;
	/* Deprecated but the only way to find a message whose id we never
	 * received (NOTES §1.10): 200 found, 404 not sent. */
	return base(m, a, now, "GET", ras_arena_printf(a, "%s/messageexchange/%s/outbox/tracking/%s",
	    m->url, m->mailbox, local_id), r);
}

int
ras_mesh_prep_track(struct ras_mesh *m, struct ras_arena *a, int64_t now, const char *message_id,
    struct ras_http_request *r)
{
	int err;

	if ((err = check_segment("message id", message_id)) < 0)
		return err;
	return base(m, a, now, "GET", ras_arena_printf(a,
	    "%s/messageexchange/%s/outbox/tracking?messageID=%s", m->url, m->mailbox, message_id), r);
}

int
ras_mesh_prep_inbox(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    struct ras_http_request *r)
{
	return base(m, a, now, "GET", ras_arena_printf(a, "%s/messageexchange/%s/inbox?max_results=500",
	    m->url, m->mailbox), r);
}

int
ras_mesh_prep_download(struct ras_mesh *m, struct ras_arena *a, int64_t now,
    const char *message_id, size_t chunk, struct ras_http_request *r)
{
	int err;

	if ((err = check_segment("message id", message_id)) < 0)
		return err;
	if (chunk <= 1)
		err = base(m, a, now, "GET", ras_arena_printf(a, "%s/messageexchange/%s/inbox/%s", m->url,
		    m->mailbox, message_id), r);
	else
		err = base(m, a, now, "GET", ras_arena_printf(a, "%s/messageexchange/%s/inbox/%s/%zu",
		    m->url, m->mailbox, message_id, chunk), r);
	if (err == 0)
		r->max_body = RAS_PAYLOAD_MAX;
	return err;
}

int
ras_mesh_prep_ack(struct ras_mesh *m, struct ras_arena *a, int64_t now, const char *message_id,
    struct ras_http_request *r)
{
	int err;

	if ((err = check_segment("message id", message_id)) < 0)
		return err;
	return base(m, a, now, "PUT", ras_arena_printf(a,
	    "%s/messageexchange/%s/inbox/%s/status/acknowledged", m->url, m->mailbox, message_id), r);
}

int
ras_mesh_prep_lookup(struct ras_mesh *m, struct ras_arena *a, int64_t now, const char *ods,
    const char *workflow, struct ras_http_request *r)
{
	int err;

	if ((err = check_segment("ODS code", ods)) < 0 || (err = check_segment("workflow id", workflow)) < 0)
		return err;
	return base(m, a, now, "GET", ras_arena_printf(a, "%s/messageexchange/endpointlookup/%s/%s", m->url,
	    ods, workflow), r);
}

int
ras_mesh_lookup_result(const struct ras_http_request *r, char *mailbox, size_t size)
{
	json_t *j = NULL, *res, *x;
	const char *found = NULL;
	size_t i, n = 0;
	char why[256];

	mailbox[0] = '\0';
	if (r->err)
		return ras_error_code(r->err, "MESH endpoint lookup failed: %s", r->errmsg);
	if (r->status != 200) {
		ras_mesh_error_reason(r, why, sizeof(why));
		return ras_error_code(r->status >= 500 ? RAS_ETIMEDOUT : RAS_EIO,
		    "MESH endpoint lookup answered %ld%s%s", r->status, why[0] ? ": " : "", why);
	}
	if (ras_json_parse(r->body_out.data, r->body_out.len, 1 << 20, &j) < 0)
		return ras_error_code(RAS_EIO, "MESH endpoint lookup answer is not JSON");
	res = ras_json_arr(j, "results");
	json_array_foreach(res, i, x) {
		const char *id = ras_json_str(x, "mailbox_id") ? ras_json_str(x, "mailbox_id") :
		    ras_json_str(x, "address");

		if (id && check_segment("mailbox", id) == 0) {
			if (found == NULL || strcasecmp(found, id) != 0)
				n++;
			if (found == NULL)
				found = id;
		}
	}
	if (n == 1)
		snprintf(mailbox, size, "%s", found);
	json_decref(j);
	if (n == 0)
		return ras_error_code(RAS_ENOTFOUND, "no mailbox is registered for this ODS code and workflow");
	if (n > 1)
		return ras_error_code(RAS_ECONFLICT, "%zu mailboxes are registered for this ODS code and "
		    "workflow", n);
	return 0;
}

void
ras_mesh_error_reason(const struct ras_http_request *r, char *buf, size_t size)
{
	json_t *j = NULL, *d;
	const char *desc = NULL, *code = NULL;

	buf[0] = '\0';
	if (r->body_out.len == 0)
		return;
	if (ras_json_parse(r->body_out.data, r->body_out.len, 1 << 20, &j) == 0) {
		d = json_array_get(ras_json_arr(j, "detail"), 0);
		if (d) {
			desc = ras_json_str(d, "msg");
			code = ras_json_str(d, "code");
		} else {
			desc = ras_json_str(j, "errorDescription");
			code = ras_json_str(j, "errorCode");
			if (desc == NULL)
				desc = ras_json_str(j, "message");
		}
		if (code && *code == '\0')
			code = NULL;
		if (desc)
			snprintf(buf, size, "%s%s%s", code ? code : "", code ? " " : "", desc);
	} else if (r->body_out.len < 200) {
		/* a plain-text reason (a proxy's, or an older MESH): printable only */
		size_t k = 0;

		for (size_t i = 0; i < r->body_out.len && k + 1 < size; i++) {
			unsigned char c = (unsigned char)r->body_out.data[i];

			buf[k++] = c >= 0x20 && c < 0x7f ? (char)c : ' ';
		}
		buf[k] = '\0';
	}
	json_decref(j);
	ras_error_clear();
	/* one line for the log and last_error */
	for (char *p = buf; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

/* The error class of a refused send or chunk. */
static int
send_error(const struct ras_http_request *r)
{
	char why[256];
	int err;

	ras_mesh_error_reason(r, why, sizeof(why));
	if (r->status == 400 || r->status == 417 || r->status == 422 || r->status == 423)
		err = RAS_EINVALID;
	else if (r->status == 429)
		err = RAS_ERATELIMITED;
	else if (r->status >= 500)
		err = RAS_ETIMEDOUT;
	else
		err = RAS_EIO;
	return ras_error_code(err, "MESH answered %ld%s%s", r->status, why[0] ? ": " : "", why);
}

int
ras_mesh_send_result(const struct ras_http_request *r, char *message_id, size_t size)
{
	json_t *j = NULL;
	const char *id;

	if (r->err)
		return ras_error_code(r->err, "MESH send failed: %s", r->errmsg);
	if (r->status == 202) {
		if (ras_json_parse(r->body_out.data, r->body_out.len, 1 << 20, &j) < 0)
			return ras_error_code(RAS_ETIMEDOUT, "MESH accepted the message but its answer is not JSON");
		id = ras_json_str(j, "message_id");
		if (id == NULL)
			id = ras_json_str(j, "messageID");
		if (id == NULL || check_segment("message id", id) < 0) {
			json_decref(j);
			return ras_error_code(RAS_ETIMEDOUT, "MESH accepted the message without a message id");
		}
		snprintf(message_id, size, "%s", id);
		json_decref(j);
		return 0;
	}
	return send_error(r);
}

int
ras_mesh_chunk_result(const struct ras_http_request *r)
{
	if (r->err)
		return ras_error_code(r->err, "MESH chunk upload failed: %s", r->errmsg);
	/* The message id is already known from chunk 1: the body (`null` in
	 * the sandbox, the id in older servers) carries nothing needed. */
	if (r->status == 202)
		return 0;
	return send_error(r);
}

static const char *
track_id(const json_t *t)
{
	static const char *const names[] = { "message_id", "messageId", "messageID" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (ras_json_str(t, names[i]))
			return ras_json_str(t, names[i]);
	return NULL;
}

int
ras_mesh_track_result(const struct ras_http_request *r, struct ras_mesh_tracking *out)
{
	json_t *j = NULL, *t, *x;
	const char *id, *st;
	char why[256];
	size_t i;

	memset(out, 0, sizeof(*out));
	if (r->err)
		return ras_error_code(r->err, "MESH tracking failed: %s", r->errmsg);
	if (r->status == 404)
		return 0;
	if (r->status != 200 && r->status != 300) {
		ras_mesh_error_reason(r, why, sizeof(why));
		return ras_error_code(r->status >= 500 ? RAS_ETIMEDOUT : RAS_EIO,
		    "MESH tracking answered %ld%s%s", r->status, why[0] ? ": " : "", why);
	}
	if (ras_json_parse(r->body_out.data, r->body_out.len, 1 << 20, &j) < 0)
		return ras_error_code(RAS_EIO, "MESH tracking answer is not JSON");
	/* v2 {"message_id", "status"}; v1 {"messageId", "status"} (older
	 * servers "messageID"); 300 is a list, in which a send still
	 * `uploading` (abandoned) is passed over for a complete one */
	t = j;
	if (json_is_array(j)) {
		t = json_array_get(j, 0);
		json_array_foreach(j, i, x) {
			st = ras_json_str(x, "status");
			if (st && strcasecmp(st, "uploading") != 0) {
				t = x;
				break;
			}
		}
	}
	if (!json_is_object(t)) {
		json_decref(j);
		return ras_error_code(RAS_EIO, "MESH tracking answer has no message");
	}
	id = track_id(t);
	st = ras_json_str(t, "status");
	out->found = true;
	snprintf(out->message_id, sizeof(out->message_id), "%s", id ? id : "");
	snprintf(out->status, sizeof(out->status), "%s", st ? st : "");
	for (char *p = out->status; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	json_decref(j);
	if (out->message_id[0] && check_segment("message id", out->message_id) < 0)
		return ras_error_code(RAS_EIO, "MESH tracking answer has a malformed message id");
	return 0;
}

int
ras_mesh_track_result_file(const struct ras_http_request *r, const char *filename,
    struct ras_mesh_tracking *out)
{
	json_t *j = NULL, *x, *hit = NULL;
	size_t i;
	int err;

	if ((err = ras_mesh_track_result(r, out)) < 0 || !out->found)
		return err;
	if (ras_json_parse(r->body_out.data, r->body_out.len, 1 << 20, &j) < 0)
		return ras_error_code(RAS_EIO, "MESH tracking answer is not JSON");
	if (json_is_array(j)) {
		json_array_foreach(j, i, x) {
			const char *f = ras_json_str(x, "filename") ? ras_json_str(x, "filename") :
			    ras_json_str(x, "fileName");

			if (f && strcmp(f, filename) == 0 && (hit == NULL || strcasecmp(ras_json_str(hit,
			    "status") ? ras_json_str(hit, "status") : "", "uploading") == 0))
				hit = x;
		}
	} else {
		const char *f = ras_json_str(j, "filename") ? ras_json_str(j, "filename") :
		    ras_json_str(j, "fileName");

		if (f && strcmp(f, filename) == 0)
			hit = j;
	}
	memset(out, 0, sizeof(*out));
	if (hit) {
		const char *id = track_id(hit), *st = ras_json_str(hit, "status");

		out->found = true;
		snprintf(out->message_id, sizeof(out->message_id), "%s", id ? id : "");
		snprintf(out->status, sizeof(out->status), "%s", st ? st : "");
		for (char *p = out->status; *p; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	}
	json_decref(j);
	if (out->message_id[0] && check_segment("message id", out->message_id) < 0)
		return ras_error_code(RAS_EIO, "MESH tracking answer has a malformed message id");
	return 0;
}

enum ras_mesh_track_state
ras_mesh_track_state(const struct ras_mesh_tracking *t)
{
	if (strcmp(t->status, "accepted") == 0 || strcmp(t->status, "acknowledged") == 0 ||
	    strcmp(t->status, "delivered") == 0)
		return RAS_MESH_TRACK_DELIVERED;
	if (strcmp(t->status, "uploading") == 0 || t->status[0] == '\0')
		return RAS_MESH_TRACK_INCOMPLETE;
	return RAS_MESH_TRACK_FAILED;
}

int
ras_mesh_inbox_result(struct ras_arena *a, const struct ras_http_request *r, const char ***ids,
    size_t *n)
{
	json_t *j, *msgs, *x;
	size_t i;
	int err;

	*ids = NULL;
	*n = 0;
	if (r->err)
		return ras_error_code(r->err, "MESH inbox failed: %s", r->errmsg);
	if (r->status != 200) {
		char why[256];

		ras_mesh_error_reason(r, why, sizeof(why));
		return ras_error_code(r->status >= 500 ? RAS_ETIMEDOUT : RAS_EIO,
		    "MESH inbox answered %ld%s%s", r->status, why[0] ? ": " : "", why);
	}
	if ((err = ras_json_parse_arena(a, r->body_out.data, r->body_out.len, RAS_HTTP_BODY_MAX, &j)) < 0)
		return err;
	msgs = ras_json_arr(j, "messages");
	*ids = ras_arena_calloc(a, json_array_size(msgs) + 1, sizeof(**ids));
	if (*ids == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(msgs, i, x) {
		const char *id = json_is_string(x) ? json_string_value(x) : NULL;

		if (id && check_segment("message id", id) == 0)
			(*ids)[(*n)++] = id;
	}
	ras_error_clear();
	return 0;
}

static void
hdr(const struct ras_http_request *r, const char *name, char *buf, size_t size)
{
	if (ras_http_response_header(r, name, buf, size) == NULL)
		buf[0] = '\0';
}

void
ras_mesh_meta(const struct ras_http_request *r, struct ras_mesh_meta *m)
{
	char range[32];
	char *colon;

	memset(m, 0, sizeof(*m));
	hdr(r, "mex-messagetype", m->message_type, sizeof(m->message_type));
	hdr(r, "mex-workflowid", m->workflow, sizeof(m->workflow));
	hdr(r, "mex-localid", m->local_id, sizeof(m->local_id));
	hdr(r, "mex-linkedmsgid", m->linked_id, sizeof(m->linked_id));
	hdr(r, "mex-statuscode", m->status_code, sizeof(m->status_code));
	hdr(r, "mex-statusevent", m->status_event, sizeof(m->status_event));
	hdr(r, "mex-statussuccess", m->status_success, sizeof(m->status_success));
	hdr(r, "mex-statusdescription", m->status_description, sizeof(m->status_description));
	hdr(r, "mex-content-type", m->content_type, sizeof(m->content_type));
	if (m->content_type[0] == '\0')
		hdr(r, "content-type", m->content_type, sizeof(m->content_type));
	hdr(r, "mex-chunk-range", range, sizeof(range));
	m->chunk = m->nchunks = 1;
	if ((colon = strchr(range, ':')) != NULL) {
		char *end;
		long k = strtol(range, &end, 10), n = strtol(colon + 1, NULL, 10);

		if (end == colon && k >= 1 && n >= k && n <= 100000) {
			m->chunk = (size_t)k;
			m->nchunks = (size_t)n;
		}
	}
}
