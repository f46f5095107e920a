/**
 * The policy file → the frozen GatewayPolicy, in three steps that each collect every issue before
 * giving up: YAML (syntax, duplicate keys), the JSON Schema (shape, unknown keys, defaults), then the
 * semantic checks of compile.ts (regexes, upstream names, sums). Every issue carries its line.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, type YAMLError } from 'yaml';
import { compilePolicy, type RawPolicy } from './compile.js';
import { PolicyError, type PolicyIssue } from './errors.js';
import { substituteEnv } from './env.js';
import { createLocator, formatPath } from './locate.js';
import { loadPolicySchema, type PolicySchema } from './schema.js';
import type { GatewayPolicy } from './types.js';

export { PolicyError, type PolicyIssue } from './errors.js';

/** Far beyond any real policy; stops a wrong path (a log, a disk image) from being parsed. */
export const MAX_POLICY_BYTES = 1024 * 1024;
const MAX_ALIASES = 50;

// Compiled once at import and never changed afterwards: parsing a policy only reads it.
const SCHEMA: PolicySchema = loadPolicySchema();

export interface ParseOptions {
  /** Where admin.token_env and `${NAME}` references are looked up; process.env by default. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

const KEY_AT = /^("[^"\n]*"|'[^'\n]*'|[^:,{}[\]\n]+?)\s*:/;

function yamlIssue(error: YAMLError, text: string, lineCounter: LineCounter): PolicyIssue {
  // Without prettyErrors, linePos is not filled in: map the offset ourselves. An error "at the end"
  // (an unclosed bracket) points at the last line with content, not at the empty line after it.
  const lastContent = Math.max(0, text.trimEnd().length - 1);
  const line = lineCounter.linePos(Math.min(error.pos[0], lastContent)).line;
  if (error.code === 'DUPLICATE_KEY') {
    const key = KEY_AT.exec(text.slice(error.pos[0], error.pos[0] + 80))?.[1];
    return { line, path: '', message: key !== undefined ? `duplicate key ${key.startsWith('"') || key.startsWith("'") ? key : `"${key}"`}` : 'duplicate key' };
  }
  // Without prettyErrors the message holds no excerpt of the file (which could be a secret's line).
  return { line, path: '', message: `YAML: ${error.message}` };
}

/**
 * Parses and validates a policy. Pure except that it reads the `public_keys` files (relative to
 * `baseDir`), the admin token's environment variable and the variables `${NAME}` references (env.ts). Throws PolicyError listing every issue.
 */
export function parsePolicy(text: string, sourceName: string, baseDir: string, options: ParseOptions = {}): GatewayPolicy {
  const fail = (issues: readonly PolicyIssue[]): never => {
    throw new PolicyError(sourceName, issues);
  };
  if (text.trim() === '') fail([{ line: 1, path: '', message: 'the policy file is empty' }]);

  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, merge: false });
  const yamlProblems = [...doc.errors, ...doc.warnings];
  if (yamlProblems.length > 0) fail(yamlProblems.map((error) => yamlIssue(error, text, lineCounter)));
  if (doc.contents === null) fail([{ line: 1, path: '', message: 'the policy file is empty (only comments)' }]);
  if (!isMap(doc.contents)) fail([{ line: 1, path: '', message: 'the policy file must be a mapping of settings (listen:, auth:, routes: …)' }]);

  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    fail([{ line: 1, path: '', message: `YAML: ${error instanceof Error ? error.message : String(error)}` }]);
  }

  const locator = createLocator(doc, lineCounter);
  const env = options.env ?? process.env;
  const substituted = substituteEnv(data, env);
  if (substituted.issues.length > 0) fail(sortByLine(substituted.issues.map((issue) => ({ line: locator.line(issue.path), path: formatPath(issue.path), message: issue.message }))));
  data = substituted.data;
  const schemaIssues = SCHEMA.validate(data, locator);
  if (schemaIssues.length > 0) fail(sortByLine(schemaIssues));

  const compiled = compilePolicy(data as RawPolicy, { source: sourceName, baseDir, env, readFile: (path) => readFileSync(path, 'utf8') }, locator);
  if (compiled.policy === undefined) return fail(sortByLine(compiled.issues));
  return compiled.policy;
}

function sortByLine(issues: readonly PolicyIssue[]): PolicyIssue[] {
  return [...issues].sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
}

/** Reads and parses a policy file; messages name it as given (e.g. `config/gateway.yaml:14: …`). */
export function loadPolicyFile(path: string, options: ParseOptions = {}): GatewayPolicy {
  let bytes: Buffer;
  try {
    if (statSync(path).size > MAX_POLICY_BYTES) {
      throw new PolicyError(path, [{ path: '', message: `the policy file is larger than ${MAX_POLICY_BYTES} bytes` }]);
    }
    bytes = readFileSync(path);
  } catch (error) {
    if (PolicyError.is(error)) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file (or a symlink to nothing)' : code === 'EISDIR' ? 'it is a directory' : (code ?? 'unreadable');
    throw new PolicyError(path, [{ path: '', message: `cannot read the policy file: ${why}` }]);
  }
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new PolicyError(path, [{ line: 1, path: '', message: 'the policy file is not valid UTF-8' }]);
  }
  return parsePolicy(text, path, dirname(resolve(path)), options);
}
