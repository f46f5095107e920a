#!/usr/bin/env node
/**
 * Micro-benchmark of canonicalizeRequest, which runs on every request: prints ns/op for a few
 * typical requests. Not a test and not part of `npm run bench`.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/canonical-micro.js [iterations]
 *
 * The requests are plain objects with the fields canonicalizeRequest reads, so this measures the
 * function alone (no parser, no socket).
 */
import { canonicalizeRequest, type RequestSource } from '../src/request/canonical.js';
import { createTrustList, type TrustList } from '../src/request/trust.js';

const TOKEN = `Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.${'eyJzdWIiOiJ1c2VyLTEiLCJzY29wZSI6Im9yZGVyczpyZWFkIn0'.repeat(4)}.${'s'.repeat(342)}`;

function browserish(extra: string[]): string[] {
  return [
    'Host', 'api.example.com',
    'User-Agent', 'curl/8.5.0',
    'Accept', 'application/json',
    'Accept-Encoding', 'gzip, deflate, br',
    'Connection', 'keep-alive',
    ...extra,
  ];
}

interface Case {
  readonly name: string;
  readonly req: RequestSource;
  readonly trust: TrustList;
}

const nobody = createTrustList([]);
const proxies = createTrustList(['10.0.0.0/8', '172.16.0.0/12']);

const CASES: readonly Case[] = [
  {
    name: 'GET, bearer + session, client request id',
    trust: nobody,
    req: {
      method: 'GET',
      url: '/orders/12345/items?expand=lines&page=2',
      httpVersion: '1.1',
      rawHeaders: browserish(['Authorization', TOKEN, 'X-Session-Token', 's'.repeat(43), 'X-Request-Id', 'c0ffee-1234']),
      socket: { remoteAddress: '203.0.113.9' },
    },
  },
  {
    name: 'GET, bearer, no request id (UUID generated)',
    trust: nobody,
    req: {
      method: 'GET',
      url: '/orders/12345',
      httpVersion: '1.1',
      rawHeaders: browserish(['Authorization', TOKEN]),
      socket: { remoteAddress: '::ffff:203.0.113.9' },
    },
  },
  {
    name: 'POST via trusted proxy, X-Forwarded-*',
    trust: proxies,
    req: {
      method: 'POST',
      url: '/payments/caf%C3%A9/a%20b',
      httpVersion: '1.1',
      rawHeaders: browserish([
        'Authorization', TOKEN,
        'X-MFA-Token', '123456',
        'Content-Type', 'application/json',
        'Content-Length', '512',
        'X-Forwarded-For', '198.51.100.7, 10.1.2.3',
        'X-Forwarded-Proto', 'https',
        'X-Forwarded-Host', 'shop.example.com',
        'X-Request-Id', 'req-42',
      ]),
      socket: { remoteAddress: '10.0.0.5' },
    },
  },
  {
    name: 'rejected: encoded dot segment',
    trust: nobody,
    req: {
      method: 'GET',
      url: '/orders/%2e%2e/admin',
      httpVersion: '1.1',
      rawHeaders: browserish([]),
      socket: { remoteAddress: '203.0.113.9' },
    },
  },
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
  const elapsed = Number(process.hrtime.bigint() - started);
  process.stdout.write(`${name.padEnd(45)} ${(elapsed / iterations).toFixed(0).padStart(6)} ns/op\n`);
}
// Keeps the loops from being optimised away.
if (sink < 0) process.stdout.write(`${sink}\n`);
