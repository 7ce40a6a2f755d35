/**
 * Strict syntax checks (RFC 3261 §25.1) for the header values whose mistakes RFC 4475 tests: From/To/
 * Contact/Route values (name-addr or addr-spec with parameters) and Via elements. Each check returns
 * why the value is malformed, or undefined when it is well formed. They only read the string (no
 * regular expression that can backtrack on long input), so hostile input costs linear time.
 *
 * What they refuse:
 * - a display name that is neither a quoted string nor tokens separated by whitespace (`Bell, Alexander <...>`)
 * - an unterminated quoted string (`"Mr. J. User <sip:...>`)
 * - whitespace inside `<...>` (`< sip:t.watson@example.org >`)
 * - an addr-spec (no `<...>`) that contains `?` or `,` (such a URI must be in angle brackets, RFC 3261 §20)
 * - an empty or malformed parameter (`;;`, `;=x`)
 */

const TOKEN_CHARS = new Set('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`\'~');
/** characters a parameter value may have besides token characters: IPv6 references and host names */
const PARAM_VALUE_EXTRA = new Set('[]:');
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]{0,31}:/;

export function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (const ch of s) if (!TOKEN_CHARS.has(ch)) return false;
  return true;
}

function isWs(ch: string | undefined): boolean {
  return ch === ' ' || ch === '\t';
}

function hasWhitespace(s: string): boolean {
  for (const ch of s) if (ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n') return true;
  return false;
}

/** Index just past the quoted string that starts at `start` (a `"`), or -1 when it never ends. */
function endOfQuoted(s: string, start: number): number {
  for (let i = start + 1; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === '"') return i + 1;
  }
  return -1;
}

function uriError(uri: string): string | undefined {
  if (!uri) return 'empty URI';
  if (hasWhitespace(uri)) return 'whitespace inside a URI';
  if (!SCHEME.test(uri)) return 'URI without a scheme';
  return undefined;
}

/** `*( SEMI generic-param )` where SEMI may have whitespace around it; `rest` is what follows the address. */
export function paramsError(rest: string): string | undefined {
  let i = 0;
  while (i < rest.length) {
    while (isWs(rest[i])) i++;
    if (i >= rest.length) return undefined;
    if (rest[i] !== ';') return `unexpected ${JSON.stringify(rest.slice(i, i + 20))} after the address`;
    i++;
    while (isWs(rest[i])) i++;
    let name = '';
    while (i < rest.length && TOKEN_CHARS.has(rest[i])) name += rest[i++];
    if (!name) return 'empty parameter';
    while (isWs(rest[i])) i++;
    if (rest[i] !== '=') continue;
    i++;
    while (isWs(rest[i])) i++;
    if (rest[i] === '"') {
      const end = endOfQuoted(rest, i);
      if (end < 0) return 'unterminated quoted parameter value';
      i = end;
      continue;
    }
    let value = '';
    while (i < rest.length && (TOKEN_CHARS.has(rest[i]) || PARAM_VALUE_EXTRA.has(rest[i]))) value += rest[i++];
    if (!value) return `parameter ${name} has an empty value`;
  }
  return undefined;
}

/**
 * A From/To/Contact/Route/Record-Route element: `[display-name] <URI> *(;param)` or `URI *(;param)`
 * (`*` is a valid Contact of a REGISTER and is accepted here).
 */
export function addressError(value: string): string | undefined {
  const v = value.trim();
  if (!v) return 'empty address';
  if (v === '*') return undefined;
  let i = 0;
  let display = '';
  if (v[0] === '"') {
    const end = endOfQuoted(v, 0);
    if (end < 0) return 'unterminated quoted display name';
    i = end;
    while (isWs(v[i])) i++;
    if (v[i] !== '<') return 'quoted display name not followed by <URI>';
  } else {
    const lt = v.indexOf('<');
    if (lt < 0) {
      // addr-spec: the URI runs to the first ';' (URI parameters are not possible without <...>)
      const semi = v.indexOf(';');
      const uri = (semi < 0 ? v : v.slice(0, semi)).trim();
      const bad = uriError(uri);
      if (bad) return bad;
      if (uri.includes('?') || uri.includes(',')) return 'a URI with ? or , must be enclosed in <...>';
      return semi < 0 ? undefined : paramsError(v.slice(semi));
    }
    display = v.slice(0, lt).trim();
    i = lt;
    for (const word of display.split(/[ \t]+/)) {
      if (display && !isToken(word)) return 'display name with characters a token cannot have is not quoted';
    }
  }
  const gt = v.indexOf('>', i);
  if (gt < 0) return 'no > after <';
  const bad = uriError(v.slice(i + 1, gt));
  if (bad) return bad;
  return paramsError(v.slice(gt + 1));
}

/** One Via element: `SIP / 2.0 / transport sent-by *(;param)` (whitespace allowed around the slashes). */
export function viaError(value: string): string | undefined {
  const v = value.trim();
  let i = 0;
  const skipWs = (): void => {
    while (isWs(v[i])) i++;
  };
  const word = (): string => {
    let w = '';
    while (i < v.length && TOKEN_CHARS.has(v[i])) w += v[i++];
    return w;
  };
  if (word().toUpperCase() !== 'SIP') return 'Via without SIP/2.0/transport';
  skipWs();
  if (v[i++] !== '/') return 'Via without SIP/2.0/transport';
  skipWs();
  if (word() !== '2.0') return 'Via of another SIP version';
  skipWs();
  if (v[i++] !== '/') return 'Via without a transport';
  skipWs();
  if (!word()) return 'Via without a transport';
  if (!isWs(v[i])) return 'Via without a sent-by';
  skipWs();
  let sentBy = '';
  while (i < v.length && !isWs(v[i]) && v[i] !== ';') sentBy += v[i++];
  if (!sentBy) return 'Via without a sent-by';
  return paramsError(v.slice(i));
}
