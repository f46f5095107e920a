/**
 * `${NAME}` in a string value of the policy file is replaced by the environment variable NAME, so
 * one file serves every deployment (the container's issuer and JWKS URL). Only string values are
 * looked at, never keys; `${NAME:-default}` falls back to `default` when NAME is unset or empty, and
 * `$${` writes a literal `${`. Without a default, a variable that is unset or empty is an error naming it and the key: a policy never runs with a hole where a URL should be. Messages name
 * the variable, never its value.
 */
import type { Segment } from './locate.js';

const REFERENCE = /\$\$\{|\$\{([^}]*)\}/g;
/** NAME, or NAME:-fallback (the fallback may be empty, as in a shell). */
const NAME = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

export interface EnvIssue {
  readonly path: readonly Segment[];
  readonly message: string;
}

function substituteString(text: string, env: Readonly<Record<string, string | undefined>>, problems: string[]): string {
  if (!text.includes('${')) return text;
  return text.replace(REFERENCE, (whole, name: string | undefined) => {
    if (whole === '$${') return '${';
    const parts = name === undefined ? null : NAME.exec(name);
    if (parts === null) {
      problems.push(`"${whole}" is not a variable reference: write \${NAME} or \${NAME:-default} with NAME of A-Z a-z 0-9 _ (or $\${ for a literal \${)`);
      return whole;
    }
    const variable = parts[1]!;
    const fallback = parts[2];
    const value = env[variable];
    if (value !== undefined && value !== '') return value;
    if (fallback !== undefined) return fallback;
    problems.push(`environment variable ${variable} is ${value === undefined ? 'not set' : 'empty'} (referenced as \${${variable}}; give it a value or write \${${variable}:-default})`);
    return whole;
  });
}

/** A copy of `data` with every reference replaced, and one issue per unusable reference. */
export function substituteEnv(data: unknown, env: Readonly<Record<string, string | undefined>>): { readonly data: unknown; readonly issues: readonly EnvIssue[] } {
  const issues: EnvIssue[] = [];
  const walk = (value: unknown, path: readonly Segment[]): unknown => {
    if (typeof value === 'string') {
      const problems: string[] = [];
      const replaced = substituteString(value, env, problems);
      for (const message of problems) issues.push({ path, message });
      return replaced;
    }
    if (Array.isArray(value)) return value.map((item, index) => walk(item, [...path, index]));
    if (typeof value === 'object' && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, walk(item, [...path, key])]));
    }
    return value;
  };
  return { data: walk(data, []), issues };
}

