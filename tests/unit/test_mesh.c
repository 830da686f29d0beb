/* MESH client: the NHSMESH header against the reference test vectors, and
 * every call against the loopback fake (which checks each token). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "fake_http.h"
#include "fake_mesh.h"
#include "harness.h"
#include "ras/arena.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/mesh.h"
#include "ras/time.h"

static struct fake_mesh *fm;
static struct ras_http *http;

static void
auth_header_matches_test_vectors(void)
{
	size_t len, i;
	char *data = ras_test_read(ras_test_fixture("mesh/nhsmesh-auth-test-vectors.json"), &len);
	json_t *j, *v;

	CU_ASSERT_FATAL(ras_json_parse(data, len, 1 << 20, &j) == 0);
	CU_ASSERT_EQUAL(json_array_size(ras_json_arr(j, "vectors")), 5);
	json_array_foreach(ras_json_arr(j, "vectors"), i, v) {
		char out[512];

		CU_ASSERT_EQUAL(ras_mesh_auth_header(ras_json_str(v, "mailbox_id"),
		    ras_json_str(v, "mailbox_password"), ras_json_str(v, "shared_key"),
		    ras_json_str(v, "nonce"), strtoul(ras_json_str(v, "nonce_count"), NULL, 10),
		    ras_json_str(v, "timestamp"), out, sizeof(out)), 0);
		CU_ASSERT_STRING_EQUAL(out, ras_json_str(v, "authorization"));
	}
	json_decref(j);
	free(data);
}

static void
timestamp_is_utc_minutes(void)
{
	char ts[13];
	int64_t t;

	/* 18:17 BST is 17:17 UTC */
	CU_ASSERT_FATAL(ras_time_parse("2020-06-04T18:17:59+01:00", false, &t) == 0);
	ras_mesh_timestamp(t, ts);
	CU_ASSERT_STRING_EQUAL(ts, "202006041717");
}

static struct ras_mesh *
client(const char *mailbox, const char *key, size_t chunk)
{
	struct ras_mesh_opts o = { .url = fake_mesh_url(fm), .mailbox = mailbox, .password = "password",
		.shared_key = key, .chunk_size = chunk };
	struct ras_mesh *m;

	CU_ASSERT_FATAL(ras_mesh_new(&o, &m) == 0);
	return m;
}

static long
one(struct ras_http_request *r)
{
	CU_ASSERT_FATAL(ras_http_perform(http, r, 1) == 0);
	return r->status;
}

