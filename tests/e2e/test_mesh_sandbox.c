/*
 * rasd's MESH client against NHS England's own mesh-sandbox, with the
 * official mesh-client (Python) as the receiving mailbox.  Not run in CI
 * (neither is part of the project): it skips (exit 77) unless
 *
 *   RAS_MESH_SANDBOX_URL   the sandbox's base URL (shared key TestKey,
 *                          AUTH_MODE=full, mailboxes X26ABC1..3 "password"),
 *                          e.g. from ../shared/tools/sandboxes/mesh-sandbox.sh
 *   RAS_MESH_CLIENT_SRC    a checkout of NHSDigital/mesh-client (its
 *                          mesh_client package is imported from there;
 *                          Debian's python3-requests)
 *
 * are set.  docs/design/mesh.md says how to run it and what the sandbox
 * answered.  rasd (X26ABC1) sends a letter in one chunk and the same letter
 * in three (each chunk gzipped, answers to chunks 2 and 3 are `null`),
 * tracks it (uploading while chunks are missing, then accepted), resends
 * the last chunk (423); mesh-client (X26ABC2) lists, downloads (joining
 * and gunzipping the chunks) and acknowledges both, and the bytes must be
 * the letter's; rasd then tracks them as acknowledged.  Last, an error
 * REPORT injected through the sandbox's admin endpoint is downloaded and
 * read by rasd.  Then an ITK3 message (the golden GP Connect Send Document)
 * goes in 3 chunks, mesh-client receives it and answers as a GP system
 * would (an ITK3 response, 20013, on GPCONNECT_SEND_DOCUMENT_ACK), and rasd
 * reads that response.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "ras/arena.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/itk3.h"
#include "ras/json.h"
#include "ras/mesh.h"
#include "ras/time.h"
#include "ras_config.h"

static const char *url, *client_src;
static struct ras_http *http;

/* mesh-client as a GP practice system: each ITK3 message it received is
 * answered on <workflow>_ACK with an ITK3 response (20013), built here
 * from the request's MessageHeader id and SenderReference. */
static const char PY_GP_ACK[] =
	"import sys, re, uuid, warnings\n"
	"warnings.simplefilter('ignore')\n"
	"sys.path.insert(0, sys.argv[1])\n"
	"from mesh_client import MeshClient\n"
	"c = MeshClient(sys.argv[2], 'X26ABC2', 'password', shared_key=b'TestKey', verify=False,\n"
	"               application_name='rasd-sandbox-check')\n"
	"req = open(sys.argv[3]).read()\n"
	"hdr = re.search(r'<MessageHeader>\\s*<id value=\"([^\"]+)\"', req).group(1)\n"
	"ref = re.search(r'<extension url=\"SenderReference\">\\s*<valueString value=\"([^\"]+)\"', req).group(1)\n"
	"u = lambda: str(uuid.uuid4())\n"
	"oo = u()\n"
	"resp = ('<Bundle xmlns=\"http://hl7.org/fhir\"><id value=\"%s\"/><type value=\"message\"/>'\n"
	"  '<entry><fullUrl value=\"urn:uuid:%s\"/><resource><MessageHeader><id value=\"%s\"/>'\n"
	"  '<extension url=\"https://fhir.nhs.uk/STU3/StructureDefinition/Extension-ITK-MessageHandling-2\">'\n"
	"  '<extension url=\"SenderReference\"><valueString value=\"%s\"/></extension></extension>'\n"
	"  '<event><system value=\"https://fhir.nhs.uk/STU3/CodeSystem/ITK-MessageEvent-2\"/><code value=\"ITK008M\"/></event>'\n"
	"  '<source><endpoint value=\"X26ABC2\"/></source><response><identifier value=\"%s\"/><code value=\"ok\"/>'\n"
	"  '</response></MessageHeader></resource></entry><entry><fullUrl value=\"urn:uuid:%s\"/><resource>'\n"
	"  '<OperationOutcome><id value=\"%s\"/><issue><severity value=\"information\"/><code value=\"informational\"/>'\n"
	"  '<details><coding><system value=\"https://fhir.nhs.uk/STU3/CodeSystem/ITK-ResponseCodes-1\"/>'\n"
	"  '<code value=\"20013\"/></coding></details></issue></OperationOutcome></resource></entry></Bundle>'\n"
	"  ) % (u(), hdr, hdr, ref, hdr, oo, oo)\n"
	"hdr_ = hdr\n"
	"mid = c.send_message('X26ABC1', resp.encode(), workflow_id='GPCONNECT_SEND_DOCUMENT_ACK',\n"
	"                     content_type='application/fhir+xml')\n"
	"print(mid)\n";

