import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { CHROMIUM, missingBinary } from '../../support/binaries.js';
import { launchBrowser, type Browser } from '../../support/browser.js';
import { oathTotp, wrongTotp } from '../../support/otp.js';
import { REPO } from '../../support/serve.js';
import { startSigninRig, type SigninRig } from './signin-rig.js';

/**
 * The setup page end to end in headless Chromium, as a person would use it: sign in through a
 * real OIDC provider, add an authenticator app from its manual key (codes from oathtool), confirm,
 * see and download the 10 recovery codes, remove the factor after "confirm it is you", sign out;
 * then an invite link, refused the second time. Keyboard paths: Enter submits each form, the focus
 * lands on each new step's heading and on errors. Screenshots go to test-output/setup-page/.
 */

const skip = missingBinary(CHROMIUM, 'chromium');
const SHOTS = join(REPO, 'test-output', 'setup-page');

describe('the setup page in a real browser, signed in through a real OIDC provider', { skip, timeout: 180_000 }, () => {
  let rig: SigninRig;
  let browser: Browser;
  let dir: string;
  let secret = '';
  let codes: string[] = [];

  async function shot(t: TestContext, name: string): Promise<void> {
    const path = join(SHOTS, `${name}.png`);
    await browser.page.screenshot({ path, fullPage: true });
    t.diagnostic(`screenshot: ${path}`);
  }
  const focused = () => browser.page.evaluate<string>("document.activeElement ? document.activeElement.id : ''");
  const text = async (selector: string) => ((await browser.page.textContent(selector)) ?? '').trim();

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    dir = mkdtempSync(join(tmpdir(), 'mfa-setup-page-'));
    rig = await startSigninRig();
    browser = await launchBrowser(dir);
  });
  after(async () => {
    await browser?.close();
    await rig?.close();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  test('signed out: the page offers sign-in, its heading has the focus, no field asks for a token', async (t) => {
    const page = browser.page;
    await page.goto(`${rig.origin}/.mfa/setup`);
    await page.locator('#step-signin').waitFor();
    assert.equal(await focused(), 'signin-h');
    assert.equal(await page.locator('textarea, #bearer').count(), 0);
    assert.equal(await page.getAttribute('#signin', 'href'), 'setup/login');
    await shot(t, '01-signed-out');
  });

  test('sign in at the issuer (its login form, Enter) and come back signed in, with no factor yet', async (t) => {
    const page = browser.page;
    await page.click('#signin');
    await page.locator('#login').waitFor();
    assert.ok(page.url().startsWith(`${rig.idp.issuer}/interaction/`), page.url());
    await page.fill('#login', 'alice');
    await page.press('#login', 'Enter');
    await page.locator('#step-factors').waitFor();
    assert.equal(page.url(), `${rig.origin}/.mfa/setup`);
    assert.equal(await text('#subject'), 'alice');
    assert.equal(await text('#factors-empty'), 'You have none yet. Add one below.');
    assert.equal(await focused(), 'factors-h');
    const cookies = await page.context().cookies(`${rig.origin}/.mfa/setup`);
    const session = cookies.find((c) => c.name === 'mfa_setup')!;
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/.mfa/setup');
    assert.equal(await page.evaluate<string>('document.cookie'), '', 'the page script cannot read its session');
    await shot(t, '02-signed-in');
  });

  test('add an authenticator app: the manual key, a code from oathtool typed with Enter, then 10 recovery codes', async (t) => {
    const page = browser.page;
    await page.click('#enroll');
    await page.locator('#step-scan').waitFor();
    assert.equal(await focused(), 'code', 'the code field is ready to type in');
    secret = (await text('#manual')).replaceAll(' ', '');
    assert.match(secret, /^[A-Z2-7]{32}$/);
    assert.match((await page.getAttribute('#qr', 'src'))!, /^data:image\/png;base64,/);
    await shot(t, '03-scan');
    await page.fill('#code', oathTotp(secret, rig.clock()));
    await page.press('#code', 'Enter');
    await page.locator('#step-codes').waitFor();
    assert.equal(await focused(), 'codes-h');
    codes = (await text('#codes')).split('\n');
    assert.equal(codes.length, 10);
    assert.equal(new Set(codes).size, 10);
    assert.equal(await text('#status'), 'Authenticator app added. Save your recovery codes now: they are shown only once.');
    await shot(t, '04-recovery-codes');
  });

  test('the recovery codes download as a .txt file holding exactly them; they go only after the confirmation box', async (t) => {
    const page = browser.page;
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#codes-download')]);
    assert.equal(download.suggestedFilename(), 'recovery-codes.txt');
    const saved = join(SHOTS, 'recovery-codes.txt');
    await download.saveAs(saved);
    const content = readFileSync(saved, 'utf8');
    rmSync(saved);
    assert.equal(content, `Recovery codes for alice (localhost:${rig.port})\nEach works once, in place of a code from your authenticator.\n\n${codes.join('\n')}\n`);
    // "Done" without the box: the codes stay, the person is told why, and the box has the focus.
    await page.click('#codes-form button[type=submit]');
    assert.equal(await text('#alert'), 'Tick the box once you have saved the codes: they will not be shown again.');
    assert.equal(await focused(), 'codes-saved');
    assert.equal((await text('#codes')).split('\n').length, 10);
    await shot(t, '05-codes-not-confirmed');
    await page.check('#codes-saved');
    await page.press('#codes-saved', 'Enter');
    await page.locator('#step-codes').waitFor({ state: 'hidden' });
    assert.equal(await text('#codes'), '');
    assert.equal(await page.locator('#factors-list li').count(), 1);
    assert.match(await text('#factors-list li'), /^Authenticator app\s*Remove$/);
    assert.equal(await text('#recovery-left'), 'Unused recovery codes: 10.');
  });

  test('remove it: the page asks to confirm with exactly what to type; a wrong code is said in words; the right one removes it', async (t) => {
    const page = browser.page;
    await page.click('#factors-list li button');
    await page.locator('#step-confirm').waitFor();
    assert.equal(await focused(), 'confirm-h');
    assert.equal(await text('label[for=confirm-code]'), 'Enter the 6-digit code from your authenticator app, or a recovery code:');
    assert.match(await text('#confirm-form p'), /^To remove Authenticator app “.+”, confirm with a second factor you already have\.$/);
    rig.clock.advanceStep();
    await page.fill('#confirm-code', wrongTotp(secret, rig.clock()));
    await page.press('#confirm-code', 'Enter');
    await page.locator('#alert', { hasText: 'not accepted' }).waitFor();
    assert.equal(await text('#alert'), 'That code was not accepted. Type the code your authenticator app shows now (if you just used one, wait for the next), or an unused recovery code.');
    assert.equal(await focused(), 'alert');
    assert.equal(await text('#alert-detail-text'), 'the second factor was not accepted', 'the API detail stays under Technical detail');
    await shot(t, '06-wrong-code');
    await page.fill('#confirm-code', oathTotp(secret, rig.clock()));
    await page.press('#confirm-code', 'Enter');
    await page.locator('#status', { hasText: 'Removed' }).waitFor();
    assert.equal(await page.locator('#factors-list li').count(), 0);
    assert.equal(await text('#alert'), '');
    await shot(t, '07-removed');
  });

  test('sign out: back to the sign-in step, and the old session cookie opens nothing', async () => {
    const page = browser.page;
    await page.click('#logout-form button');
    await page.locator('#step-signin').waitFor();
    assert.equal(await text('#status'), 'You are signed out.');
    const left = (await page.context().cookies(`${rig.origin}/.mfa/setup/api`)).filter((c) => c.name.startsWith('mfa_setup'));
    assert.deepEqual(left, []);
  });

  test('an invite link signs the person in once; opened a second time it is refused with a clear sentence', async (t) => {
    const page = browser.page;
    const link = await rig.invite('bob');
    await page.goto(link);
    await page.locator('#step-invite').waitFor();
    assert.equal(page.url(), `${rig.origin}/.mfa/setup`, 'the token left the address bar');
    assert.equal(await focused(), 'invite-h');
    await shot(t, '08-invite');
    await page.press('#invite-form button', 'Enter');
    await page.locator('#step-factors').waitFor();
    assert.equal(await text('#subject'), 'bob');
    await page.goto(link);
    await page.locator('#step-invite').waitFor();
    await page.click('#invite-form button');
    await page.locator('#alert', { hasText: 'invite' }).waitFor();
    assert.equal(await text('#alert'), 'This invite link was already used or has expired. Ask your administrator for a new one.');
    assert.equal(await focused(), 'alert');
    await shot(t, '09-invite-used');
  });
});
