/**
 * The JSON Schema in config/gateway.schema.json is the one source of truth for the file's shape
 * and defaults: editors validate against it and so does the loader (ajv, with `useDefaults`).
 * This module compiles it and turns ajv's errors into issues with lines and plain messages.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import type { PolicyIssue } from './errors.js';
import { formatPath, pointerToPath, type Locator, type Segment } from './locate.js';

/** Where the schema ships: dist/src/config/ (and src/config/) are three levels below the package root. */
export const SCHEMA_PATH = fileURLToPath(new URL('../../../config/gateway.schema.json', import.meta.url));

export type SchemaNode = { readonly [key: string]: unknown };

export interface PolicySchema {
  readonly schema: SchemaNode;
  /** Validates in place: fills defaults into `data`. Returns the issues, empty when valid. */
  validate(data: unknown, locator: Locator): PolicyIssue[];
}

export function loadPolicySchema(path: string = SCHEMA_PATH): PolicySchema {
  const schema = JSON.parse(readFileSync(path, 'utf8')) as SchemaNode;
  // verbose: errors carry their parentSchema (the known keys, the store kinds). They also carry the
  // data, which may hold secrets: only what is picked out below ever reaches a message.
  // optimize: false — the validator runs once per load, so a faster compile (about half the time,
  // paid at every start and `check`) beats faster validation.
  // strictRequired would flag the anyOf branches of keys: (required-only subschemas), a known false alarm.
  const ajv = new Ajv2020({ allErrors: true, useDefaults: true, discriminator: true, strict: true, strictRequired: false, verbose: true, code: { optimize: false } });
  const check: ValidateFunction = ajv.compile(schema);
  return {
    schema,
    validate(data, locator) {
      if (check(data)) return [];
      return toIssues(check.errors ?? [], data, locator);
    },
  };
}

const PATTERN_MESSAGES: Readonly<Record<string, string>> = {
  '^[A-Za-z0-9_.-]{1,64}$': 'must be 1 to 64 characters from A-Z a-z 0-9 _ . -',
  '^[A-Za-z_][A-Za-z0-9_]*$': 'must be an environment variable name',
  '^https?://': 'must be an http:// or https:// URL',
  '^https?://[^?#@]+$': 'must be an http:// or https:// URL with no query, fragment or user info',
  '^[^:]+$': "must not contain ':'",
  '^/([A-Za-z0-9._~-]+/)+$': "must start and end with '/' and hold plain path segments, e.g. /.mfa/",
  '^postgres(ql)?://': 'must be a postgres:// URL',
  '^rediss?://': 'must be a redis:// or rediss:// URL',
  '^[0-9A-Fa-f.:]+(/\\d{1,3})?$': 'must be an IP address or CIDR, e.g. 10.0.0.0/8 or ::1/128',
  '^/': "must start with '/'",
  '^[A-Za-z]{1,20}$': 'must be an HTTP method name, e.g. GET',
  '^\\S+$': 'must be one scope, without spaces',
  '^\\+[1-9][0-9]{6,14}$': 'must be an E.164 phone number, e.g. +14155550123',
  '^AC[0-9a-fA-F]{32}$': 'must be a Twilio account SID (AC and 32 hex digits)',
  '^MG[0-9a-fA-F]{32}$': 'must be a Twilio messaging service SID (MG and 32 hex digits)',
  '^[A-Za-z0-9-]{1,64}$': 'must be an HTTP header name',
  '\\{code\\}': 'must contain {code}',
  '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$': 'must be host or host:port, e.g. pool.ntp.org, 10.0.0.1:123 or [2001:db8::1]:123',
};
const DURATION_PATTERN = '^\\d+(ms|s|m|h|d)$';
export const DURATION_HINT = 'a whole number and a unit (ms, s, m, h or d), e.g. 30s';

const TYPE_NAMES: Readonly<Record<string, string>> = {
  object: 'a mapping',
  array: 'a list',
  string: 'a string',
  integer: 'an integer',
  number: 'a number',
  boolean: 'true or false',
};

/** Only these anyOf branches get a message of their own; the branches' errors would only confuse. */
const ANY_OF_MESSAGES: Readonly<Record<string, string>> = {
  keys: 'needs file, env or both',
  audience: 'must be a string or a non-empty list of strings',
  postgres: 'needs url or url_env',
};

function valueAt(data: unknown, path: readonly Segment[]): unknown {
  let current = data;
  for (const segment of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    current = (current as Record<string | number, unknown>)[segment];
  }
  return current;
}

