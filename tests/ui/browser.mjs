// The clinicians' pages in a real browser: Debian's chromium, headless,
// driven by puppeteer-core (run by tests/ui/run.sh, which starts rasd, the
// fake e-RS and the OpenID Connect provider).
//
//   node browser.mjs --base https://127.0.0.1:PORT --issuer URL --ubrn UBRN --twin UBRN
//                    --shots DIR --axe PATH/axe.min.js
//
// Prints one "ok - …" / "not ok - …" line per check and "N passed, N failed";
// exits 1 when a check failed.
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import puppeteer from 'puppeteer-core';

const { values: args } = parseArgs({
  options: {
    base: { type: 'string' }, issuer: { type: 'string' }, ubrn: { type: 'string' }, twin: { type: 'string' },
    shots: { type: 'string' }, axe: { type: 'string' },
  },
});
const ADVICE = 'Edited in the browser: please try a course of physiotherapy first and re-refer if the pain persists.';
let passed = 0;
let failed = 0;
function check(name, ok, detail) {
  if (ok) { passed++; console.log(`ok - ${name}`); } else { failed++; console.log(`not ok - ${name}${detail ? `: ${detail}` : ''}`); }
}

async function mode(m) {
  const r = await fetch(`${args.issuer}/test/mode`, { method: 'POST', body: m });
  await r.text();
}

async function axe(page, name) {
  await page.addScriptTag({ path: args.axe });
  const res = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return r.violations.map((v) => `${v.id} (${v.impact}): ${v.nodes.length} node(s): ${v.nodes[0].target.join(' ')}`);
  });
  check(`axe-core: no WCAG 2.1 AA violations on the ${name} page`, res.length === 0, res.join('; '));
}

async function shot(page, name) {
  await page.screenshot({ path: join(args.shots, `${name}.png`), fullPage: true });
}

async function h1(page) {
  return page.$eval('h1', (e) => e.textContent.trim()).catch(() => '');
}

// Sign in through the provider's pages as `login`; returns the page where
// rasd left the browser, and the last response.
async function signIn(context, login, start = '/worklist') {
  const page = await context.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.setDefaultNavigationTimeout(90000);   // two cores shared with the rest of the suite
  page.setDefaultTimeout(90000);
  await page.setBypassCSP(true);   // axe is injected; rasd's CSP is checked from headers
  await page.goto(args.base + start, { waitUntil: 'load' });
  await page.waitForSelector('input[name=login]', { timeout: 15000 });
  await page.type('input[name=login]', login);
  await page.type('input[name=password]', 'any password');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button.login-submit')]);
  let last = null;
  if (await page.$('input[name=prompt][value=consent]')) {
    [last] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button.login-submit')]);
  }
  return { page, last };
}

