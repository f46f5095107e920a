import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import { parse } from 'yaml';

/**
 * docs/openapi.yaml read as data, and the one check every real answer of the gateway goes through:
 * the status is listed for that operation, every required header is there and every documented
 * header present matches its schema, and the body is of a documented media type and validates
 * against the documented schema (ajv, JSON Schema 2020-12 — the dialect of OpenAPI 3.1).
 */

export const DOCUMENT_PATH = new URL('../../../docs/openapi.yaml', import.meta.url);

/** The parts of an OpenAPI 3.1 document these tests read; everything else stays `unknown`. */
export interface Reference {
  readonly $ref: string;
}
export interface HeaderObject {
  readonly required?: boolean;
  readonly schema: JsonSchema;
}
export interface MediaTypeObject {
  readonly schema: JsonSchema;
}
export interface ResponseObject {
  readonly description: string;
  readonly headers?: Readonly<Record<string, HeaderObject | Reference>>;
  readonly content?: Readonly<Record<string, MediaTypeObject>>;
}
export interface OperationObject {
  readonly operationId: string;
  readonly responses: Readonly<Record<string, ResponseObject | Reference>>;
}
export type PathItem = Readonly<Partial<Record<HttpMethod, OperationObject>>> & { readonly parameters?: unknown };
export type JsonSchema = Readonly<Record<string, unknown>> | boolean;
export interface OpenApiDocument {
  readonly openapi: string;
  readonly paths: Readonly<Record<string, PathItem>>;
  readonly components: {
    readonly schemas: Readonly<Record<string, JsonSchema>>;
    readonly responses: Readonly<Record<string, ResponseObject>>;
    readonly headers: Readonly<Record<string, HeaderObject>>;
  };
}

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export function documentText(): string {
  return readFileSync(DOCUMENT_PATH, 'utf8');
}

export function loadDocument(): OpenApiDocument {
  return parse(documentText()) as OpenApiDocument;
}

/** What the check reads of an answer: `Reply` from test/support/http.ts, or one fetched in a browser. */
export interface Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
}

/** The components schemas under this id; `#/components/schemas/X` becomes `urn:…#/$defs/X`. */
const SCHEMAS_ID = 'urn:mfa-gateway:openapi-schemas';

function rewriteRefs<T>(value: T): T {
  return JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', `"${SCHEMAS_ID}#/$defs/`)) as T;
}

function isReference(value: unknown): value is Reference {
  return typeof value === 'object' && value !== null && typeof (value as Reference).$ref === 'string';
}

export interface OperationAnswered {
  readonly operationId: string;
  readonly status: number;
}

export class DocumentedApi {
  readonly document: OpenApiDocument;
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();
  /** Documented path templates as regular expressions over real paths. */
  private readonly templates: readonly { readonly template: string; readonly pattern: RegExp }[];
  /** Every (operation, status) a real answer was checked for. */
  readonly answered: OperationAnswered[] = [];

