/*
 * nhsno: NHS number validation (Modulus 11, NHS Data Dictionary).
 *
 * Ten digits; weights 10..2 over the first nine; check = 11 - (sum mod 11);
 * 11 -> 0; 10 -> the number is invalid.  Spaces are not accepted here:
 * FHIR identifiers carry the bare ten digits.
 */
#ifndef RAS_NHSNO_H
#define RAS_NHSNO_H

enum ras_nhsno_status {
	RAS_NHSNO_OK = 0,
	RAS_NHSNO_MISSING,       /* NULL or empty */
	RAS_NHSNO_BAD_LENGTH,    /* not exactly ten characters */
	RAS_NHSNO_NOT_DIGITS,    /* a character other than 0-9 */
	RAS_NHSNO_CHECK_10,      /* the check computes to 10: never issued */
	RAS_NHSNO_BAD_CHECK,     /* the tenth digit does not match */
};

enum ras_nhsno_status ras_nhsno_check(const char *s);

/* A lower-case phrase for messages, e.g. "check digit does not match". */
const char *ras_nhsno_reason(enum ras_nhsno_status st);

/* The status as stored and printed: "valid", "missing", "bad-length",
 * "not-digits", "check-digit-10", "bad-check-digit". */
const char *ras_nhsno_status_name(enum ras_nhsno_status st);

#endif
