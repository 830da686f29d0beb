/* MESH client: the NHSMESH header against the reference test vectors, and
 * every call against the loopback fake (which checks each token). */
#include <stdlib.h>
#include <string.h>

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

static void
chunked_send_reassembles(void)
{
	struct ras_arena *a = ras_arena_new();
	struct ras_mesh *s = client("X26ABC1", FAKE_MESH_SHARED_KEY, 1024);
	char *body = malloc(2600), id[RAS_MESH_ID_MAX] = "";
	struct ras_http_request r;
	const struct fake_mesh_msg *msg;
	size_t before = fake_mesh_count(fm);
	int64_t now = ras_time_now();

	for (int i = 0; i < 2600; i++)
		body[i] = (char)('a' + i % 26);
	CU_ASSERT_EQUAL(ras_mesh_chunks(s, 2600), 3);
	for (size_t k = 1; k <= 3; k++) {
		struct ras_mesh_send snd = { .to = "X26ABC3", .workflow = "RASD_TEST", .local_id = "rasd-2-x",
			.content_type = "application/fhir+json", .body = body, .len = 2600, .chunk = k,
			.message_id = k > 1 ? id : NULL };
		const struct fake_req *fr;
		char rid[RAS_MESH_ID_MAX];

		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_send(s, a, now, &snd, &r), 0);
		CU_ASSERT_EQUAL(one(&r), 202);
		CU_ASSERT_EQUAL(ras_mesh_send_result(&r, rid, sizeof(rid)), 0);
		if (k == 1)
			snprintf(id, sizeof(id), "%s", rid);
		fr = fake_http_req(fake_mesh_http(fm), fake_http_count(fake_mesh_http(fm)) - 1);
		CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "mex-Chunk-Range"),
		    k == 1 ? "1:3" : k == 2 ? "2:3" : "3:3");
		CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "Content-Type"), "application/octet-stream");
		CU_ASSERT_STRING_EQUAL(fake_req_header(fr, "mex-Content-Type"), "application/fhir+json");
		CU_ASSERT_EQUAL(fr->body_len, k < 3 ? 1024 : 552);
		ras_http_request_release(&r);
	}
	CU_ASSERT_EQUAL(fake_mesh_count(fm), before + 1);
	msg = fake_mesh_msg(fm, before);
	CU_ASSERT_EQUAL(msg->len, 2600);
	CU_ASSERT_EQUAL(memcmp(msg->body, body, 2600), 0);
	CU_ASSERT_EQUAL(msg->chunks_got, 3);
	/* a chunk after the last: 423, a refusal not worth retrying */
	{
		struct ras_mesh_send snd = { .to = "X26ABC3", .workflow = "RASD_TEST", .body = body,
			.len = 2600, .chunk = 3, .message_id = id };
		char rid[RAS_MESH_ID_MAX];

		CU_ASSERT_EQUAL(ras_mesh_prep_send(s, a, now, &snd, &r), 0);
		CU_ASSERT_EQUAL(one(&r), 423);
		CU_ASSERT_EQUAL(ras_mesh_send_result(&r, rid, sizeof(rid)), RAS_EINVALID);
		ras_http_request_release(&r);
	}
	free(body);
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
		{ "chunked send reassembles", chunked_send_reassembles },
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
