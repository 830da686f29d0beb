/* fhir_client: documents to FHIR R4 endpoints (see include/ras/fhir_client.h). */
#include <stdio.h>
#include <string.h>

#include "ras/arena.h"
#include "ras/error.h"
#include "ras/fhir_client.h"
#include "ras/json.h"

int
ras_fhir_client_prep(struct ras_arena *a, const struct ras_fhir_post *p, struct ras_http_request *r)
{
	size_t bl = strlen(p->base);
	const char *sep = bl && p->base[bl - 1] == '/' ? "" : "/";
	const char *url;
	int err;

	if (strcmp(p->mode, "document") == 0) {
		if (p->identifier == NULL)
			return ras_error_code(RAS_EINVALID, "a conditional create needs the document identifier");
		url = ras_arena_printf(a, "%s%sBundle", p->base, sep);
	} else {
		url = ras_arena_printf(a, "%s%s$process-message", p->base, sep);
	}
	if (url == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	ras_http_request_init(r, "POST", url);
	r->body = p->body;
	r->body_len = p->len;
	r->timeout_ms = p->timeout_ms;
	if ((err = ras_http_request_header(r, "Content-Type", p->content_type)) < 0 ||
	    (err = ras_http_request_header(r, "Accept", "application/fhir+json")) < 0)
		return err;
	if (p->request_id && (err = ras_http_request_header(r, "X-Request-ID", p->request_id)) < 0)
		return err;
	if (strcmp(p->mode, "document") == 0 && (err = ras_http_request_header(r, "If-None-Exist",
	    ras_arena_printf(a, "identifier=https://tools.ietf.org/html/rfc4122|%s", p->identifier))) < 0)
		return err;
	if (p->token && (err = ras_http_request_header(r, "Authorization",
	    ras_arena_printf(a, "Bearer %s", p->token))) < 0)
		return err;
	return 0;
}

int
ras_fhir_client_result(const struct ras_http_request *r)
{
	char why[256] = "";
	json_t *j = NULL;
	int err;

	if (r->err)
		return ras_error_code(r->err, "FHIR endpoint: %s", r->errmsg);
	if (r->status >= 200 && r->status < 300)
		return 0;
	if (r->body_out.len && ras_json_parse(r->body_out.data, r->body_out.len, 1 << 20, &j) == 0) {
		json_t *issue = json_array_get(ras_json_arr(j, "issue"), 0);
		const char *text = ras_json_str(ras_json_obj(issue, "details"), "text");
		const char *code = ras_json_str(json_array_get(ras_json_arr(ras_json_obj(issue, "details"),
		    "coding"), 0), "code");

		if (text == NULL)
			text = ras_json_str(issue, "diagnostics");
		if (text || code)
			snprintf(why, sizeof(why), ": %s%s%s", code ? code : "", code && text ? " " : "",
			    text ? text : "");
	}
	json_decref(j);
	switch (r->status) {
	case 400: case 404: case 405: case 409: case 410: case 412: case 413: case 422:
		err = RAS_EINVALID;
		break;
	case 408:
		err = RAS_ETIMEDOUT;
		break;
	case 429:
		err = RAS_ERATELIMITED;
		break;
	default:
		err = r->status >= 500 ? RAS_ETIMEDOUT : RAS_EIO;
	}
	return ras_error_code(err, "FHIR endpoint answered %ld%s", r->status, why);
}
