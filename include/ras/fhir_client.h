/*
 * fhir_client: delivering a document to a FHIR R4 endpoint.  Two modes per
 * recipient (routing.h): "message" POSTs a message Bundle to
 * {base}/$process-message (FHIR messaging: a resend carries the same
 * MessageHeader id, which receivers use to drop duplicates); "document"
 * POSTs the document Bundle to {base}/Bundle with If-None-Exist on its
 * identifier (a conditional create: a resend creates nothing new).  Both
 * are therefore safe to repeat when the outcome of a transfer is unknown.
 */
#ifndef RAS_FHIR_CLIENT_H
#define RAS_FHIR_CLIENT_H

#include <stddef.h>

#include "ras/http.h"

struct ras_arena;

struct ras_fhir_post {
	const char *base;          /* endpoint base URL */
	const char *mode;          /* message, document */
	const char *identifier;    /* document: Bundle.identifier value (uuid) */
	const char *content_type;  /* application/fhir+json or application/fhir+xml */
	const char *token;         /* bearer token, optional */
	const char *request_id;    /* X-Request-ID (no patient data) */
	const void *body;
	size_t len;
	long timeout_ms;
};

int ras_fhir_client_prep(struct ras_arena *a, const struct ras_fhir_post *p,
    struct ras_http_request *r);

/* 0 delivered (2xx); RAS_EINVALID refused for good (400, 404, 405, 409,
 * 410, 412, 413, 422: do not resend); RAS_ERATELIMITED (429); RAS_EIO
 * (other 4xx, e.g. 401/403 until the credentials are fixed); RAS_ETIMEDOUT
 * (5xx, or the transfer's outcome unknown); the message names the
 * OperationOutcome's first issue when there is one. */
int ras_fhir_client_result(const struct ras_http_request *r);

#endif