static void
handshake_send_track_download_ack(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh *s = client("x26abc1", FAKE_MESH_SHARED_KEY, 1 << 20);
	struct ras_mesh *d = client("X26ABC2", FAKE_MESH_SHARED_KEY, 1 << 20);
	struct ras_http_request r;
	struct ras_mesh_send snd = { .to = "X26ABC2", .workflow = "RASD_TEST", .local_id = "rasd-1-abc",
		.subject = "triage-outcome", .content_type = "application/fhir+json", .body = "{\"a\":1}",
		.len = 7, .chunk = 1 };
	struct ras_mesh_tracking t;
	struct ras_mesh_meta meta;
	char id[RAS_MESH_ID_MAX];
	const char **ids;
	size_t n;
	int64_t now = ras_time_now();
	const struct fake_req *fr;

	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(s, a, now, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 200);
	fr = fake_http_req(fake_mesh_http(fm), fake_http_count(fake_mesh_http(fm)) - 1);
	CU_ASSERT_STRING_EQUAL(fr->path, "/messageexchange/X26ABC1");
	CU_ASSERT_PTR_NOT_NULL(fake_req_header(fr, "mex-ClientVersion"));
	CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "Accept"), "application/vnd.mesh.v2+json");
	ras_http_request_release(&r);

	CU_ASSERT_EQUAL(ras_mesh_prep_send(s, a, now, &snd, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 202);
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), 0);
	fr = fake_http_req(fake_mesh_http(fm), fake_http_count(fake_mesh_http(fm)) - 1);
	CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "mex-LocalID"), "rasd-1-abc");
	CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "mex-WorkflowID"), "RASD_TEST");
	CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "Content-Type"), "application/fhir+json");
	CU_ASSERT_PTR_NULL(fake_req_header(fr, "mex-Chunk-Range"));
	ras_http_request_release(&r);

	CU_ASSERT_EQUAL(ras_mesh_prep_track_local(s, a, now, "rasd-1-abc", &r), 0);
	one(&r);
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_TRUE(t.found);
	CU_ASSERT_STRING_EQUAL(t.message_id, id);
	CU_ASSERT_STRING_EQUAL(t.status, "accepted");
	ras_http_request_release(&r);
	CU_ASSERT_EQUAL(ras_mesh_prep_track_local(s, a, now, "rasd-never-sent", &r), 0);
	one(&r);
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_FALSE(t.found);
	ras_http_request_release(&r);

	CU_ASSERT_EQUAL(ras_mesh_prep_inbox(d, a, now, &r), 0);
	one(&r);
	CU_ASSERT_EQUAL(ras_mesh_inbox_result(a, &r, &ids, &n), 0);
	CU_ASSERT_EQUAL(n, 1);
	CU_ASSERT_STRING_EQUAL(ids[0], id);
	ras_http_request_release(&r);
	CU_ASSERT_EQUAL(ras_mesh_prep_download(d, a, now, id, 1, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 200);
	ras_mesh_meta(&r, &meta);
	CU_ASSERT_STRING_EQUAL(meta.message_type, "DATA");
	CU_ASSERT_STRING_EQUAL(meta.local_id, "rasd-1-abc");
	CU_ASSERT_STRING_EQUAL(r.body_out.data, "{\"a\":1}");
	ras_http_request_release(&r);
	CU_ASSERT_EQUAL(ras_mesh_prep_ack(d, a, now, id, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 200);
	ras_http_request_release(&r);
	CU_ASSERT_EQUAL(ras_mesh_prep_track(s, a, now, id, &r), 0);
	one(&r);
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_STRING_EQUAL(t.status, "acknowledged");
	ras_http_request_release(&r);
	CU_ASSERT_EQUAL(fake_mesh_auth_failures(fm), 0);
	ras_mesh_free(s);
	ras_mesh_free(d);
	ras_arena_free(a);
}

/* Gunzip a chunk as MESH would store it (Content-Encoding: gzip). */
static char *
gunzip_chunk(const char *in, size_t len, size_t *out_len)
{
	z_stream z;
	size_t cap = len * 8 + 4096;
	char *out = malloc(cap);

	memset(&z, 0, sizeof(z));
	CU_ASSERT_FATAL(inflateInit2(&z, 15 + 16) == Z_OK);
	z.next_in = (Bytef *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	z.next_out = (Bytef *)out;
	z.avail_out = (uInt)cap;
	CU_ASSERT_EQUAL(inflate(&z, Z_FINISH), Z_STREAM_END);
	CU_ASSERT_EQUAL(z.avail_in, 0);   /* one gzip member per chunk, nothing after it */
	*out_len = z.total_out;
	inflateEnd(&z);
	return out;
}

/* One chunked send of `len` bytes in chunks of 1024, as the outbox does it:
 * chunk 1 gives the id, chunks 2..n are answered 202 `null` (as the
 * sandbox answers them), each chunk gzipped on its own after splitting. */
static void
chunked_send(size_t len, size_t want_chunks)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh *s = client("X26ABC1", FAKE_MESH_SHARED_KEY, 1024);
	char *body = malloc(len), id[RAS_MESH_ID_MAX] = "";
	struct ras_http_request r;
	const struct fake_mesh_msg *msg;
	struct ras_mesh_tracking t;
	size_t before = fake_mesh_count(fm);
	int64_t now = ras_time_now();
	char local[64];

	snprintf(local, sizeof(local), "rasd-chunks-%zu", want_chunks);
	for (size_t i = 0; i < len; i++)
		body[i] = (char)('a' + (i * 7 + i / 13) % 26);
	CU_ASSERT_EQUAL_FATAL(ras_mesh_chunks(s, len), want_chunks);
	for (size_t k = 1; k <= want_chunks; k++) {
		struct ras_mesh_send snd = { .to = "X26ABC3", .workflow = "RASD_TEST", .local_id = local,
			.filename = "letter.json", .content_type = "application/fhir+json", .body = body,
			.len = len, .chunk = k, .message_id = k > 1 ? id : NULL };
		const struct fake_req *fr;
		char rid[RAS_MESH_ID_MAX], range[32];
		size_t plain_len, expect = k < want_chunks ? 1024 : len - (want_chunks - 1) * 1024;
		char *plain;

		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_send(s, a, now, &snd, &r), 0);
		CU_ASSERT_EQUAL(one(&r), 202);
		if (k == 1) {
			CU_ASSERT_EQUAL(ras_mesh_send_result(&r, rid, sizeof(rid)), 0);
			snprintf(id, sizeof(id), "%s", rid);
		} else {
			/* the sandbox's answer to a further chunk */
			CU_ASSERT_STRING_EQUAL(r.body_out.data, "null");
			CU_ASSERT_EQUAL(ras_mesh_chunk_result(&r), 0);
			/* the old reading of it: no id, so never "sent" */
			CU_ASSERT_NOT_EQUAL(ras_mesh_send_result(&r, rid, sizeof(rid)), 0);
		}
		fr = fake_http_req(fake_mesh_http(fm), fake_http_count(fake_mesh_http(fm)) - 1);
		snprintf(range, sizeof(range), "%zu:%zu", k, want_chunks);
		if (want_chunks > 1) {
			CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "mex-Chunk-Range"), range);
			CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "Content-Type"), "application/octet-stream");
		} else {
			CU_ASSERT_PTR_NULL(fake_req_header(fr, "mex-Chunk-Range"));
			CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "Content-Type"), "application/fhir+json");
		}
		CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "mex-Content-Type"), "application/fhir+json");
		CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "Content-Encoding"), "gzip");
		CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "mex-FileName"), "letter.json");
		/* split first, then each chunk gzipped on its own */
		plain = gunzip_chunk(fr->body, fr->body_len, &plain_len);
		CU_ASSERT_EQUAL(plain_len, expect);
		CU_ASSERT_EQUAL(memcmp(plain, body + (k - 1) * 1024, plain_len < expect ? plain_len : expect), 0);
		free(plain);
		ras_http_request_release(&r);
		if (k < want_chunks) {
			/* not complete: tracking says uploading, which is not delivered */
			CU_ASSERT_EQUAL(ras_mesh_prep_track(s, a, now, id, &r), 0);
			one(&r);
			CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
			CU_ASSERT_STRING_EQUAL(t.status, "uploading");
			CU_ASSERT_EQUAL(ras_mesh_track_state(&t), RAS_MESH_TRACK_INCOMPLETE);
			ras_http_request_release(&r);
		}
	}
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 1);
	msg = fake_mesh_msg(fm, before);
	CU_ASSERT_EQUAL(msg->len, len);
	CU_ASSERT_EQUAL(memcmp(msg->body, body, len), 0);
	CU_ASSERT_EQUAL(msg->chunks_got, want_chunks);
	CU_ASSERT_STRING_EQUAL(msg->filename, "letter.json");
	CU_ASSERT_EQUAL(ras_mesh_prep_track(s, a, now, id, &r), 0);
	one(&r);
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_STRING_EQUAL(t.status, "accepted");
	CU_ASSERT_EQUAL(ras_mesh_track_state(&t), RAS_MESH_TRACK_DELIVERED);
	ras_http_request_release(&r);
	/* a chunk after the last: 423, a refusal not worth retrying */
	if (want_chunks > 1) {
		struct ras_mesh_send snd = { .to = "X26ABC3", .workflow = "RASD_TEST", .body = body,
			.len = len, .chunk = want_chunks, .message_id = id };

		CU_ASSERT_EQUAL(ras_mesh_prep_send(s, a, now, &snd, &r), 0);
		CU_ASSERT_EQUAL(one(&r), 423);
		CU_ASSERT_EQUAL(ras_mesh_chunk_result(&r), RAS_EINVALID);
		CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "423"));
		ras_http_request_release(&r);
	}
	/* the recipient downloads every chunk and gets the payload back */
	{
		struct ras_mesh *d = client("X26ABC3", FAKE_MESH_SHARED_KEY, 1 << 20);
		struct ras_buf got = RAS_BUF_INIT(0);
		struct ras_mesh_meta meta;

		for (size_t c = 1; c <= want_chunks; c++) {
			CU_ASSERT_EQUAL(ras_mesh_prep_download(d, a, now, id, c, &r), 0);
			CU_ASSERT_EQUAL(one(&r), c < want_chunks ? 206 : 200);
			ras_mesh_meta(&r, &meta);
			CU_ASSERT_EQUAL(meta.chunk, c);
			CU_ASSERT_EQUAL(meta.nchunks, want_chunks);
			ras_buf_append(&got, r.body_out.data, r.body_out.len);
			ras_http_request_release(&r);
		}
		CU_ASSERT_EQUAL(got.len, len);
		CU_ASSERT_EQUAL(memcmp(got.data, body, len), 0);
		ras_buf_free(&got);
		CU_ASSERT_EQUAL(ras_mesh_prep_ack(d, a, now, id, &r), 0);
		CU_ASSERT_EQUAL(one(&r), 200);
		ras_http_request_release(&r);
		ras_mesh_free(d);
	}
	free(body);
	ras_mesh_free(s);
	ras_arena_free(a);
}

