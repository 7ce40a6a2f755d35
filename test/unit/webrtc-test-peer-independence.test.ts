import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { rtcpCompoundHasBye } from '../helpers/rtcp-test-packets';
import { rtcpReceiverReport, rtcpReceiverReportAndBye } from '../helpers/rtp-peer-parts';
import { rng } from '../helpers/seeded-random';

/**
 * The WebRTC peer the integration tests check ferry with must not share ferry's code: a mistake made the
 * same way on both sides (SRTP framing, RTCP, DTLS alerts) would pass. Starting from
 * test/helpers/media-webrtc-peer.ts, every file it imports, requires or starts as a process (a `.ts` file
 * named in a string next to it), transitively, must stay inside test/ and use no package but werift and
 * Node's own modules.
 */

const repo = path.resolve(__dirname, '../..');
const testDir = path.join(repo, 'test') + path.sep;
const peerEntry = path.join(repo, 'test/helpers/media-webrtc-peer.ts');
const allowedPackages = new Set(['werift']);

interface Dependency {
  from: string;
  specifier: string;
  /** the file a relative specifier names, if it is one */
  file?: string;
}

function resolveRelative(fromFile: string, specifier: string): string {
  const base = path.resolve(path.dirname(fromFile), specifier);
  for (const candidate of [base, `${base}.ts`, path.join(base, 'index.ts')]) {
    if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
  }
  return base;
}

/** Imports, requires and dynamic imports of one file (TypeScript's own pre-processor), and sibling `.ts` files named in strings. */
function dependenciesOf(file: string): Dependency[] {
  const source = fs.readFileSync(file, 'utf8');
  const deps: Dependency[] = [];
  for (const ref of ts.preProcessFile(source, true, true).importedFiles) {
    const specifier = ref.fileName;
    deps.push({ from: file, specifier, ...(specifier.startsWith('.') ? { file: resolveRelative(file, specifier) } : {}) });
  }
  for (const m of source.matchAll(/['"`]([\w./-]+\.ts)['"`]/g)) {
    const named = path.resolve(path.dirname(file), m[1]!);
    if (fs.existsSync(named)) deps.push({ from: file, specifier: m[1]!, file: named });
  }
  return deps;
}

/** Every file reachable from `entry`, and every dependency that breaks the rule. */
function scan(entry: string): { files: string[]; violations: string[] } {
  const seen = new Set<string>([entry]);
  const queue = [entry];
  const violations: string[] = [];
  const rel = (f: string) => path.relative(repo, f);
  while (queue.length > 0) {
    const file = queue.shift()!;
    for (const d of dependenciesOf(file)) {
      if (d.file !== undefined) {
        if (!d.file.startsWith(testDir)) {
          violations.push(`${rel(d.from)} imports ${d.specifier} (${rel(d.file)}: outside test/)`);
        } else if (!seen.has(d.file)) {
          seen.add(d.file);
          queue.push(d.file);
        }
      } else if (!d.specifier.startsWith('node:') && !allowedPackages.has(d.specifier.split('/')[0]!)) {
        violations.push(`${rel(d.from)} imports package ${d.specifier}`);
      }
    }
  }
  return { files: [...seen].map(rel).sort(), violations };
}

describe('the WebRTC test peer is independent of the code under test', () => {
  test('media-webrtc-peer.ts and everything it loads import nothing from src/', { timeout: 10_000 }, () => {
    const { files, violations } = scan(peerEntry);
    // The scan reaches the peer's werift stack and the child process that hosts it.
    assert.ok(files.includes('test/helpers/werift-test-peer.ts'), files.join(', '));
    assert.ok(files.includes('test/helpers/webrtc-test-peer-host.ts'), files.join(', '));
    assert.deepEqual(violations, []);
  });

  test('positive control: the same scan flags a test that does import src/', { timeout: 10_000 }, () => {
    const { violations } = scan(path.join(repo, 'test/integration/media-webrtc-leg.test.ts'));
    assert.ok(violations.some((v) => v.includes('src/media/webrtc/werift-leg')), violations.join('\n'));
  });

  test("the peer's own BYE detector: BYE after an RR found, RR alone not, damage stops the walk, random bytes never throw", { timeout: 10_000 }, () => {
    assert.equal(rtcpCompoundHasBye(rtcpReceiverReportAndBye(0x1234)), true);
    assert.equal(rtcpCompoundHasBye(rtcpReceiverReport(0x1234)), false);
    const bad = rtcpReceiverReportAndBye(0x1234);
    bad[8] = 0x00; // the BYE's version bits broken: the walk stops before it
    assert.equal(rtcpCompoundHasBye(bad), false);
    assert.equal(rtcpCompoundHasBye(Buffer.alloc(0)), false);
    const random = rng(20261202);
    for (let i = 0; i < 5000; i++) {
      const b = Buffer.from(Array.from({ length: Math.floor(random() * 120) }, () => Math.floor(random() * 256)));
      assert.equal(typeof rtcpCompoundHasBye(b), 'boolean');
    }
  });
});
