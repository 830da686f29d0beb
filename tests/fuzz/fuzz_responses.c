/*
 * fuzz_responses: libFuzzer target for what remote services answer rasd:
 * MESH (send, tracking, inbox, a downloaded message's headers) and e-RS
 * (the error body, and response headers such as X-Request-ID), as the
 * clients read them from a finished transfer.
 *
 * Input: byte 0 picks the reader, bytes 1-2 the HTTP status (100..599),
 * then the raw response header block up to the first empty line, then the
 * body.  Corpus: tests/fuzz/corpus-responses (seeded from MESH sandbox and
 * e-RS fixture answers).  Run: scripts/fuzz responses [SECONDS].
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/ers.h"
#include "ras/error.h"
#include "ras/http.h"
#include "ras/limits.h"
#include "ras/mesh.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ras_http_request r;
	struct ras_arena *a;
	const char *p, *end, *split;
	char buf[RAS_HTTP_HEADER_MAX];
	size_t hl;

	if (size < 3)
		return 0;
	memset(&r, 0, sizeof(r));
	r.status = 100 + (long)((data[1] | (unsigned)data[2] << 8) % 500);
	p = (const char *)data + 3;
	end = (const char *)data + size;
	split = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
	hl = split ? (size_t)(split - p) + 4 : 0;
	ras_buf_init(&r.headers_out, RAS_HTTP_HEADER_MAX * 64);
	ras_buf_init(&r.body_out, RAS_HTTP_BODY_MAX);
	if (ras_buf_append(&r.headers_out, p, hl) < 0 ||
	    ras_buf_append(&r.body_out, p + hl, (size_t)(end - p) - hl) < 0)
		goto out;
	/* the clients read bodies as NUL-terminated text */
	if (ras_buf_putc(&r.body_out, '\0') < 0)
		goto out;
	r.body_out.len--;
	if ((a = ras_arena_new()) == NULL)
		goto out;
	switch (data[0] % 6) {
	case 0: {
		char id[RAS_MESH_ID_MAX];

		(void)ras_mesh_send_result(&r, id, sizeof(id));
		break;
	}
	case 1: {
		struct ras_mesh_tracking t;

		(void)ras_mesh_track_result(&r, &t);
		break;
	}
	case 2: {
		const char **ids = NULL;
		size_t n = 0;

		(void)ras_mesh_inbox_result(a, &r, &ids, &n);
		break;
	}
	case 3: {
		struct ras_mesh_meta m;

		ras_mesh_meta(&r, &m);
		break;
	}
	case 4: {
		char code[64], diag[256];

		ras_ers_parse_outcome(r.body_out.data, r.body_out.len, code, sizeof(code), diag,
		    sizeof(diag));
		break;
	}
	case 5:
		(void)ras_http_response_header(&r, "X-Request-ID", buf, sizeof(buf));
		(void)ras_http_response_header(&r, "Retry-After", buf, sizeof(buf));
		(void)ras_http_response_header(&r, "ETag", buf, sizeof(buf));
		break;
	}
	ras_arena_free(a);
out:
	ras_error_clear();
	ras_buf_free(&r.headers_out);
	ras_buf_free(&r.body_out);
	return 0;
}
