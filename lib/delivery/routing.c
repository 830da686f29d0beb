/* routing: the ODS routing table (see include/ras/routing.h). */
#include <string.h>
#include <strings.h>

#include "ras/arena.h"
#include "ras/buf.h"
#include "ras/error.h"
#include "ras/json.h"
#include "ras/limits.h"
#include "ras/routing.h"

int
ras_routing_parse(struct ras_arena *a, const char *data, size_t len, struct ras_routing *out)
{
	json_t *root, *routes, *x;
	size_t i;
	int err;

	memset(out, 0, sizeof(*out));
	if ((err = ras_json_parse_arena(a, data, len, RAS_MAPPING_FILE_MAX, &root)) < 0)
		return err;
	routes = ras_json_arr(root, "routes");
	if (routes == NULL)
		return ras_error_code(RAS_EINVALID, "routing table needs a \"routes\" array");
	out->routes = ras_arena_calloc(a, json_array_size(routes) + 1, sizeof(*out->routes));
	if (out->routes == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	json_array_foreach(routes, i, x) {
		struct ras_route *r = &out->routes[out->n];

		r->ods = ras_json_str(x, "ods");
		r->transport = ras_json_str(x, "transport");
		r->mailbox = ras_json_str(x, "mailbox");
		r->workflow = ras_json_str(x, "workflow");
		r->endpoint = ras_json_str(x, "endpoint");
		r->mode = ras_json_str(x, "mode") ? ras_json_str(x, "mode") : "message";
		r->format = ras_json_str(x, "format") ? ras_json_str(x, "format") : "json";
		if (r->ods == NULL || *r->ods == '\0' || strlen(r->ods) > RAS_ID_MAX)
			return ras_error_code(RAS_EINVALID, "route %zu has no valid \"ods\"", i + 1);
		if (ras_routing_find(out, r->ods))
			return ras_error_code(RAS_EINVALID, "route for %s is listed twice", r->ods);
		r->lookup = json_is_true(json_object_get(x, "lookup"));
		if (r->transport && strcmp(r->transport, "mesh") == 0) {
			if (r->lookup && r->mailbox)
				return ras_error_code(RAS_EINVALID, "MESH route for %s: a mailbox or \"lookup\", not both",
				    r->ods);
			if (!r->lookup && (r->mailbox == NULL || *r->mailbox == '\0' || strlen(r->mailbox) > 100))
				return ras_error_code(RAS_EINVALID, "MESH route for %s needs a mailbox (or \"lookup\": "
				    "true)", r->ods);
		} else if (r->transport && strcmp(r->transport, "fhir") == 0) {
			if (r->endpoint == NULL || (strncmp(r->endpoint, "https://", 8) != 0 &&
			    strncmp(r->endpoint, "http://", 7) != 0))
				return ras_error_code(RAS_EINVALID, "FHIR route for %s needs an http(s) endpoint",
				    r->ods);
			if (strcmp(r->mode, "message") && strcmp(r->mode, "document"))
				return ras_error_code(RAS_EINVALID, "FHIR route for %s: mode is message or document",
				    r->ods);
		} else {
			return ras_error_code(RAS_EINVALID, "route for %s: transport is mesh or fhir", r->ods);
		}
		r->message = ras_json_str(x, "message");
		if (r->message && strcmp(r->message, "fhir-r4") && strcmp(r->message, "gp-connect-send-document") &&
		    strcmp(r->message, "toc-outpatient-letter"))
			return ras_error_code(RAS_EINVALID, "route for %s: message is gp-connect-send-document, "
			    "toc-outpatient-letter or fhir-r4", r->ods);
		if (r->message && strcmp(r->message, "fhir-r4") && strcmp(r->transport, "mesh"))
			return ras_error_code(RAS_EINVALID, "route for %s: ITK3 messages go by MESH", r->ods);
		if (strcmp(r->format, "json") && strcmp(r->format, "xml"))
			return ras_error_code(RAS_EINVALID, "route for %s: format is json or xml", r->ods);
		out->n++;
	}
	return 0;
}

int
ras_routing_load(struct ras_arena *a, const char *path, struct ras_routing *out)
{
	struct ras_buf b = RAS_BUF_INIT(RAS_MAPPING_FILE_MAX);
	int err;

	if ((err = ras_buf_read_file(&b, path)) == 0)
		err = ras_routing_parse(a, b.data ? b.data : "", b.len, out);
	ras_buf_free(&b);
	if (err < 0)
		ras_error_context("routing table %s", path);
	return err;
}

const struct ras_route *
ras_routing_find(const struct ras_routing *t, const char *ods)
{
	for (size_t i = 0; ods && i < t->n; i++)
		if (strcasecmp(t->routes[i].ods, ods) == 0)
			return &t->routes[i];
	return NULL;
}
