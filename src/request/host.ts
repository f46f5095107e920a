import { isIPv6 } from 'node:net';

/** DNS names are at most 253 characters; IPv6 literals with brackets fit well inside too. */
const MAX_HOST_CHARS = 253;

function isHostChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) || // a-z
    (c >= 65 && c <= 90) || // A-Z
    (c >= 48 && c <= 57) || // 0-9
    c === 45 || // -
    c === 46 || // .
    c === 95 // _ (seen in internal names)
  );
}

function isHexOrColon(c: number): boolean {
  return (c >= 48 && c <= 58) || (c >= 97 && c <= 102) || (c >= 65 && c <= 70) || c === 46;
}

/** `''` for none, the port digits otherwise; undefined when the port is not 1..65535 without leading zeros. */
function checkPort(value: string, start: number): string | undefined {
  const length = value.length - start;
  if (length < 1 || length > 5 || value.charCodeAt(start) === 48 /* 0 */) return undefined;
  for (let i = start; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return undefined;
  }
  const port = value.slice(start);
  return Number(port) <= 65535 ? port : undefined;
}

// The last answer: nearly every request to one gateway names the same host. A pure function's
// result, so a hit is exactly what the scan would return (the same string, its hash already kept).
let lastValue = '';
let lastNormal: string | undefined;

/**
 * The comparable form of a Host value: lower-cased, trailing dot and `:80`/`:443` dropped, so that
 * route matching sees `Example.COM.:443` and `example.com` as one host. Undefined for anything
 * that is not `reg-name[:port]` or `[IPv6][:port]`: userinfo, spaces, percent-encoding, empty
 * labels, a bad or zero-padded port. A linear scan, no regex.
 */
export function normalizeHost(value: string): string | undefined {
  if (value === lastValue) return lastNormal;
  const normal = scanHost(value);
  lastValue = value;
  lastNormal = normal;
  return normal;
}

function scanHost(value: string): string | undefined {
  const length = value.length;
  if (length === 0 || length > MAX_HOST_CHARS + 7) return undefined;
  let name: string;
  let portStart: number;
  if (value.charCodeAt(0) === 91 /* [ */) {
    const close = value.indexOf(']');
    if (close < 3) return undefined;
    for (let i = 1; i < close; i++) if (!isHexOrColon(value.charCodeAt(i))) return undefined;
    const literal = value.slice(1, close);
    if (!isIPv6(literal)) return undefined;
    name = `[${literal.toLowerCase()}]`;
    if (close + 1 === length) portStart = -1;
    else if (value.charCodeAt(close + 1) === 58 /* : */) portStart = close + 2;
    else return undefined;
  } else {
    let end = length;
    let upper = false;
    let labelLength = 0;
    for (let i = 0; i < length; i++) {
      const c = value.charCodeAt(i);
      if (c === 58 /* : */) {
        end = i;
        break;
      }
      if (!isHostChar(c)) return undefined;
      if (c === 46 /* . */) {
        if (labelLength === 0) return undefined; // `.a`, `a..b`
        labelLength = 0;
      } else {
        labelLength++;
        if (c >= 65 && c <= 90) upper = true;
      }
    }
    if (end === 0) return undefined;
    // One trailing dot is the fully-qualified spelling of the same name; drop it.
    const nameEnd = value.charCodeAt(end - 1) === 46 ? end - 1 : end;
    if (nameEnd === 0 || nameEnd > MAX_HOST_CHARS) return undefined;
    name = nameEnd === length ? value : value.slice(0, nameEnd);
    if (upper) name = name.toLowerCase();
    portStart = end === length ? -1 : end + 1;
  }
  if (portStart === -1) return name;
  const port = checkPort(value, portStart);
  if (port === undefined) return undefined;
  // Default ports of http and https are dropped whatever the scheme: both spellings name one origin.
  return port === '80' || port === '443' ? name : `${name}:${port}`;
}