static void
chunked_sends_of_1_2_3_and_7_chunks(void)
{
	chunked_send(700, 1);
	chunked_send(2000, 2);
	chunked_send(2600, 3);
	chunked_send(6 * 1024 + 5, 7);
	CU_ASSERT_EQUAL(fake_mesh_auth_failures(fm), 0);
}

/* A response as the official sandbox gave it (the captured exchange). */
static json_t *
captured(json_t *all, const char *step, struct ras_http_request *r)
{
	json_t *e, *resp, *h, *v, *body;
	size_t i;
	const char *k;

	memset(r, 0, sizeof(*r));
	json_array_foreach(ras_json_arr(all, "exchanges"), i, e) {
		if (strcmp(ras_json_str(e, "step"), step) != 0)
			continue;
		resp = json_object_get(e, "response");
		r->status = (long)json_integer_value(json_object_get(resp, "status"));
		h = json_object_get(resp, "headers");
		json_object_foreach(h, k, v) {
			ras_buf_append(&r->headers_out, k, strlen(k));
			ras_buf_append(&r->headers_out, ": ", 2);
			ras_buf_append(&r->headers_out, json_string_value(v), strlen(json_string_value(v)));
			ras_buf_append(&r->headers_out, "\r\n", 2);
		}
		ras_buf_append(&r->headers_out, "", 0);
		body = json_object_get(resp, "body");
		if (json_is_string(body)) {
			ras_buf_append(&r->body_out, json_string_value(body), strlen(json_string_value(body)));
		} else {
			char *d = json_dumps(body, JSON_ENCODE_ANY);

			ras_buf_append(&r->body_out, d, strlen(d));
			free(d);
		}
		ras_buf_append(&r->body_out, "", 0);
		return e;
	}
	CU_FAIL_FATAL("step not in the capture");
	return NULL;
}

