/* fake_fhir: loopback FHIR endpoint (see tests/fake_fhir.h). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_fhir.h"
#include "fake_http.h"
#include "ras/buf.h"
#include "ras/json.h"
#include "ras_config.h"

struct fake_fhir {
	struct fake_http *http;
	pthread_mutex_t lock;
	char base[96];
	char *ok_message, *bad_request;
	char **ids;              /* document identifiers and message header ids seen */
	size_t n, cap;
	int created, messages, duplicates, fail, fail_status;
};

static char *
fixture(const char *name)
{
	char path[4096];
	struct ras_buf b = RAS_BUF_INIT(1 << 20);

	snprintf(path, sizeof(path), "%s/tests/fixtures/fhir/%s", RAS_SOURCE_ROOT, name);
	if (ras_buf_read_file(&b, path) < 0) {
		fprintf(stderr, "fake_fhir: cannot read %s\n", path);
		exit(1);
	}
	return b.data;
}

static bool
seen(struct fake_fhir *f, const char *id)
{
	for (size_t i = 0; i < f->n; i++)
		if (strcmp(f->ids[i], id) == 0)
			return true;
	if (f->n == f->cap) {
		f->cap = f->cap ? f->cap * 2 : 64;
		f->ids = realloc(f->ids, f->cap * sizeof(*f->ids));
	}
	f->ids[f->n++] = strdup(id);
	return false;
}

static void
bad(struct fake_fhir *f, struct fake_resp *resp)
{
	resp->status = 400;
	resp->content_type = "application/fhir+json";
	resp->body = f->bad_request;
}

static void
handler(void *ctx, const struct fake_req *req, struct fake_resp *resp)
{
	struct fake_fhir *f = ctx;
	json_t *j = NULL;
	const char *path = req->path;

	pthread_mutex_lock(&f->lock);
	if (strcmp(path, "/admin/stored") == 0) {
		static __thread char buf[256];

		snprintf(buf, sizeof(buf), "{\"created\":%d,\"messages\":%d,\"duplicates\":%d}\n", f->created,
		    f->messages, f->duplicates);
		resp->content_type = "application/json";
		resp->body = buf;
		goto out;
	}
	if (strcmp(req->method, "POST") != 0 || strncmp(path, "/fhir/", 6) != 0) {
		resp->status = 404;
		goto out;
	}
	if (f->fail > 0) {
		f->fail--;
		resp->status = f->fail_status;
		resp->body = "unavailable";
		goto out;
	}
	if (ras_json_parse(req->body, req->body_len, 16 << 20, &j) < 0 ||
	    strcmp(ras_json_str(j, "resourceType") ? ras_json_str(j, "resourceType") : "", "Bundle") != 0) {
		bad(f, resp);
		goto out;
	}
	if (strcmp(path, "/fhir/$process-message") == 0) {
		json_t *hdr = ras_json_obj(json_array_get(ras_json_arr(j, "entry"), 0), "resource");

		if (strcmp(ras_json_str(j, "type") ? ras_json_str(j, "type") : "", "message") != 0 ||
		    hdr == NULL || strcmp(ras_json_str(hdr, "resourceType"), "MessageHeader") != 0 ||
		    ras_json_str(hdr, "id") == NULL) {
			bad(f, resp);
			goto out;
		}
		if (seen(f, ras_json_str(hdr, "id")))
			f->duplicates++;
		else
			f->messages++;
		resp->status = 200;
		resp->content_type = "application/fhir+json";
		resp->body = f->ok_message;
	} else if (strcmp(path, "/fhir/Bundle") == 0) {
		const char *ine = fake_req_header(req, "If-None-Exist");
		const char *id = ras_json_str(ras_json_obj(j, "identifier"), "value");
		char want[256];

		if (id == NULL || strcmp(ras_json_str(j, "type") ? ras_json_str(j, "type") : "", "document")) {
			bad(f, resp);
			goto out;
		}
		snprintf(want, sizeof(want), "identifier=https://tools.ietf.org/html/rfc4122|%s", id);
		if (ine && strcmp(ine, want) != 0) {
			bad(f, resp);
			goto out;
		}
		if (seen(f, id) && ine) {
			f->duplicates++;
			resp->status = 200;
		} else {
			f->created++;
			resp->status = 201;
			fake_resp_header(resp, "Location", "Bundle/1/_history/1");
		}
		resp->content_type = "application/fhir+json";
		resp->body = "";
	} else {
		resp->status = 404;
	}
out:
	json_decref(j);
	pthread_mutex_unlock(&f->lock);
}

struct fake_fhir *
fake_fhir_start(void)
{
	return fake_fhir_start_port(0);
}

struct fake_fhir *
fake_fhir_start_port(unsigned port)
{
	struct fake_fhir *f = calloc(1, sizeof(*f));

	pthread_mutex_init(&f->lock, NULL);
	f->ok_message = fixture("bars-process-message-success-response.json");
	f->bad_request = fixture("bars-operationoutcome-400-rec-bad-request-invalid.json");
	f->http = fake_http_start_port(handler, f, port);
	snprintf(f->base, sizeof(f->base), "%s/fhir", fake_http_url(f->http));
	return f;
}

void
fake_fhir_stop(struct fake_fhir *f)
{
	if (f == NULL)
		return;
	fake_http_stop(f->http);
	for (size_t i = 0; i < f->n; i++)
		free(f->ids[i]);
	free(f->ids);
	free(f->ok_message);
	free(f->bad_request);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

const char *
fake_fhir_base(const struct fake_fhir *f)
{
	return f->base;
}

struct fake_http *
fake_fhir_http(struct fake_fhir *f)
{
	return f->http;
}

void
fake_fhir_fail(struct fake_fhir *f, int n, int status)
{
	pthread_mutex_lock(&f->lock);
	f->fail = n;
	f->fail_status = status;
	pthread_mutex_unlock(&f->lock);
}

#define COUNTER(name, field) \
	int name(struct fake_fhir *f) { int v; pthread_mutex_lock(&f->lock); v = f->field; \
	pthread_mutex_unlock(&f->lock); return v; }
COUNTER(fake_fhir_created, created)
COUNTER(fake_fhir_messages, messages)
COUNTER(fake_fhir_duplicates, duplicates)
