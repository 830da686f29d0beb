/* fake_mesh: loopback MESH server (see tests/fake_mesh.h). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "fake_http.h"
#include "fake_mesh.h"
#include "ras/crypto.h"
#include "ras/json.h"
#include "ras/mesh.h"
#include "ras/time.h"
#include "ras_config.h"

struct mailbox {
	char id[32], password[64];
};

struct fake_mesh {
	struct fake_http *http;
	pthread_mutex_t lock;
	struct mailbox mb[16];
	size_t nmb;
	struct fake_mesh_msg **msgs;
	size_t n, cap;
	char **tokens;
	size_t ntok, captok;
	char **kept;             /* response bodies built per request, freed at stop */
	size_t nkept, capkept;
	int64_t now;
	bool need_client_cert;
	int drop, fail, auth_failures, sends;
	int delay_ms;            /* answer each send this late (after storing it) */
	struct { char ods[32], workflow[128], mailbox[32]; } reg[32];   /* endpoint lookup */
	size_t nreg;
	unsigned seq;
};

static void
new_id(struct fake_mesh *m, char *out)
{
	char u[RAS_UUID_STR_LEN];
	size_t k = 0;

	ras_crypto_uuid(u);
	for (size_t i = 0; u[i] && k < 32; i++)
		if (u[i] != '-')
			out[k++] = (char)(u[i] >= 'a' && u[i] <= 'f' ? u[i] - 'a' + 'A' : u[i]);
	out[k] = '\0';
	m->seq++;
}

static struct mailbox *
find_mb(struct fake_mesh *m, const char *id)
{
	for (size_t i = 0; i < m->nmb; i++)
		if (strcasecmp(m->mb[i].id, id) == 0)
			return &m->mb[i];
	return NULL;
}

static struct fake_mesh_msg *
find_msg(struct fake_mesh *m, const char *id)
{
	for (size_t i = 0; i < m->n; i++)
		if (strcmp(m->msgs[i]->id, id) == 0)
			return m->msgs[i];
	return NULL;
}

static struct fake_mesh_msg *
add_msg(struct fake_mesh *m)
{
	struct fake_mesh_msg *x = calloc(1, sizeof(*x));

	if (m->n == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 32;
		m->msgs = realloc(m->msgs, m->cap * sizeof(*m->msgs));
	}
	m->msgs[m->n++] = x;
	new_id(m, x->id);
	snprintf(x->type, sizeof(x->type), "DATA");
	x->nchunks = 1;
	return x;
}

/* Keep a response body alive until the server stops (called under the lock). */
static const char *
keep(struct fake_mesh *m, char *s)
{
	if (m->nkept == m->capkept) {
		m->capkept = m->capkept ? m->capkept * 2 : 64;
		m->kept = realloc(m->kept, m->capkept * sizeof(*m->kept));
	}
	m->kept[m->nkept++] = s;
	return s;
}

static void
json_resp(struct fake_resp *resp, int status, const char *body)
{
	resp->status = status;
	resp->content_type = "application/vnd.mesh.v2+json";
	resp->body = body;
}

static void
error_resp(struct fake_resp *resp, int status, const char *code, const char *msg)
{
	static __thread char buf[512];

	snprintf(buf, sizeof(buf), "{\"detail\":[{\"event\":\"SEND\",\"code\":\"%s\",\"msg\":\"%s\"}]}",
	    code, msg);
	json_resp(resp, status, buf);
}

/* gunzip one chunk (NULL if it is not gzip) */
static char *
gunzip(const char *in, size_t len, size_t *out_len)
{
	z_stream z;
	size_t cap = len * 4 + 1024, n = 0;
	char *out = malloc(cap);
	int rc;

	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, 15 + 16) != Z_OK) {
		free(out);
		return NULL;
	}
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	do {
		if (n == cap) {
			cap *= 2;
			out = realloc(out, cap);
		}
		z.next_out = (Bytef *)out + n;
		z.avail_out = (uInt)(cap - n);
		rc = inflate(&z, Z_NO_FLUSH);
		n = cap - z.avail_out;
	} while (rc == Z_OK);
	inflateEnd(&z);
	if (rc != Z_STREAM_END) {
		free(out);
		return NULL;
	}
	*out_len = n;
	return out;
}