/* The parsers against the recorded answers of the official sandbox. */
static void
parsers_read_the_sandbox_capture(void)
{
	size_t len;
	char *data = ras_test_read(ras_test_fixture("mesh/sandbox-captured-exchange.json"), &len);
	char id[RAS_MESH_ID_MAX];
	struct ras_http_request r;
	struct ras_mesh_tracking t;
	struct ras_mesh_meta meta;
	json_t *all;

	CU_ASSERT_FATAL(ras_json_parse(data, len, 1 << 22, &all) == 0);
	captured(all, "send single-part message", &r);
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), 0);
	CU_ASSERT_STRING_EQUAL(id, "7FD04DE56E7F4D399D7D27746D5DCC79");
	ras_http_request_release(&r);
	captured(all, "send single-part message (v1 response shape)", &r);
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), 0);
	CU_ASSERT_STRING_EQUAL(id, "D66E746E7D274A94870835519BD00F45");
	ras_http_request_release(&r);
	/* chunk 2 of 2: 202 and `null` */
	captured(all, "send chunk 2 of 2", &r);
	CU_ASSERT_STRING_EQUAL(r.body_out.data, "null");
	CU_ASSERT_EQUAL(ras_mesh_chunk_result(&r), 0);
	ras_http_request_release(&r);
	captured(all, "resend chunk 2 after completion", &r);
	CU_ASSERT_EQUAL(ras_mesh_chunk_result(&r), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "An internal error occurred"));
	ras_http_request_release(&r);
	/* tracking, v2 and v1 shapes */
	captured(all, "track message (sender, v2)", &r);
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_TRUE(t.found);
	CU_ASSERT_STRING_EQUAL(t.message_id, "7FD04DE56E7F4D399D7D27746D5DCC79");
	CU_ASSERT_STRING_EQUAL(t.status, "accepted");
	CU_ASSERT_EQUAL(ras_mesh_track_state(&t), RAS_MESH_TRACK_DELIVERED);
	ras_http_request_release(&r);
	captured(all, "track after ack (v1 shape)", &r);
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_STRING_EQUAL(t.message_id, "7FD04DE56E7F4D399D7D27746D5DCC79");
	CU_ASSERT_STRING_EQUAL(t.status, "acknowledged");
	CU_ASSERT_EQUAL(ras_mesh_track_state(&t), RAS_MESH_TRACK_DELIVERED);
	ras_http_request_release(&r);
	/* refusals keep MESH's reason, 403 included */
	captured(all, "error: wrong shared key", &r);
	ras_mesh_error_reason(&r, id, sizeof(id));
	CU_ASSERT_STRING_EQUAL(id, "Invalid Authentication Token");
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), RAS_EIO);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "403: Invalid Authentication Token"));
	ras_http_request_release(&r);
	captured(all, "error: unknown recipient (v1)", &r);
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "12 Unregistered to address"));
	ras_http_request_release(&r);
	captured(all, "error: unsupported content-encoding", &r);
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), RAS_EINVALID);
	ras_http_request_release(&r);
	/* a REPORT: 1:0 chunk range, no body */
	captured(all, "download error REPORT (created via sandbox admin endpoint)", &r);
	ras_mesh_meta(&r, &meta);
	CU_ASSERT_STRING_EQUAL(meta.message_type, "REPORT");
	CU_ASSERT_STRING_EQUAL(meta.status_code, "14");
	CU_ASSERT_STRING_EQUAL(meta.status_success, "ERROR");
	CU_ASSERT_STRING_EQUAL(meta.linked_id, "7FD04DE56E7F4D399D7D27746D5DCC79");
	CU_ASSERT_STRING_EQUAL(meta.local_id, "local-0001");
	CU_ASSERT_EQUAL(meta.nchunks, 1);
	ras_http_request_release(&r);
	captured(all, "download chunk 1 (206 partial)", &r);
	ras_mesh_meta(&r, &meta);
	CU_ASSERT_EQUAL(meta.chunk, 1);
	CU_ASSERT_EQUAL(meta.nchunks, 2);
	ras_http_request_release(&r);
	json_decref(all);
	free(data);
}

/* A tracking answer listing an abandoned upload and the complete resend
 * (300, deprecated tracking by local id): the complete one is taken. */
