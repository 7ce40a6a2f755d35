/**
 * Reads test sources the way test/unit/test-hygiene.test.ts needs: comments blanked out (so a sleep
 * mentioned in prose does not count), every fixed pause found, and every `test(`/`it(` call's
 * arguments split so the test can tell whether it carries a `timeout` option.
 */

/** `src` with line and block comments replaced by spaces (strings and template literals kept, newlines kept) */
export function blankComments(src: string): string {
  let out = '';
  let i = 0;
  const n = src.length;
  while (i < n) {
    const c = src[i]!;
    const d = src[i + 1];
    if (c === '/' && d === '/') {
      while (i < n && src[i] !== '\n') {
        out += ' ';
        i++;
      }
    } else if (c === '/' && d === '*') {
      const end = src.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      for (; i < stop; i++) out += src[i] === '\n' ? '\n' : ' ';
    } else if (c === '"' || c === "'" || c === '`') {
      const start = i;
      i = skipString(src, i);
      out += src.slice(start, i);
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** index just past the string literal starting at `i` (template `${}` nesting followed) */
function skipString(src: string, i: number): number {
  const q = src[i];
  i++;
  while (i < src.length) {
    const c = src[i];
    if (c === '\\') {
      i += 2;
      continue;
    }
    if (c === q) return i + 1;
    if (q !== '`' && c === '\n') return i; // unterminated: a regex or a stray quote; stop at the line end
    if (q === '`' && c === '$' && src[i + 1] === '{') {
      i = skipBalanced(src, i + 1);
      continue;
    }
    i++;
  }
  return i;
}

/** `src[open]` is `(`, `{` or `[`; index just past its matching closer (strings and regex-free code assumed) */
function skipBalanced(src: string, open: number): number {
  let depth = 0;
  let i = open;
  while (i < src.length) {
    const c = src[i]!;
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(src, i);
      continue;
    }
    if (c === '(' || c === '{' || c === '[') depth++;
    else if (c === ')' || c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
    i++;
  }
  return i;
}

export interface Finding {
  line: number;
  text: string;
}

function lineOf(src: string, index: number): number {
  let line = 1;
  for (let i = 0; i < index; i++) if (src[i] === '\n') line++;
  return line;
}

function lineText(src: string, index: number): string {
  const start = src.lastIndexOf('\n', index) + 1;
  const end = src.indexOf('\n', index);
  return src.slice(start, end < 0 ? src.length : end).trim();
}

/** the longest literal `pollPause(ms)` counted as a poll step rather than a fixed wait */
export const MAX_POLL_STEP_MS = 100;

/**
 * Fixed pauses in `code` (comments already blanked): `setTimeout(resolve, …)` (a promise resolved by a
 * timer), a `sleep(`/`delay(`/`realTimePause(`/`pollPause(` call, and any import of `timers/promises`.
 * A `setTimeout(() => …, ms)` that schedules an action or a guard is not a pause and is not reported, nor is
 * a `pollPause(n)` with a literal n <= MAX_POLL_STEP_MS (the step of a polling loop), nor a clock's method
 * (`clock.setTimeout(fn, ms)`).
 */
export function findFixedPauses(code: string): Finding[] {
  const found: Finding[] = [];
  const patterns = [
    /(?<![\w$.])setTimeout\(\s*[A-Za-z_$][\w$]*\s*,/g,
    /(?<![\w$.])(?:sleep|delay|realTimePause|pollPause)\s*\(/g,
    /['"](?:node:)?timers\/promises['"]/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) {
      // the definitions of the pause functions themselves are not calls
      const before = code.slice(Math.max(0, m.index - 20), m.index);
      if (/function\s+$/.test(before)) continue;
      // a poll step: `pollPause(<= 100 ms literal>)` between two looks of a polling loop, not a wait
      const step = /^pollPause\(\s*(\d[\d_]*)\s*\)/.exec(code.slice(m.index));
      if (step && Number(step[1]!.replace(/_/g, '')) <= MAX_POLL_STEP_MS) continue;
      found.push({ line: lineOf(code, m.index), text: lineText(code, m.index) });
    }
  }
  return found.sort((a, b) => a.line - b.line);
}

export interface TestCall {
  kind: 'test' | 'it' | 'describe';
  line: number;
  name: string;
  start: number;
  end: number;
  hasTimeout: boolean;
}

/** the positions of the commas at depth 0 between `open` (a `(`) and `end` (just past its closer) */
export function topLevelCommas(code: string, open: number, end: number): number[] {
  const commas: number[] = [];
  let depth = 0;
  let i = open + 1;
  while (i < end - 1) {
    const c = code[i]!;
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(code, i);
      continue;
    }
    if (c === '(' || c === '{' || c === '[') depth++;
    else if (c === ')' || c === '}' || c === ']') depth--;
    else if (c === ',' && depth === 0) commas.push(i);
    i++;
  }
  return commas;
}

/** the argument sources of the call whose `(` is at `open` */
function topLevelArgs(code: string, open: number, end: number): string[] {
  const cuts = [open, ...topLevelCommas(code, open, end), end - 1];
  return cuts.slice(1).map((c, k) => code.slice(cuts[k]! + 1, c).trim()).filter(Boolean);
}

/** whether an options argument is an object literal with a top-level `timeout`, or names one declared with it */
function optionHasTimeout(arg: string, code: string): boolean {
  if (arg.startsWith('{')) return /^\{[^]*?\btimeout\s*[:,}]/.test(arg) && topLevelKeys(arg).includes('timeout');
  const ident = /^[A-Za-z_$][\w$]*$/.exec(arg)?.[0];
  if (!ident) return false;
  const decl = new RegExp(`\\b(?:const|let|var)\\s+${ident}\\b[^=]*=\\s*\\{`).exec(code);
  if (!decl) return false;
  const open = decl.index + decl[0].length - 1;
  return topLevelKeys(code.slice(open, skipBalanced(code, open))).includes('timeout');
}

/** the top-level keys of an object literal's source `{ … }` (shorthand and `...spread` of a name with timeout not followed) */
function topLevelKeys(obj: string): string[] {
  const inner = obj.slice(1, -1);
  const keys: string[] = [];
  let depth = 0;
  let atKey = true;
  let i = 0;
  while (i < inner.length) {
    const c = inner[i]!;
    if (c === '"' || c === "'" || c === '`') {
      i = skipString(inner, i);
      continue;
    }
    if (c === '(' || c === '{' || c === '[') depth++;
    else if (c === ')' || c === '}' || c === ']') depth--;
    else if (depth === 0 && c === ',') atKey = true;
    else if (depth === 0 && atKey && /[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][\w$]*/.exec(inner.slice(i))!;
      keys.push(m[0]);
      i += m[0].length;
      atKey = false;
      continue;
    }
    i++;
  }
  return keys;
}

/** the [start, end) ranges of the string and template literals in `code` (comments already blanked) */
function stringRanges(code: string): [number, number][] {
  const ranges: [number, number][] = [];
  let i = 0;
  while (i < code.length) {
    const c = code[i];
    if (c === '"' || c === "'" || c === '`') {
      const end = skipString(code, i);
      ranges.push([i, end]);
      i = end;
    } else i++;
  }
  return ranges;
}

/** every `test(`, `it(` and `describe(` call (also `.only`/`.skip`/`.todo` forms and `t.test(`), not words inside strings */
export function findTestCalls(code: string): TestCall[] {
  const calls: TestCall[] = [];
  const strings = stringRanges(code);
  const re = /(?<![\w$])(?:(t)\.)?(test|it|describe)(?:\.(?:only|skip|todo))?\s*\(/g;
  for (const m of code.matchAll(re)) {
    if (strings.some(([from, to]) => m.index >= from && m.index < to)) continue;
    // a method of some other object (`foo.test(`) is not a test call; `t.test(` (a subtest) is
    const prev = code.slice(Math.max(0, m.index - 1), m.index);
    if (prev === '.') continue;
    const open = m.index + m[0].length - 1;
    const end = skipBalanced(code, open);
    const args = topLevelArgs(code, open, end);
    const name = args[0] ?? '';
    // `describe('x', fn)` / `test('x', { timeout }, fn)`: a call with fewer than two arguments is not a test declaration
    if (args.length < 2) continue;
    const hasTimeout = args.slice(1, -1).some((a) => optionHasTimeout(a, code)) || (args.length >= 2 && optionHasTimeout(args[args.length - 1]!, code));
    calls.push({ kind: m[2] as TestCall['kind'], line: lineOf(code, m.index), name: name.slice(0, 80), start: m.index, end, hasTimeout });
  }
  return calls;
}

/** the `test`/`it` calls that have no timeout of their own and sit in no `describe` that has one */
export function testsWithoutTimeout(code: string): TestCall[] {
  const calls = findTestCalls(code);
  const timedSuites = calls.filter((c) => c.kind === 'describe' && c.hasTimeout);
  return calls.filter((c) => c.kind !== 'describe' && !c.hasTimeout && !timedSuites.some((s) => s.start < c.start && c.end <= s.end));
}
