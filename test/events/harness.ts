import assert from 'node:assert/strict';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createLogger } from '../../src/log/logger.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import type { FakeClock } from '../support/clock.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call, type Reply } from '../support/http.js';
import { codeIn, startMailbox, type Mailbox } from '../support/mailbox.js';
import { token } from '../support/tokens.js';
import { startUpstream, type ReceivedRequest, type Upstream } from '../support/upstream.js';
import { eventually } from '../support/wait.js';

/**
 * A real gateway on loopback for the events tests: a real upstream, a real SMTP server (e-mail is
 * the users' factor, so each has a verified e-mail contact) and a real webhook receiver whose
 * answer the test sets. `events` is the policy's `events:` block.
 */

export const WEBHOOK_SECRET = 'webhook-secret-for-the-events-tests';
export const ADMIN_TOKEN = 'admin-token-for-the-events-tests';

export interface Hook {
  readonly received: ReceivedRequest;
  readonly status: number;
  /** performance.now() when it arrived. */
  readonly at: number;
}

export interface EventsHarness {
  readonly gw: Gateway;
  /** The gateway's SQLite file, for a second connection that looks or breaks things underneath. */
  readonly dbPath: string;
  readonly port: number;
  readonly adminPort: number;
  readonly upstream: Upstream;
  readonly mailbox: Mailbox;
  readonly hooks: Hook[];
  /** Every code, token and recovery code handled: none may reach the audit trail. */
  readonly secrets: string[];
  /** What the receiver answers from now on. */
  answer(status: number): void;
  hooksOf(type: string): Hook[];
  post(path: string, subject: string, headers?: Record<string, string>, body?: unknown): Promise<Reply>;
  get(path: string, subject: string, headers?: Record<string, string>): Promise<Reply>;
  admin(path: string, method?: string): Promise<Reply>;
  /** Enrols `subject`'s e-mail as its first factor; returns the factor id and recovery codes. */
  enrolEmail(subject: string): Promise<{ factorId: string; recoveryCodes: string[] }>;
  /** Sends a code to the factor and reads it from the mailbox (alerts share it). */
  mailedCode(subject: string, factorId: string): Promise<string>;
  close(): Promise<void>;
}

export async function startEventsHarness(clock: FakeClock, events: string): Promise<EventsHarness> {
  process.env.MFA_TEST_WEBHOOK_SECRET = WEBHOOK_SECRET;
  process.env.MFA_TEST_EVENTS_ADMIN = ADMIN_TOKEN;
  const ws: Workspace = createWorkspace();
  const upstream = await startUpstream();
  const mailbox = await startMailbox();
  const hooks: Hook[] = [];
  let status = 204;
  const receiver = await startUpstream({
    handler: (_req: IncomingMessage, res: ServerResponse, received) => {
      hooks.push({ received, status, at: performance.now() });
      res.writeHead(status);
      res.end();
    },
  });
  ws.writePolicy(
    policyHead(ws, upstream.url)
      .replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0, token_env: MFA_TEST_EVENTS_ADMIN }\ntrusted_proxies: [127.0.0.1/32]')
      .replace(
        'mfa:\n  issuer: Test Gateway\n',
        `mfa:
  issuer: Test Gateway
  codes: { send_limits: { per_user: { sends: 100, per: 1m }, per_destination: { sends: 100, per: 1m } } }
  email:
    factor: true
    from: "Test Gateway <mfa@gateway.test>"
    smtp: { host: 127.0.0.1, port: ${mailbox.port}, security: none, timeout: 2s }
events:
${events.replaceAll('RECEIVER', `${receiver.url}/hooks/mfa`)}`,
      ) +
      `routes:
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
default: deny
`,
  );
  const gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: { port: 0 }, watch: false, logger: createLogger({ level: 'silent' }), audit: createLogger({ level: 'silent' }), clock });
  const port = gw.address.port;
  const adminPort = gw.adminAddress!.port;
  const secrets: string[] = [];
  const bearer = (subject: string): Promise<string> => token(subject, { now: clock(), ttlSeconds: 3600 });
  const post = async (path: string, subject: string, headers: Record<string, string> = {}, body?: unknown): Promise<Reply> =>
    call(port, 'POST', path, { authorization: `Bearer ${await bearer(subject)}`, 'content-type': 'application/json', ...headers }, body === undefined ? undefined : JSON.stringify(body));
  const isCode = (m: { subject: string }): boolean => m.subject.includes('verification code');
  async function nextCode(seen: number): Promise<string> {
    await eventually(() => mailbox.messages.slice(seen).some(isCode), 5_000);
    const code = codeIn(mailbox.messages.slice(seen).find(isCode)!.text);
    secrets.push(code);
    return code;
  }
  return {
    gw,
    dbPath: join(ws.dir, 'mfa.db'),
    port,
    adminPort,
    upstream,
    mailbox,
    hooks,
    secrets,
    answer: (next) => void (status = next),
    hooksOf: (type) => hooks.filter((h) => (JSON.parse(h.received.body.toString('utf8')) as { type: string }).type === type),
    post,
    get: async (path, subject, headers = {}) => call(port, 'GET', path, { authorization: `Bearer ${await bearer(subject)}`, ...headers }),
    admin: (path, method = 'GET') => call(adminPort, method, path, { authorization: `Bearer ${ADMIN_TOKEN}` }),
    async enrolEmail(subject) {
      const seen = mailbox.messages.length;
      const enrolled = await post('/.mfa/otp/enroll', subject, {}, { channel: 'email', destination: `${subject}@example.test` });
      assert.equal(enrolled.status, 201, enrolled.text);
      const factorId = enrolled.json<{ factor_id: string }>().factor_id;
      const confirmed = await post('/.mfa/otp/confirm', subject, {}, { factor_id: factorId, code: await nextCode(seen) });
      assert.equal(confirmed.status, 200, confirmed.text);
      const recoveryCodes = confirmed.json<{ recovery_codes: string[] }>().recovery_codes;
      secrets.push(...recoveryCodes);
      return { factorId, recoveryCodes };
    },
    async mailedCode(subject, factorId) {
      const seen = mailbox.messages.length;
      const sent = await post('/.mfa/otp/send', subject, {}, { channel: 'email', factor_id: factorId });
      assert.equal(sent.status, 200, sent.text);
      return nextCode(seen);
    },
    async close() {
      await gw.stop();
      await Promise.all([upstream.close(), mailbox.close(), receiver.close()]);
      ws.remove();
      delete process.env.MFA_TEST_WEBHOOK_SECRET;
      delete process.env.MFA_TEST_EVENTS_ADMIN;
    },
  };
}