  constructor(document: OpenApiDocument = loadDocument()) {
    this.document = document;
    this.ajv = new Ajv2020({ strict: true, allErrors: true });
    this.ajv.addSchema({ $id: SCHEMAS_ID, $defs: rewriteRefs(document.components.schemas) });
    this.templates = Object.keys(document.paths).map((template) => ({
      template,
      // `{path}` (ext-authz) takes the rest of the path, other parameters one segment.
      pattern: new RegExp(
        '^' +
          template
            .split(/(\{[a-z_]+\})/)
            .map((part) => (part === '{path}' ? '.+' : /^\{[a-z_]+\}$/.test(part) ? '[^/]+' : part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
            .join('') +
          '$',
      ),
    }));
  }

  /** The documented template a real path (no query) falls under, or undefined. */
  templateOf(path: string): string | undefined {
    const matches = this.templates.filter((t) => t.pattern.test(path));
    // A literal path wins over a template (`/.mfa/setup.js` over a `{param}` one, were there any).
    return matches.find((m) => !m.template.includes('{'))?.template ?? matches[0]?.template;
  }

  operation(method: string, template: string): OperationObject | undefined {
    return this.document.paths[template]?.[method.toLowerCase() as HttpMethod];
  }

  /** Follows a local `$ref` (`#/components/…`) in the document. */
  resolve<T>(value: T | Reference): T {
    if (!isReference(value)) return value;
    assert.match(value.$ref, /^#\/components\//, `only local component references are used: ${value.$ref}`);
    let node: unknown = this.document;
    for (const part of value.$ref.slice(2).split('/')) node = (node as Record<string, unknown>)[part];
    assert.ok(node !== undefined, `unresolved reference ${value.$ref}`);
    return this.resolve(node as T | Reference);
  }

  validator(schema: JsonSchema): ValidateFunction {
    const key = JSON.stringify(schema);
    let validate = this.compiled.get(key);
    if (validate === undefined) {
      validate = this.ajv.compile(typeof schema === 'boolean' ? schema : rewriteRefs(schema));
      this.compiled.set(key, validate);
    }
    return validate;
  }

  /** Asserts that `value` satisfies `schema`, naming `what` and the errors when it does not. */
  assertValid(schema: JsonSchema, value: unknown, what: string): void {
    const validate = this.validator(schema);
    assert.ok(validate(value), `${what} does not match the document: ${this.ajv.errorsText(validate.errors)}\n${JSON.stringify(value)}`);
  }

  /** Checks a response object of the document against a real answer. */
  checkResponse(response: ResponseObject, answer: Answer, what: string): void {
    for (const [name, declared] of Object.entries(response.headers ?? {})) {
      const header = this.resolve(declared);
      const value = answer.headers[name.toLowerCase()];
      if (value === undefined) {
        assert.ok(header.required !== true, `${what}: documented header ${name} is required but absent`);
        continue;
      }
      const text = Array.isArray(value) ? value.join(', ') : value;
      // Header values are text; a schema of type integer describes its decimal digits.
      const typed = typeof header.schema === 'object' && header.schema.type === 'integer' && /^\d+$/.test(text) ? Number(text) : text;
      this.assertValid(header.schema, typed, `${what}: header ${name}`);
    }
    const contentType = answer.headers['content-type'];
    if (response.content === undefined) {
      assert.equal(answer.text, '', `${what}: the document lists no body, the answer has one`);
      return;
    }
    assert.ok(contentType !== undefined, `${what}: the answer has no Content-Type`);
    const media = contentType.split(';')[0]!.trim().toLowerCase();
    const documented = response.content[media];
    assert.ok(documented !== undefined, `${what}: media type ${media} is not documented (${Object.keys(response.content).join(', ')})`);
    if (!media.endsWith('json')) {
      this.assertValid(documented.schema, answer.text, `${what}: body`);
      return;
    }
    const body = JSON.parse(answer.text) as unknown;
    this.assertValid(documented.schema, body, `${what}: body`);
    if (media === 'application/problem+json') {
      // RFC 9457: the member repeats the status line; request_id repeats the header.
      const problem = body as { status: number; request_id?: string };
      assert.equal(problem.status, answer.status, `${what}: problem status`);
      assert.equal(problem.request_id, answer.headers['x-request-id'], `${what}: request_id and X-Request-Id`);
    }
  }

  /**
   * Checks a real answer to `method path` (no query) against the operation the document gives it
   * and records that this status of the operation was seen.
   */
  check(method: string, path: string, answer: Answer): void {
    const template = this.templateOf(path);
    assert.ok(template !== undefined, `${path} is not a documented path`);
    const operation = this.operation(method, template);
    const what = `${method} ${template} → ${answer.status}`;
    assert.ok(operation !== undefined, `${method} ${template} is not a documented operation`);
    const declared = operation.responses[String(answer.status)];
    assert.ok(declared !== undefined, `${what}: status not documented (documented: ${Object.keys(operation.responses).join(', ')}); body: ${answer.text.slice(0, 300)}`);
    this.checkResponse(this.resolve(declared), answer, what);
    this.answered.push({ operationId: operation.operationId, status: answer.status });
  }

  /**
   * A method the document does not list for the path: the answer is MethodNotAllowed, and its
   * `Allow` names exactly the documented methods.
   */
  checkWrongMethod(method: string, path: string, answer: Answer): void {
    const template = this.templateOf(path);
    assert.ok(template !== undefined, `${path} is not a documented path`);
    assert.equal(this.operation(method, template), undefined, `${method} ${template} is documented`);
    const what = `${method} ${template} (not documented) → ${answer.status}`;
    assert.equal(answer.status, 405, `${what}: ${answer.text}`);
    this.checkResponse(this.document.components.responses.MethodNotAllowed!, answer, what);
    const documented = HTTP_METHODS.filter((m) => this.document.paths[template]![m] !== undefined).map((m) => m.toUpperCase());
    assert.deepEqual(String(answer.headers.allow).split(', ').sort(), documented.sort(), `${what}: Allow`);
  }

  /** Every documented operation, as [method, template, operationId]. */
  operations(): [HttpMethod, string, string][] {
    return Object.entries(this.document.paths).flatMap(([template, item]) =>
      HTTP_METHODS.filter((method) => item[method] !== undefined).map((method): [HttpMethod, string, string] => [method, template, item[method]!.operationId]),
    );
  }
}