static const char PY_RECEIVE[] =
	"import json, sys, warnings\n"
	"warnings.simplefilter('ignore')\n"
	"sys.path.insert(0, sys.argv[1])\n"
	"from mesh_client import MeshClient\n"
	"c = MeshClient(sys.argv[2], 'X26ABC2', 'password', shared_key=b'TestKey', verify=False,\n"
	"               application_name='rasd-sandbox-check')\n"
	"c.handshake()\n"
	"out = []\n"
	"for mid in c.list_messages():\n"
	"    m = c.retrieve_message(mid)\n"
	"    body = m.read()\n"
	"    open(sys.argv[3] + '/' + mid + '.bin', 'wb').write(body)\n"
	"    out.append({'id': mid, 'bytes': len(body), 'headers': dict(m.mex_headers())})\n"
	"    m.acknowledge()\n"
	"print(json.dumps(out, default=str))\n";

static struct ras_mesh *
client(const char *mailbox, size_t chunk)
{
	struct ras_mesh_opts o = { .url = url, .mailbox = mailbox, .password = "password",
		.shared_key = "TestKey", .chunk_size = chunk };
	struct ras_mesh *m;

	CU_ASSERT_FATAL(ras_mesh_new(&o, &m) == 0);
	return m;
}

static long
one(struct ras_http_request *r)
{
	CU_ASSERT_FATAL(ras_http_perform(http, r, 1) == 0);
	if (r->err)
		fprintf(stderr, "transfer failed: %s\n", r->errmsg);
	return r->status;
}

static void
track(struct ras_mesh *s, struct ras_arena *a, const char *id, const char *want)
{
	struct ras_http_request r;
	struct ras_mesh_tracking t;

	CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_track(s, a, ras_time_now(), id, &r), 0);
	CU_ASSERT_EQUAL(one(&r), 200);
	CU_ASSERT_EQUAL(ras_mesh_track_result(&r, &t), 0);
	printf("  tracking %s: %s\n", id, t.status);
	CU_ASSERT_STRING_EQUAL(t.status, want);
	ras_http_request_release(&r);
}

/* Send `body` in as many chunks as the client's chunk size makes. */
static void
send_letter(struct ras_mesh *s, struct ras_arena *a, const char *body, size_t len, const char *local,
    char *id, size_t idsize)
{
	size_t n = ras_mesh_chunks(s, len);

	for (size_t k = 1; k <= n; k++) {
		struct ras_mesh_send snd = { .to = "X26ABC2", .workflow = "GPCONNECT_SEND_DOCUMENT",
			.local_id = local, .subject = "rasd sandbox check", .filename = "letter.json",
			.content_type = "application/fhir+json", .body = body, .len = len, .chunk = k,
			.message_id = k > 1 ? id : NULL };
		struct ras_http_request r;
		long st;

		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_send(s, a, ras_time_now(), &snd, &r), 0);
		st = one(&r);
		printf("  chunk %zu/%zu: %ld %s\n", k, n, st, r.body_out.data ? r.body_out.data : "");
		CU_ASSERT_EQUAL(st, 202);
		if (k == 1) {
			CU_ASSERT_EQUAL_FATAL(ras_mesh_send_result(&r, id, idsize), 0);
		} else {
			CU_ASSERT_EQUAL(ras_mesh_chunk_result(&r), 0);
		}
		ras_http_request_release(&r);
		if (k < n)
			track(s, a, id, "uploading");
	}
	track(s, a, id, "accepted");
}

