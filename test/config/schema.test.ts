import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse as parseYaml, stringify } from 'yaml';
import { parsePolicy, PolicyError } from '../../src/config/load.js';
import { SCHEMA_PATH } from '../../src/config/schema.js';
import { HEAD } from './support.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Schema = { [key: string]: Json };

const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as Schema;

/** An ajv of its own, without defaults: what an editor would say about a file. */
const editorValidate = new Ajv2020({ allErrors: true, strict: false, discriminator: true }).compile(schema);

function loaderAccepts(data: unknown): { ok: true } | { ok: false; message: string } {
  try {
    parsePolicy(stringify(data), 's.yaml', '/nonexistent', { env: {} });
    return { ok: true };
  } catch (error) {
    assert.ok(error instanceof PolicyError, String(error));
    return { ok: false, message: error.message };
  }
}

function resolveRef(node: Schema): Schema {
  const ref = node.$ref;
  if (typeof ref !== 'string') return node;
  const target = ref.replace('#/$defs/', '');
  return { ...((schema.$defs as Schema)[target] as Schema), ...node, $ref: null };
}

function isObject(value: unknown): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Fills in every key that has a schema default, everywhere, so every key the schema knows is written out. */
function fillDefaults(node: Schema, value: Json): Json {
  const s = resolveRef(node);
  if (isObject(value)) {
    const properties = s.properties;
    if (isObject(properties)) {
      for (const [key, sub] of Object.entries(properties)) {
        const subSchema = resolveRef(sub as Schema);
        if (value[key] === undefined && subSchema.default !== undefined) value[key] = structuredClone(subSchema.default);
        if (value[key] !== undefined) value[key] = fillDefaults(subSchema, value[key]!);
      }
    }
    if (isObject(s.additionalProperties)) {
      for (const key of Object.keys(value)) value[key] = fillDefaults(s.additionalProperties as Schema, value[key]!);
    }
  } else if (Array.isArray(value) && isObject(s.items)) {
    return value.map((item) => fillDefaults(s.items as Schema, item));
  }
  return value;
}

/** Paths of every mapping in the document that has a fixed set of keys. */
function objectPaths(value: Json, path: (string | number)[] = [], out: (string | number)[][] = []): (string | number)[][] {
  if (isObject(value)) {
    if (path[0] !== 'upstreams' || path.length !== 1) out.push(path);
    for (const [key, sub] of Object.entries(value)) objectPaths(sub, [...path, key], out);
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => objectPaths(item, [...path, i], out));
  }
  return out;
}

function at(root: Json, path: readonly (string | number)[]): { [key: string]: Json } {
  let node = root;
  for (const segment of path) node = (node as Record<string | number, Json>)[segment]!;
  return node as { [key: string]: Json };
}

const BASE = parseYaml(`${HEAD}  - { name: r0, match: { path: /x }, upstream: app, policy: public }
  - { name: r1, match: { path_prefix: /p/, host: a.test, methods: [GET] }, upstream: app, policy: step_up, max_age: 5m }
`) as Json;

