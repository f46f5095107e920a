import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';

/**
 * `GET <prefix>setup`: one page that walks a person through adding a second factor, without ever
 * handling a token. They arrive signed out and sign in with the identity provider (setup/login,
 * when `setup.oidc` is on) or through a single-use invite link (`#invite=…`); from then on the
 * page's calls carry only the HttpOnly setup-session cookie, which its script cannot read (see
 * src/setup/door.ts). Steps: sign in → your factors → add an authenticator app (scan → confirm →
 * save recovery codes) or a security key / passkey → remove one (after "confirm it is you").
 *
 * Each step is a real <form> (Enter submits), the focus moves to each new step's heading and to
 * errors (role=alert), and errors are sentences for people chosen by the API's stable `code`; the
 * API's technical `detail` is kept under "Technical detail".
 *
 * No inline script and nothing from another origin. The page loads two same-origin scripts under
 * the prefix, `setup.js` (below) and `webauthn-browser.js` (the @simplewebauthn/browser bundle,
 * served as the package ships it), each tagged with a nonce drawn for this response: the CSP allows
 * exactly those two elements, so an injected <script> — inline or pointing at a path a backend
 * serves on the same origin — does not run. The one inline style is allowed by its hash. Server
 * data only ever reaches the page through textContent and an <img> data: URL.
 */

const STYLE = `
body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 0; } h3 { font-size: 1rem; }
section { border: 1px solid #bbb; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
[hidden] { display: none !important; }
label { display: block; margin-top: .6rem; }
input[type=text] { width: 100%; box-sizing: border-box; font: 16px monospace; padding: .4rem; }
button, .button { font-size: 16px; padding: .4rem 1rem; margin: .5rem .4rem 0 0; cursor: pointer; }
.button { display: inline-block; border: 1px solid #555; border-radius: 4px; color: inherit; text-decoration: none; background: #eee; }
:focus-visible { outline: 3px solid #1a5fb4; outline-offset: 2px; }
#qr { width: 300px; height: 300px; image-rendering: pixelated; display: block; margin: .5rem 0; }
#manual, #codes { font: 18px monospace; background: #f4f4f4; padding: .5rem; white-space: pre-wrap; letter-spacing: .05em; }
#alert { color: #8a1c1c; font-weight: 600; } #alert:empty, #status:empty { display: none; }
#status { color: #1c6b2a; }
.check { display: flex; gap: .5rem; align-items: center; } .check input { width: auto; }
#factors-list li { margin: .3rem 0; }
@media print { body > *, main > * { display: none !important; } main, #step-codes { display: block !important; border: 0; } #step-codes button, #step-codes form { display: none !important; } }
`;

