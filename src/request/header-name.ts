/**
 * `name`, as read off the wire, is the lower-case `lower`, ASCII case-insensitively. No lower-cased
 * copy of the name and no hash of it: most names differ in length and cost one integer compare.
 */
export function isHeaderName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Like isHeaderName, but `_` and `.` also stand for `-`: the spellings CGI-style backends fold
 * together, so `X_Session.Token` reads as `x-session-token` to them.
 */
export function isLooseHeaderName(name: string, lower: string): boolean {
  if (name.length !== lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    else if (c === 95 || c === 46) c = 45;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}
