#!/usr/bin/env node
/**
 * Micro-benchmark of canonicalizeRequest, which runs on every request: prints ns/op for a few
 * typical requests. Not a test and not part of `npm run bench`.
 *
 *   npm run build && node dist/bench/canonical-micro.js [iterations]
 *
 * The requests are plain objects with the fields canonicalizeRequest reads, so this measures the
 * function alone (no parser, no socket).
 */
import { canonicalizeRequest, createTrustList, type RequestSource } from './lib/gateway-setup.js';

const TOKEN = `Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.${'eyJzdWIiOiJ1c2VyLTEiLCJzY29wZSI6Im9yZGVyczpyZWFkIn0'.repeat(4)}.${'s'.repeat(342)}`;
const COMMON = ['Host', 'api.example.com', 'User-Agent', 'curl/8.5.0', 'Accept', 'application/json', 'Accept-Encoding', 'gzip, deflate, br', 'Connection', 'keep-alive'];
const nobody = createTrustList([]);
const proxies = createTrustList(['10.0.0.0/8', '172.16.0.0/12']);
const get = (url: string, extra: string[], remoteAddress = '203.0.113.9'): RequestSource => ({ method: 'GET', url, httpVersion: '1.1', rawHeaders: [...COMMON, ...extra], socket: { remoteAddress } });

const CASES = [
  { name: 'GET, bearer + session, client request id', trust: nobody, req: get('/orders/12345/items?expand=lines&page=2', ['Authorization', TOKEN, 'X-Session-Token', 's'.repeat(43), 'X-Request-Id', 'c0ffee-1234']) },
  { name: 'GET, bearer, no request id (UUID generated)', trust: nobody, req: get('/orders/12345', ['Authorization', TOKEN], '::ffff:203.0.113.9') },
  {
    name: 'POST via trusted proxy, X-Forwarded-*',
    trust: proxies,
    req: {
      ...get('/payments/caf%C3%A9/a%20b', ['Authorization', TOKEN, 'X-MFA-Token', '123456', 'Content-Type', 'application/json', 'Content-Length', '512', 'X-Forwarded-For', '198.51.100.7, 10.1.2.3', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Host', 'shop.example.com', 'X-Request-Id', 'req-42'], '10.0.0.5'),
      method: 'POST',
    },
  },
  { name: 'rejected: encoded dot segment', trust: nobody, req: get('/orders/%2e%2e/admin', []) },
];

const iterations = Number(process.argv[2] ?? 1_000_000);
if (!Number.isSafeInteger(iterations) || iterations < 1) throw new Error('iterations must be a positive integer');

let sink = 0;
for (const { name, req, trust } of CASES) {
  const opts = { trustedProxies: trust, maxTokenBytes: 8192 };
  // Warm up so that the measured loop runs optimised code.
  for (let i = 0; i < 50_000; i++) sink += canonicalizeRequest(req, opts).ok ? 1 : 0;
  const started = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) sink += canonicalizeRequest(req, opts).ok ? 1 : 0;
  process.stdout.write(`${name.padEnd(45)} ${(Number(process.hrtime.bigint() - started) / iterations).toFixed(0).padStart(6)} ns/op\n`);
}
// Keeps the loops from being optimised away.
if (sink < 0) process.stdout.write(`${sink}\n`);