static char *
gzip_bytes(const char *in, size_t len, size_t *out_len)
{
	uLongf cap = compressBound((uLong)len) + 64;
	char *out = malloc(cap);
	z_stream z;

	memset(&z, 0, sizeof(z));
	deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	return out;
}

/* Verify the NHSMESH token for the mailbox in the path. */
static bool
auth_ok(struct fake_mesh *m, const struct fake_req *req, const char *path_mb)
{
	const char *h = fake_req_header(req, "Authorization");
	char tok[512], *parts[5], *p, want[512], ts[13];
	struct mailbox *mb;
	size_t np = 0;
	int64_t now = m->now ? m->now : ras_time_now(), t;
	char iso[32];

	if (h == NULL || strncmp(h, "NHSMESH ", 8) != 0 || strlen(h) >= sizeof(tok))
		return false;
	snprintf(tok, sizeof(tok), "%s", h + 8);
	for (p = tok; np < 5; np++) {
		parts[np] = p;
		p = strchr(p, ':');
		if (p == NULL) {
			np++;
			break;
		}
		*p++ = '\0';
	}
	if (np != 5 || p != NULL)
		return false;
	if (strcmp(parts[0], path_mb) != 0 || (mb = find_mb(m, parts[0])) == NULL)
		return false;
	for (const char *c = parts[2]; *c; c++)
		if (*c < '0' || *c > '9')
			return false;
	if (strlen(parts[3]) != 12)
		return false;
	snprintf(iso, sizeof(iso), "%.4s-%.2s-%.2sT%.2s:%.2s:00Z", parts[3], parts[3] + 4, parts[3] + 6,
	    parts[3] + 8, parts[3] + 10);
	if (ras_time_parse(iso, false, &t) < 0 || t > now + 7200 || t < now - 7200)
		return false;
	snprintf(ts, sizeof(ts), "%s", parts[3]);
	if (ras_mesh_auth_header(parts[0], mb->password, FAKE_MESH_SHARED_KEY, parts[1],
	    strtoul(parts[2], NULL, 10), ts, want, sizeof(want)) < 0 || strcasecmp(want, h) != 0)
		return false;
	/* one use per token */
	for (size_t i = 0; i < m->ntok; i++)
		if (strcmp(m->tokens[i], h) == 0)
			return false;
	if (m->ntok == m->captok) {
		m->captok = m->captok ? m->captok * 2 : 64;
		m->tokens = realloc(m->tokens, m->captok * sizeof(*m->tokens));
	}
	m->tokens[m->ntok++] = strdup(h);
	return true;
}

static void
msg_headers(struct fake_resp *resp, struct fake_mesh_msg *x, size_t chunk)
{
	static __thread char range[48], total[24], fname[64];
	bool report = strcmp(x->type, "REPORT") == 0;

	fake_resp_header(resp, "mex-messageid", x->id);
	fake_resp_header(resp, "mex-messagetype", x->type);
	if (!report)
		fake_resp_header(resp, "mex-from", x->from);
	fake_resp_header(resp, "mex-to", x->to);
	if (x->subject[0])
		fake_resp_header(resp, "mex-subject", x->subject);
	if (report) {
		/* as the sandbox: a report has no chunks and a made-up file name */
		snprintf(fname, sizeof(fname), "%s.dat", x->id);
		fake_resp_header(resp, "mex-filename", fname);
		fake_resp_header(resp, "mex-chunk-range", "1:0");
		fake_resp_header(resp, "mex-total-chunks", "0");
	} else if (x->filename[0]) {
		fake_resp_header(resp, "mex-filename", x->filename);
	}
	if (x->workflow[0])
		fake_resp_header(resp, "mex-workflowid", x->workflow);
	if (x->local_id[0])
		fake_resp_header(resp, "mex-localid", x->local_id);
	if (x->content_type[0])
		fake_resp_header(resp, "mex-content-type", x->content_type);
	if (strcmp(x->type, "REPORT") == 0) {
		fake_resp_header(resp, "mex-statuscode", x->status_code);
		fake_resp_header(resp, "mex-statusevent", x->status_event);
		fake_resp_header(resp, "mex-statussuccess", x->status_success);
		fake_resp_header(resp, "mex-statusdescription", x->description);
		fake_resp_header(resp, "mex-linkedmsgid", x->linked_id);
	} else {
		fake_resp_header(resp, "mex-statuscode", "00");
		fake_resp_header(resp, "mex-statusevent", "TRANSFER");
		fake_resp_header(resp, "mex-statussuccess", "SUCCESS");
	}
	if (!report) {
		snprintf(range, sizeof(range), "%zu:%zu", chunk, x->nchunks);
		fake_resp_header(resp, "mex-chunk-range", range);
		snprintf(total, sizeof(total), "%zu", x->nchunks);
		fake_resp_header(resp, "mex-total-chunks", total);
	}
}