describe('config/gateway.schema.json', () => {
  test('is a strict draft 2020-12 schema with additionalProperties: false on every fixed mapping', () => {
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    const ajv = new Ajv2020({ strict: true, strictRequired: false, discriminator: true });
    ajv.compile(schema);
    const loose: string[] = [];
    (function walk(node: Json, where: string): void {
      if (Array.isArray(node)) node.forEach((item, i) => walk(item, `${where}/${i}`));
      if (!isObject(node)) return;
      // The store wrapper only dispatches on `kind`; each of its branches is closed.
      if (isObject(node.properties) && node.additionalProperties !== false && node.discriminator === undefined) loose.push(where);
      for (const [key, sub] of Object.entries(node)) if (key !== 'default') walk(sub, `${where}/${key}`);
    })(schema, '#');
    assert.deepEqual(loose, []);
  });

  test('the file with every key the schema defines is accepted by both the schema and the loader', () => {
    const full = fillDefaults(schema, structuredClone(BASE));
    assert.equal(editorValidate(full), true);
    assert.deepEqual(loaderAccepts(full), { ok: true });
    // The fill reached the depths: a nested default and a per-route default are present.
    assert.deepEqual(at(full, ['upstreams', 'app', 'retries']), { max: 3, initial: '1s', multiplier: 2, jitter: '500ms' });
    assert.equal(at(full, ['routes', 1]).forward_authorization, true);
  });

  test('a key the schema does not define is refused by both, at every level', () => {
    const full = fillDefaults(schema, structuredClone(BASE));
    const paths = objectPaths(full);
    assert.equal(paths.length, 48); // root, 36 sections and subsections (mfa.codes with its send limits, email, sms, backup_contact among them; events with audit, signals, 7 rules, notify, delivery), upstreams.app with pool and retries, 2 routes with match, limits, authz, setup, clock
    for (const path of paths) {
      const variant = structuredClone(full);
      at(variant, path).zz_unknown = 1;
      assert.equal(editorValidate(variant), false, path.join('.'));
      const result = loaderAccepts(variant);
      assert.equal(result.ok, false, path.join('.'));
      assert.match((result as { message: string }).message, /zz_unknown: unknown key/, path.join('.'));
    }
  });

  test('samples of values: both accept, or both refuse', () => {
    const samples: [string, (doc: Record<string, Json>) => void, boolean][] = [
      ['duration 500ms', (d) => void (d.limits = { drain_timeout: '500ms' }), true],
      ['duration 5 m', (d) => void (d.limits = { drain_timeout: '5 m' }), false],
      ['duration as number', (d) => void (d.limits = { drain_timeout: 5 }), false],
      ['audience list', (d) => void ((d.auth as Record<string, Record<string, Json>>).jwt!.audience = ['a', 'b']), true],
      ['audience empty list', (d) => void ((d.auth as Record<string, Record<string, Json>>).jwt!.audience = []), false],
      ['store shared', (d) => void (d.store = { kind: 'shared', postgres: { url: 'postgres://db/x' }, redis: { url: 'redis://r' } }), true],
      ['store shared, URLs as bare strings', (d) => void (d.store = { kind: 'shared', postgres: 'postgres://db/x', redis: 'redis://r' }), false],
      ['store shared with path', (d) => void (d.store = { kind: 'shared', postgres: { url: 'postgres://db/x' }, redis: { url: 'redis://r' }, path: 'x' }), false],
      ['store shared, redis cluster', (d) => void (d.store = { kind: 'shared', postgres: { url: 'postgres://db/x' }, redis: { cluster: { nodes: ['10.0.0.1:7000', '[::1]:7001'] } } }), true],
      ['store shared, redis node without a port', (d) => void (d.store = { kind: 'shared', postgres: { url: 'postgres://db/x' }, redis: { cluster: { nodes: ['10.0.0.1'] } } }), false],
      ['store shared, postgres without a URL', (d) => void (d.store = { kind: 'shared', postgres: { pool: { max: 2 } }, redis: { url: 'redis://r' } }), false],
      ['store sqlite with redis', (d) => void (d.store = { kind: 'sqlite', redis: 'redis://r' }), false],
      ['keys env only', (d) => void (d.keys = { env: 'K' }), true],
      ['keys empty', (d) => void (d.keys = {}), false],
      ['upstream name with a space', (d) => void ((d.upstreams as Record<string, Json>)['my app'] = { url: 'http://x' }), false],
      ['totp digits 8', (d) => void (d.mfa = { totp: { digits: 8 } }), true],
      ['method lower-case', (d) => void (d.routes = [{ match: { methods: ['get'] }, upstream: 'app', policy: 'bearer' }]), true],
      ['method with a digit', (d) => void (d.routes = [{ match: { methods: ['G3T'] }, upstream: 'app', policy: 'bearer' }]), false],
      ['mfa path_prefix without the trailing slash', (d) => void (d.mfa = { path_prefix: '/.mfa' }), false],
      // The forwarder refuses pools above 10 000 connections: a file check accepts must also start.
      ['pool of 10000 connections', (d) => void ((d.upstreams = { app: { url: 'http://x', pool: { connections: 10000 } } }), (d.limits = { max_upstream_connections: 10000 })), true],
      ['pool of 10001 connections', (d) => void ((d.upstreams = { app: { url: 'http://x', pool: { connections: 10001 } } }), (d.limits = { max_upstream_connections: 20000 })), false],
    ];
    for (const [name, edit, expected] of samples) {
      const doc = structuredClone(BASE) as Record<string, Json>;
      edit(doc);
      assert.equal(editorValidate(doc), expected, `schema: ${name}`);
      assert.equal(loaderAccepts(doc).ok, expected, `loader: ${name}`);
    }
  });
});