// A POST with the session's cookie but without (or with) a CSRF token, from outside the page.
function post(path, cookie, body) {
  return new Promise((resolve, reject) => {
    const u = new URL(args.base + path);
    const req = request({
      host: u.hostname, port: u.port, path: u.pathname, method: 'POST', rejectUnauthorized: false,
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(body);
  });
}

const profile = mkdtempSync(join(tmpdir(), 'rasd-chromium-'));
const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  acceptInsecureCerts: true,   // the pages' self-signed test certificate
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${profile}`],
});
try {
  // ---- sign-in failures, each in a fresh browser context -----------------------------
  const refusals = [
    ['expired ID token', 'expired', '555000000001', /could not confirm your identity/],
    ['ID token for another audience', 'wrong-audience', '555000000001', /could not confirm your identity/],
    ['unknown clinician (not in the register)', '', '555000000003', /not in this service's clinician register/],
    ['wrong role (receptionist)', '', '555000000004', /does not allow you to triage/],
  ];
  for (const [name, m, login, text] of refusals) {
    await mode(m);
    const ctx = await browser.createBrowserContext();
    const { page, last } = await signIn(ctx, login);
    const body = await page.$eval('main', (e) => e.textContent);
    check(`sign-in refused: ${name}`, last && last.status() === 403 && text.test(body) &&
      (await h1(page)) === 'You cannot sign in to rasd', `status ${last && last.status()}, ${body.slice(0, 200)}`);
    const cookies = await page.cookies();
    check(`no session after a refused sign-in (${name})`, !cookies.some((c) => c.name.includes('rasd-session')));
    if (m === 'expired') { await shot(page, '00-sign-in-refused'); await axe(page, 'sign-in refused'); }
    await ctx.close();
  }
  await mode('');

  // ---- a clinician signs in ---------------------------------------------------------------
  const ctx = await browser.createBrowserContext();
  const { page, last } = await signIn(ctx, '555000000001');
  check('a registered clinician signs in and lands on the worklist', new URL(page.url()).pathname === '/worklist' &&
    (await h1(page)) === 'Worklist', `${page.url()} ${last && last.status()}`);
  const cookies = await page.cookies();
  const session = cookies.find((c) => c.name === '__Host-rasd-session');
  check('the session cookie is Secure, HttpOnly, SameSite=Lax, __Host-', session && session.secure && session.httpOnly &&
    session.sameSite === 'Lax' && session.path === '/', JSON.stringify(session));
  await shot(page, '01-worklist');
  await axe(page, 'worklist');
  const row = await page.$(`a[href="/referral/${args.ubrn}"]`);
  check(`the worklist lists ${args.ubrn}`, row !== null);

  // ---- the referral -------------------------------------------------------------------------
  const [resp] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), row.click()]);
  const h = resp.headers();
  check('a patient page is sent with CSP, X-Frame-Options DENY and Cache-Control no-store',
    /default-src 'none'/.test(h['content-security-policy'] || '') && /frame-ancestors 'none'/.test(h['content-security-policy']) &&
    h['x-frame-options'] === 'DENY' && /no-store/.test(h['cache-control'] || ''), JSON.stringify(h));
  check('the referral page shows the patient banner and rasd\'s recommendation',
    (await page.$('#nhs-number')) !== null && (await page.$('#recommendation')) !== null && (await page.$('#audit-trail')) !== null);
  await shot(page, '02-referral');
  await axe(page, 'referral');

  // ---- decide: return with edited advice -------------------------------------------------------
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#decide-link')]);
  const prefilled = await page.$eval('#advice', (e) => e.value);
  const adviceShown = await page.evaluate(() => document.querySelector('#advice').value);
  check('the decision form carries rasd\'s advice, editable', prefilled.length > 20 && prefilled === adviceShown &&
    /date of birth|practice|form/i.test(prefilled), prefilled.slice(0, 100));
  await shot(page, '03-decide');
  await axe(page, 'decide');
  const csrfStatus = await post(`/referral/${args.ubrn}/decide`, `${session.name}=${session.value}`,
    'outcome=accept&advice=x');
  check('a form without the session\'s CSRF token is refused (403)', csrfStatus === 403, `status ${csrfStatus}`);
  await page.click('#outcome-return');
  await page.$eval('#advice', (e) => { e.value = ''; });
  await page.type('#advice', ADVICE);
  const [done] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#record')]);
  const notice = await page.$eval('#notice', (e) => e.textContent).catch(() => '');
  check('the return is recorded and the referral page says so', done.status() === 200 && /recorded/.test(notice),
    `${done.status()} ${page.url()} ${(await page.$eval('main', (e) => e.textContent)).slice(0, 300)}`);
  const trail = await page.$eval('#audit-trail', (e) => e.textContent);
  check('the audit trail shows the clinician\'s decision', /ui-decision/.test(trail) && /555000000001/.test(trail));
  await shot(page, '04-decided');
  await axe(page, 'referral after the decision');

  // ---- the worklist without it -------------------------------------------------------------------
  await page.goto(`${args.base}/worklist`, { waitUntil: 'load' });
  check(`${args.ubrn} has left the worklist`, (await page.$(`a[href="/referral/${args.ubrn}"]`)) === null);
  await shot(page, '05-worklist-after');
  await page.goto(`${args.base}/worklist?state=decided`, { waitUntil: 'load' });
  check(`${args.ubrn} is among the decided`, (await page.$(`a[href="/referral/${args.ubrn}"]`)) !== null);

  // ---- a restricted patient (the twins': run.sh marks them as PDS would) ---------------------------
  await page.goto(`${args.base}/worklist`, { waitUntil: 'load' });
  const twinRow = await page.$eval(`a[href="/referral/${args.twin}"]`, (a) => a.closest('tr').textContent).catch(() => '');
  check('the worklist marks a restricted patient', /Restricted/.test(twinRow), twinRow);
  await page.goto(`${args.base}/referral/${args.twin}`, { waitUntil: 'load' });
  const banner = await page.$eval('.rasd-banner', (e) => e.textContent);
  check('a restricted patient\'s address is hidden', /Hidden: this patient's record is restricted/.test(banner) &&
    !/NG24/.test(await page.content()), banner.replace(/\s+/g, ' '));
  await shot(page, '08-restricted');

  // ---- the twin of the same-rows check: the same return, by the page -------------------------------
  await page.goto(`${args.base}/referral/${args.twin}/decide`, { waitUntil: 'load' });
  await page.click('#outcome-return');
  await page.$eval('#advice', (e) => { e.value = ''; });
  await page.type('#advice', ADVICE);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('#record')]);
  check(`the page returns ${args.twin} too`, /recorded/.test(await page.$eval('#notice', (e) => e.textContent).catch(() => '')));

  // ---- the KPI report -------------------------------------------------------------------------------
  await page.goto(`${args.base}/report/kpi`, { waitUntil: 'load' });
  check('the KPI report page opens', (await h1(page)) === 'KPI report');
  await shot(page, '06-kpi');
  await axe(page, 'KPI report');
  const adminAsClinician = await page.goto(`${args.base}/admin/dead-letters`, { waitUntil: 'load' });
  check('the dead letters need the admin role (403 for a clinician)', adminAsClinician.status() === 403);

  // ---- sign out ---------------------------------------------------------------------------------------
  await page.goto(`${args.base}/worklist`, { waitUntil: 'load' });
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button.rasd-link-button')]);
  check('signing out ends the session', (await h1(page)) === 'You have signed out');
  const again = await post(`/referral/${args.ubrn}/decide`, `${session.name}=${session.value}`, 'outcome=accept&advice=x');
  check('the old session cookie no longer works', again === 403, `status ${again}`);
  await ctx.close();

  // ---- an admin: dead letters and requeue ------------------------------------------------------------
  const actx = await browser.createBrowserContext();
  const { page: ap } = await signIn(actx, '555000000002', '/admin/dead-letters');
  check('an admin signs in to the dead letters', (await h1(ap)) === 'Dead letters and failed e-RS outcomes',
    `${ap.url()} ${await h1(ap)}`);
  await shot(ap, '07-dead-letters');
  await axe(ap, 'dead letters');
  const requeue = await ap.$('button[id^="requeue-ers-"]');
  check('the parked e-RS outcome is listed with a Requeue button', requeue !== null);
  if (requeue) {
    await Promise.all([ap.waitForNavigation({ waitUntil: 'load' }), requeue.click()]);
    const note = await ap.$eval('#notice', (e) => e.textContent).catch(() => '');
    check('requeue: the outcome goes back to work', /was requeued/.test(note) &&
      (await ap.$('button[id^="requeue-ers-"]')) === null, note);
  }
  const wl = await ap.goto(`${args.base}/worklist`, { waitUntil: 'load' });
  check('an admin without a clinical role does not see referrals (403)', wl.status() === 403);
  await actx.close();
} catch (e) {
  check('the browser run completed', false, e.stack);
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
