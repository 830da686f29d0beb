/*
 * crypto: the OpenSSL adapter.  Hashes, HMAC, random identifiers and
 * base64; the only file that includes OpenSSL headers.  Signing (RS512
 * JWTs for e-RS) lives here too.
 */
#ifndef RAS_CRYPTO_H
#define RAS_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#define RAS_SHA256_LEN      32
#define RAS_SHA256_HEX_LEN  65   /* 64 hex digits + NUL */
#define RAS_UUID_STR_LEN    37   /* 36 + NUL */

struct ras_buf;

void ras_crypto_sha256(const void *data, size_t len, unsigned char out[RAS_SHA256_LEN]);

/* Lower-case hex of the SHA-256 of data. */
void ras_crypto_sha256_hex(const void *data, size_t len, char out[RAS_SHA256_HEX_LEN]);

/* Streaming SHA-256 for data read in pieces. */
struct ras_sha256;
struct ras_sha256 *ras_crypto_sha256_new(void);
void ras_crypto_sha256_update(struct ras_sha256 *h, const void *data, size_t len);
/* Writes the hex digest and frees h. */
void ras_crypto_sha256_final(struct ras_sha256 *h, char out[RAS_SHA256_HEX_LEN]);

/* HMAC-SHA256 of msg under key, as lower-case hex. */
int ras_crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
    char out[RAS_SHA256_HEX_LEN]);

/* Cryptographically random bytes. */
int ras_crypto_random(void *out, size_t len);

/* Random (version 4) UUID, lower case, e.g. "3f2b…-…". */
int ras_crypto_uuid(char out[RAS_UUID_STR_LEN]);

/* Name-based (version 5, SHA-1) UUID of `name` in rasd's namespace: the same
 * name always gives the same UUID (stable document identifiers). */
void ras_crypto_uuid_v5(const char *name, char out[RAS_UUID_STR_LEN]);

/* Append base64 (standard alphabet, padded) or base64url (no padding). */
int ras_crypto_base64(const void *data, size_t len, struct ras_buf *out);
int ras_crypto_base64url(const void *data, size_t len, struct ras_buf *out);

/* Decode standard base64 (whitespace ignored) into out. RAS_EINVALID on bad input. */
int ras_crypto_base64_decode(const char *s, size_t len, struct ras_buf *out);

/* --- signing (e-RS application-restricted access) ----------------------- */

/* Check that pem holds an unencrypted RSA private key (PKCS#8 or PKCS#1)
 * of at least 2048 bits, as NHS APIM requires for RS512. */
int ras_crypto_rsa_key_check(const char *pem, size_t pem_len);

/* Append the RS512 signature (RSASSA-PKCS1-v1_5 with SHA-512) of msg under
 * the PEM private key to sig (raw bytes). */
int ras_crypto_rs512_sign(const char *pem, size_t pem_len, const void *msg, size_t len,
    struct ras_buf *sig);

/* Append a compact JWS "b64url(header).b64url(claims).b64url(sig)" signed
 * with RS512; header and claims are the exact JSON texts to encode. */
int ras_crypto_jwt_rs512(const char *pem, size_t pem_len, const char *header_json,
    const char *claims_json, struct ras_buf *out);

/* Append the private JWK ({"kty":"RSA","n","e","d","p","q","dp","dq","qi"})
 * of the PEM RSA private key, for JOSE libraries that take JWKs (the
 * clinician UI's private_key_jwt, through cjose).  The caller wipes out. */
int ras_crypto_rsa_jwk(const char *pem, size_t pem_len, struct ras_buf *out);

#endif
