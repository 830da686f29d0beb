/* crypto: OpenSSL adapter (see include/ras/crypto.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/error.h"

static void
to_hex(const unsigned char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * len] = '\0';
}

void
ras_crypto_sha256(const void *data, size_t len, unsigned char out[RAS_SHA256_LEN])
{
	SHA256(data, len, out);
}

void
ras_crypto_sha256_hex(const void *data, size_t len, char out[RAS_SHA256_HEX_LEN])
{
	unsigned char md[RAS_SHA256_LEN];

	SHA256(data, len, md);
	to_hex(md, sizeof(md), out);
}

struct ras_sha256 {
	EVP_MD_CTX *ctx;
};

struct ras_sha256 *
ras_crypto_sha256_new(void)
{
	struct ras_sha256 *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return NULL;
	h->ctx = EVP_MD_CTX_new();
	if (h->ctx == NULL || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(h->ctx);
		free(h);
		return NULL;
	}
	return h;
}

void
ras_crypto_sha256_update(struct ras_sha256 *h, const void *data, size_t len)
{
	(void)EVP_DigestUpdate(h->ctx, data, len);
}

void
ras_crypto_sha256_final(struct ras_sha256 *h, char out[RAS_SHA256_HEX_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (EVP_DigestFinal_ex(h->ctx, md, &mdlen) != 1 || mdlen != RAS_SHA256_LEN)
		memset(md, 0, sizeof(md));
	to_hex(md, RAS_SHA256_LEN, out);
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int
ras_crypto_hmac_sha256_hex(const void *key, size_t keylen, const void *msg, size_t msglen,
    char out[RAS_SHA256_HEX_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (keylen > INT32_MAX)
		return ras_error_code(RAS_EINVALID, "HMAC key too long");
	if (HMAC(EVP_sha256(), key, (int)keylen, msg, msglen, md, &mdlen) == NULL ||
	    mdlen != RAS_SHA256_LEN)
		return ras_error_set("could not compute HMAC-SHA256");
	to_hex(md, mdlen, out);
	return 0;
}

int
ras_crypto_random(void *out, size_t len)
{
	if (len > INT32_MAX || RAND_bytes(out, (int)len) != 1)
		return ras_error_set("could not get random bytes");
	return 0;
}

static void
format_uuid(const unsigned char b[16], char out[RAS_UUID_STR_LEN])
{
	char hex[33];

	to_hex(b, 16, hex);
	memcpy(out, hex, 8);
	out[8] = '-';
	memcpy(out + 9, hex + 8, 4);
	out[13] = '-';
	memcpy(out + 14, hex + 12, 4);
	out[18] = '-';
	memcpy(out + 19, hex + 16, 4);
	out[23] = '-';
	memcpy(out + 24, hex + 20, 12);
	out[36] = '\0';
}

int
ras_crypto_uuid(char out[RAS_UUID_STR_LEN])
{
	unsigned char b[16];
	int err;

	if ((err = ras_crypto_random(b, sizeof(b))) < 0)
		return err;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	format_uuid(b, out);
	return 0;
}

static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;
static EVP_MD *sha1_md;   /* kept for the life of the process */

static void
sha1_fetch(void)
{
	sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
}

