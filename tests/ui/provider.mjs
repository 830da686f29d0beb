// A real OpenID Connect provider on loopback for the clinicians' pages'
// tests and the demo: the npm package oidc-provider, configured as NHS CIS2
// is (authorization code with PKCE, private_key_jwt client authentication,
// scope nationalrbacaccess giving nhsid_nrbac_roles and selected_roleid in
// userinfo, the SDS user id as the subject).  Its sign-in pages are
// oidc-provider's development interactions: any login name is the SDS user
// id, any password.
//
//   node provider.mjs --client-key PEM_PUBLIC_KEY --redirect URL --issuer-file FILE [--exit-with PID]
//
// It prints nothing but errors; the issuer URL goes to --issuer-file once it
// listens.  It exits on SIGTERM, or when process --exit-with PID has gone.
//
// To test how rasd refuses a bad ID token, POST /test/mode with a body of
// "expired" or "wrong-audience" (or "" for normal): the next token responses
// carry an ID token re-signed with the provider's own key, with exp in the
// past or aud another client.  Everything else is the real provider.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

import { decodeJwt, decodeProtectedHeader, importJWK, SignJWT } from 'jose';
import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    'client-key': { type: 'string' },
    'client-id': { type: 'string', default: 'rasd-ui' },
    redirect: { type: 'string' },
    'issuer-file': { type: 'string' },
    port: { type: 'string', default: '0' },
    'exit-with': { type: 'string' },
  },
});

// CIS2-like people: national RBAC roles (person_roleid, role_code as
// "S…:G…:R…", role_name, org_code).  R8000 Clinical Practitioner Access
// Role, R8008 Admin/Clinical Support Access Role, R8001 Nurse Access Role,
// R8009 Receptionist Access Role.
function role(id, code, name) {
  return { person_roleid: id, role_code: code, role_name: name, org_code: 'RX1' };
}
export const accounts = {
  // scripts/demo's clinician (its register has him)
  '687001000009': { name: 'Dr A Example', given: 'A', family: 'Example',
    roles: [role('687001000009-1', 'S8000:G8000:R8000', 'Clinical Practitioner Access Role')] },
  '555000000001': { name: 'Dr Alice Clinician', given: 'Alice', family: 'Clinician',
    roles: [role('555000000001-1', 'S8000:G8000:R8000', 'Clinical Practitioner Access Role')] },
  '555000000002': { name: 'Bob Admin', given: 'Bob', family: 'Admin',
    roles: [role('555000000002-1', 'S8000:G8001:R8008', 'Admin/Clinical Support Access Role')] },
  '555000000003': { name: 'Carol Unregistered', given: 'Carol', family: 'Unregistered',
    roles: [role('555000000003-1', 'S8000:G8000:R8000', 'Clinical Practitioner Access Role')] },
  '555000000004': { name: 'Dave Reception', given: 'Dave', family: 'Reception',
    roles: [role('555000000004-1', 'S8000:G8002:R8009', 'Receptionist Access Role')] },
  '555000000005': { name: 'Dr Erin Lead', given: 'Erin', family: 'Lead',
    roles: [role('555000000005-1', 'S8000:G8000:R8000', 'Clinical Practitioner Access Role'),
      role('555000000005-2', 'S8000:G8001:R8008', 'Admin/Clinical Support Access Role')] },
};

const clientJwk = createPublicKey(readFileSync(args['client-key'])).export({ format: 'jwk' });
clientJwk.alg = 'RS512';
clientJwk.use = 'sig';
clientJwk.kid = 'rasd-ui-1';
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingJwk = { ...privateKey.export({ format: 'jwk' }), kid: 'cis2-test-1', alg: 'RS256', use: 'sig' };

let mode = '';

const server = createServer();
server.listen(Number(args.port), '127.0.0.1', async () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: args['client-id'],
      redirect_uris: [args.redirect],
      response_types: ['code'],
      grant_types: ['authorization_code'],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS512',
      id_token_signed_response_alg: 'RS256',
      jwks: { keys: [clientJwk] },
    }],
    jwks: { keys: [signingJwk] },
    scopes: ['openid', 'profile', 'nationalrbacaccess'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'given_name', 'family_name'],
      nationalrbacaccess: ['nhsid_nrbac_roles', 'selected_roleid'],
    },
    enabledJWA: { clientAuthSigningAlgValues: ['RS256', 'RS512', 'PS256', 'ES256'] },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['rasd-ui-test-cookies'] },
    async findAccount(ctx, id) {
      const a = accounts[id];
      // An unknown login is still a person CIS2 knows (rasd's register is
      // what refuses them): give them a clinician role.
      const person = a || { name: `User ${id}`, given: 'User', family: id,
        roles: [role(`${id}-1`, 'S8000:G8000:R8000', 'Clinical Practitioner Access Role')] };
      return {
        accountId: id,
        async claims() {
          return {
            sub: id, name: person.name, given_name: person.given, family_name: person.family,
            nhsid_nrbac_roles: person.roles, selected_roleid: person.roles[0].person_roleid,
          };
        },
      };
    },
  });
  provider.proxy = false;
  // A misbehaving provider, on request: re-sign the ID token with our key.
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path !== '/token' || !mode || !ctx.body || !ctx.body.id_token) return;
    const claims = decodeJwt(ctx.body.id_token);
    const header = decodeProtectedHeader(ctx.body.id_token);
    const now = Math.floor(Date.now() / 1000);
    if (mode === 'expired') { claims.iat = now - 7200; claims.exp = now - 3600; }
    if (mode === 'wrong-audience') { claims.aud = 'another-client'; }
    const key = await importJWK(signingJwk, 'RS256');
    ctx.body = { ...ctx.body, id_token: await new SignJWT(claims).setProtectedHeader(header).sign(key) };
  });
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url === '/test/mode' && req.method === 'POST') {
      let body = '';
      req.on('data', (d) => { body += d; });
      req.on('end', () => { mode = body.trim(); res.end(`mode ${mode || 'normal'}\n`); });
      return;
    }
    callback(req, res);
  });
  writeFileSync(args['issuer-file'], `${issuer}\n`);
});

// Never left behind: gone when the process that started it is.
if (args['exit-with']) {
  setInterval(() => {
    try { process.kill(Number(args['exit-with']), 0); } catch { process.exit(0); }
  }, 1000).unref();
}
process.on('SIGTERM', () => process.exit(0));
