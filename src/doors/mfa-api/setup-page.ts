import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';

/**
 * `GET <prefix>setup`: one page that walks a user through adding a second factor by calling the
 * JSON endpoints with a bearer token the user pastes: an authenticator app (enroll → scan → confirm
 * → save recovery codes) or a security key / passkey (WebAuthn register, and "confirm with a
 * passkey" as the step-up for changes once one exists).
 *
 * No inline script and nothing from another origin. The page loads two same-origin scripts under
 * the prefix, `setup.js` (below) and `webauthn-browser.js` (the @simplewebauthn/browser bundle,
 * served as the package ships it), each tagged with a nonce drawn for this response: the CSP allows
 * exactly those two elements, so an injected <script> — inline or pointing at a path a backend
 * serves on the same origin — does not run. The one inline style is allowed by its hash. Server
 * data only ever reaches the page through textContent and an <img> data: URL.
 */

const STYLE = `
body { font: 15px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
section { border: 1px solid #ccc; border-radius: 6px; padding: .8rem 1rem; margin: 1rem 0; }
section[hidden] { display: none; }
textarea, input { width: 100%; box-sizing: border-box; font: 14px monospace; padding: .4rem; }
button { font-size: 15px; padding: .4rem 1rem; margin-top: .5rem; cursor: pointer; }
#qr { width: 300px; height: 300px; image-rendering: pixelated; display: block; margin: .5rem 0; }
#manual, #codes { font: 16px monospace; background: #f4f4f4; padding: .5rem; white-space: pre-wrap; }
#status { min-height: 1.5rem; color: #8a1c1c; } #status.ok { color: #1c6b2a; }
`;

const SCRIPT = `
(() => {
  const base = location.pathname.replace(/setup$/, '');
  const $ = (id) => document.getElementById(id);
  const webauthn = window.SimpleWebAuthnBrowser;
  let factorId = '';
  // A session from "confirm with a passkey": the step-up for the calls after it. Kept in memory only.
  let session = '';
  function say(text, ok) { $('status').textContent = text; $('status').className = ok ? 'ok' : ''; }
  function stepUp() {
    const current = $('current').value.trim();
    if (current) return { 'x-mfa-token': current };
    return session ? { 'x-session-token': session } : undefined;
  }
  async function call(method, path, body, extra) {
    const headers = Object.assign({ authorization: 'Bearer ' + $('bearer').value.trim() }, extra || {});
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    const text = await res.text();
    let data = {};
    try { data = text ? JSON.parse(text) : {}; } catch { data = {}; }
    if (!res.ok) throw new Error((data.detail || res.statusText) + (data.hint ? ' — ' + data.hint : ''));
    return data;
  }
  function showCodes(codes, done) {
    if (Array.isArray(codes)) {
      $('codes').textContent = codes.join('\\n');
      $('step-codes').hidden = false;
      say(done + ' Save your recovery codes now: they are shown only once.', true);
    } else {
      say(done, true);
    }
  }
  $('enroll').addEventListener('click', async () => {
    say('');
    try {
      const data = await call('POST', 'totp/enroll', undefined, stepUp());
      factorId = data.factor_id;
      $('qr').src = data.qr_png;
      $('manual').textContent = data.manual_key;
      $('step-scan').hidden = false;
      say('Scan the code, then type the 6 digits your app shows.', true);
    } catch (e) { say(e.message); }
  });
  $('confirm').addEventListener('click', async () => {
    say('');
    try {
      const data = await call('POST', 'totp/confirm', { factor_id: factorId, code: $('code').value.trim() }, stepUp());
      $('step-scan').hidden = true;
      $('qr').removeAttribute('src');
      $('manual').textContent = '';
      showCodes(data.recovery_codes, 'Factor active.');
    } catch (e) { say(e.message); }
  });
  $('webauthn-add').addEventListener('click', async () => {
    say('');
    try {
      if (!webauthn || !webauthn.browserSupportsWebAuthn()) throw new Error('this browser does not support security keys or passkeys');
      const options = await call('POST', 'webauthn/register/options', undefined, stepUp());
      const response = await webauthn.startRegistration({ optionsJSON: options });
      const label = $('webauthn-label').value.trim();
      const data = await call('POST', 'webauthn/register/verify', label ? { response, label } : { response }, stepUp());
      showCodes(data.recovery_codes, 'Security key or passkey added (' + data.label + ').');
    } catch (e) { say(e.message); }
  });
  $('webauthn-confirm').addEventListener('click', async () => {
    say('');
    try {
      if (!webauthn || !webauthn.browserSupportsWebAuthn()) throw new Error('this browser does not support security keys or passkeys');
      const options = await call('POST', 'webauthn/authenticate/options');
      const response = await webauthn.startAuthentication({ optionsJSON: options });
      const data = await call('POST', 'webauthn/authenticate/verify', { response });
      session = data.session_token;
      say('Confirmed with your security key or passkey: you can add or change factors for the next few minutes.', true);
    } catch (e) { say(e.message); }
  });
  $('saved').addEventListener('click', () => {
    $('codes').textContent = '';
    $('step-codes').hidden = true;
    say('Done. Send X-MFA-Token with a code (or X-Session-Token) on protected calls.', true);
  });
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
<h1>Set up a second factor</h1>
<p>This page talks only to this gateway. Nothing you paste here is stored by the page.</p>
<section id="step-token">
  <h2>1. Your bearer token</h2>
  <label for="bearer">Paste the access token (JWT) your identity provider gave you:</label>
  <textarea id="bearer" rows="3" autocomplete="off" spellcheck="false"></textarea>
  <label for="current">If you already have an active factor, a current code from it (step-up):</label>
  <input id="current" inputmode="numeric" autocomplete="one-time-code">
  <button id="webauthn-confirm" type="button">Or confirm with a security key or passkey</button>
</section>
<section id="step-webauthn">
  <h2>2a. Add a security key or passkey</h2>
  <label for="webauthn-label">A name for it (optional):</label>
  <input id="webauthn-label" maxlength="64" autocomplete="off">
  <button id="webauthn-add" type="button">Add a security key or passkey</button>
</section>
<section id="step-app">
  <h2>2b. Or add an authenticator app</h2>
  <button id="enroll" type="button">Start enrollment</button>
</section>
<section id="step-scan" hidden>
  <h2>Scan with your authenticator app</h2>
  <img id="qr" alt="QR code for your authenticator app" width="300" height="300">
  <p>Cannot scan? Enter this key by hand (time-based):</p>
  <div id="manual"></div>
  <h2>Confirm</h2>
  <label for="code">The code your app shows now:</label>
  <input id="code" inputmode="numeric" autocomplete="one-time-code">
  <button id="confirm" type="button">Confirm</button>
</section>
<section id="step-codes" hidden>
  <h2>Save your recovery codes</h2>
  <p>Each works once, in place of a code, if you lose your device. Store them somewhere safe.</p>
  <div id="codes"></div>
  <button id="saved" type="button">I have saved them</button>
</section>
<p id="status" role="status"></p>
</body>
</html>
`;
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