static void
handle_send(struct fake_mesh *m, const struct fake_req *req, const char *mb, const char *rest,
    struct fake_resp *resp)
{
	const char *to = fake_req_header(req, "mex-To"), *wf = fake_req_header(req, "mex-WorkflowID");
	const char *range = fake_req_header(req, "mex-Chunk-Range");
	const char *enc = fake_req_header(req, "Content-Encoding");
	size_t k = 1, n = 1, dlen = req->body_len;
	struct fake_mesh_msg *x;
	static __thread char body[128];
	char *decoded = NULL;
	const char *data = req->body;

	if (range && sscanf(range, "%zu:%zu", &k, &n) != 2) {
		error_resp(resp, 400, "06", "MalformedControlFile");
		return;
	}
	for (size_t i = 0; i < req->nheaders; i++)
		if (strncasecmp(req->headers[i].name, "mex-", 4) == 0)
			for (const char *c = req->headers[i].value; *c; c++)
				if ((unsigned char)*c < 0x20) {
					error_resp(resp, 400, "06", "MalformedControlFile");
					return;
				}
	if (enc && strcasecmp(enc, "gzip") != 0) {
		error_resp(resp, 422, "UnsupportedContentEncoding", "Unsupported content encoding");
		return;
	}
	if (req->body_len == 0) {
		error_resp(resp, 417, "02", "Data file is missing or inaccessible.");
		return;
	}
	if (*rest == '\0') {
		/* first chunk: a new message */
		m->sends++;
		if (m->fail > 0) {
			m->fail--;
			error_resp(resp, 503, "503", "Service Unavailable");
			return;
		}
		if (to == NULL || wf == NULL) {
			error_resp(resp, 400, "08", "Missing mex-To or mex-WorkflowID");
			return;
		}
		if (find_mb(m, to) == NULL && strncmp(to, "GPPROVIDER_", 11) != 0) {
			error_resp(resp, 417, "12", "Unregistered to address");
			return;
		}
		if (k != 1 || n < 1) {
			error_resp(resp, 417, "InvalidHeaderChunks", "first chunk must be 1:n");
			return;
		}
		x = add_msg(m);
		snprintf(x->from, sizeof(x->from), "%s", mb);
		snprintf(x->to, sizeof(x->to), "%s", to);
		snprintf(x->workflow, sizeof(x->workflow), "%s", wf);
		snprintf(x->local_id, sizeof(x->local_id), "%s", fake_req_header(req, "mex-LocalID") ?
		    fake_req_header(req, "mex-LocalID") : "");
		snprintf(x->subject, sizeof(x->subject), "%s", fake_req_header(req, "mex-Subject") ?
		    fake_req_header(req, "mex-Subject") : "");
		snprintf(x->content_type, sizeof(x->content_type), "%s",
		    fake_req_header(req, "mex-Content-Type") ? fake_req_header(req, "mex-Content-Type") :
		    fake_req_header(req, "Content-Type") ? fake_req_header(req, "Content-Type") : "");
		snprintf(x->filename, sizeof(x->filename), "%s", fake_req_header(req, "mex-FileName") ?
		    fake_req_header(req, "mex-FileName") : "");
		x->gzip = enc != NULL;
		x->nchunks = n;
		x->chunk_off = calloc(n + 1, sizeof(*x->chunk_off));
	} else {
		char id[64];
		size_t kk;

		if (sscanf(rest, "/%63[^/]/%zu", id, &kk) != 2 || (x = find_msg(m, id)) == NULL ||
		    strcmp(x->from, mb) != 0) {
			error_resp(resp, 404, "20", "Message does not exist");
			return;
		}
		if (x->chunks_got >= x->nchunks) {
			/* the sandbox's answer, body and all */
			resp->status = 423;
			resp->content_type = "application/json";
			resp->body = "{\"message\": \"An internal error occurred.\\n\\nPlease contact support.\"}";
			return;
		}
		if (kk != x->chunks_got + 1 || kk != k || n != x->nchunks) {
			error_resp(resp, 417, "InvalidHeaderChunks", "chunk out of order");
			return;
		}
		if (x->gzip != (enc != NULL)) {
			error_resp(resp, 417, "InvalidContentEncoding", "cannot change content encoding");
			return;
		}
	}
	if (enc) {
		if ((decoded = gunzip(req->body, req->body_len, &dlen)) == NULL) {
			error_resp(resp, 400, "06", "content is not gzip");
			return;
		}
		data = decoded;
	}
	x->chunk_off[x->chunks_got] = x->len;
	x->body = realloc(x->body, x->len + dlen + 1);
	memcpy(x->body + x->len, data, dlen);
	x->len += dlen;
	x->body[x->len] = '\0';
	x->chunks_got++;
	x->chunk_off[x->chunks_got] = x->len;
	free(decoded);
	if (*rest == '\0') {
		snprintf(body, sizeof(body), "{\"message_id\":\"%s\"}", x->id);
		json_resp(resp, 202, body);
		resp->content_type = "application/json";
	} else {
		/* chunks after the first: 202 and a JSON null, as the sandbox */
		resp->status = 202;
		resp->content_type = "application/json";
		resp->body = "null";
	}
	resp->delay_ms = m->delay_ms;
	if (*rest == '\0' && m->drop > 0) {
		/* stored, but the answer never arrives: the sender cannot know */
		m->drop--;
		resp->drop = true;
	}
}

