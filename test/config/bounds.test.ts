import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify } from 'yaml';
import { DURATION_BOUNDS, type DurationBounds, type DurationKey } from '../../src/config/bounds.js';
import { parsePolicy, PolicyError } from '../../src/config/load.js';
import { SCHEMA_PATH } from '../../src/config/schema.js';
import { formatDuration, parseDuration } from '../../src/time/duration.js';
import { HEAD } from './support.js';

type SchemaNode = { readonly [key: string]: unknown };

const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as SchemaNode;
const defs = schema.$defs as Record<string, SchemaNode>;

/** Every duration the schema defines, keyed like DURATION_BOUNDS (`*` an upstream's name, `[]` a list's items). */
function schemaDurations(node: SchemaNode, key: string, out: Map<string, SchemaNode>): Map<string, SchemaNode> {
  const ref = node.$ref;
  if (ref === '#/$defs/duration') return out.set(key, node);
  if (typeof ref === 'string') return schemaDurations(defs[ref.replace('#/$defs/', '')]!, key, out);
  const join = (name: string): string => (key === '' ? name : `${key}.${name}`);
  for (const [name, sub] of Object.entries((node.properties ?? {}) as Record<string, SchemaNode>)) schemaDurations(sub, join(name), out);
  if (typeof node.additionalProperties === 'object') schemaDurations(node.additionalProperties as SchemaNode, join('*'), out);
  if (typeof node.items === 'object') schemaDurations(node.items as SchemaNode, `${key}[]`, out);
  // Alternatives (the store kinds) describe the same key.
  for (const alternative of (node.oneOf ?? []) as SchemaNode[]) schemaDurations(alternative, key, out);
  return out;
}

/** How the schema's description spells a range for editors. */
function rangeSentence({ min, max }: DurationBounds): string {
  if (min === 0) return `At most ${formatDuration(max)}.`;
  if (min === 1) return `More than 0, at most ${formatDuration(max)}.`;
  return `From ${formatDuration(min)} to ${formatDuration(max)}.`;
}

/** The smallest spellable duration above `max` (1ms above when the digits allow it). */
function justAbove(max: number): string {
  for (const [unit, size] of [['ms', 1], ['s', 1000], ['m', 60_000], ['h', 3_600_000], ['d', 86_400_000]] as const) {
    const text = `${Math.floor(max / size) + 1}${unit}`;
    if (parseDuration(text) !== undefined) return text;
  }
  throw new Error(`no spelling above ${max}`);
}

const BASE = parseYaml(`${HEAD}  - { name: r0, match: { path: /x }, upstream: app, policy: public }
  - { name: r1, match: { path: /y }, upstream: app, policy: step_up, max_age: 5m }
  - { name: r2, match: { path: /z }, upstream: app, policy: public, rate_limit: { requests: 10, per: 1m } }
keys: { env: MFA_TEST_KEYS }
`) as Record<string, unknown>;

/** The key of a table entry made concrete in BASE: the upstream `app`, the step_up route, the limited route, the first rung. */
function concretePath(key: DurationKey): (string | number)[] {
  if (key === 'routes[].max_age') return ['routes', 1, 'max_age'];
  if (key === 'routes[].rate_limit.per') return ['routes', 2, 'rate_limit', 'per'];
  return key.split('.').flatMap((part) => (part === '*' ? ['app'] : part.endsWith('[]') ? [part.slice(0, -2), 0] : [part]));
}

/** The loader's issue lines about `path` for BASE with the duration at `path` set to `text`. */
function issuesAt(path: readonly (string | number)[], text: string): string[] {
  const doc = structuredClone(BASE);
  // listen.tls needs its two files named; that they cannot be read is reported at their own keys.
  if (path[0] === 'listen') doc.listen = { tls: { cert: 'cert.pem', key: 'key.pem' } };
  // mfa.webauthn needs its two required keys before its durations are read at all.
  if (path[1] === 'webauthn') doc.mfa = { ...(doc.mfa as object), webauthn: { rp_id: 'localhost', origins: ['http://localhost:8080'] } };
  if (path[0] === 'store') doc.store = { kind: 'shared', postgres: { url: 'postgres://db/mfa' }, redis: { url: 'redis://cache' } };
  // The e-mail and SMS transports need their other required keys.
  if (path[1] === 'email') doc.mfa = { email: { from: 'mfa@example.com', smtp: { host: 'smtp.example.com' } } };
  if (path[1] === 'sms') doc.mfa = { sms: { provider: { kind: 'http', url: 'https://sms.example.com/send', body: '{"to":"{to}","text":"{message}"}' } } };
  let node = doc as Record<string | number, unknown>;
  path.slice(0, -1).forEach((segment, i) => {
    node = (node[segment] ??= typeof path[i + 1] === 'number' ? [] : {}) as Record<string | number, unknown>;
  });
  node[path[path.length - 1]!] = text;
  const shown = path.map((segment) => (typeof segment === 'number' ? `[${segment}]` : `.${segment}`)).join('').slice(1);
  try {
    parsePolicy(stringify(doc), 'b.yaml', '/nonexistent', { env: {} });
    return [];
  } catch (error) {
    assert.ok(PolicyError.is(error), String(error));
    return error.issues.filter((issue) => issue.path === shown).map((issue) => issue.message);
  }
}

describe('duration bounds: one table, quoted by the schema, enforced by the loader', () => {
  const durations = schemaDurations(schema, '', new Map());

  test('every duration of the schema has bounds, and every bound a duration in the schema', () => {
    assert.deepEqual([...durations.keys()].sort(), Object.keys(DURATION_BOUNDS).sort());
  });

  test("each duration's description in the schema states its range", () => {
    for (const [key, bounds] of Object.entries(DURATION_BOUNDS)) {
      const description = String(durations.get(key)?.description ?? '');
      assert.ok(description.endsWith(rangeSentence(bounds)), `${key}: "${description}" should end with "${rangeSentence(bounds)}"`);
    }
  });

  test('the loader accepts both ends of each range and refuses just outside it', () => {
    for (const key of Object.keys(DURATION_BOUNDS) as DurationKey[]) {
      const { min, max } = DURATION_BOUNDS[key];
      const path = concretePath(key);
      assert.deepEqual(issuesAt(path, formatDuration(max)), [], `${key} at its maximum`);
      assert.deepEqual(issuesAt(path, formatDuration(min)), [], `${key} at its minimum`);
      assert.ok(issuesAt(path, justAbove(max)).includes(`must be at most ${formatDuration(max)}`), `${key} above its maximum`);
      if (min > 0) {
        const below = issuesAt(path, `${min - 1}ms`);
        assert.ok(below.includes(min === 1 ? 'must be more than 0' : `must be at least ${formatDuration(min)}`), `${key} below its minimum: ${below.join('; ')}`);
      }
    }
  });
});
