/**
 * A small JSON parser that remembers the line of every value, so configuration errors can name
 * `file:line` and the field path (JSON.parse only reports a character offset, and nothing at all
 * for a value that parses but is wrong). Pure: no I/O, failures thrown as LocatedJsonError.
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

export interface LocatedJson {
  value: JsonValue;
  /** line (1-based) where the value at each path starts; path like `users[2].password`, root is `` */
  lines: Map<string, number>;
}

export class LocatedJsonError extends Error {
  constructor(readonly line: number, readonly detail: string) {
    super(`line ${line}: ${detail}`);
    this.name = 'LocatedJsonError';
  }
}

export function parseLocatedJson(text: string): LocatedJson {
  const lines = new Map<string, number>();
  let pos = 0;
  let line = 1;

  const fail = (detail: string): never => {
    throw new LocatedJsonError(line, detail);
  };
  const skipSpace = (): void => {
    while (pos < text.length) {
      const c = text[pos];
      if (c === '\n') { line++; pos++; }
      else if (c === ' ' || c === '\t' || c === '\r') pos++;
      else break;
    }
  };
  const describe = (): string => (pos >= text.length ? 'end of file' : JSON.stringify(text[pos]));

  const parseString = (): string => {
    if (text[pos] !== '"') fail(`expected a string, found ${describe()}`);
    const start = pos;
    pos++;
    while (pos < text.length && text[pos] !== '"') {
      if (text[pos] === '\n') fail('unterminated string');
      if (text[pos] === '\\') pos++;
      pos++;
    }
    if (pos >= text.length) fail('unterminated string');
    pos++;
    try {
      return JSON.parse(text.slice(start, pos)) as string;
    } catch {
      return fail('invalid escape in string');
    }
  };

  const parseValue = (path: string, depth: number): JsonValue => {
    if (depth > 64) fail('nesting too deep');
    skipSpace();
    lines.set(path, line);
    const c = text[pos];
    if (c === '{') {
      pos++;
      const obj: { [key: string]: JsonValue } = {};
      skipSpace();
      if (text[pos] === '}') { pos++; return obj; }
      for (;;) {
        skipSpace();
        const key = parseString();
        if (Object.prototype.hasOwnProperty.call(obj, key)) fail(`duplicate key ${JSON.stringify(key)}`);
        skipSpace();
        if (text[pos] !== ':') fail(`expected ':' after key ${JSON.stringify(key)}, found ${describe()}`);
        pos++;
        obj[key] = parseValue(path === '' ? key : `${path}.${key}`, depth + 1);
        skipSpace();
        if (text[pos] === ',') { pos++; continue; }
        if (text[pos] === '}') { pos++; return obj; }
        fail(`expected ',' or '}' in object, found ${describe()}`);
      }
    }
    if (c === '[') {
      pos++;
      const arr: JsonValue[] = [];
      skipSpace();
      if (text[pos] === ']') { pos++; return arr; }
      for (;;) {
        arr.push(parseValue(`${path}[${arr.length}]`, depth + 1));
        skipSpace();
        if (text[pos] === ',') { pos++; continue; }
        if (text[pos] === ']') { pos++; return arr; }
        fail(`expected ',' or ']' in array, found ${describe()}`);
      }
    }
    if (c === '"') return parseString();
    const literal = /^(?:true|false|null|-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?)/.exec(text.slice(pos, pos + 64));
    if (!literal) return fail(`unexpected ${describe()}`);
    pos += literal[0].length;
    return JSON.parse(literal[0]) as JsonValue;
  };

  const value = parseValue('', 0);
  skipSpace();
  if (pos < text.length) fail(`unexpected ${describe()} after the end of the document`);
  return { value, lines };
}