void
ras_crypto_uuid_v5(const char *name, char out[RAS_UUID_STR_LEN])
{
	/* rasd's namespace: the v5 UUID of "urn:rasd" in the URL namespace. */
	static const unsigned char ns[16] = {
		0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
		0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
	};
	unsigned char md[SHA_DIGEST_LENGTH];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int mdlen = 0;

	static const char prefix[] = "urn:rasd:";
	/* SHA-1 fetched from the provider once (EVP_sha1() is fetched again at
	 * every init: a third of the cost of a UUID, a dozen of them a letter) */
	(void)pthread_once(&sha1_once, sha1_fetch);
	if (ctx == NULL || EVP_DigestInit_ex(ctx, sha1_md ? sha1_md : EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(ctx, ns, sizeof(ns)) != 1 ||
	    EVP_DigestUpdate(ctx, prefix, sizeof(prefix) - 1) != 1 ||
	    EVP_DigestUpdate(ctx, name, strlen(name)) != 1 ||
	    EVP_DigestFinal_ex(ctx, md, &mdlen) != 1)
		memset(md, 0, sizeof(md));
	EVP_MD_CTX_free(ctx);
	md[6] = (unsigned char)((md[6] & 0x0f) | 0x50);
	md[8] = (unsigned char)((md[8] & 0x3f) | 0x80);
	format_uuid(md, out);
}

static int
b64(const void *data, size_t len, struct ras_buf *out, int url)
{
	static const char std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	static const char urls[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	const char *alpha = url ? urls : std;
	const unsigned char *p = data;
	int err;

	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		size_t n = len - i >= 3 ? 3 : len - i;
		char q[4];

		if (n > 1)
			v |= (unsigned)p[i + 1] << 8;
		if (n > 2)
			v |= p[i + 2];
		q[0] = alpha[(v >> 18) & 63];
		q[1] = alpha[(v >> 12) & 63];
		q[2] = n > 1 ? alpha[(v >> 6) & 63] : '=';
		q[3] = n > 2 ? alpha[v & 63] : '=';
		if (url)
			err = ras_buf_append(out, q, n + 1);
		else
			err = ras_buf_append(out, q, 4);
		if (err < 0)
			return err;
	}
	return ras_buf_append(out, "", 0);
}

int
ras_crypto_base64(const void *data, size_t len, struct ras_buf *out)
{
	return b64(data, len, out, 0);
}

int
ras_crypto_base64url(const void *data, size_t len, struct ras_buf *out)
{
	return b64(data, len, out, 1);
}

int
ras_crypto_base64_decode(const char *s, size_t len, struct ras_buf *out)
{
	unsigned v = 0;
	int bits = 0, pad = 0, err;

	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		int d;

		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		if (pad)
			return ras_error_code(RAS_EINVALID, "invalid base64: data after padding");
		if (c >= 'A' && c <= 'Z') d = c - 'A';
		else if (c >= 'a' && c <= 'z') d = c - 'a' + 26;
		else if (c >= '0' && c <= '9') d = c - '0' + 52;
		else if (c == '+' || c == '-') d = 62;
		else if (c == '/' || c == '_') d = 63;
		else return ras_error_code(RAS_EINVALID, "invalid base64 character");
		v = (v << 6) | (unsigned)d;
		bits += 6;
		if (bits >= 8) {
			char byte = (char)((v >> (bits - 8)) & 0xff);

			bits -= 8;
			if ((err = ras_buf_append(out, &byte, 1)) < 0)
				return err;
		}
	}
	if (pad > 2)
		return ras_error_code(RAS_EINVALID, "invalid base64 padding");
	return ras_buf_append(out, "", 0);
}

/* --- signing ---------------------------------------------------------------- */

static int
load_key(const char *pem, size_t pem_len, EVP_PKEY **out)
{
	BIO *bio;
	EVP_PKEY *k;

	if (pem_len > INT32_MAX)
		return ras_error_code(RAS_ETOOBIG, "private key file too large");
	bio = BIO_new_mem_buf(pem, (int)pem_len);
	if (bio == NULL)
		return ras_error_code(RAS_ENOMEM, "out of memory");
	/* No password callback: an encrypted key is refused rather than
	 * prompting on a terminal the daemon does not have. */
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *)"");
	BIO_free(bio);
	ERR_clear_error();
	if (k == NULL)
		return ras_error_code(RAS_EINVALID,
		    "private key is not an unencrypted PEM private key");
	if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA) {
		EVP_PKEY_free(k);
		return ras_error_code(RAS_EINVALID, "private key is not an RSA key (RS512 needs RSA)");
	}
	if (EVP_PKEY_get_bits(k) < 2048) {
		int bits = EVP_PKEY_get_bits(k);

		EVP_PKEY_free(k);
		return ras_error_code(RAS_EINVALID, "RSA key of %d bits is too short (at least 2048)",
		    bits);
	}
	*out = k;
	return 0;
}

int
ras_crypto_rsa_key_check(const char *pem, size_t pem_len)
{
	EVP_PKEY *k = NULL;
	int err;

	if ((err = load_key(pem, pem_len, &k)) < 0)
		return err;
	EVP_PKEY_free(k);
	return 0;
}