static void
tracking_prefers_a_complete_send(void)
{
	struct ras_http_request r;
	struct ras_mesh_tracking t;
	const char *body = "[{\"messageId\": \"AAAA\", \"status\": \"Uploading\"}, "
	    "{\"messageId\": \"BBBB\", \"status\": \"Accepted\"}]";

	memset(&r, 0, sizeof(r));
	r.status = 300;
	ras_buf_append(&r.body_out, body, strlen(body));
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_STRING_EQUAL(t.message_id, "BBBB");
	CU_ASSERT_STRING_EQUAL(t.status, "accepted");
	ras_http_request_release(&r);
	body = "{\"messageId\": \"CCCC\", \"status\": \"Undeliverable\"}";
	r.status = 200;
	ras_buf_append(&r.body_out, body, strlen(body));
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	CU_ASSERT_EQUAL(ras_mesh_track_state(&t), RAS_MESH_TRACK_FAILED);
	ras_http_request_release(&r);
}

/* MESH endpoint lookup: one mailbox, none, several; and the sandbox's shapes. */
static void
endpoint_lookup(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh *s = client("X26ABC1", FAKE_MESH_SHARED_KEY, 1 << 20);
	struct ras_http_request r;
	char mb[RAS_MESH_ID_MAX];
	size_t len;
	char *data = ras_test_read(ras_test_fixture("mesh/sandbox-captured-exchange.json"), &len);
	json_t *all, *e;
	size_t i;

	fake_mesh_register(fm, "Y01234", "GPCONNECT_SEND_DOCUMENT", "X26ABC2");
	fake_mesh_register(fm, "Y05678", "GPCONNECT_SEND_DOCUMENT", "X26ABC2");
	fake_mesh_register(fm, "Y05678", "GPCONNECT_SEND_DOCUMENT", "X26ABC3");
	CU_ASSERT_EQUAL(ras_mesh_prep_lookup(s, a, ras_time_now(), "Y01234", "GPCONNECT_SEND_DOCUMENT", &r), 0);
	CU_ASSERT_EQUAL(one(&r), 200);
	CU_ASSERT_EQUAL(ras_mesh_lookup_result(&r, mb, sizeof(mb)), 0);
	CU_ASSERT_STRING_EQUAL(mb, "X26ABC2");
	CU_ASSERT_STRING_EQUAL(fake_http_req(fake_mesh_http(fm), fake_http_count(fake_mesh_http(fm)) - 1)->path,
	    "/messageexchange/endpointlookup/Y01234/GPCONNECT_SEND_DOCUMENT");
	ras_http_request_release(&r);
	CU_ASSERT_EQUAL(ras_mesh_prep_lookup(s, a, ras_time_now(), "Y09999", "GPCONNECT_SEND_DOCUMENT", &r), 0);
	one(&r);
	CU_ASSERT_EQUAL(ras_mesh_lookup_result(&r, mb, sizeof(mb)), RAS_ENOTFOUND);
	ras_http_request_release(&r);
	CU_ASSERT_EQUAL(ras_mesh_prep_lookup(s, a, ras_time_now(), "Y05678", "GPCONNECT_SEND_DOCUMENT", &r), 0);
	one(&r);
	CU_ASSERT_EQUAL(ras_mesh_lookup_result(&r, mb, sizeof(mb)), RAS_ECONFLICT);
	ras_http_request_release(&r);
	/* an ODS code that would change the path is refused */
	CU_ASSERT_EQUAL(ras_mesh_prep_lookup(s, a, ras_time_now(), "../X", "W", &r), RAS_EINVALID);
	/* the sandbox's own answers, v2 and v1 */
	CU_ASSERT_FATAL(ras_json_parse(data, len, 1 << 22, &all) == 0);
	json_array_foreach(ras_json_arr(all, "exchanges"), i, e) {
		const char *step = ras_json_str(e, "step");
		char *body;

		if (strncmp(step, "endpoint lookup", 15) != 0)
			continue;
		memset(&r, 0, sizeof(r));
		r.status = 200;
		body = json_dumps(json_object_get(json_object_get(e, "response"), "body"), 0);
		ras_buf_append(&r.body_out, body, strlen(body));
		free(body);
		CU_ASSERT_EQUAL(ras_mesh_lookup_result(&r, mb, sizeof(mb)), 0);
		CU_ASSERT_STRING_EQUAL(mb, "X26ABC2");
		ras_http_request_release(&r);
	}
	json_decref(all);
	free(data);
	ras_mesh_free(s);
	ras_arena_free(a);
}

