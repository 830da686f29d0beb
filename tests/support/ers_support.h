/*
 * ers_support: what the e-RS test programs share: an RSA key pair made for
 * the run, a controllable clock, a client pointed at a fake e-RS, and an
 * independent check of the client assertion JWT with OpenSSL.
 */
#ifndef RAS_TEST_ERS_SUPPORT_H
#define RAS_TEST_ERS_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_ers.h"
#include "ras/ers.h"
#include "ras/json.h"

/* A clock whose sleeps only advance it, recording each one. */
struct ers_clock {
	int64_t mono;
	int64_t slept;
	int nsleeps;
	int64_t sleeps[256];
};

void ers_clock_init(struct ers_clock *k);
struct ras_ers_clock ers_clock_fns(struct ers_clock *k);

/* A fresh 2048-bit RSA key pair (PEM, malloc'd), made once per process. */
void ers_keypair(const char **priv, const char **pub);

#define ERS_API_KEY "test-api-key-0001"
#define ERS_KID "test-kid-1"

/* A fake e-RS that checks the client assertions against the run's key
 * pair (ers_keypair); `stateful`: it remembers recorded outcomes. */
struct fake_ers *ers_fake_start(bool stateful);

/* A client for the fake in `mode`; services as in ers.service_ids. */
struct ras_ers *ers_client(struct fake_ers *f, enum ras_ers_mode mode, const char *services,
    struct ers_clock *clk);

/* Verify a compact RS512 JWS and its header and claims as APIM does.
 * Returns NULL when good, else why not. */
const char *ers_check_jwt(const char *jwt, const char *pub_pem, const char *aud, int64_t now,
    char *jti_out, size_t jti_size);

/* A fixture of tests/fixtures/ers as JSON (aborts when unreadable). */
json_t *ers_fixture(const char *rel);

/* Is body JSON-equal to the fixture? */
bool ers_body_equals(const char *body, size_t len, const char *rel);

/* Value of name=… in an application/x-www-form-urlencoded body (malloc'd). */
char *ers_form_value(const char *body, const char *name);

#endif