const SCRIPT = `
(() => {
  'use strict';
  const base = location.pathname.replace(/setup$/, '');
  const api = base + 'setup/';
  const $ = (id) => document.getElementById(id);
  const webauthn = window.SimpleWebAuthnBrowser;
  const STEPS = ['step-signin', 'step-invite', 'step-factors', 'step-add', 'step-scan', 'step-codes', 'step-confirm'];
  // Nothing here is a credential: the setup session and any step-up live in HttpOnly cookies.
  let factorId = '';
  let codes = [];
  let enrolled = false;
  let freshUntil = 0;
  let pending = null;
  let inviteToken = '';

  // What a person is told for each stable code of the API; the technical detail stays under <details>.
  const SAY = {
    mfa_invalid: 'That code was not accepted. Type the code your authenticator app shows now (if you just used one, wait for the next), or an unused recovery code.',
    step_up_required: 'This change needs you to confirm it is you first.',
    mfa_required: 'This change needs you to confirm it is you first.',
    session_invalid: 'Your confirmation has expired. Confirm it is you again.',
    mfa_locked: 'Too many wrong codes. Wait a few minutes before you try again.',
    rate_limited: 'Too many attempts. Wait a minute before you try again.',
    mfa_not_enrolled: 'You have no second factor of that kind yet.',
    mfa_method_not_accepted: 'That kind of second factor cannot be used here.',
    factor_expired: 'That second factor is past its lifetime. Add a new one.',
    forbidden: 'You are not signed in to this page any more. Sign in again, or open a new invite link.',
    not_found: 'That item no longer exists. Reload the page.',
    invalid_request: 'The gateway could not accept that. Check what you typed and try again.',
    store_unavailable: 'The gateway cannot save changes right now. Try again in a minute.',
    overloaded: 'The gateway is busy. Try again in a minute.',
    internal_error: 'Something went wrong on the gateway. Try again, and tell your administrator if it keeps happening.',
  };

  class ApiError extends Error {
    constructor(code, detail, retryAfter) { super(detail); this.code = code; this.detail = detail; this.retryAfter = retryAfter; }
  }

  function show(id) {
    $(id).hidden = false;
    const heading = $(id).querySelector('h2');
    if (heading) heading.focus();
  }
  function hide(id) { $(id).hidden = true; }
  function clearAlert() { $('alert').textContent = ''; $('alert-detail').hidden = true; }
  function say(text) { clearAlert(); $('status').textContent = text; }
  function alertPerson(text, detail) {
    $('status').textContent = '';
    $('alert').textContent = text;
    $('alert-detail-text').textContent = detail || '';
    $('alert-detail').hidden = !detail;
    $('alert').focus();
  }
  function failed(e, context) {
    if (e instanceof ApiError) {
      let text = (context && context[e.code]) || SAY[e.code] || 'The gateway refused this request.';
      if (e.code === 'mfa_locked' && e.retryAfter) text = 'Too many wrong codes. Wait ' + e.retryAfter + ' seconds before you try again.';
      if (e.code === 'forbidden' && !(context && context.forbidden)) signedOut();
      alertPerson(text, e.detail);
    } else {
      alertPerson('Something went wrong: ' + (e && e.message ? e.message : 'unknown error') + '.');
    }
  }

  async function call(method, path, body, headers) {
    const h = Object.assign({ 'x-mfa-setup': '1' }, headers || {});
    if (body !== undefined) h['content-type'] = 'application/json';
    const res = await fetch(api + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'same-origin' });
    const text = await res.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch { data = {}; }
    if (!res.ok) throw new ApiError(data.code || 'internal_error', data.detail || res.statusText, Number(res.headers.get('retry-after')) || 0);
    return data;
  }

  function signedOut() {
    STEPS.forEach(hide);
    $('who').hidden = true;
    show('step-signin');
  }

  async function start() {
    const hash = location.hash;
    if (hash.startsWith('#invite=')) {
      inviteToken = decodeURIComponent(hash.slice('#invite='.length));
      // The link's token leaves the address bar and history at once.
      history.replaceState(null, '', location.pathname);
    }
    let state;
    try { state = await call('GET', 'session'); } catch (e) { failed(e); return; }
    $('signin-offer').hidden = !state.signin_available;
    $('signin-none').hidden = state.signin_available;
    if (inviteToken) { STEPS.forEach(hide); show('step-invite'); return; }
    if (!state.signed_in) { signedOut(); return; }
    await signedIn(state);
  }

  async function signedIn(state) {
    $('subject').textContent = state.subject;
    $('who').hidden = false;
    hide('step-signin'); hide('step-invite');
    await loadFactors();
    $('step-add').hidden = false;
    show('step-factors');
  }

  async function loadFactors() {
    const data = await call('GET', 'api/factors');
    const list = $('factors-list');
    list.replaceChildren();
    const factors = (data.factors || []).filter((f) => f.status === 'active');
    enrolled = factors.length > 0;
    for (const f of factors) {
      const li = document.createElement('li');
      const kind = f.type === 'webauthn' ? 'Security key or passkey' : f.type === 'totp' ? 'Authenticator app' : f.type === 'hotp' ? 'Hardware token (counter)' : f.type === 'email' ? 'E-mail' : f.type === 'sms' ? 'Text message' : f.type;
      // A default label repeats the kind ("Authenticator app: Authenticator app"): show it once.
      li.textContent = (!f.label || f.label === kind ? kind : kind + ': ' + f.label) + ' ';
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', 'Remove ' + kind + ' ' + (f.label || ''));
      remove.dataset.factor = f.id;
      remove.addEventListener('click', () => askRemove(f.id, kind + ' “' + (f.label || 'unnamed') + '”'));
      li.appendChild(remove);
      list.appendChild(li);
    }
    $('factors-empty').hidden = enrolled;
    $('recovery-left').textContent = enrolled ? 'Unused recovery codes: ' + data.recovery_codes_remaining + '.' : '';
  }

  // Changes to someone who already has a second factor need it first (within 5 minutes).
  function needsConfirmation() { return enrolled && Date.now() / 1000 >= freshUntil - 5; }
  function confirmThen(what, action) {
    pending = action;
    $('confirm-what').textContent = what;
    $('confirm-code').value = '';
    $('confirm-passkey').hidden = !(webauthn && webauthn.browserSupportsWebAuthn());
    show('step-confirm');
  }
  async function run(what, action) {
    clearAlert();
    if (needsConfirmation()) return confirmThen(what, action);
    try { await action(); } catch (e) {
      if (e instanceof ApiError && (e.code === 'step_up_required' || e.code === 'session_invalid')) { freshUntil = 0; return confirmThen(what, action); }
      failed(e);
    }
  }
  async function confirmed(data) {
    freshUntil = data.valid_until;
    hide('step-confirm');
    const action = pending;
    pending = null;
    if (action) { try { await action(); } catch (e) { failed(e); } }
  }

  $('invite-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearAlert();
    try {
      const state = await call('POST', 'invite', { token: inviteToken });
      inviteToken = '';
      await signedIn(state);
      say('Signed in as ' + state.subject + '.');
    } catch (e) {
      inviteToken = '';
      hide('step-invite');
      failed(e, { forbidden: 'This invite link was already used or has expired. Ask your administrator for a new one.' });
      show('step-signin');
      $('alert').focus();
    }
  });

  $('logout-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    try { await call('POST', 'logout'); } catch (e) { /* signed out either way */ }
    freshUntil = 0;
    signedOut();
    say('You are signed out.');
  });

  $('app-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run('add an authenticator app', async () => {
      const data = await call('POST', 'api/totp/enroll');
      factorId = data.factor_id;
      $('qr').src = data.qr_png;
      $('manual').textContent = data.manual_key;
      $('code').value = '';
      hide('step-add');
      show('step-scan');
      $('code').focus();
    });
  });

  $('scan-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearAlert();
    try {
      const data = await call('POST', 'api/totp/confirm', { factor_id: factorId, code: $('code').value.trim() });
      hide('step-scan');
      $('qr').removeAttribute('src');
      $('manual').textContent = '';
      await added('Authenticator app added.', data.recovery_codes);
    } catch (e) {
      failed(e, { mfa_invalid: 'That code was not accepted. Type the 6-digit code your app shows now; if it just changed, wait for the next one.' });
    }
  });

  $('webauthn-form').addEventListener('submit', (event) => {
    event.preventDefault();
    run('add a security key or passkey', async () => {
      if (!webauthn || !webauthn.browserSupportsWebAuthn()) throw new Error('this browser does not support security keys or passkeys');
      const options = await call('POST', 'api/webauthn/register/options');
      const response = await webauthn.startRegistration({ optionsJSON: options });
      const label = $('webauthn-label').value.trim();
      const data = await call('POST', 'api/webauthn/register/verify', label ? { response, label } : { response });
      await added('Security key or passkey added (' + data.label + ').', data.recovery_codes);
    });
  });

  async function added(text, newCodes) {
    await loadFactors();
    if (Array.isArray(newCodes)) {
      codes = newCodes;
      $('codes').textContent = codes.join('\\n');
      $('codes-saved').checked = false;
      hide('step-add');
      show('step-codes');
      say(text + ' Save your recovery codes now: they are shown only once.');
    } else {
      $('step-add').hidden = false;
      show('step-factors');
      say(text);
    }
  }

  $('codes-copy').addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(codes.join('\\n') + '\\n'); say('Recovery codes copied.'); }
    catch { alertPerson('This browser did not allow copying. Select the codes and copy them, or download them.'); }
  });
  $('codes-download').addEventListener('click', () => {
    const text = 'Recovery codes for ' + $('subject').textContent + ' (' + location.host + ')\\nEach works once, in place of a code from your authenticator.\\n\\n' + codes.join('\\n') + '\\n';
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = 'recovery-codes.txt';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
    say('Recovery codes downloaded as recovery-codes.txt.');
  });
  $('codes-print').addEventListener('click', () => window.print());
  $('codes-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!$('codes-saved').checked) { alertPerson('Tick the box once you have saved the codes: they will not be shown again.'); $('codes-saved').focus(); return; }
    codes = [];
    $('codes').textContent = '';
    hide('step-codes');
    $('step-add').hidden = false;
    show('step-factors');
    say('Done. Your second factor is ready.');
  });

  function askRemove(id, name) {
    run('remove ' + name, async () => {
      await call('DELETE', 'api/factors/' + encodeURIComponent(id));
      await loadFactors();
      show('step-factors');
      say('Removed ' + name + '.');
    });
  }

  $('confirm-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    clearAlert();
    const code = $('confirm-code').value.trim();
    if (!code) { alertPerson('Enter the 6-digit code from your authenticator app, or a recovery code.'); $('confirm-code').focus(); return; }
    try { await confirmed(await call('POST', 'api/verify', undefined, { 'x-mfa-token': code })); }
    catch (e) { failed(e); }
  });
  $('confirm-passkey').addEventListener('click', async () => {
    clearAlert();
    try {
      const options = await call('POST', 'api/webauthn/authenticate/options');
      const response = await webauthn.startAuthentication({ optionsJSON: options });
      await confirmed(await call('POST', 'api/webauthn/authenticate/verify', { response }));
    } catch (e) { failed(e); }
  });
  $('confirm-cancel').addEventListener('click', () => { pending = null; hide('step-confirm'); show('step-factors'); });

  // An invite link opened in a tab already on this page changes only the fragment: no reload.
  window.addEventListener('hashchange', () => { if (location.hash.startsWith('#invite=')) start(); });
  start();
})();
`;

