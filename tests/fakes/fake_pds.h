/*
 * fake_pds: a loopback PDS FHIR R4 endpoint on top of fake_http, behaving
 * as NHS England's PDS sandbox does (reference pds/NOTES.md §13, checked
 * against it side by side: docs/design/pds.md).  GET
 * {base}/Patient/{id}: X-Request-ID missing → 400 MISSING_VALUE, not a
 * UUID → 400 INVALID_VALUE; an Authorization header, when sent, must be
 * "Bearer <letters and digits, optionally _more>" (else 401 ACCESS_DENIED
 * "Missing access token" / "Invalid Access Token"), unless a token is set
 * with fake_pds_require_token (then exactly that bearer); a bad check digit
 * or not ten digits → 400 INVALID_RESOURCE_ID; a known number → 200 with
 * its stub and ETag W/"<versionId>"; any other → 404 RESOURCE_NOT_FOUND.
 * X-Request-ID and X-Correlation-ID are mirrored back.
 *
 * Patients (tests/fixtures/pds/, copies of the sandbox's stubs): the
 * sandbox's 9000000009, 9000000025 (R), 9000000033, 9693632109,
 * 9732110317, and for the e-RS example referrals 9912003888 (the
 * 9693632109 record under that number: U, current address and practice
 * A20047) and 9462979626 (the 9000000025 record under that number:
 * restricted).  Scripted faults: the next n requests answer `status`
 * (401, 429, 503, …) or hang for delay_ms; a superseded number answers
 * with another's record.  Base path: /personal-demographics/FHIR/R4.
 */
#ifndef RAS_FAKE_PDS_H
#define RAS_FAKE_PDS_H

#include <stddef.h>

struct fake_http;
struct fake_pds;

struct fake_pds *fake_pds_start(void);
void fake_pds_stop(struct fake_pds *f);
const char *fake_pds_base(const struct fake_pds *f);   /* http://127.0.0.1:PORT/personal-demographics/FHIR/R4 */
struct fake_http *fake_pds_http(struct fake_pds *f);

/* The next n requests answer `status` with the proxy's OperationOutcome. */
void fake_pds_fail(struct fake_pds *f, int n, int status);
/* The next n requests wait delay_ms before answering (timeouts). */
void fake_pds_delay(struct fake_pds *f, int n, int delay_ms);
/* GET /Patient/old answers with the record of `now` (merged numbers). */
void fake_pds_supersede(struct fake_pds *f, const char *old, const char *now);
/* GET /Patient/nhs answers 404 INVALIDATED_RESOURCE (INT's 9990003343). */
void fake_pds_invalidate(struct fake_pds *f, const char *nhs);
/* Only "Bearer <token>" is accepted (application mode tests). */
void fake_pds_require_token(struct fake_pds *f, const char *token);
/* Serve `json` (a Patient) for `nhs` (replaces any stub of that number). */
void fake_pds_add(struct fake_pds *f, const char *nhs, const char *json);

#endif