static bool
wants_v2(const struct fake_req *req)
{
	const char *acc = fake_req_header(req, "Accept");

	return acc && strstr(acc, "application/vnd.mesh.v2+json") != NULL;
}

/* The two shapes the sandbox answers tracking with (v2 with the v2 Accept
 * header, v1 without: messageId and a capitalised status). */
static void
tracking(struct fake_mesh *m, const struct fake_req *req, struct fake_mesh_msg *x,
    struct fake_resp *resp)
{
	char body[1024];
	const char *st;

	if (x == NULL) {
		error_resp(resp, 404, "20", "Message does not exist");
		return;
	}
	st = x->chunks_got < x->nchunks ? "uploading" : x->acked ? "acknowledged" : "accepted";
	if (wants_v2(req)) {
		snprintf(body, sizeof(body), "{\"message_id\": \"%s\", \"local_id\": \"%s\", "
		    "\"workflow_id\": \"%s\", \"filename\": \"%s\", \"recipient\": \"%s\", "
		    "\"status_success\": %s, \"status\": \"%s\"}", x->id, x->local_id, x->workflow,
		    x->filename, x->to, strcmp(st, "uploading") ? "true" : "null", st);
		json_resp(resp, 200, keep(m, strdup(body)));
	} else {
		snprintf(body, sizeof(body), "{\"addressType\": \"ALL\", \"chunkCount\": %zu, "
		    "\"dtsId\": \"%s\", \"fileName\": \"%s\", \"localId\": \"%s\", \"messageId\": \"%s\", "
		    "\"messageType\": \"Data\", \"recipient\": \"%s\", \"sender\": \"%s\", "
		    "\"status\": \"%c%s\", \"statusSuccess\": \"%s\", \"workflowId\": \"%s\"}",
		    x->nchunks, x->id, x->filename, x->local_id, x->id, x->to, x->from, st[0] - 'a' + 'A',
		    st + 1, strcmp(st, "uploading") ? "SUCCESS" : "", x->workflow);
		resp->status = 200;
		resp->content_type = "application/json";
		resp->body = keep(m, strdup(body));
	}
}