static void
bad_tokens_are_refused(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh *s = client("X26ABC1", "WrongKey", 1 << 20);
	struct ras_http_request r, again;
	int before = fake_mesh_auth_failures(fm);
	int64_t now = ras_time_now();

	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(s, a, now, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 403);
	ras_http_request_release(&r);
	ras_mesh_free(s);
	/* a clock 3 hours out */
	s = client("X26ABC1", FAKE_MESH_SHARED_KEY, 1 << 20);
	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(s, a, now - 3 * 3600, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 403);
	ras_http_request_release(&r);
	/* a token used twice: the second use is refused */
	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(s, a, now, &r), 0);
	again = r;
	CU_ASSERT_EQUAL(one(&r), 200);
	ras_http_request_release(&r);
	memset(&again.body_out, 0, sizeof(again.body_out));
	memset(&again.headers_out, 0, sizeof(again.headers_out));
	CU_ASSERT_EQUAL(one(&again), 403);
	ras_http_request_release(&again);
	CU_ASSERT_EQUAL(fake_mesh_auth_failures(fm), before + 3);
	/* and a fresh request counts the nonce up: accepted */
	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(s, a, now, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 200);
	ras_http_request_release(&r);
	ras_mesh_free(s);
	ras_arena_free(a);
}

static void
refusals_are_classified(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh *s = client("X26ABC1", FAKE_MESH_SHARED_KEY, 1 << 20);
	struct ras_http_request r;
	struct ras_mesh_send snd = { .to = "NOSUCHMB", .workflow = "RASD_TEST", .body = "x", .len = 1,
		.chunk = 1 };
	char id[RAS_MESH_ID_MAX];

	CU_ASSERT_EQUAL(ras_mesh_prep_send(s, a, ras_time_now(), &snd, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 417);
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), RAS_EINVALID);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "Unregistered to address"));
	ras_http_request_release(&r);
	fake_mesh_fail_sends(fm, 1);
	snd.to = "X26ABC2";
	CU_ASSERT_EQUAL(ras_mesh_prep_send(s, a, ras_time_now(), &snd, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 503);
	CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), RAS_ETIMEDOUT);
	ras_http_request_release(&r);
	/* header values MESH would reject never leave rasd */
	snd.to = "https://evil.example";
	CU_ASSERT_EQUAL(ras_mesh_prep_send(s, a, ras_time_now(), &snd, &r), RAS_EINVALID);
	snd.to = "X26ABC2";
	snd.local_id = "bad\nid";
	CU_ASSERT_EQUAL(ras_mesh_prep_send(s, a, ras_time_now(), &snd, &r), RAS_EINVALID);
	ras_mesh_free(s);
	ras_arena_free(a);
}

static int
openssl(const char *const *args)
{
	char *argv[32];
	int n = 0, rc;
	char *out = NULL, *err = NULL;

	argv[n++] = "/usr/bin/openssl";
	for (; *args && n < 31; args++)
		argv[n++] = (char *)*args;
	argv[n] = NULL;
	rc = ras_test_spawn(argv, NULL, NULL, &out, &err);
	if (rc != 0)
		fprintf(stderr, "openssl failed: %s\n", err);
	free(out);
	free(err);
	return rc;
}

static char *
tmp_path(const char *name)
{
	char *p = malloc(4096);

	snprintf(p, 4096, "%s/%s", ras_test_tmpdir(), name);
	return p;
}

/* mTLS: a throw-away CA signs the fake's server certificate (IP SAN
 * 127.0.0.1) and rasd's client certificate; the fake checks the client's. */
