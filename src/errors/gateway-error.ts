/**
 * The one base of every exception the gateway throws: programming and configuration mistakes found
 * at creation (bad options, a bad policy file, a missing key, a closed store). Refusals of a request
 * are `Problem` values (./problems.ts), never exceptions.
 *
 * Every code reads `ERR_<AREA>_<FAILURE>` (as in Node and jose), so it cannot be mistaken for a
 * problem code, which is lower snake_case and goes to HTTP clients. Codes are unique across classes
 * and listed in docs/errors.md; callers switch on `code`, never on the message.
 */

/** `Symbol.for`, so that two copies of the package (e.g. a plugin's and the app's) recognise each other. */
const BRAND = Symbol.for('mfa-gateway.error');

/** A subclass as `is()` sees it: its instances' type and the codes they carry. */
type GatewayErrorClass<T> = (abstract new (...args: never[]) => T) & { readonly codes: readonly string[] };

export abstract class GatewayError<Code extends string = string> extends Error {
  /** Every code instances of this class carry; `is()` recognises the class by them (empty on the base). */
  static readonly codes: readonly string[] = [];

  readonly code: Code;

  constructor(code: Code, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  /**
   * `GatewayError.is(x)`: any gateway error; `MfaError.is(x)`: one of MfaError's codes. Works across
   * copies of the package, where `instanceof` would not.
   */
  static is<T extends GatewayError>(this: GatewayErrorClass<T>, value: unknown): value is T {
    if (typeof value !== 'object' || value === null || (value as Record<symbol, unknown>)[BRAND] !== true) return false;
    const code = (value as { code?: unknown }).code;
    if (typeof code !== 'string') return false;
    return (this as object) === GatewayError || this.codes.includes(code);
  }
}

// On the prototype, not each instance: non-enumerable, so it stays out of logs and inspect output.
Object.defineProperty(GatewayError.prototype, BRAND, { value: true });

/**
 * A bad option given to a factory, thrown at creation and never per request. `option` names it (e.g.
 * `trusted_proxies[2]`); the code is the subclass's only one.
 */
export abstract class OptionError<Code extends string = string> extends GatewayError<Code> {
  readonly option: string;

  /** `rendered` is the whole message, for a class whose users already know another wording. */
  constructor(option: string, message: string, rendered = `${option}: ${message}`) {
    // A subclass's `codes` is `[Code]` (test/errors/gateway-error.test.ts checks the runtime side).
    super(new.target.codes[0] as Code, rendered);
    this.option = option;
  }
}