function cspHash(text: string): string {
  return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
}

function page(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Set up a second factor</title>
<style>${STYLE}</style>
<script nonce="${nonce}" src="webauthn-browser.js" defer></script>
<script nonce="${nonce}" src="setup.js" defer></script>
</head>
<body>
<header>
<h1>Set up a second factor</h1>
<form id="logout-form"><p id="who" hidden>Signed in as <strong id="subject"></strong>. <button type="submit">Sign out</button></p></form>
</header>
<main>
<p id="alert" role="alert" tabindex="-1"></p>
<details id="alert-detail" hidden><summary>Technical detail</summary><p id="alert-detail-text"></p></details>
<p id="status" role="status" aria-live="polite"></p>

<section id="step-signin" hidden aria-labelledby="signin-h">
  <h2 id="signin-h" tabindex="-1">Sign in</h2>
  <p>To add or change the second factors of your account, first sign in.</p>
  <p id="signin-offer"><a id="signin" class="button" href="setup/login">Sign in with your organisation’s account</a></p>
  <p id="signin-none" hidden>Ask your administrator for an invite link to this page. It works once, for 10 minutes.</p>
</section>

<section id="step-invite" hidden aria-labelledby="invite-h">
  <h2 id="invite-h" tabindex="-1">You were invited to set up a second factor</h2>
  <form id="invite-form">
    <p>This invite link works once. Continue to sign in with it.</p>
    <button type="submit">Continue</button>
  </form>
</section>

<section id="step-factors" hidden aria-labelledby="factors-h">
  <h2 id="factors-h" tabindex="-1">Your second factors</h2>
  <p id="factors-empty">You have none yet. Add one below.</p>
  <ul id="factors-list"></ul>
  <p id="recovery-left"></p>
</section>

<section id="step-confirm" hidden aria-labelledby="confirm-h">
  <h2 id="confirm-h" tabindex="-1">Confirm it is you</h2>
  <form id="confirm-form">
    <p>To <span id="confirm-what"></span>, confirm with a second factor you already have.</p>
    <label for="confirm-code">Enter the 6-digit code from your authenticator app, or a recovery code:</label>
    <input id="confirm-code" type="text" inputmode="text" autocomplete="one-time-code" autocapitalize="off" spellcheck="false" maxlength="32">
    <button type="submit">Confirm</button>
    <button type="button" id="confirm-passkey">Use a security key or passkey instead</button>
    <button type="button" id="confirm-cancel">Cancel</button>
  </form>
</section>

<section id="step-add" hidden aria-labelledby="add-h">
  <h2 id="add-h" tabindex="-1">Add a second factor</h2>
  <form id="app-form">
    <h3>Authenticator app</h3>
    <p>An app on your phone (for example Google Authenticator, Microsoft Authenticator, FreeOTP) shows a new 6-digit code every 30 seconds.</p>
    <button type="submit" id="enroll">Add an authenticator app</button>
  </form>
  <form id="webauthn-form">
    <h3>Security key or passkey</h3>
    <label for="webauthn-label">A name for it, to tell it apart later (optional):</label>
    <input id="webauthn-label" type="text" maxlength="64" autocomplete="off">
    <button id="webauthn-add" type="submit">Add a security key or passkey</button>
  </form>
</section>

<section id="step-scan" hidden aria-labelledby="scan-h">
  <h2 id="scan-h" tabindex="-1">Scan this code with your authenticator app</h2>
  <img id="qr" alt="QR code to scan with your authenticator app" width="300" height="300">
  <p>Cannot scan? In the app, choose to enter a key by hand, pick “time-based”, and type this key:</p>
  <p id="manual"></p>
  <form id="scan-form">
    <label for="code">Enter the 6-digit code your app shows now:</label>
    <input id="code" type="text" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{6,8}" maxlength="8" required>
    <button type="submit">Confirm</button>
  </form>
</section>

<section id="step-codes" hidden aria-labelledby="codes-h">
  <h2 id="codes-h" tabindex="-1">Save your recovery codes</h2>
  <p>If you lose your device, each of these codes works once in place of a code. They are shown only this once: copy, download or print them, and keep them somewhere safe.</p>
  <pre id="codes"></pre>
  <button type="button" id="codes-copy">Copy</button>
  <button type="button" id="codes-download">Download (.txt)</button>
  <button type="button" id="codes-print">Print</button>
  <form id="codes-form">
    <p class="check"><input type="checkbox" id="codes-saved"><label for="codes-saved">I have saved these recovery codes somewhere safe</label></p>
    <button type="submit">Done</button>
  </form>
</section>
</main>
</body>
</html>
`;
}

/**
 * A page of its own for the sign-in endpoints' outcomes a browser lands on (a refused or expired
 * callback, sign-in off): no script at all, one sentence, and the way back.
 */
export function serveSetupNotice(res: ServerResponse, status: number, title: string, text: string, policy: { readonly mfa: { readonly pathPrefix: string } }): void {
  const body = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p role="alert">${escapeHtml(text)}</p>
<p><a class="button" href="${escapeHtml(policy.mfa.pathPrefix)}setup">Back to the setup page</a></p>
</main>
</body>
</html>
`;
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': ["default-src 'none'", `style-src ${cspHash(STYLE)}`, "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'"].join('; '),
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The setup page's own files under the prefix, served without a bearer like the page itself. */
export const SETUP_ASSETS = ['setup.js', 'webauthn-browser.js'] as const;
export type SetupAsset = (typeof SETUP_ASSETS)[number];

/** The browser bundle as the package ships it, read once on first use. */
let bundle: Buffer | undefined;
function webauthnBundle(): Buffer {
  // The package exports only its entry points: find the bundle beside the CommonJS one.
  const entry = createRequire(import.meta.url).resolve('@simplewebauthn/browser');
  bundle ??= readFileSync(join(dirname(entry), '..', 'dist', 'bundle', 'index.umd.min.js'));
  return bundle;
}

const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'cross-origin-resource-policy': 'same-origin',
} as const;

/** Sends the page with a fresh nonce, and a CSP that runs exactly its two script elements. */
export function serveSetupPage(res: ServerResponse): void {
  const nonce = randomBytes(16).toString('base64');
  const body = page(nonce);
  res.writeHead(200, {
    ...COMMON_HEADERS,
    'content-type': 'text/html; charset=utf-8',
    'content-security-policy': [
      "default-src 'none'",
      `script-src 'nonce-${nonce}'`,
      `style-src ${cspHash(STYLE)}`,
      'img-src data:',
      "connect-src 'self'",
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

/** The page's own script, for tests that read it. */
export const SETUP_SCRIPT = SCRIPT;

export function serveSetupAsset(res: ServerResponse, asset: SetupAsset): void {
  const body = asset === 'setup.js' ? Buffer.from(SCRIPT, 'utf8') : webauthnBundle();
  res.writeHead(200, { ...COMMON_HEADERS, 'content-type': 'text/javascript; charset=utf-8', 'content-length': body.length });
  res.end(body);
}