static void
rasd_sends_mesh_client_receives(void)
{
	struct ras_arena *a = ras_arena_new();
	size_t len;
	char *letter = ras_test_read(RAS_SOURCE_ROOT "/tests/golden/documents/"
	    "bassetlaw-2022-discharge-summary.json", &len);
	struct ras_mesh *one_chunk = client("X26ABC1", 1 << 20);
	struct ras_mesh *three = client("X26ABC1", len / 3 + 1);
	char id1[RAS_MESH_ID_MAX], id3[RAS_MESH_ID_MAX], dir[4096], py_out[4096];
	struct ras_http_request r;
	char *out = NULL, *err = NULL;
	json_t *got;
	size_t i;
	json_t *x;
	int seen = 0;

	CU_ASSERT_EQUAL_FATAL(ras_mesh_chunks(three, len), 3);
	printf("\nhandshake X26ABC1\n");
	CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_handshake(one_chunk, a, ras_time_now(), &r), 0);
	CU_ASSERT_EQUAL(one(&r), 200);
	ras_http_request_release(&r);
	printf("send a %zu-byte letter in 1 chunk\n", len);
	send_letter(one_chunk, a, letter, len, "rasd-sbx-1", id1, sizeof(id1));
	printf("send it in 3 chunks\n");
	send_letter(three, a, letter, len, "rasd-sbx-3", id3, sizeof(id3));
	/* the last chunk again: 423, which rasd reads as "already complete" */
	{
		struct ras_mesh_send snd = { .to = "X26ABC2", .workflow = "GPCONNECT_SEND_DOCUMENT",
			.body = letter, .len = len, .chunk = 3, .message_id = id3 };

		CU_ASSERT_EQUAL(ras_mesh_prep_send(three, a, ras_time_now(), &snd, &r), 0);
		CU_ASSERT_EQUAL(one(&r), 423);
		CU_ASSERT_EQUAL(ras_mesh_chunk_result(&r), RAS_EINVALID);
		printf("  chunk 3 again: %s\n", ras_error_last());
		ras_http_request_release(&r);
	}

	/* the official client receives */
	snprintf(dir, sizeof(dir), "%s", ras_test_tmpdir());
	{
		char *argv[] = { "/usr/bin/python3", "-c", (char *)PY_RECEIVE, (char *)client_src, (char *)url, dir,
			NULL };
		int rc = ras_test_spawn(argv, NULL, NULL, &out, &err);

		printf("mesh-client (X26ABC2): exit %d\n%s%s\n", rc, out ? out : "", err ? err : "");
		CU_ASSERT_EQUAL_FATAL(rc, 0);
	}
	CU_ASSERT_FATAL(ras_json_parse(out, strlen(out), 1 << 20, &got) == 0);
	json_array_foreach(got, i, x) {
		const char *mid = ras_json_str(x, "id");
		json_t *h = json_object_get(x, "headers");
		char *body;
		size_t blen;

		if (strcmp(mid, id1) && strcmp(mid, id3))
			continue;
		seen++;
		ras_test_fmt(py_out, sizeof(py_out), "%s/%s.bin", dir, mid);
		body = ras_test_read(py_out, &blen);
		CU_ASSERT_EQUAL(blen, len);
		CU_ASSERT_EQUAL(memcmp(body, letter, len < blen ? len : blen), 0);
		CU_ASSERT_STRING_EQUAL(ras_json_str(h, "workflowid"), "GPCONNECT_SEND_DOCUMENT");
		CU_ASSERT_STRING_EQUAL(ras_json_str(h, "filename"), "letter.json");
		CU_ASSERT_STRING_EQUAL(ras_json_str(h, "localid"), strcmp(mid, id1) ? "rasd-sbx-3" : "rasd-sbx-1");
		free(body);
	}
	CU_ASSERT_EQUAL(seen, 2);
	json_decref(got);
	track(one_chunk, a, id1, "acknowledged");
	track(three, a, id3, "acknowledged");

	/* an error REPORT about the first letter, read by rasd from its inbox */
	{
		struct ras_http_request rep, lr, dl;
		const char **ids;
		size_t n;
		struct ras_mesh_meta meta;
		char *rb = NULL;
		bool found = false;

		ras_http_request_init(&rep, "POST", ras_arena_printf(a, "%s/messageexchange/admin/report", url));
		rb = ras_arena_printf(a, "{\"mailbox_id\": \"X26ABC1\", \"code\": \"14\", \"description\": "
		    "\"Message not collected by recipient after 5 days\", \"workflow_id\": "
		    "\"GPCONNECT_SEND_DOCUMENT\", \"status\": \"error\", \"linked_message_id\": \"%s\", "
		    "\"local_id\": \"rasd-sbx-1\", \"subject\": \"rasd\", \"file_name\": \"x\"}", id1);
		rep.body = rb;
		rep.body_len = strlen(rb);
		ras_http_request_header(&rep, "Content-Type", "application/json");
		printf("inject a REPORT: %ld %s\n", one(&rep), rep.body_out.data ? rep.body_out.data : "");
		ras_http_request_release(&rep);
		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_inbox(one_chunk, a, ras_time_now(), &lr), 0);
		CU_ASSERT_EQUAL(one(&lr), 200);
		CU_ASSERT_EQUAL_FATAL(ras_mesh_inbox_result(a, &lr, &ids, &n), 0);
		for (size_t k = 0; k < n; k++) {
			CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_download(one_chunk, a, ras_time_now(), ids[k], 1, &dl), 0);
			one(&dl);
			ras_mesh_meta(&dl, &meta);
			printf("  inbox %s: %s %s %s %s (linked %s)\n", ids[k], meta.message_type,
			    meta.status_code, meta.status_success, meta.status_description, meta.linked_id);
			if (strcmp(meta.message_type, "REPORT") == 0 && strcmp(meta.linked_id, id1) == 0) {
				found = true;
				CU_ASSERT_STRING_EQUAL(meta.status_code, "14");
				CU_ASSERT_STRING_EQUAL(meta.status_success, "ERROR");
			}
			ras_http_request_release(&dl);
			CU_ASSERT_EQUAL(ras_mesh_prep_ack(one_chunk, a, ras_time_now(), ids[k], &dl), 0);
			CU_ASSERT_EQUAL(one(&dl), 200);
			ras_http_request_release(&dl);
		}
		CU_ASSERT_TRUE(found);
		ras_http_request_release(&lr);
	}
	free(out);
	free(err);
	out = err = NULL;

	/* An ITK3 letter (GP Connect Send Document, the golden message) in 3
	 * chunks; mesh-client receives it and answers as the GP system (20013);
	 * rasd downloads the answer and reads it as an ITK3 response. */
	{
		size_t xlen;
		char *xml = ras_test_read(RAS_SOURCE_ROOT "/tests/golden/itk3/"
		    "midnotts-discharge-summary-send-document-gpprovider.xml", &xlen);
		struct ras_mesh *x3 = client("X26ABC1", xlen / 3 + 1);
		char idx[RAS_MESH_ID_MAX], path[4200];
		struct ras_http_request lr, dl;
		const char **ids;
		size_t n;
		bool ack_seen = false;

		printf("send an ITK3 message (%zu bytes) in 3 chunks\n", xlen);
		for (size_t k = 1; k <= 3; k++) {
			struct ras_mesh_send snd = { .to = "X26ABC2", .workflow = "GPCONNECT_SEND_DOCUMENT",
				.local_id = "RASMN", .subject = "Discharge summary", .filename = "rasd-itk3.xml",
				.content_type = "application/fhir+xml", .body = xml, .len = xlen, .chunk = k,
				.message_id = k > 1 ? idx : NULL };

			CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_send(x3, a, ras_time_now(), &snd, &r), 0);
			CU_ASSERT_EQUAL(one(&r), 202);
			if (k == 1) {
				CU_ASSERT_EQUAL_FATAL(ras_mesh_send_result(&r, idx, sizeof(idx)), 0);
			} else {
				CU_ASSERT_EQUAL(ras_mesh_chunk_result(&r), 0);
			}
			ras_http_request_release(&r);
		}
		track(x3, a, idx, "accepted");
		{
			char *argv[] = { "/usr/bin/python3", "-c", (char *)PY_RECEIVE, (char *)client_src, (char *)url,
				dir, NULL };

			CU_ASSERT_EQUAL_FATAL(ras_test_spawn(argv, NULL, NULL, &out, &err), 0);
			free(out);
			free(err);
		}
		ras_test_fmt(path, sizeof(path), "%s/%s.bin", dir, idx);
		{
			size_t blen;
			char *body = ras_test_read(path, &blen);

			CU_ASSERT_EQUAL(blen, xlen);
			CU_ASSERT_EQUAL(memcmp(body, xml, xlen < blen ? xlen : blen), 0);
			free(body);
		}
		{
			char *argv[] = { "/usr/bin/python3", "-c", (char *)PY_GP_ACK, (char *)client_src, (char *)url,
				path, NULL };
			int rc = ras_test_spawn(argv, NULL, NULL, &out, &err);

			printf("mesh-client (X26ABC2) answers as the GP system on GPCONNECT_SEND_DOCUMENT_ACK: exit %d "
			    "%s%s", rc, out ? out : "", err ? err : "");
			CU_ASSERT_EQUAL_FATAL(rc, 0);
		}
		CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_inbox(one_chunk, a, ras_time_now(), &lr), 0);
		CU_ASSERT_EQUAL(one(&lr), 200);
		CU_ASSERT_EQUAL_FATAL(ras_mesh_inbox_result(a, &lr, &ids, &n), 0);
		for (size_t k = 0; k < n; k++) {
			struct ras_mesh_meta meta;
			struct ras_itk3_response resp;

			CU_ASSERT_EQUAL_FATAL(ras_mesh_prep_download(one_chunk, a, ras_time_now(), ids[k], 1, &dl), 0);
			one(&dl);
			ras_mesh_meta(&dl, &meta);
			if (strcmp(meta.workflow, "GPCONNECT_SEND_DOCUMENT_ACK") == 0) {
				char hid[37];

				CU_ASSERT_EQUAL(ras_itk3_parse_response(a, dl.body_out.data, dl.body_out.len, &resp), 0);
				ras_itk3_header_id(hid, "5b7a4c2e-1f0d-5c8e-9a3b-2d4e6f8a0b1c");
				CU_ASSERT_STRING_EQUAL(resp.request_id, hid);
				CU_ASSERT_STRING_EQUAL(resp.sender_reference, "rasd-42-triage-outcome-2");
				CU_ASSERT_STRING_EQUAL(resp.itk_code, "20013");
				CU_ASSERT_TRUE(resp.success);
				printf("  rasd read the ITK3 response: %s %s for MessageHeader %s, SenderReference %s\n",
				    resp.itk_code, resp.itk_display, resp.request_id, resp.sender_reference);
				ack_seen = true;
			}
			ras_http_request_release(&dl);
			CU_ASSERT_EQUAL(ras_mesh_prep_ack(one_chunk, a, ras_time_now(), ids[k], &dl), 0);
			one(&dl);
			ras_http_request_release(&dl);
		}
		CU_ASSERT_TRUE(ack_seen);
		ras_http_request_release(&lr);
		ras_mesh_free(x3);
		free(xml);
	}
	free(out);
	free(err);
	free(letter);
	ras_mesh_free(one_chunk);
	ras_mesh_free(three);
	ras_arena_free(a);
}

static int
setup(void)
{
	struct ras_http_opts o = { .allow_http_loopback = true };

	return ras_http_new(&o, &http) == 0 ? 0 : 1;
}

static int
teardown(void)
{
	ras_http_free(http);
	return 0;
}

int
main(void)
{
	static const struct ras_test_case cases[] = {
		{ "rasd sends (1 and 3 chunks), mesh-client receives", rasd_sends_mesh_client_receives },
		{ NULL, NULL },
	};
	static const struct ras_test_suite suites[] = {
		{ "mesh-sandbox", cases, setup, teardown },
		{ NULL, NULL, NULL, NULL },
	};

	url = getenv("RAS_MESH_SANDBOX_URL");
	client_src = getenv("RAS_MESH_CLIENT_SRC");
	if (url == NULL || *url == '\0' || client_src == NULL || *client_src == '\0') {
		printf("skipped: set RAS_MESH_SANDBOX_URL and RAS_MESH_CLIENT_SRC to run against the "
		    "official mesh-sandbox and mesh-client\n");
		return 77;
	}
	return ras_test_run_suites(suites);
}
