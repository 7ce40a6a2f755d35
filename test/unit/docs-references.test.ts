import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * The repository stands alone: every document a comment or a doc names is in the repository, and no
 * comment or doc points at notes outside it or talks about who wrote what. This test scans src/, test/,
 * bench/, scripts/, docs/ and README.md and fails naming each file:line that
 * - names a `something.md` that does not exist (resolved from the naming file's folder, the repository
 *   root, or docs/; placeholders such as `<out>/results.md` and URLs are not names);
 * - links (markdown `[text](target)`) to a local file that does not exist;
 * - cites a rule, scenario or section that the named document does not have (`docs/lifecycle.md,
 *   rule 9`, `lifecycle.md S17`, `sip-control-extension.md §12`, `security.md, "No such heading"`);
 * - mentions `../shared` or `shared/design`, a "research note", an issue by number (`issue 5`; an outside
 *   project's tracker, `drachtio-server issue #89`, is fine), or engineers (who wrote or runs what).
 * What counts as a comment: comments in TypeScript/JavaScript (read with the TypeScript scanner, so
 * strings and code are never mistaken for prose), `#` comments in shell scripts, `<!-- -->` in XML/HTML,
 * `/* *\/` in CSS; Markdown files count whole.
 */
const ROOT = path.join(__dirname, '..', '..');
const SELF = path.relative(ROOT, __filename);
const SCANNED = ['src', 'test', 'bench', 'scripts', 'docs', 'README.md'];
const CODE_EXT = new Set(['.ts', '.js', '.cjs', '.mjs']);
const TEXT_EXT = new Set([...CODE_EXT, '.md', '.sh', '.xml', '.html', '.css', '.txt']);
/** Markdown files a program writes at run time (not in the repository), with the program that writes each. */
const GENERATED_MD: Record<string, string> = {
  'results.md': 'bench/media/run.ts',
  'cpu-profile.md': 'bench/media/run.ts',
};

interface Prose {
  /** 1-based line of the prose's first character in its file */
  line: number;
  text: string;
}

interface Finding {
  where: string;
  problem: string;
}

function walk(rel: string): string[] {
  const full = path.join(ROOT, rel);
  if (!existsSync(full)) return [];
  if (statSync(full).isFile()) return TEXT_EXT.has(path.extname(rel)) ? [rel] : [];
  const out: string[] = [];
  for (const entry of readdirSync(full, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name.startsWith('.')) continue;
    out.push(...walk(path.join(rel, entry.name)));
  }
  return out;
}

function lineAt(text: string, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset && i < text.length; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/** Tokens after which a `/` divides (anything else starts a regular expression). */
const ENDS_EXPRESSION = new Set<ts.SyntaxKind>([
  ts.SyntaxKind.Identifier,
  ts.SyntaxKind.NumericLiteral,
  ts.SyntaxKind.BigIntLiteral,
  ts.SyntaxKind.StringLiteral,
  ts.SyntaxKind.RegularExpressionLiteral,
  ts.SyntaxKind.NoSubstitutionTemplateLiteral,
  ts.SyntaxKind.TemplateTail,
  ts.SyntaxKind.CloseParenToken,
  ts.SyntaxKind.CloseBracketToken,
  ts.SyntaxKind.CloseBraceToken,
  ts.SyntaxKind.ThisKeyword,
  ts.SyntaxKind.SuperKeyword,
  ts.SyntaxKind.TrueKeyword,
  ts.SyntaxKind.FalseKeyword,
  ts.SyntaxKind.NullKeyword,
  ts.SyntaxKind.PlusPlusToken,
  ts.SyntaxKind.MinusMinusToken,
  ts.SyntaxKind.ExclamationToken,
]);
const TRIVIA = new Set<ts.SyntaxKind>([
  ts.SyntaxKind.WhitespaceTrivia,
  ts.SyntaxKind.NewLineTrivia,
  ts.SyntaxKind.SingleLineCommentTrivia,
  ts.SyntaxKind.MultiLineCommentTrivia,
  ts.SyntaxKind.ShebangTrivia,
  ts.SyntaxKind.ConflictMarkerTrivia,
]);

/** The comments of a TypeScript/JavaScript source, found by the TypeScript scanner (strings, templates and regular expressions skipped). */
function codeComments(text: string): Prose[] {
  const scanner = ts.createScanner(ts.ScriptTarget.Latest, false, ts.LanguageVariant.Standard, text);
  const out: Prose[] = [];
  /** open `{` of code (false) and `${` of a template (true) */
  const braces: boolean[] = [];
  let previous = ts.SyntaxKind.Unknown;
  for (let kind = scanner.scan(), n = 0; kind !== ts.SyntaxKind.EndOfFileToken && n < 5_000_000; kind = scanner.scan(), n++) {
    if (kind === ts.SyntaxKind.SingleLineCommentTrivia || kind === ts.SyntaxKind.MultiLineCommentTrivia) {
      out.push({ line: lineAt(text, scanner.getTokenStart()), text: scanner.getTokenText() });
    }
    if (TRIVIA.has(kind)) continue;
    if ((kind === ts.SyntaxKind.SlashToken || kind === ts.SyntaxKind.SlashEqualsToken) && !ENDS_EXPRESSION.has(previous)) {
      kind = scanner.reScanSlashToken();
    } else if (kind === ts.SyntaxKind.OpenBraceToken) {
      braces.push(false);
    } else if (kind === ts.SyntaxKind.TemplateHead) {
      braces.push(true);
    } else if (kind === ts.SyntaxKind.CloseBraceToken) {
      if (braces.pop() === true) {
        kind = scanner.reScanTemplateToken(false);
        if (kind === ts.SyntaxKind.TemplateMiddle) braces.push(true);
      }
    }
    previous = kind;
  }
  return out;
}

function delimited(text: string, open: string, close: string): Prose[] {
  const out: Prose[] = [];
  let at = text.indexOf(open);
  while (at >= 0) {
    const end = text.indexOf(close, at + open.length);
    const stop = end < 0 ? text.length : end + close.length;
    out.push({ line: lineAt(text, at), text: text.slice(at, stop) });
    at = text.indexOf(open, stop);
  }
  return out;
}

function hashComments(text: string): Prose[] {
  const out: Prose[] = [];
  text.split('\n').forEach((l, i) => {
    const at = l.indexOf('#');
    if (at >= 0) out.push({ line: i + 1, text: l.slice(at) });
  });
  return out;
}

/** The parts of a file a reader takes as documentation. */
export function proseOf(file: string, text: string): Prose[] {
  const ext = path.extname(file);
  if (ext === '.md') return [{ line: 1, text }];
  if (CODE_EXT.has(ext)) return codeComments(text);
  if (ext === '.sh' || ext === '.txt') return hashComments(text);
  if (ext === '.xml' || ext === '.html') return delimited(text, '<!--', '-->');
  if (ext === '.css') return delimited(text, '/*', '*/');
  return [];
}

const URL_RE = /\b(?:https?|file|wss?):\/\/\S+/g;
/** `name.md` or `dir/name.md`, not preceded by a path character (so `<out>/results.md` is a placeholder, not a name). */
const MD_NAME_RE = /(?<![\w/.<>-])((?:\.{1,2}\/)?(?:[\w-][\w.-]*\/)*[\w-][\w.-]*\.md)\b/g;
const MD_LINK_RE = /\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g;

function resolveMd(name: string, fromFile: string): string | undefined {
  const candidates = [path.join(path.dirname(fromFile), name), name, path.join('docs', name)];
  return candidates.map((c) => path.normalize(c)).find((c) => !c.startsWith('..') && existsSync(path.join(ROOT, c)));
}

/** Rule numbers, scenario ids and numbered sections a document has. */
function anchorsOf(doc: string): { rules: Set<number>; ids: Set<string>; sections: Set<string>; headings: string[] } {
  const text = readFileSync(path.join(ROOT, doc), 'utf8');
  const rules = new Set<number>();
  const rulesPart = /^## The rules\b[\s\S]*?(?=^## )/m.exec(text)?.[0] ?? '';
  for (const m of rulesPart.matchAll(/^(\d+)\. \*\*/gm)) rules.add(Number(m[1]));
  const ids = new Set<string>();
  for (const m of text.matchAll(/^\| ([SF]\d+) \|/gm)) ids.add(m[1]!);
  const sections = new Set<string>();
  for (const m of text.matchAll(/^#+ (\d+(?:\.\d+)*)[.\s]/gm)) sections.add(m[1]!);
  const headings = [...text.matchAll(/^#+ (.+)$/gm)].map((m) => normalHeading(m[1]!));
  return { rules, ids, sections, headings };
}

/** A heading or a quoted section name as compared: no markup, lower case, single spaces. */
function normalHeading(h: string): string {
  return h.replace(/[`*_]/g, '').replace(/\s+/g, ' ').trim().toLowerCase();
}

function expandRange(from: string, to: string | undefined, prefix = ''): string[] {
  const a = Number(from);
  const b = to === undefined ? a : Number(to);
  if (!(b >= a) || b - a > 50) return [`${prefix}${from}`];
  const out: string[] = [];
  for (let i = a; i <= b; i++) out.push(`${prefix}${i}`);
  return out;
}

/** What follows a document's name: `, rule 3`, ` rules 2-3`, ` rules 2 and 3`, ` S14`, ` S3-S5`, ` §6`, ` §6-7`, `, "Heading"`. */
function citations(after: string): { rules: number[]; ids: string[]; sections: string[]; heading?: string } {
  const rules: number[] = [];
  const ids: string[] = [];
  const sections: string[] = [];
  const r = /^[,:]?\s*\(?rules?\s+(\d+)(?:\s*(?:-|–|to)\s*(\d+))?(?:\s*(?:,|and)\s*(\d+))?/i.exec(after);
  if (r) {
    for (const n of expandRange(r[1]!, r[2])) rules.push(Number(n));
    if (r[3]) rules.push(Number(r[3]));
  }
  const s = /^[,:]?\s*\(?([SF])(\d+)(?:\s*(?:-|–)\s*[SF]?(\d+))?(?:\s*(?:,|and)\s*([SF])(\d+))*/.exec(after);
  if (s) {
    ids.push(...expandRange(s[2]!, s[3], s[1]));
    if (s[4]) ids.push(`${s[4]}${s[5]}`);
  }
  const sec = /^[,:]?\s*\(?§\s?(\d+(?:\.\d+)*)(?:\s*(?:-|–)\s*(\d+))?/.exec(after);
  if (sec) {
    if (sec[2] && !sec[1]!.includes('.')) sections.push(...expandRange(sec[1]!, sec[2]));
    else sections.push(sec[1]!);
  }
  const quoted = /^[,:]?\s*\(?["“]([^"”\n]{2,80})["”]/.exec(after);
  return quoted ? { rules, ids, sections, heading: quoted[1]! } : { rules, ids, sections };
}

/** Outside phrases no comment or doc may carry; `allowed` (given the text before a match) lets a legitimate use pass. */
const FORBIDDEN: Array<{ what: string; re: RegExp; allowed?: (match: RegExpMatchArray, before: string) => boolean }> = [
  { what: 'points outside the repository (../shared)', re: /(?:\.\.\/)+shared\b|\bshared\/(?:design|seed)\b/gi },
  { what: 'cites a research note (outside the repository)', re: /\bresearch[- ]notes?\b/gi },
  {
    what: 'cites an issue by number (not in the repository; say what the code does instead)',
    re: /\bissues?\s*(#?)\s*\d+\b/gi,
    // an outside project's public tracker (`drachtio-server issue #89`) is fine
    allowed: (m, before) =>
      m[1] === '#' && /\b(?:drachtio|kurento|werift|chromium|chrome|jssip|sip\.js|node(?:\.js)?|github|webrtc|sipp|baresip|redis|ioredis|rtpengine|libwebrtc)\b/i.test(before.slice(-120)),
  },
  { what: 'talks about engineers (who wrote or runs what)', re: /\bengineers?\b/gi },
];

/** Each forbidden phrase in `text`, with its offset. */
function forbiddenIn(text: string): Array<{ what: string; hit: string; index: number }> {
  const out: Array<{ what: string; hit: string; index: number }> = [];
  for (const rule of FORBIDDEN) {
    for (const m of text.matchAll(rule.re)) {
      if (rule.allowed?.(m, text.slice(0, m.index))) continue;
      out.push({ what: rule.what, hit: m[0], index: m.index! });
    }
  }
  return out;
}

function scan(): { findings: Finding[]; filesScanned: number; mdNames: number; links: number; ruleCites: number } {
  const findings: Finding[] = [];
  const anchors = new Map<string, ReturnType<typeof anchorsOf>>();
  const anchorsFor = (doc: string) => {
    let a = anchors.get(doc);
    if (!a) anchors.set(doc, (a = anchorsOf(doc)));
    return a;
  };
  let mdNames = 0;
  let links = 0;
  let ruleCites = 0;
  // this file names bad references on purpose (its examples and controls)
  const files = SCANNED.flatMap(walk).filter((f) => f !== SELF);
  for (const file of files) {
    const text = readFileSync(path.join(ROOT, file), 'utf8');
    for (const prose of proseOf(file, text)) {
      const clean = prose.text.replace(URL_RE, (u) => ' '.repeat(u.length));
      const where = (offset: number) => `${file}:${prose.line + lineAt(clean, offset) - 1}`;
      for (const f of forbiddenIn(clean)) findings.push({ where: where(f.index), problem: `${f.what}: "${f.hit}"` });
      for (const m of clean.matchAll(MD_NAME_RE)) {
        const name = m[1]!;
        mdNames++;
        const generator = GENERATED_MD[path.basename(name)];
        if (generator && readFileSync(path.join(ROOT, generator), 'utf8').includes(path.basename(name))) continue;
        const doc = resolveMd(name, file);
        if (!doc) {
          findings.push({ where: where(m.index!), problem: `names ${name}, which is not in the repository` });
          continue;
        }
        const cited = citations(clean.slice(m.index! + name.length, m.index! + name.length + 100));
        if (cited.rules.length + cited.ids.length + cited.sections.length === 0 && cited.heading === undefined) continue;
        ruleCites++;
        const a = anchorsFor(doc);
        for (const n of cited.rules) if (!a.rules.has(n)) findings.push({ where: where(m.index!), problem: `cites ${doc} rule ${n}, which it does not have (rules: ${[...a.rules].join(', ') || 'none'})` });
        for (const id of cited.ids) if (!a.ids.has(id)) findings.push({ where: where(m.index!), problem: `cites ${doc} ${id}, which it does not have` });
        for (const s of cited.sections) if (!a.sections.has(s)) findings.push({ where: where(m.index!), problem: `cites ${doc} §${s}, which has no such numbered section` });
        if (cited.heading !== undefined && !a.headings.some((h) => h.startsWith(normalHeading(cited.heading!)))) {
          findings.push({ where: where(m.index!), problem: `cites ${doc}, "${cited.heading}", which has no heading that starts so` });
        }
      }
      if (file.endsWith('.md')) {
        for (const m of clean.matchAll(MD_LINK_RE)) {
          const target = m[1]!;
          if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
          links++;
          const local = decodeURIComponent(target.split('#')[0]!);
          const resolved = path.normalize(path.join(path.dirname(file), local));
          if (resolved.startsWith('..') || !existsSync(path.join(ROOT, resolved))) {
            findings.push({ where: where(m.index!), problem: `links to ${target}, which is not in the repository` });
          }
        }
      }
    }
  }
  return { findings, filesScanned: files.length, mdNames, links, ruleCites };
}

test('every document a comment or doc names is in the repository; no outside notes, issue numbers or engineers', { timeout: 60_000 }, () => {
  const { findings, filesScanned, mdNames, links, ruleCites } = scan();
  // the scan really reads the tree (an empty scan cannot pass)
  assert.ok(filesScanned > 300, `only ${filesScanned} files scanned`);
  assert.ok(mdNames > 50, `only ${mdNames} .md names found`);
  assert.ok(links > 10, `only ${links} markdown links found`);
  assert.ok(ruleCites > 10, `only ${ruleCites} rule/scenario/section citations found`);
  assert.deepEqual(
    findings.map((f) => `${f.where}: ${f.problem}`),
    [],
    'fix each: write what the code relies on into docs/ and point the comment there',
  );
  const rules = anchorsOf('docs/lifecycle.md').rules;
  assert.ok(rules.size >= 8, `docs/lifecycle.md has ${rules.size} numbered rules under "## The rules"`);
});

test('the checks catch what they are for (positive controls)', { timeout: 10_000 }, () => {
  const comments = proseOf('x.ts', "const a = 'see style.md'; // see DEVELOPERS.md\nconst t = `${a} // not a comment`; /* issue 2 */\n");
  assert.deepEqual(
    comments.map((c) => [c.line, c.text]),
    [
      [1, '// see DEVELOPERS.md'],
      [2, '/* issue 2 */'],
    ],
  );
  const phrase = (t: string) => forbiddenIn(t).map((f) => f.hit);
  assert.deepEqual(phrase('see ../shared/design/lifecycle.md'), ['../shared']);
  assert.deepEqual(phrase('research note §4'), ['research note']);
  assert.deepEqual(phrase('the acceptance of issue 3'), ['issue 3']);
  assert.deepEqual(phrase('Issue 2 acceptance'), ['Issue 2']);
  assert.deepEqual(phrase('the WebRTC engineer uses this'), ['engineer']);
  assert.deepEqual(phrase("other engineers' tests"), ['engineers']);
  assert.deepEqual(phrase('drachtio-server issue #89'), []);
  assert.deepEqual(phrase('drachtio-server (see its\nissue #89)'), []);
  assert.deepEqual(phrase('our issue #5'), ['issue #5']);
  assert.deepEqual(phrase('RFC 3261 §16.7, RFC 3550 section 6.4'), []);
  assert.deepEqual(citations(', rule 3: hold'), { rules: [3], ids: [], sections: [] });
  assert.deepEqual(citations(' rules 2-4)'), { rules: [2, 3, 4], ids: [], sections: [] });
  assert.deepEqual(citations(' S3-S5, media side'), { rules: [], ids: ['S3', 'S4', 'S5'], sections: [] });
  assert.deepEqual(citations(' §6-7'), { rules: [], ids: [], sections: ['6', '7'] });
  assert.deepEqual(citations(', "Media quotas")'), { rules: [], ids: [], sections: [], heading: 'Media quotas' });
  assert.ok(anchorsOf('docs/lifecycle.md').headings.includes('the rules'));
  assert.equal(resolveMd('lifecycle.md', 'src/media/x.ts'), path.join('docs', 'lifecycle.md'));
  assert.equal(resolveMd('kurento-protocol-notes.md', 'src/media/x.ts'), undefined);
  const names = [...'see <out>/results.md and docs/gateway.md, style.md'.matchAll(MD_NAME_RE)].map((m) => m[1]);
  assert.deepEqual(names, ['docs/gateway.md', 'style.md']);
});
