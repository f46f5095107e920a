import { problem, type Problem } from '../../errors/problems.js';

/**
 * Checks of a JSON body's fields for the gateway's own endpoints: they name the field, never echo
 * its value (it may be a code, a secret or an address).
 */

export type Json = Record<string, unknown>;

export function onlyFields(body: Json, allowed: readonly string[]): Problem | undefined {
  for (const key of Object.keys(body)) {
    if (!allowed.includes(key)) {
      return problem('invalid_request', /^[A-Za-z0-9_]{1,32}$/.test(key) ? `unknown field "${key}"` : 'unknown field in the body');
    }
  }
  return undefined;
}

export function stringField(body: Json, key: string): string | Problem {
  const value = body[key];
  if (typeof value !== 'string' || value === '' || value.length > 256) return problem('invalid_request', `"${key}" must be a non-empty string`);
  return value;
}

export function isProblem(value: unknown): value is Problem {
  return typeof value === 'object' && value !== null && 'code' in value && 'detail' in value;
}