static void
admin_messages(struct fake_mesh *m, struct fake_resp *resp)
{
	json_t *arr = json_array();
	struct ras_buf b = RAS_BUF_INIT(0);

	for (size_t i = 0; i < m->n; i++) {
		struct fake_mesh_msg *x = m->msgs[i];

		json_array_append_new(arr, json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:b}", "id", x->id,
		    "type", x->type, "from", x->from,
		    "to", strncmp(x->to, "GPPROVIDER_", 11) == 0 ? "GPPROVIDER_(patient)" : x->to,
		    "workflow", x->workflow, "local_id", x->local_id, "content_type", x->content_type,
		    "bytes", (json_int_t)x->len, "chunks", (json_int_t)x->nchunks, "acknowledged", x->acked));
	}
	ras_json_dump(arr, RAS_JSON_PRETTY, &b);
	json_decref(arr);
	json_resp(resp, 200, b.data ? keep(m, b.data) : "[]");
}

static void
handler(void *ctx, const struct fake_req *req, struct fake_resp *resp)
{
	struct fake_mesh *m = ctx;
	const char *path = req->path, *p;
	char mb[64] = "";
	size_t l;

	pthread_mutex_lock(&m->lock);
	if (m->need_client_cert && !req->client_cert_verified) {
		resp->status = 403;
		resp->body = "client certificate required";
		goto out;
	}
	if (strcmp(path, "/admin/messages") == 0) {
		admin_messages(m, resp);
		goto out;
	}
	if (strcmp(path, "/messageexchange/_ping") == 0) {
		json_resp(resp, 200, "{}");
		goto out;
	}
	if (strcmp(path, "/messageexchange/admin/report") == 0 && strcmp(req->method, "POST") == 0) {
		json_t *j = NULL;

		if (ras_json_parse(req->body, req->body_len, 1 << 20, &j) == 0) {
			pthread_mutex_unlock(&m->lock);
			fake_mesh_report(m, ras_json_str(j, "mailbox_id"), ras_json_str(j, "linked_message_id"),
			    ras_json_str(j, "local_id"), ras_json_str(j, "workflow_id"), ras_json_str(j, "code"),
			    ras_json_str(j, "description"));
			pthread_mutex_lock(&m->lock);
			json_resp(resp, 200, "{}");
		} else {
			error_resp(resp, 400, "400", "bad report");
		}
		json_decref(j);
		goto out;
	}
	if (strncmp(path, "/messageexchange/endpointlookup/", 32) == 0 && strcmp(req->method, "GET") == 0) {
		char ods[64] = "", wf[160] = "";
		struct ras_buf b = RAS_BUF_INIT(0);
		size_t k = 0;

		sscanf(path + 32, "%63[^/]/%159s", ods, wf);
		ras_buf_puts(&b, "{\"results\": [");
		for (size_t i = 0; i < m->nreg; i++)
			if (strcasecmp(m->reg[i].ods, ods) == 0 && strcmp(m->reg[i].workflow, wf) == 0) {
				struct mailbox *x = find_mb(m, m->reg[i].mailbox);

				ras_buf_printf(&b, "%s{\"mailbox_id\": \"%s\", \"mailbox_name\": \"%s\"}", k++ ? ", " : "",
				    m->reg[i].mailbox, x ? x->id : "");
			}
		ras_buf_puts(&b, "]}");
		resp->status = 200;
		resp->content_type = "application/json";
		resp->body = keep(m, b.data);
		goto out;
	}
	if (strncmp(path, "/messageexchange/", 17) != 0) {
		error_resp(resp, 404, "404", "not found");
		goto out;
	}
	p = path + 17;
	l = strcspn(p, "/?");
	if (l == 0 || l >= sizeof(mb)) {
		error_resp(resp, 404, "404", "not found");
		goto out;
	}
	memcpy(mb, p, l);
	mb[l] = '\0';
	p += l;
	if (!auth_ok(m, req, mb)) {
		m->auth_failures++;
		json_resp(resp, 403, "{\"detail\": [{\"event\": \"\", \"code\": \"\", "
		    "\"msg\": \"Invalid Authentication Token\"}]}");
		goto out;
	}
	if (*p == '\0' && strcmp(req->method, "POST") == 0) {
		if (!fake_req_header(req, "mex-ClientVersion") || !fake_req_header(req, "mex-OSName") ||
		    !fake_req_header(req, "mex-OSVersion")) {
			error_resp(resp, 400, "400", "missing mex-ClientVersion, mex-OSName or mex-OSVersion");
			goto out;
		}
		/* v2: an empty 200; v1: {"mailboxId": ...} */
		if (wants_v2(req)) {
			resp->status = 200;
			resp->body = "";
		} else {
			char b[96];

			snprintf(b, sizeof(b), "{\"mailboxId\": \"%s\"}", mb);
			resp->status = 200;
			resp->content_type = "application/json";
			resp->body = keep(m, strdup(b));
		}
	} else if (strncmp(p, "/outbox/tracking/", 17) == 0) {
		struct fake_mesh_msg *found = NULL;
		size_t nfound = 0;

		for (size_t i = 0; i < m->n; i++)
			if (strcmp(m->msgs[i]->from, mb) == 0 && strcmp(m->msgs[i]->local_id, p + 17) == 0) {
				found = m->msgs[i];
				nfound++;
			}
		if (nfound > 1) {
			/* several messages share the local id: 300 and a list of them */
			struct ras_buf b = RAS_BUF_INIT(0);

			ras_buf_puts(&b, "[");
			for (size_t i = 0, k = 0; i < m->n; i++) {
				struct fake_resp r1 = { 0 };

				if (strcmp(m->msgs[i]->from, mb) || strcmp(m->msgs[i]->local_id, p + 17))
					continue;
				tracking(m, req, m->msgs[i], &r1);
				if (k++)
					ras_buf_puts(&b, ",");
				ras_buf_puts(&b, r1.body);
			}
			ras_buf_puts(&b, "]");
			json_resp(resp, 300, keep(m, b.data));
		} else {
			tracking(m, req, found, resp);
		}
	} else if (strncmp(p, "/outbox/tracking?messageID=", 27) == 0) {
		tracking(m, req, find_msg(m, p + 27), resp);
	} else if (strncmp(p, "/outbox", 7) == 0 && strcmp(req->method, "POST") == 0) {
		handle_send(m, req, mb, p + 7, resp);
	} else if (strncmp(p, "/inbox", 6) == 0 && (p[6] == '\0' || p[6] == '?') &&
	    strcmp(req->method, "GET") == 0) {
		json_t *ids = json_array();
		struct ras_buf b = RAS_BUF_INIT(0);

		for (size_t i = 0; i < m->n; i++) {
			struct fake_mesh_msg *x = m->msgs[i];

			if (strcasecmp(x->to, mb) == 0 && !x->acked && x->chunks_got >= x->nchunks)
				json_array_append_new(ids, json_string(x->id));
		}
		json_t *o = json_pack("{s:o,s:I}", "messages", ids, "approx_inbox_count",
		    (json_int_t)json_array_size(ids));
		ras_json_dump(o, RAS_JSON_COMPACT, &b);
		json_decref(o);
		json_resp(resp, 200, keep(m, b.data));
	} else if (strncmp(p, "/inbox/", 7) == 0) {
		char id[64] = "", tail[64] = "";
		struct fake_mesh_msg *x;
		size_t chunk = 1;

		sscanf(p + 7, "%63[^/]%63s", id, tail);
		x = find_msg(m, id);
		if (x == NULL || strcasecmp(x->to, mb) != 0) {
			error_resp(resp, 404, "20", "Message does not exist");
		} else if (strcmp(tail, "/status/acknowledged") == 0 && strcmp(req->method, "PUT") == 0) {
			x->acked = true;
			json_resp(resp, 200, "{}");
		} else if (strcmp(req->method, "GET") == 0 && (tail[0] == '\0' ||
		    sscanf(tail, "/%zu", &chunk) == 1)) {
			if (chunk < 1 || chunk > x->nchunks) {
				error_resp(resp, 404, "20", "no such chunk");
			} else {
				const char *ae = fake_req_header(req, "Accept-Encoding");

				msg_headers(resp, x, chunk);
				resp->status = chunk < x->nchunks ? 206 : 200;
				resp->content_type = x->nchunks == 1 && x->content_type[0] ? x->content_type :
				    "application/octet-stream";
				resp->body = x->len ? x->body + x->chunk_off[chunk - 1] : "";
				resp->body_len = x->chunk_off ? x->chunk_off[chunk] - x->chunk_off[chunk - 1] : x->len;
				if (resp->body_len == 0)
					resp->body = "";
				/* stored gzipped: served gzipped to a client that takes
				 * gzip, decoded to one that does not (as the sandbox) */
				if (x->gzip && resp->body_len && ae && strstr(ae, "gzip")) {
					size_t zl;
					char *z = gzip_bytes(resp->body, resp->body_len, &zl);

					resp->body = keep(m, z);
					resp->body_len = zl;
					fake_resp_header(resp, "content-encoding", "gzip");
					fake_resp_header(resp, "mex-content-compressed", "Y");
				}
			}
		} else {
			error_resp(resp, 405, "405", "method not allowed");
		}
	} else {
		error_resp(resp, 404, "404", "not found");
	}
out:
	pthread_mutex_unlock(&m->lock);
}