/** Edit distance, for "did you mean" on unknown keys (short strings only). */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

function suggestion(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of known) {
    const d = distance(key.toLowerCase(), candidate);
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= (best.length >= 4 ? 2 : 1)) return ` (did you mean "${best}"?)`;
  return known.length > 0 && known.length <= 12 ? ` (known keys: ${known.join(', ')})` : '';
}

function toIssues(errors: readonly ErrorObject[], data: unknown, locator: Locator): PolicyIssue[] {
  // An anyOf error stands for all its branches: drop the branch errors it explains.
  const combinators = errors.filter((e) => e.keyword === 'anyOf').map((e) => `${e.schemaPath}/`);
  const issues: PolicyIssue[] = [];
  const seen = new Set<string>();
  for (const error of errors) {
    if (combinators.some((prefix) => error.schemaPath.startsWith(prefix))) continue;
    // Errors inside propertyNames are reported by the propertyNames error itself.
    if (error.propertyName !== undefined) continue;
    const issue = toIssue(error, data, locator);
    const key = `${issue.line}|${issue.path}|${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    issues.push(issue);
  }
  return issues;
}

function toIssue(error: ErrorObject, data: unknown, locator: Locator): PolicyIssue {
  const path = pointerToPath(error.instancePath, data);
  const params = error.params as Record<string, unknown>;
  const at = (p: readonly Segment[], message: string): PolicyIssue => ({
    line: locator.keyLine(p),
    path: formatPath(p),
    message,
  });
  switch (error.keyword) {
    case 'required': {
      const missing = String(params.missingProperty);
      return { line: locator.keyLine(path), path: formatPath([...path, missing]), message: 'required key is missing' };
    }
    case 'additionalProperties': {
      const key = String(params.additionalProperty);
      const properties = error.parentSchema?.properties as SchemaNode | undefined;
      const known = properties !== undefined ? Object.keys(properties) : [];
      return at([...path, key], `unknown key${suggestion(key, known)}`);
    }
    case 'propertyNames': {
      const key = String(params.propertyName);
      return at([...path, key], `name ${PATTERN_MESSAGES['^[A-Za-z0-9_.-]{1,64}$']}`);
    }
    case 'pattern': {
      const pattern = String(params.pattern);
      if (pattern === DURATION_PATTERN) {
        const value = valueAt(data, path);
        const shown = typeof value === 'string' && value.length <= 40 ? ` "${value}"` : '';
        return at(path, `not a duration${shown}: write ${DURATION_HINT}`);
      }
      return at(path, PATTERN_MESSAGES[pattern] ?? error.message ?? 'invalid value');
    }
    case 'type':
      return at(path, `must be ${TYPE_NAMES[String(params.type)] ?? String(params.type)}`);
    case 'enum':
      return at(path, `must be one of: ${(params.allowedValues as unknown[]).map(String).join(', ')}`);
    case 'const':
      return at(path, `must be ${String(params.allowedValue)}`);
    case 'anyOf': {
      const last = path[path.length - 1];
      return at(path, ANY_OF_MESSAGES[String(last)] ?? 'does not match any allowed form');
    }
    case 'discriminator': {
      const tag = String(params.tag);
      if (params.error === 'tag') return at([...path, tag], 'must be a string');
      const options = (error.parentSchema?.oneOf ?? []) as readonly SchemaNode[];
      const kinds = options.map((branch) => String((branch.properties as Record<string, SchemaNode>)[tag]?.const));
      return at([...path, tag], `must be one of: ${kinds.join(', ')}`);
    }
    case 'minItems':
      return at(path, Number(params.limit) === 1 ? 'must not be empty' : `must hold at least ${String(params.limit)} items`);
    case 'maxItems':
      return at(path, `must hold at most ${String(params.limit)} items`);
    case 'minLength':
      return at(path, Number(params.limit) === 1 ? 'must not be empty' : `must be at least ${String(params.limit)} characters`);
    case 'maxLength':
      return at(path, `must be at most ${String(params.limit)} characters`);
    case 'minimum':
    case 'maximum':
      return at(path, `must be ${error.keyword === 'minimum' ? 'at least' : 'at most'} ${String(params.limit)}`);
    case 'uniqueItems':
      return at(path, 'must not repeat an item');
    default:
      return at(path, error.message ?? 'invalid value');
  }
}
