import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type BrowserContext, type CDPSession, type Page } from 'playwright-core';
import { CHROMIUM } from './binaries.js';

/**
 * Headless Debian Chromium driven by playwright-core (no browser download), with the DevTools
 * virtual authenticator standing in for a security key or passkey. Everything it writes (profile,
 * Playwright's artifacts through TMPDIR) stays under `dir`, which the test removes.
 */

export interface Browser {
  readonly page: Page;
  readonly cdp: CDPSession;
  /** The virtual authenticator's id (WebAuthn.* CDP calls take it). */
  readonly authenticatorId: string;
  /** Closes the browser and puts TMPDIR back; safe to call twice. */
  close(): Promise<void>;
}

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Short waits everywhere: without an authenticator a WebAuthn call would hang, and nothing here needs long. */
export const BROWSER_TIMEOUT_MS = 10_000;

export async function launchBrowser(dir: string, transport: 'internal' | 'usb' = 'internal'): Promise<Browser> {
  const tmp = join(dir, 'tmp');
  mkdirSync(tmp, { recursive: true });
  const previousTmp = process.env.TMPDIR;
  process.env.TMPDIR = tmp;
  let context: BrowserContext | undefined;
  const restore = () => {
    if (previousTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = previousTmp;
  };
  try {
    context = await chromium.launchPersistentContext(join(dir, 'profile'), { executablePath: CHROMIUM, headless: true, args: ARGS, timeout: BROWSER_TIMEOUT_MS });
    context.setDefaultTimeout(BROWSER_TIMEOUT_MS);
    const page = context.pages()[0] ?? (await context.newPage());
    const cdp = await context.newCDPSession(page);
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: { protocol: 'ctap2', transport, hasResidentKey: true, hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
    });
    let closed = false;
    const opened = context;
    return {
      page,
      cdp,
      authenticatorId,
      async close() {
        if (closed) return;
        closed = true;
        try {
          await opened.close();
        } finally {
          restore();
        }
      },
    };
  } catch (error) {
    await context?.close().catch(() => undefined);
    restore();
    throw error;
  }
}

/** `page.evaluate` of a script, bounded in time (evaluate itself waits for ever). */
export async function evaluate<T>(page: Page, script: string, timeoutMs = BROWSER_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      page.evaluate(script) as Promise<T>,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`the page did not answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