int
ras_crypto_rs512_sign(const char *pem, size_t pem_len, const void *msg, size_t len,
    struct ras_buf *sig)
{
	EVP_PKEY *k = NULL;
	EVP_MD_CTX *ctx = NULL;
	unsigned char *s = NULL;
	size_t slen = 0;
	int err;

	if ((err = load_key(pem, pem_len, &k)) < 0)
		return err;
	ctx = EVP_MD_CTX_new();
	if (ctx == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	/* EVP_PKEY_RSA defaults to PKCS#1 v1.5 padding: RS512 as in RFC 7518. */
	if (EVP_DigestSignInit(ctx, NULL, EVP_sha512(), NULL, k) != 1 ||
	    EVP_DigestSign(ctx, NULL, &slen, msg, len) != 1) {
		err = ras_error_set("could not sign with the RSA key");
		goto done;
	}
	s = malloc(slen);
	if (s == NULL) {
		err = ras_error_code(RAS_ENOMEM, "out of memory");
		goto done;
	}
	if (EVP_DigestSign(ctx, s, &slen, msg, len) != 1) {
		err = ras_error_set("could not sign with the RSA key");
		goto done;
	}
	err = ras_buf_append(sig, s, slen);
done:
	ERR_clear_error();
	free(s);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return err;
}

int
ras_crypto_jwt_rs512(const char *pem, size_t pem_len, const char *header_json,
    const char *claims_json, struct ras_buf *out)
{
	struct ras_buf input = RAS_BUF_INIT(0), sig = RAS_BUF_INIT(0);
	int err;

	if ((err = ras_crypto_base64url(header_json, strlen(header_json), &input)) < 0 ||
	    (err = ras_buf_putc(&input, '.')) < 0 ||
	    (err = ras_crypto_base64url(claims_json, strlen(claims_json), &input)) < 0)
		goto done;
	if ((err = ras_crypto_rs512_sign(pem, pem_len, input.data, input.len, &sig)) < 0)
		goto done;
	if ((err = ras_buf_append(out, input.data, input.len)) < 0 ||
	    (err = ras_buf_putc(out, '.')) < 0 ||
	    (err = ras_crypto_base64url(sig.data, sig.len, out)) < 0)
		goto done;
done:
	ras_buf_free(&input);
	ras_buf_free(&sig);
	return err;
}

/* One JWK member: the big number `param` of k, base64url, unpadded. */
static int
jwk_member(EVP_PKEY *k, const char *param, const char *name, struct ras_buf *out)
{
	BIGNUM *bn = NULL;
	unsigned char *bin = NULL;
	int len, err;

	if (!EVP_PKEY_get_bn_param(k, param, &bn)) {
		ERR_clear_error();
		return ras_error_code(RAS_EINVALID, "the RSA key has no %s", param);
	}
	len = BN_num_bytes(bn);
	if ((bin = malloc(len > 0 ? (size_t)len : 1u)) == NULL) {
		BN_clear_free(bn);
		return ras_error_code(RAS_ENOMEM, "out of memory");
	}
	(void)BN_bn2bin(bn, bin);
	if ((err = ras_buf_printf(out, ",\"%s\":\"", name)) == 0 &&
	    (err = ras_crypto_base64url(bin, (size_t)len, out)) == 0)
		err = ras_buf_putc(out, '"');
	OPENSSL_cleanse(bin, (size_t)len);
	free(bin);
	BN_clear_free(bn);
	return err;
}

int
ras_crypto_rsa_jwk(const char *pem, size_t pem_len, struct ras_buf *out)
{
	static const char *const members[][2] = {
		{ "n", "n" }, { "e", "e" }, { "d", "d" }, { "rsa-factor1", "p" }, { "rsa-factor2", "q" },
		{ "rsa-exponent1", "dp" }, { "rsa-exponent2", "dq" }, { "rsa-coefficient1", "qi" },
	};
	EVP_PKEY *k = NULL;
	int err;

	if ((err = load_key(pem, pem_len, &k)) < 0)
		return err;
	err = ras_buf_printf(out, "{\"kty\":\"RSA\"");
	for (size_t i = 0; err == 0 && i < sizeof(members) / sizeof(members[0]); i++)
		err = jwk_member(k, members[i][0], members[i][1], out);
	if (err == 0)
		err = ras_buf_putc(out, '}');
	EVP_PKEY_free(k);
	return err;
}
