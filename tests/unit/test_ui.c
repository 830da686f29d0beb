/* Unit tests: the clinicians' pages' pure parts (html escaping, the OIDC
 * client's key handling and role selection).  The whole sign-in against a
 * real provider is tests/ui (meson test ui-browser). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "ras/buf.h"
#include "ras/crypto.h"
#include "ras/error.h"
#include "ras/html.h"
#include "ras/json.h"
#include "ras/oidc.h"

static void
html_escape(void)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	(void)ras_html_esc(&b, "<script>alert('x')</script> & \"q\"");
	CU_ASSERT_STRING_EQUAL(b.data, "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
	ras_buf_reset(&b);
	/* UTF-8 kept; an invalid byte becomes U+FFFD; controls dropped, newline kept */
	(void)ras_html_esc(&b, "Zo\xc3\xab\x01 a\nb \xff end");
	CU_ASSERT_STRING_EQUAL(b.data, "Zo\xc3\xab a\nb \xef\xbf\xbd end");
	ras_buf_reset(&b);
	/* an overlong encoding of '<' is not let through as '<' */
	(void)ras_html_esc(&b, "\xc0\xbc");
	CU_ASSERT_PTR_NULL(strchr(b.data, '<'));
	ras_buf_reset(&b);
	CU_ASSERT_EQUAL(ras_html_esc(&b, NULL), 0);
	CU_ASSERT_EQUAL(b.len, 0);
	ras_buf_free(&b);
}

static void
html_urlenc_printf(void)
{
	struct ras_buf b = RAS_BUF_INIT(0);

	(void)ras_html_urlenc(&b, "local:https://x.org|REF 1&a=b");
	CU_ASSERT_STRING_EQUAL(b.data, "local%3Ahttps%3A%2F%2Fx.org%7CREF%201%26a%3Db");
	ras_buf_reset(&b);
	CU_ASSERT_EQUAL(ras_html_printf(&b, "<p id=\"%s\">%d %lld %zu %%</p>", "\"><img>", 7, 8LL,
	    (size_t)9), 0);
	CU_ASSERT_STRING_EQUAL(b.data, "<p id=\"&quot;&gt;&lt;img&gt;\">7 8 9 %</p>");
	ras_buf_reset(&b);
	CU_ASSERT_EQUAL(ras_html_printf(&b, "%x", 1), RAS_EINVALID);
	ras_buf_free(&b);
}

static const char *
key_pem(void)
{
	static char path[4200];
	const char *tmp = getenv("RAS_TEST_TMP");
	char cmd[9000];

	snprintf(path, sizeof(path), "%s/ui-unit-key-%d.pem", tmp ? tmp : "/tmp", (int)getpid());
	snprintf(cmd, sizeof(cmd), "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s "
	    "2>/dev/null", path);
	CU_ASSERT_EQUAL(system(cmd), 0);
	return path;
}

static void
oidc_keys(void)
{
	struct ras_buf pem = RAS_BUF_INIT(RAS_SECRET_MAX), jwk = RAS_BUF_INIT(0);
	struct ras_oidc_opts o = { "https://cis2.example", "client-1", NULL, 0, "kid-1",
		"https://rasd.example/callback", NULL, NULL, NULL, false };
	struct ras_oidc *c = NULL;
	const char *path = key_pem();
	json_t *j = NULL;

	CU_ASSERT_EQUAL_FATAL(ras_buf_read_file(&pem, path), 0);
	/* PEM in, a private JWK with every RSA member out */
	CU_ASSERT_EQUAL(ras_crypto_rsa_jwk(pem.data, pem.len, &jwk), 0);
	CU_ASSERT_EQUAL_FATAL(ras_json_parse(jwk.data, jwk.len, 0, &j), 0);
	CU_ASSERT_STRING_EQUAL(ras_json_str(j, "kty"), "RSA");
	for (const char *const *m = (const char *const[]){ "n", "e", "d", "p", "q", "dp", "dq", "qi", NULL };
	    *m; m++)
		CU_ASSERT_PTR_NOT_NULL(ras_json_str(j, *m));
	/* the client takes the PEM and the JWK alike */
	o.client_key = pem.data;
	o.client_key_len = pem.len;
	CU_ASSERT_EQUAL(ras_oidc_new(&o, &c), 0);
	ras_oidc_free(c);
	c = NULL;
	o.client_key = jwk.data;
	o.client_key_len = jwk.len;
	CU_ASSERT_EQUAL(ras_oidc_new(&o, &c), 0);
	ras_oidc_free(c);
	c = NULL;
	/* and refuses anything else, saying which option */
	o.client_key = "not a key";
	o.client_key_len = 9;
	CU_ASSERT_EQUAL(ras_oidc_new(&o, &c), RAS_EINVALID);
	CU_ASSERT_PTR_NULL(c);
	CU_ASSERT_PTR_NOT_NULL(strstr(ras_error_last(), "[ui] client_key"));
	json_decref(j);
	ras_buf_free(&pem);
	ras_buf_free(&jwk);
	remove(path);
}

static void
collect(const char *code, void *ctx)
{
	struct ras_buf *b = ctx;

	(void)ras_buf_printf(b, "%s;", code);
}

static void
oidc_roles(void)
{
	struct ras_oidc_identity id;
	struct ras_buf got = RAS_BUF_INIT(0);

	memset(&id, 0, sizeof(id));
	id.rbac_roles = json_pack("[{s:s, s:s}, {s:s, s:s}]",
	    "person_roleid", "1-1", "role_code", "S8000:G8000:R8000",
	    "person_roleid", "1-2", "role_code", "S8000:G8001:R8008");
	/* only the role selected at sign-in counts */
	snprintf(id.selected_role, sizeof(id.selected_role), "1-2");
	CU_ASSERT_EQUAL(ras_oidc_role_codes(&id, collect, &got), 1);
	CU_ASSERT_STRING_EQUAL(got.data, "S8000:G8001:R8008;");
	/* none selected: every role */
	ras_buf_reset(&got);
	id.selected_role[0] = '\0';
	CU_ASSERT_EQUAL(ras_oidc_role_codes(&id, collect, &got), 2);
	CU_ASSERT_STRING_EQUAL(got.data, "S8000:G8000:R8000;S8000:G8001:R8008;");
	/* a selected role that is not among them: none */
	ras_buf_reset(&got);
	snprintf(id.selected_role, sizeof(id.selected_role), "9-9");
	CU_ASSERT_EQUAL(ras_oidc_role_codes(&id, collect, &got), 0);
	ras_oidc_identity_release(&id);
	CU_ASSERT_PTR_NULL(id.rbac_roles);
	ras_buf_free(&got);
}

static const struct ras_test_case html_cases[] = {
	{ "escaping text and attributes", html_escape },
	{ "percent-encoding, escaping printf", html_urlenc_printf },
	{ NULL, NULL },
};
static const struct ras_test_case oidc_cases[] = {
	{ "client key: PEM or JWK", oidc_keys },
	{ "RBAC roles: the selected one", oidc_roles },
	{ NULL, NULL },
};

int
main(void)
{
	static const struct ras_test_suite suites[] = {
		{ "html", html_cases, NULL, NULL },
		{ "oidc", oidc_cases, NULL, NULL },
		{ NULL, NULL, NULL, NULL },
	};

	return ras_test_run_suites(suites);
}
