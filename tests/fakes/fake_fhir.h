/*
 * fake_fhir: a loopback FHIR R4 endpoint for the document deliveries, on
 * top of fake_http.  POST {base}/$process-message takes a message Bundle
 * (MessageHeader first, else 400) and answers with the BaRS success
 * response from reference/fhir/bars-r4; a MessageHeader id seen before is
 * answered the same way and counted as a duplicate (FHIR messaging).  POST
 * {base}/Bundle honours If-None-Exist on the identifier: 201 the first
 * time, 200 (nothing created) after.  Anything malformed gets the BaRS
 * OperationOutcome 400.  Faults: the next N posts answer 503.  GET
 * /admin/stored lists what was stored (for the demo).  Base path: /fhir.
 */
#ifndef RAS_FAKE_FHIR_H
#define RAS_FAKE_FHIR_H

#include <stddef.h>

struct fake_fhir;

struct fake_fhir *fake_fhir_start(void);
/* The same on a given port (0: any), e.g. one that refused connections before. */
struct fake_fhir *fake_fhir_start_port(unsigned port);
void fake_fhir_stop(struct fake_fhir *f);
const char *fake_fhir_base(const struct fake_fhir *f);   /* http://127.0.0.1:PORT/fhir */
struct fake_http *fake_fhir_http(struct fake_fhir *f);
void fake_fhir_fail(struct fake_fhir *f, int n, int status);

int fake_fhir_created(struct fake_fhir *f);      /* documents created (201) */
int fake_fhir_messages(struct fake_fhir *f);     /* distinct messages processed */
int fake_fhir_duplicates(struct fake_fhir *f);   /* repeated documents or messages */

#endif
