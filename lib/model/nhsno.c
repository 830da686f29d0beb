/* nhsno: Modulus 11 check (see include/ras/nhsno.h). */
#include <string.h>

#include "ras/nhsno.h"

enum ras_nhsno_status
ras_nhsno_check(const char *s)
{
	int sum = 0, check;

	if (s == NULL || *s == '\0')
		return RAS_NHSNO_MISSING;
	if (strlen(s) != 10)
		return RAS_NHSNO_BAD_LENGTH;
	for (int i = 0; i < 10; i++)
		if (s[i] < '0' || s[i] > '9')
			return RAS_NHSNO_NOT_DIGITS;
	for (int i = 0; i < 9; i++)
		sum += (s[i] - '0') * (10 - i);
	check = 11 - sum % 11;
	if (check == 11)
		check = 0;
	if (check == 10)
		return RAS_NHSNO_CHECK_10;
	if (check != s[9] - '0')
		return RAS_NHSNO_BAD_CHECK;
	return RAS_NHSNO_OK;
}

const char *
ras_nhsno_reason(enum ras_nhsno_status st)
{
	switch (st) {
	case RAS_NHSNO_OK: return "valid";
	case RAS_NHSNO_MISSING: return "NHS number is missing";
	case RAS_NHSNO_BAD_LENGTH: return "NHS number is not ten digits long";
	case RAS_NHSNO_NOT_DIGITS: return "NHS number contains characters other than digits";
	case RAS_NHSNO_CHECK_10: return "NHS number check digit computes to 10 (never issued)";
	case RAS_NHSNO_BAD_CHECK: return "NHS number check digit does not match (Modulus 11)";
	}
	return "NHS number is invalid";
}

const char *
ras_nhsno_status_name(enum ras_nhsno_status st)
{
	switch (st) {
	case RAS_NHSNO_OK: return "valid";
	case RAS_NHSNO_MISSING: return "missing";
	case RAS_NHSNO_BAD_LENGTH: return "bad-length";
	case RAS_NHSNO_NOT_DIGITS: return "not-digits";
	case RAS_NHSNO_CHECK_10: return "check-digit-10";
	case RAS_NHSNO_BAD_CHECK: return "bad-check-digit";
	}
	return "invalid";
}