static struct fake_mesh *
mesh_new(const char *mailboxes_json)
{
	struct fake_mesh *m = calloc(1, sizeof(*m));
	char path[4096];
	struct ras_buf b = RAS_BUF_INIT(1 << 20);
	json_t *arr = NULL, *x;
	size_t i;

	pthread_mutex_init(&m->lock, NULL);
	if (mailboxes_json == NULL) {
		snprintf(path, sizeof(path), "%s/tests/fixtures/mesh/sandbox-mailboxes.json", RAS_SOURCE_ROOT);
		mailboxes_json = path;
	}
	if (ras_buf_read_file(&b, mailboxes_json) < 0 || ras_json_parse(b.data, b.len, 1 << 20, &arr) < 0) {
		fprintf(stderr, "fake_mesh: cannot read mailboxes %s\n", mailboxes_json);
		exit(1);
	}
	json_array_foreach(arr, i, x) {
		if (m->nmb < sizeof(m->mb) / sizeof(m->mb[0])) {
			snprintf(m->mb[m->nmb].id, sizeof(m->mb[m->nmb].id), "%s", ras_json_str(x, "mailbox_id"));
			snprintf(m->mb[m->nmb].password, sizeof(m->mb[m->nmb].password), "%s",
			    ras_json_str(x, "password"));
			m->nmb++;
		}
	}
	json_decref(arr);
	ras_buf_free(&b);
	return m;
}