static void
mutual_tls(void)
{
	char *ca = tmp_path("ca.pem"), *cakey = tmp_path("ca.key"), *srv = tmp_path("server.pem");
	char *srvkey = tmp_path("server.key"), *srvcsr = tmp_path("server.csr"), *cli = tmp_path("client.pem");
	char *clikey = tmp_path("client.key"), *clicsr = tmp_path("client.csr"), *ext = tmp_path("san.ext");
	char *rogue = tmp_path("rogue.pem"), *roguekey = tmp_path("rogue.key");
	struct fake_tls tls;
	struct fake_mesh *tm;
	struct ras_http *h;
	struct ras_http_request r;
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh *m;
	struct ras_mesh_opts mo = { .mailbox = "X26ABC1", .password = "password",
		.shared_key = FAKE_MESH_SHARED_KEY };
	struct ras_http_opts ho = { 0 };
	char *ca_pem, *srv_pem, *srv_key;
	FILE *f = fopen(ext, "w");

	fputs("subjectAltName=IP:127.0.0.1\n", f);
	fclose(f);
	CU_ASSERT_FATAL(openssl((const char *[]){ "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
	    cakey, "-out", ca, "-days", "2", "-subj", "/CN=rasd test CA", NULL }) == 0);
	CU_ASSERT_FATAL(openssl((const char *[]){ "req", "-newkey", "rsa:2048", "-nodes", "-keyout", srvkey,
	    "-out", srvcsr, "-subj", "/CN=127.0.0.1", NULL }) == 0);
	CU_ASSERT_FATAL(openssl((const char *[]){ "x509", "-req", "-in", srvcsr, "-CA", ca, "-CAkey", cakey,
	    "-CAcreateserial", "-out", srv, "-days", "2", "-extfile", ext, NULL }) == 0);
	CU_ASSERT_FATAL(openssl((const char *[]){ "req", "-newkey", "rsa:2048", "-nodes", "-keyout", clikey,
	    "-out", clicsr, "-subj", "/CN=X26ABC1.X26.api.mesh-client.nhs.uk", NULL }) == 0);
	CU_ASSERT_FATAL(openssl((const char *[]){ "x509", "-req", "-in", clicsr, "-CA", ca, "-CAkey", cakey,
	    "-CAcreateserial", "-out", cli, "-days", "2", NULL }) == 0);
	CU_ASSERT_FATAL(openssl((const char *[]){ "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
	    roguekey, "-out", rogue, "-days", "2", "-subj", "/CN=rogue", NULL }) == 0);
	ca_pem = ras_test_read(ca, NULL);
	srv_pem = ras_test_read(srv, NULL);
	srv_key = ras_test_read(srvkey, NULL);
	tls = (struct fake_tls){ .cert_pem = srv_pem, .key_pem = srv_key, .client_ca_pem = ca_pem };
	tm = fake_mesh_start_tls(NULL, &tls);
	mo.url = fake_mesh_url(tm);
	CU_ASSERT_FATAL(ras_mesh_new(&mo, &m) == 0);

	/* with the client certificate: the handshake goes through */
	ho.ca_file = ca;
	ho.client_cert = cli;
	ho.client_key = clikey;
	CU_ASSERT_FATAL(ras_http_new(&ho, &h) == 0);
	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(m, a, ras_time_now(), &r), 0);
	CU_ASSERT_EQUAL(ras_http_perform(h, &r, 1), 0);
	CU_ASSERT_EQUAL(r.err, 0);
	CU_ASSERT_EQUAL(r.status, 200);
	CU_ASSERT_TRUE(fake_http_req(fake_mesh_http(tm), 0)->client_cert_verified);
	ras_http_request_release(&r);

	/* the TLS fault: the server's handshake fails; never sent, RAS_EIO
	 * (safe to retry), and the next connection is fine */
	{
		struct fake_fault ft = { .kind = FAKE_FAULT_TLS };
		size_t before = fake_http_count(fake_mesh_http(tm));

		fake_http_fault(fake_mesh_http(tm), &ft);
		CU_ASSERT_EQUAL(ras_mesh_prep_handshake(m, a, ras_time_now(), &r), 0);
		r.no_replay = true;   /* a new connection, as a first chunk has */
		CU_ASSERT_EQUAL(ras_http_perform(h, &r, 1), 0);
		CU_ASSERT_EQUAL(r.err, RAS_EIO);
		CU_ASSERT_EQUAL(r.status, 0);
		CU_ASSERT_EQUAL(fake_http_faulted(fake_mesh_http(tm)), 1);
		CU_ASSERT_EQUAL(fake_http_count(fake_mesh_http(tm)), before);
		ras_http_request_release(&r);
		CU_ASSERT_EQUAL(ras_mesh_prep_handshake(m, a, ras_time_now(), &r), 0);
		CU_ASSERT_EQUAL(ras_http_perform(h, &r, 1), 0);
		CU_ASSERT_EQUAL(r.status, 200);
		ras_http_request_release(&r);
	}
	ras_http_free(h);

	/* without one: refused */
	ho.client_cert = ho.client_key = NULL;
	CU_ASSERT_FATAL(ras_http_new(&ho, &h) == 0);
	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(m, a, ras_time_now(), &r), 0);
	CU_ASSERT_EQUAL(ras_http_perform(h, &r, 1), 0);
	CU_ASSERT_EQUAL(r.status, 403);
	ras_http_request_release(&r);
	ras_http_free(h);

	/* a server the configured CA did not sign: never reached, and refused as
	 * a configuration problem (RAS_EINVALID), not retried as a transient one */
	ho.ca_file = rogue;
	ho.client_cert = cli;
	ho.client_key = clikey;
	CU_ASSERT_FATAL(ras_http_new(&ho, &h) == 0);
	CU_ASSERT_EQUAL(ras_mesh_prep_handshake(m, a, ras_time_now(), &r), 0);
	CU_ASSERT_EQUAL(ras_http_perform(h, &r, 1), 0);
	CU_ASSERT_EQUAL(r.err, RAS_EINVALID);
	CU_ASSERT_EQUAL(r.status, 0);
	ras_http_request_release(&r);
	ras_http_free(h);

	ras_mesh_free(m);
	fake_mesh_stop(tm);
	ras_arena_free(a);
	free(ca_pem);
	free(srv_pem);
	free(srv_key);
	free(ca); free(cakey); free(srv); free(srvkey); free(srvcsr); free(cli); free(clikey);
	free(clicsr); free(ext); free(rogue); free(roguekey);
}

/*
 * The MESH client against each fault of the fakes' fault layer: a send
 * (the first chunk, never replayed) and an inbox read.  Each gets a clear
 * error; a send whose answer was lost is unknown (RAS_ETIMEDOUT: the
 * outbox finds it by tracking before any resend) and reached MESH once;
 * with the fault gone, the same read and a new send go through.
 */
