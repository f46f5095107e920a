/**
 * Reading `WWW-Authenticate` (RFC 9110 §11.6.1) for the Bearer challenge: RFC 6750 `error`,
 * `error_description`, `scope`; RFC 9470 `max_age` (and `acr_values`); and the gateway's own
 * auth-param `mfa_methods` (space-separated, like `scope`). Other schemes in the same field are
 * skipped; a field that does not parse yields no challenge rather than a guess.
 */

export interface BearerChallenge {
  /** e.g. `insufficient_user_authentication`, `invalid_token`. */
  readonly error: string | undefined;
  readonly errorDescription: string | undefined;
  /** RFC 9470: seconds the second factor may be old for this resource. */
  readonly maxAge: number | undefined;
  readonly acrValues: readonly string[] | undefined;
  /** Second-factor methods the route accepts, when it restricts them (`totp`, `recovery`, …). */
  readonly mfaMethods: readonly string[] | undefined;
  readonly scope: readonly string[] | undefined;
}

// RFC 9110 §5.6.2 / §11.2: a token, an auth-param (`name = token / quoted-string`), a token68.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+/;
const AUTH_PARAM = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+)[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([!#$%&'*+\-.^_`|~0-9A-Za-z]+))/;
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*(?=[ \t]*(?:,|$))/;

interface Parsed {
  readonly scheme: string;
  readonly params: Map<string, string>;
}

/** Every challenge in the field, with its auth-params (lower-cased names); undefined when malformed. */
function parseChallenges(field: string): Parsed[] | undefined {
  const out: Parsed[] = [];
  let rest = field;
  for (;;) {
    rest = rest.replace(/^[ \t,]+/, '');
    if (rest.length === 0) return out;
    const scheme = TOKEN.exec(rest)?.[0];
    if (scheme === undefined) return undefined;
    rest = rest.slice(scheme.length).replace(/^[ \t]+/, '');
    const params = new Map<string, string>();
    out.push({ scheme: scheme.toLowerCase(), params });
    const token68 = TOKEN68.exec(rest)?.[0];
    if (token68 !== undefined && AUTH_PARAM.exec(rest) === null) rest = rest.slice(token68.length).replace(/^[ \t,]+/, '');
    // Auth-params, comma-separated, until the end or a token not followed by `=` (the next scheme).
    for (;;) {
      const param = AUTH_PARAM.exec(rest);
      if (param === null) break;
      const name = param[1]!.toLowerCase();
      // A repeated parameter makes the challenge ambiguous (RFC 9110 §11.2): no answer beats a guess.
      if (params.has(name)) return undefined;
      params.set(name, param[2] !== undefined ? param[2].replace(/\\(.)/g, '$1') : param[3]!);
      rest = rest.slice(param[0].length).replace(/^[ \t]+/, '');
      if (rest.length > 0 && !rest.startsWith(',')) return undefined;
      rest = rest.replace(/^[ \t,]+/, '');
    }
  }
}

const list = (value: string | undefined): readonly string[] | undefined => (value === undefined ? undefined : value.split(' ').filter((v) => v !== ''));

/** The Bearer challenge of a `WWW-Authenticate` field, or undefined when there is none or it is malformed. */
export function parseBearerChallenge(field: string | null | undefined): BearerChallenge | undefined {
  if (field === null || field === undefined) return undefined;
  const bearer = parseChallenges(field)?.find((c) => c.scheme === 'bearer');
  if (bearer === undefined) return undefined;
  const p = bearer.params;
  const maxAgeText = p.get('max_age');
  const maxAge = maxAgeText !== undefined && /^\d{1,10}$/.test(maxAgeText) ? Number(maxAgeText) : undefined;
  return {
    error: p.get('error'),
    errorDescription: p.get('error_description'),
    maxAge,
    acrValues: list(p.get('acr_values')),
    mfaMethods: list(p.get('mfa_methods')),
    scope: list(p.get('scope')),
  };
}
