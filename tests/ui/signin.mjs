// scripts/demo: sign a demo clinician in to rasd's pages through the local
// CIS2-like provider (tests/ui/provider.mjs) in headless Chromium, print the
// worklist as the clinician sees it and save a screenshot.
//
//   node signin.mjs --base https://127.0.0.1:PORT --login SDS_USER_ID --shot FILE.png
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import puppeteer from 'puppeteer-core';

const { values: args } = parseArgs({
  options: { base: { type: 'string' }, login: { type: 'string' }, shot: { type: 'string' } },
});
const profile = mkdtempSync(join(tmpdir(), 'rasd-demo-chromium-'));
const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium', headless: true, acceptInsecureCerts: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${profile}`],
});
let rc = 0;
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  page.setDefaultTimeout(90000);
  await page.goto(`${args.base}/worklist`, { waitUntil: 'load' });
  console.log(`   rasd sent the browser to the provider: ${new URL(page.url()).origin}`);
  await page.type('input[name=login]', args.login);
  await page.type('input[name=password]', 'demo');
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button.login-submit')]);
  if (await page.$('input[name=prompt][value=consent]')) {
    await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.click('button.login-submit')]);
  }
  const who = await page.$eval('.rasd-signed-in', (e) => e.textContent.trim()).catch(() => '');
  console.log(`   back at ${page.url()}: ${who}`);
  const rows = await page.$$eval('#worklist tbody tr', (trs) => trs.map((tr) =>
    [...tr.querySelectorAll('td')].slice(2).map((td) => td.textContent.trim().replace(/\s+/g, ' ')).join(' | ')));
  console.log(`   the worklist: ${rows.length} referral(s) awaiting a decision (UBRN | service | priority | recommendation | due | clock)`);
  for (const r of rows) console.log(`     ${r}`);
  await page.screenshot({ path: args.shot, fullPage: true });
  console.log(`   screenshot: ${args.shot}`);
} catch (e) {
  console.error(`demo sign-in failed: ${e.message}`);
  rc = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(rc);
