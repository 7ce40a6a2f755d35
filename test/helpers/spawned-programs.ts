import path from 'node:path';
import ts from 'typescript';

/**
 * Finds the external programs a TypeScript source file starts, by reading its syntax tree:
 *  - calls of node:child_process's spawn, spawnSync, execFile, execFileSync, exec, execSync, fork,
 *    and of any `.exec(...)` method (wrappers such as `ns.exec('ip', …)`), and of local aliases
 *    (`const run = promisify(execFile)`; `const x = spawn`), whose first argument is a string literal
 *    or a const bound to one in the same file (for exec/execSync, the first word of the shell command),
 *    and the program after `ip netns exec <namespace>`;
 *  - `command: '<program>'` in files that use the gateway's child-process supervisor;
 *  - `executablePath: '<path>'` (a browser playwright-core launches).
 * Not external: node itself (process.execPath, 'node') and the npm/npx that come with it, and bin/ferry or any relative path.
 */
export interface SpawnedProgram {
  program: string;
  file: string;
  line: number;
}

const SPAWNERS = new Set(['spawn', 'spawnSync', 'execFile', 'execFileSync', 'exec', 'execSync', 'fork']);
const SHELL_STRING = new Set(['exec', 'execSync']);
const NOT_EXTERNAL = new Set(['node', 'nodejs', 'npm', 'npx']);

export function spawnedPrograms(source: string, file: string): SpawnedProgram[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const constants = new Map<string, string>();
  const aliases = new Map<string, string>(); // local name -> spawner it stands for
  const usesSupervisor = source.includes('child-process-supervisor');
  const found: SpawnedProgram[] = [];

  const literal = (node: ts.Node | undefined): string | undefined => {
    if (!node) return undefined;
    if (ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) return node.text;
    if (ts.isIdentifier(node)) return constants.get(node.text);
    if (ts.isAsExpression(node) || ts.isNonNullExpression(node) || ts.isParenthesizedExpression(node)) return literal(node.expression);
    return undefined;
  };

  const spawnerOf = (callee: ts.Expression): string | undefined => {
    if (ts.isIdentifier(callee)) return SPAWNERS.has(callee.text) ? callee.text : aliases.get(callee.text);
    if (ts.isPropertyAccessExpression(callee)) {
      const name = callee.name.text;
      if (ts.isRegularExpressionLiteral(callee.expression)) return undefined;
      return SPAWNERS.has(name) ? name : undefined;
    }
    return undefined;
  };

  const record = (raw: string, node: ts.Node, shell: boolean): void => {
    const first = shell ? raw.trim().split(/\s+/)[0] ?? '' : raw;
    if (!first || first.startsWith('.') || /(^|\/)bin\/ferry$/.test(first)) return;
    const program = path.posix.basename(first);
    if (NOT_EXTERNAL.has(program)) return;
    found.push({ program, file, line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1 });
  };

  // pass 1: string constants and spawner aliases, anywhere in the file
  const collect = (node: ts.Node): void => {
    if (ts.isVariableDeclaration(node) && ts.isIdentifier(node.name) && node.initializer) {
      const init = node.initializer;
      const text = ts.isStringLiteral(init) || ts.isNoSubstitutionTemplateLiteral(init) ? init.text : undefined;
      if (text !== undefined) constants.set(node.name.text, text);
      if (ts.isIdentifier(init) && SPAWNERS.has(init.text)) aliases.set(node.name.text, init.text);
      if (ts.isCallExpression(init) && ts.isIdentifier(init.expression) && init.expression.text === 'promisify') {
        const wrapped = init.arguments[0];
        if (wrapped && ts.isIdentifier(wrapped) && SPAWNERS.has(wrapped.text)) aliases.set(node.name.text, wrapped.text);
      }
    }
    ts.forEachChild(node, collect);
  };
  collect(sf);

  // pass 2: the calls and properties that start programs
  const visit = (node: ts.Node): void => {
    if (ts.isCallExpression(node)) {
      const spawner = spawnerOf(node.expression);
      const program = spawner ? literal(node.arguments[0]) : undefined;
      if (spawner && program !== undefined) {
        record(program, node, SHELL_STRING.has(spawner));
        // `ip netns exec <namespace> <program> …` starts a second program
        const args = node.arguments[1];
        if (program === 'ip' && args && ts.isArrayLiteralExpression(args) && literal(args.elements[0]) === 'netns' && literal(args.elements[1]) === 'exec') {
          const inner = literal(args.elements[3]);
          if (inner !== undefined) record(inner, node, false);
        }
      }
    }
    if (ts.isPropertyAssignment(node) && (ts.isIdentifier(node.name) || ts.isStringLiteral(node.name))) {
      const key = node.name.text;
      const value = literal(node.initializer);
      if (value !== undefined && (key === 'executablePath' || (key === 'command' && usesSupervisor))) record(value, node, false);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return found;
}

/** Parses scripts/test-tools.txt: "<program> <debian-package>  # comment" per line. */
export function parseToolList(text: string): Map<string, string> {
  const tools = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) continue;
    const [program, pkg] = line.split(/\s+/);
    if (program && pkg) tools.set(program, pkg);
  }
  return tools;
}
