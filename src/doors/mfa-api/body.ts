import type { IncomingMessage } from 'node:http';
import { problem, type Problem } from '../../errors/problems.js';
import { hasBody } from '../../request/body.js';

/**
 * Reading the JSON bodies of the gateway's own endpoints: at most 16 KiB, application/json only,
 * an object, known fields only; every refusal names the field, never echoes its value (it may be
 * a code or a secret).
 */

export const MAX_BODY_BYTES = 16 * 1024;

export type Json = Record<string, unknown>;
export type BodyResult = { readonly ok: true; readonly body: Json | undefined } | { readonly ok: false; readonly problem: Problem; readonly close: boolean };

/** Reads a JSON object body; an absent body is `undefined`. Stops reading past the limit. */
export function readJson(req: IncomingMessage): Promise<BodyResult> {
  if (!hasBody(req)) return Promise.resolve({ ok: true, body: undefined });
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/json') {
    return Promise.resolve({ ok: false, problem: problem('invalid_request', 'the body must be application/json'), close: true });
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) {
    return Promise.resolve({ ok: false, problem: problem('invalid_request', `the body must be at most ${MAX_BODY_BYTES} bytes`), close: true });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult) => {
      if (done) return;
      done = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        finish({ ok: false, problem: problem('invalid_request', `the body must be at most ${MAX_BODY_BYTES} bytes`), close: true });
        req.pause();
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        finish({ ok: false, problem: problem('invalid_request', 'the body is not valid JSON'), close: false });
        return;
      }
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        finish({ ok: false, problem: problem('invalid_request', 'the body must be a JSON object'), close: false });
        return;
      }
      finish({ ok: true, body: parsed as Json });
    };
    const onError = () => finish({ ok: false, problem: problem('invalid_request', 'the body could not be read'), close: true });
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** Field checks that name the field, never echo its value (it may be a code or a secret). */
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