struct fake_mesh *
fake_mesh_start(const char *mailboxes_json)
{
	struct fake_mesh *m = mesh_new(mailboxes_json);

	m->http = fake_http_start(handler, m);
	return m;
}

struct fake_mesh *
fake_mesh_start_tls(const char *mailboxes_json, const struct fake_tls *tls)
{
	struct fake_mesh *m = mesh_new(mailboxes_json);

	m->need_client_cert = tls->client_ca_pem != NULL;
	m->http = fake_http_start_tls(handler, m, tls);
	return m;
}

void
fake_mesh_stop(struct fake_mesh *m)
{
	if (m == NULL)
		return;
	fake_http_stop(m->http);
	for (size_t i = 0; i < m->n; i++) {
		free(m->msgs[i]->body);
		free(m->msgs[i]->chunk_off);
		free(m->msgs[i]);
	}
	for (size_t i = 0; i < m->ntok; i++)
		free(m->tokens[i]);
	for (size_t i = 0; i < m->nkept; i++)
		free(m->kept[i]);
	free(m->kept);
	free(m->tokens);
	free(m->msgs);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

const char *
fake_mesh_url(const struct fake_mesh *m)
{
	return fake_http_url(m->http);
}

struct fake_http *
fake_mesh_http(struct fake_mesh *m)
{
	return m->http;
}

void
fake_mesh_set_time(struct fake_mesh *m, int64_t t)
{
	pthread_mutex_lock(&m->lock);
	m->now = t;
	pthread_mutex_unlock(&m->lock);
}

void
fake_mesh_drop_sends(struct fake_mesh *m, int n)
{
	pthread_mutex_lock(&m->lock);
	m->drop = n;
	pthread_mutex_unlock(&m->lock);
}

void
fake_mesh_delay_sends(struct fake_mesh *m, int ms)
{
	pthread_mutex_lock(&m->lock);
	m->delay_ms = ms;
	pthread_mutex_unlock(&m->lock);
}

void
fake_mesh_fail_sends(struct fake_mesh *m, int n)
{
	pthread_mutex_lock(&m->lock);
	m->fail = n;
	pthread_mutex_unlock(&m->lock);
}

size_t
fake_mesh_count(struct fake_mesh *m)
{
	size_t n;

	pthread_mutex_lock(&m->lock);
	n = m->n;
	pthread_mutex_unlock(&m->lock);
	return n;
}

const struct fake_mesh_msg *
fake_mesh_msg(struct fake_mesh *m, size_t i)
{
	const struct fake_mesh_msg *x = NULL;

	pthread_mutex_lock(&m->lock);
	if (i < m->n)
		x = m->msgs[i];
	pthread_mutex_unlock(&m->lock);
	return x;
}

int
fake_mesh_auth_failures(struct fake_mesh *m)
{
	int n;

	pthread_mutex_lock(&m->lock);
	n = m->auth_failures;
	pthread_mutex_unlock(&m->lock);
	return n;
}

int
fake_mesh_sends(struct fake_mesh *m)
{
	int n;

	pthread_mutex_lock(&m->lock);
	n = m->sends;
	pthread_mutex_unlock(&m->lock);
	return n;
}

void
fake_mesh_report(struct fake_mesh *m, const char *mailbox, const char *linked_id,
    const char *local_id, const char *workflow, const char *code, const char *description)
{
	struct fake_mesh_msg *x;

	pthread_mutex_lock(&m->lock);
	x = add_msg(m);
	snprintf(x->type, sizeof(x->type), "REPORT");
	snprintf(x->from, sizeof(x->from), "%s", "X26HC001");
	snprintf(x->to, sizeof(x->to), "%s", mailbox ? mailbox : "");
	snprintf(x->linked_id, sizeof(x->linked_id), "%s", linked_id ? linked_id : "");
	snprintf(x->local_id, sizeof(x->local_id), "%s", local_id ? local_id : "");
	snprintf(x->workflow, sizeof(x->workflow), "%s", workflow ? workflow : "");
	snprintf(x->status_code, sizeof(x->status_code), "%s", code ? code : "14");
	snprintf(x->status_event, sizeof(x->status_event), "%s", "TRANSFER");
	snprintf(x->status_success, sizeof(x->status_success), "%s",
	    code && strcmp(code, "00") == 0 ? "SUCCESS" : "ERROR");
	snprintf(x->description, sizeof(x->description), "%s", description ? description : "");
	x->chunks_got = 1;
	pthread_mutex_unlock(&m->lock);
}

void
fake_mesh_deliver(struct fake_mesh *m, const char *from, const char *to, const char *workflow,
    const char *content_type, const char *body)
{
	struct fake_mesh_msg *x;

	pthread_mutex_lock(&m->lock);
	x = add_msg(m);
	snprintf(x->from, sizeof(x->from), "%s", from);
	snprintf(x->to, sizeof(x->to), "%s", to);
	snprintf(x->workflow, sizeof(x->workflow), "%s", workflow);
	snprintf(x->content_type, sizeof(x->content_type), "%s", content_type);
	x->body = strdup(body);
	x->len = strlen(body);
	x->chunks_got = 1;
	x->chunk_off = calloc(2, sizeof(*x->chunk_off));
	x->chunk_off[1] = x->len;
	pthread_mutex_unlock(&m->lock);
}

void
fake_mesh_register(struct fake_mesh *m, const char *ods, const char *workflow, const char *mailbox)
{
	pthread_mutex_lock(&m->lock);
	if (m->nreg < sizeof(m->reg) / sizeof(m->reg[0])) {
		snprintf(m->reg[m->nreg].ods, sizeof(m->reg[m->nreg].ods), "%s", ods);
		snprintf(m->reg[m->nreg].workflow, sizeof(m->reg[m->nreg].workflow), "%s", workflow);
		snprintf(m->reg[m->nreg].mailbox, sizeof(m->reg[m->nreg].mailbox), "%s", mailbox);
		m->nreg++;
	}
	pthread_mutex_unlock(&m->lock);
}