static void
every_fault(void)
{
	static const struct {
		const char *name;
		enum fake_fault_kind kind;
		int ms;
		size_t bytes;
		int want;
	} faults[] = {
		{ "drop", FAKE_FAULT_DROP, 0, 0, RAS_ETIMEDOUT },
		{ "delay past the timeout", FAKE_FAULT_DELAY, 2500, 0, RAS_ETIMEDOUT },
		{ "truncated body", FAKE_FAULT_TRUNCATE, 0, 0, RAS_ETIMEDOUT },
		{ "oversize body", FAKE_FAULT_OVERSIZE, 0, RAS_HTTP_BODY_MAX + 1024, RAS_ETOOBIG },
		{ "endless header", FAKE_FAULT_ENDLESS_HEADER, 0, 0, RAS_ETOOBIG },
		{ "slow drip", FAKE_FAULT_SLOW_DRIP, 400, 0, RAS_ETIMEDOUT },
	};
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh_opts o = { .url = fake_mesh_url(fm), .mailbox = "X26ABC1", .password = "password",
		.shared_key = FAKE_MESH_SHARED_KEY, .chunk_size = 1 << 20, .timeout_ms = 1000 };
	struct fake_http *h = fake_mesh_http(fm);
	struct ras_mesh *m;
	struct ras_http_request r;
	char id[RAS_MESH_ID_MAX], local[32];

	CU_ASSERT_FATAL(ras_mesh_new(&o, &m) == 0);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		struct fake_fault ft = { .kind = faults[i].kind, .path_has = "/outbox", .ms = faults[i].ms,
			.bytes = faults[i].bytes, .times = -1 };
		struct ras_mesh_send snd = { .to = "X26ABC2", .workflow = "RASD_TEST", .local_id = local,
			.subject = "triage-outcome", .content_type = "application/fhir+json", .body = "{\"a\":1}",
			.len = 7, .chunk = 1 };
		size_t sent = fake_mesh_count(fm);
		int err;

		/* a send */
		snprintf(local, sizeof(local), "rasd-fault-%zu", i);
		fake_http_faults_clear(h);
		fake_http_fault(h, &ft);
		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_send(m, a, ras_time_now(), &snd, &r), 0);
		one(&r);
		err = ras_mesh_send_result(&r, id, sizeof(id));
		if (err != faults[i].want)
			fprintf(stderr, "MESH send, %s: %d %s\n", faults[i].name, err, ras_error_last());
		CU_ASSERT_EQUAL(err, faults[i].want);
		CU_ASSERT(*ras_error_last() != '\0');
		/* at most once: the first chunk is never replayed */
		CU_ASSERT(fake_mesh_count(fm) <= sent + 1);
		ras_http_request_release(&r);

		/* an inbox read */
		ft.path_has = "/inbox";
		fake_http_faults_clear(h);
		fake_http_fault(h, &ft);
		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_inbox(m, a, ras_time_now(), &r), 0);
		one(&r);
		CU_ASSERT_EQUAL(r.err, faults[i].want);
		CU_ASSERT(r.errmsg[0] != '\0');
		ras_http_request_release(&r);

		/* the fault gone: the read answers, a new send is accepted */
		fake_http_faults_clear(h);
		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_inbox(m, a, ras_time_now(), &r), 0);
		CU_ASSERT_EQUAL(one(&r), 200);
		ras_http_request_release(&r);
		snprintf(local, sizeof(local), "rasd-fault-%zu-again", i);
		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_send(m, a, ras_time_now(), &snd, &r), 0);
		CU_ASSERT_EQUAL(one(&r), 202);
		CU_ASSERT_EQUAL(ras_mesh_send_result(&r, id, sizeof(id)), 0);
		ras_http_request_release(&r);
	}
	ras_mesh_free(m);
	ras_arena_free(a);
}

static int
setup(void)
{
	struct ras_http_opts o = { .allow_http_loopback = true };

	fm = fake_mesh_start(NULL);
	return ras_http_new(&o, &http) == 0 ? 0 : 1;
}

static int
teardown(void)
{
	ras_http_free(http);
	fake_mesh_stop(fm);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "NHSMESH header matches the reference test vectors", auth_header_matches_test_vectors },
		{ "timestamp is UTC to the minute", timestamp_is_utc_minutes },
		{ "handshake, send, track, inbox, download, acknowledge", handshake_send_track_download_ack },
		{ "chunked sends of 1, 2, 3 and 7 chunks", chunked_sends_of_1_2_3_and_7_chunks },
		{ "parsers read the sandbox capture", parsers_read_the_sandbox_capture },
		{ "tracking prefers a complete send", tracking_prefers_a_complete_send },
		{ "endpoint lookup: one mailbox, none, several", endpoint_lookup },
		{ "bad key, clock skew and replayed tokens are refused", bad_tokens_are_refused },
		{ "refusals are classified", refusals_are_classified },
		{ "mutual TLS: client certificate presented and checked", mutual_tls },
		{ "every fault of the fault layer", every_fault },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "mesh", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
