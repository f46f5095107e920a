import { createHash } from 'node:crypto';

/**
 * `GET <prefix>setup`: one self-contained page (no external resource of any kind) that walks a user
 * through enroll → scan → confirm → save recovery codes by calling the JSON endpoints with a
 * bearer token the user pastes. The inline script and style are allowed by hash in a strict CSP;
 * server data only ever reaches the page through textContent and an <img> data: URL.
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
  let factorId = '';
  function say(text, ok) { $('status').textContent = text; $('status').className = ok ? 'ok' : ''; }
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
  $('enroll').addEventListener('click', async () => {
    say('');
    const current = $('current').value.trim();
    try {
      const data = await call('POST', 'totp/enroll', undefined, current ? { 'x-mfa-token': current } : undefined);
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
      const data = await call('POST', 'totp/confirm', { factor_id: factorId, code: $('code').value.trim() });
      $('step-scan').hidden = true;
      $('qr').removeAttribute('src');
      $('manual').textContent = '';
      if (Array.isArray(data.recovery_codes)) {
        $('codes').textContent = data.recovery_codes.join('\\n');
        $('step-codes').hidden = false;
        say('Factor active. Save your recovery codes now: they are shown only once.', true);
      } else {
        say('Factor active.', true);
      }
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

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>Set up a second factor</title>
<style>${STYLE}</style>
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
  <button id="enroll" type="button">Start enrollment</button>
</section>
<section id="step-scan" hidden>
  <h2>2. Scan with your authenticator app</h2>
  <img id="qr" alt="QR code for your authenticator app" width="300" height="300">
  <p>Cannot scan? Enter this key by hand (time-based):</p>
  <div id="manual"></div>
  <h2>3. Confirm</h2>
  <label for="code">The code your app shows now:</label>
  <input id="code" inputmode="numeric" autocomplete="one-time-code">
  <button id="confirm" type="button">Confirm</button>
</section>
<section id="step-codes" hidden>
  <h2>4. Save your recovery codes</h2>
  <p>Each works once, in place of a code, if you lose your device. Store them somewhere safe.</p>
  <div id="codes"></div>
  <button id="saved" type="button">I have saved them</button>
</section>
<p id="status" role="status"></p>
<script>${SCRIPT}</script>
</body>
</html>
`;

export const SETUP_PAGE_HTML = PAGE;

/** Response headers of the setup page: the CSP allows exactly the inline script and style above. */
export const SETUP_PAGE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-type': 'text/html; charset=utf-8',
  'content-security-policy': [
    "default-src 'none'",
    `script-src ${cspHash(SCRIPT)}`,
    `style-src ${cspHash(STYLE)}`,
    'img-src data:',
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; '),
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
});
