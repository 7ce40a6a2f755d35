import './kurento-client-transactions'; // first: lets kurento-client's explicit transactions run on Node 20
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import childProcess, { type ChildProcess } from 'node:child_process';
import { MediaServerProcess } from './media-server-process';
import { QUnit1, type RegisteredTest } from './qunit1-runner';
import { sineSamples } from './audio-tone';
import { pcm16WavHeader } from '../../src/media/media-files/wav-format';
import { freePort } from './free-port';
import { guardReconnectTransports } from '../../src/gateway/kurento/kurento-transport-guard';
import type { EventEmitter } from 'node:events';
import { pollUntil } from './wait-for';

/**
 * kurento-client's own test suite (test/fixtures/kurento-client-upstream/, README there) against a real
 * `bin/ferry media` process, with the real npm kurento-client 7.3.0 as the library under test.
 *
 * The files run unmodified, the way the upstream runner runs them: loaded as scripts into one global
 * scope (their `onerror`, `lifecycle`, `URL_SMALL`, ... are globals), on a QUnit 1.x runner
 * (test/helpers/qunit1-runner.ts), the server named by `QUnit.config.ws_uri` (the runner option the
 * upstream `_common.js` reads). Rounds as upstream `scripts/test`: every file with `QUnit.config.prefix`
 * unset ('': the files' own default) and again with the prefix `kurento.` (types created as
 * `kurento.PlayerEndpoint`, ...), except `waiting.js`, whose body does not use the prefix and which
 * waits two minutes: it runs in the first round only.
 * Adaptations, all outside the files:
 * - media URLs: the suite plays and records `http://files.openvidu.io/video/...` (WebM/MP4 video) and
 *   the tests run offline. After `_common.js` is loaded each `URL_*` names the same path on a local HTTP
 *   server instead, which answers a GET with a 2 s tone as WAV (ferry media is an audio server: WAV and
 *   raw G.711, docs/media-server.md) and accepts the recordings' POSTs (ferry media's RecorderEndpoint
 *   uploads to an http:// URI as KMS does) — so the suite's players and recorders use their http:// paths
 *   as upstream, on the same URL for both;
 * - `_common.js` requires `dockerode` for its `scope=docker` mode (a KMS in a container), unused here:
 *   that one require gets a stub that throws if called;
 * - kurento-client is given to the files with the transport guard every Node application of it needs
 *   (withTransportGuard below);
 * - kurento-client is loaded with Node's `domain.Domain` hidden (test/helpers/kurento-client-transactions.ts):
 *   its Transaction calls `Domain` as a function, which throws on Node >= 12; it then uses its own
 *   browser fallback.
 * Every upstream test is run and asserted here. The ones that cannot pass against ferry media are listed
 * by name in NOT_APPLICABLE with the reason, and they are still run: each must fail with exactly the
 * error a KMS without that element gives (40108 "Factory 'X' not found"), nothing else.
 */

const FIXTURES = path.join(__dirname, '..', 'fixtures', 'kurento-client-upstream');
const FILE_ORDER = [
  // scripts/test: 'test/', 'test/core', 'test/elements', 'test/filters', 'test/transactions'
  'MediaObjectCreator.js',
  'ServerManager.js',
  'reconnect.js',
  'waiting.js',
  'core/MediaElement.js',
  'core/MediaObject.js',
  'core/MediaPipeline.js',
  'elements/Composite.js',
  'elements/HttpPostEndpoint.js',
  'elements/PlayerEndpoint.js',
  'elements/RecorderEndpoint.js',
  'elements/RtpEndpoint.js',
  'elements/WebRtcEndpoint.js',
  'filters/FaceOverlayFilter.js',
  'filters/GStreamerFilter.js',
  'filters/ZBarFilter.js',
  'transactions/Transaction.js',
];
const FIRST_ROUND_ONLY = new Set(['waiting.js']);

/**
 * Upstream tests that cannot pass against ferry media, by "<module> :: <test>" (module names of the
 * first round; the second round's carry the `kurento.` prefix), with the error they must end with.
 */
const NOT_APPLICABLE: Record<string, { reason: string; failure: RegExp }> = {};
for (const name of ['Detect face in a video with Callback', 'Detect face in a video with Promise']) {
  NOT_APPLICABLE[`FaceOverlayFilter :: ${name}`] = {
    reason: 'FaceOverlayFilter is a video filter (kms-filters); ferry media carries audio only and has no such factory',
    failure: /^Factory '(kurento\.)?FaceOverlayFilter' not found\n/,
  };
}
for (const name of ['End of Stream with Callback', 'End of Stream with Promise']) {
  NOT_APPLICABLE[`GStreamerFilter :: ${name}`] = {
    reason: 'GStreamerFilter runs a GStreamer pipeline description (here a video flip); ferry media has no GStreamer',
    failure: /^Factory '(kurento\.)?GStreamerFilter' not found\n/,
  };
}
for (const name of [
  'Create pipeline and play video with Callback',
  'Create pipeline and play video with Promise',
  'Detect bar-code in a video with Callback',
  'Detect bar-code in a video with Promise',
]) {
  NOT_APPLICABLE[`ZBarFilter :: ${name}`] = {
    reason: 'ZBarFilter reads bar codes in video (kms-filters); ferry media carries audio only and has no such factory',
    failure: /^Factory '(kurento\.)?ZBarFilter' not found\n/,
  };
}

NOT_APPLICABLE['Transaction :: transaction error'] = {
  reason:
    'after its checks of a released object (40101, which pass), it creates a ZBarFilter in a transaction and ' +
    'expects filter.connect(releasedPlayer) to fail 40101; with no ZBarFilter factory the filter is never ' +
    'created and connect fails with its creation error, 40108, as on a KMS without kms-filters',
  failure: /^equal: {2}\(got 40108, expected 40101\)$/,
};

NOT_APPLICABLE['reconnect :: MediaServer closed, client disconnected'] = {
  reason:
    "a client-side difference, not the server's: the test expects kurento-client's 'disconnect' event (after " +
    "failAfter reconnection attempts to a killed server) to carry an error. The event is reconnect-core's 'fail', " +
    'which carries the error backoff() was given; the reconnect-core 1.3.0 installed with reconnect-ws 0.1.0 ' +
    '(the npm release the published kurento-client 7.3.0 must be installed with: docs/kurento-protocol.md) calls ' +
    'backoff() without one. Its other check (sessionId throws "Client has been disconnected") passes',
  failure: /^notEqual: {2}\(got undefined\)$/,
};

/** 2 s of a 440 Hz tone as 16-bit mono 8 kHz WAV: a file every ferry PlayerEndpoint plays. */
function toneWav(): Buffer {
  const samples = sineSamples(440, 8000, 16000, 0.3);
  const data = Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength);
  return Buffer.concat([pcm16WavHeader(8000, 1, data.length), data]);
}

/**
 * kurento-client as the files get it, with the guard every Node application of kurento-client 7.3.0
 * needs (docs/kurento-protocol.md, "kurento-client 7.3.0 on Node 20"; src/gateway/kurento/kurento-transport-guard.ts):
 * a refused connection (test_reconnect connects while its server is still starting) emits an 'error'
 * no one listens to inside the client's reconnecting socket, which would end the process. Everything
 * else (the function's own properties: register, TransactionsManager, ...) is the module itself.
 */
function withTransportGuard(kurentoClient: (...args: unknown[]) => { _re?: EventEmitter }): unknown {
  return new Proxy(kurentoClient, {
    apply(target, thisArg, args: unknown[]) {
      const client = Reflect.apply(target, thisArg, args) as { _re?: EventEmitter };
      if (client?._re) guardReconnectTransports(client._re, () => undefined);
      return client;
    },
  });
}

function firstLines(failures: string[]): string {
  return failures.map((f) => f.split('\n')[0]).join(' | ');
}

type Globals = Record<string, unknown>;
const g = globalThis as unknown as Globals;

let server: MediaServerProcess;
let mediaDir: string;
let runner: QUnit1;
let mediaHttp: http.Server;
const mediaRequests = { get: 0, post: 0 };

/** The stand-in for files.openvidu.io: every GET is the tone WAV, every POST (a recording) is taken. */
async function startMediaHttp(): Promise<string> {
  const wav = toneWav();
  mediaHttp = http.createServer((req, res) => {
    if (req.method === 'POST' || req.method === 'PUT') {
      mediaRequests.post++;
      req.resume();
      req.on('end', () => {
        res.statusCode = 201;
        res.end();
      });
      return;
    }
    mediaRequests.get++;
    res.setHeader('content-type', 'audio/wav');
    res.setHeader('content-length', String(wav.length));
    res.end(wav);
  });
  await new Promise<void>((resolve) => mediaHttp.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(mediaHttp.address() as AddressInfo).port}`;
}

function loadScript(file: string): void {
  const full = path.join(FIXTURES, file);
  const realRequire = createRequire(full);
  // the files call `require` as a free variable (qunit-cli / browser scripts); give them one for the load
  g.require = (id: string): unknown => {
    if (id === 'dockerode') {
      return function Docker(): never {
        throw new Error('dockerode is not available: this harness runs the suite against ferry media, not a KMS container');
      };
    }
    return realRequire(id);
  };
  try {
    vm.runInThisContext(fs.readFileSync(full, 'utf8'), { filename: full });
  } finally {
    delete g.require;
  }
}

/**
 * `test_reconnect/index.js` is a program of its own (upstream `scripts/testReconnect` runs it alone under
 * qunit-cli with `--ws_port`): it requires qunit-cli and kurento-client itself, reads its options with
 * minimist from the command line, and starts and kills the media server it tests with
 * `spawn('kurento-media-server', [...])`. It is loaded as the CommonJS module it is, with: `qunit-cli` =
 * this runner, `..` = kurento-client, `dockerode` stubbed, the command line `--ws_port=<free port>`, and
 * `child_process.spawn('kurento-media-server', ...)` starting `bin/ferry media` on that port instead
 * (SIGTERM ends it with exit code 0, as KMS). Every other spawn is the real one.
 */
const reconnectServers = new Set<ChildProcess>();

function loadReconnectSuite(wsPort: number): RegisteredTest[] {
  const from = runner.tests.length;
  const full = path.join(FIXTURES, 'test_reconnect', 'index.js');
  const realRequire = createRequire(full);
  const root = path.join(__dirname, '..', '..');
  const spawn = (command: string, args: string[], options?: childProcess.SpawnOptions): ChildProcess => {
    if (command !== 'kurento-media-server') return childProcess.spawn(command, args, options ?? {});
    const child = childProcess.spawn(process.execPath, [path.join(root, 'bin', 'ferry'), 'media'], {
      cwd: root,
      env: {
        ...process.env,
        FERRY_MEDIA_HOST: '127.0.0.1',
        FERRY_MEDIA_PORT: String(wsPort),
        FERRY_MEDIA_FILES_DIR: mediaDir,
        FERRY_MEDIA_WORKERS: '1',
        FERRY_MEDIA_MEMORY_SETTINGS: '0',
        FERRY_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    reconnectServers.add(child);
    child.once('exit', () => reconnectServers.delete(child));
    return child;
  };
  const fakeRequire = (id: string): unknown => {
    if (id === 'qunit-cli') return runner;
    if (id === '..') return g.kurentoClient;
    if (id === 'child_process') return { ...childProcess, spawn };
    if (id === 'dockerode') {
      return function Docker(): never {
        throw new Error('dockerode is not available: this harness runs the suite against ferry media, not a KMS container');
      };
    }
    return realRequire(id);
  };
  const source = fs.readFileSync(full, 'utf8').replace(/^#!.*/, '');
  const wrapper = vm.runInThisContext(`(function (require, module, exports) {${source}\n})`, { filename: full }) as (
    r: typeof fakeRequire,
    m: { exports: unknown },
    e: unknown,
  ) => void;
  const argv = process.argv;
  process.argv = [argv[0]!, full, `--ws_port=${wsPort}`];
  try {
    const m = { exports: {} };
    wrapper(fakeRequire, m, m.exports);
  } finally {
    process.argv = argv;
  }
  return runner.tests.slice(from);
}

function registerRound(prefix: string | undefined, files: string[]): RegisteredTest[] {
  const from = runner.tests.length;
  if (prefix === undefined) delete runner.config.prefix;
  else runner.config.prefix = prefix;
  for (const f of files) loadScript(f);
  return runner.tests.slice(from);
}

/**
 * The suite as two test files that run at the same time: `waiting.js` (one test that waits two minutes and
 * asks for an object again) on its own, and every other file (both rounds, then test_reconnect).
 */
export type UpstreamPart = 'waiting' | 'all-but-waiting';

export function describeUpstreamSuite(part: UpstreamPart): void {
describe(`kurento-client upstream test suite against ferry media (${part === 'waiting' ? 'waiting.js' : 'all but waiting.js'})`, { timeout: 900_000 }, () => {
  let rounds: { label: string; prefix: string | undefined; tests: RegisteredTest[] }[] = [];

  before(async () => {
    mediaDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ferry-kc-upstream-'));
    server = await MediaServerProcess.start({ FERRY_MEDIA_FILES_DIR: mediaDir, FERRY_MEDIA_WORKERS: '1' });
    runner = new QUnit1();
    runner.config.ws_uri = server.url;
    g.QUnit = Object.assign(runner, { load: () => undefined });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    g.kurentoClient = withTransportGuard(require('kurento-client'));
    loadScript('_common.js');
    const mediaBase = await startMediaHttp();
    for (const name of ['URL_BARCODES', 'URL_FIWARECUT', 'URL_PLATES', 'URL_POINTER_DETECTOR', 'URL_SMALL']) {
      g[name] = `${mediaBase}${new URL(String(g[name])).pathname}`;
    }
    process.on('uncaughtException', (e) => {
      if (!runner.uncaught(e)) throw e;
    });
    rounds = part === 'waiting'
      ? [{ label: 'prefix unset', prefix: '', tests: registerRound(undefined, [...FIRST_ROUND_ONLY]) }]
      : [
        { label: 'prefix unset', prefix: '', tests: registerRound(undefined, FILE_ORDER.filter((f) => !FIRST_ROUND_ONLY.has(f))) },
        { label: "prefix 'kurento.'", prefix: 'kurento.', tests: registerRound('kurento.', FILE_ORDER.filter((f) => !FIRST_ROUND_ONLY.has(f))) },
      ];
  });

  after(async () => {
    for (const child of reconnectServers) child.kill('SIGKILL');
    await server?.stop();
    mediaHttp?.close();
    if (mediaDir) fs.rmSync(mediaDir, { recursive: true, force: true });
  });

  test('runs every upstream test; each passes, or is not applicable and fails exactly as listed', async (t) => {
    const summary: string[] = [];
    let total = 0;
    const unexpected: string[] = [];
    const seenNotApplicable = new Set<string>();
    // FERRY_KC_UPSTREAM_ONLY=<regex on "module :: test">: run a part of the suite (debugging; the
    // completeness checks below are then skipped)
    const only = process.env.FERRY_KC_UPSTREAM_ONLY ? new RegExp(process.env.FERRY_KC_UPSTREAM_ONLY) : undefined;
    // test_reconnect last, loaded only now: its load sets QUnit.config.testTimeout for its own tests
    const reconnectPort = await freePort({ protocols: ['tcp'] });
    const allRounds = part === 'waiting' ? rounds : [...rounds, { label: 'test_reconnect', prefix: undefined as string | undefined, tests: [] as RegisteredTest[] }];
    for (const round of allRounds) {
      if (round.label === 'test_reconnect') round.tests = loadReconnectSuite(reconnectPort);
      for (const upstream of round.tests) {
        const key = `${upstream.module.replace(/^kurento\./, '')} :: ${upstream.name}`;
        if (only && !only.test(`${upstream.module} :: ${upstream.name}`)) continue;
        total++;
        // the files read QUnit.config.prefix when a test runs; the first round's files set it to '' when unset
        if (round.prefix !== undefined) runner.config.prefix = round.prefix;
        process.stderr.write(`upstream test start: [${round.label}] ${upstream.module} :: ${upstream.name}\n`);
        const result = await runner.run(upstream);
        // test_reconnect's afterEach kills its server without waiting: the next one needs the port
        await pollUntil(() => reconnectServers.size === 0 || undefined, { timeoutMs: 15_000, what: 'the media server of the last test_reconnect test to exit' });
        process.stderr.write(`upstream test end: ${result.failures.length === 0 ? 'passed' : `failed: ${firstLines(result.failures)}`}\n`);
        const na = NOT_APPLICABLE[key];
        const label = `[${round.label}] ${upstream.module} :: ${upstream.name}`;
        if (na) {
          seenNotApplicable.add(key);
          // the listed error, and what it causes in a QUnit test: fewer assertions than expected, and a
          // second start() when both the callback and the promise of the failed call report it
          const consequence = /^(Expected \d+ assertions, but \d+ were run|Called start\(\) while already started)/;
          const ok = result.failures.some((f) => na.failure.test(f)) && result.failures.every((f) => na.failure.test(f) || consequence.test(f));
          summary.push(`${ok ? 'not applicable' : 'UNEXPECTED'}: ${label} — ${na.reason}${ok ? '' : `\n    ${firstLines(result.failures) || 'passed'}`}`);
          if (!ok) unexpected.push(`${label}: expected only ${na.failure} failures, got: ${firstLines(result.failures) || 'a pass'}`);
        } else if (result.failures.length === 0) {
          summary.push(`pass: ${label} (${result.durationMs} ms)`);
        } else {
          summary.push(`FAIL: ${label}\n    ${result.failures.join('\n    ')}`);
          unexpected.push(`${label}: ${firstLines(result.failures)}`);
        }
      }
    }
    t.diagnostic(`${total} upstream tests run\n${summary.join('\n')}`);
    if (runner.strayFailures.length > 0) t.diagnostic(`failures reported outside any test: ${runner.strayFailures.join(' | ')}`);
    // every test NOT_APPLICABLE names exists upstream (a renamed one must not hide here)
    t.diagnostic(`media stand-in: ${mediaRequests.get} GETs (players), ${mediaRequests.post} POSTs (recordings uploaded)`);
    if (!only && part === 'waiting') assert.equal(total, 1, 'waiting.js registers one test');
    if (!only && part === 'all-but-waiting') {
      // positive control of the URL adaptation: the suite's players fetched and its recorders uploaded
      assert.ok(mediaRequests.get > 0 && mediaRequests.post > 0, JSON.stringify(mediaRequests));
      assert.deepEqual([...Object.keys(NOT_APPLICABLE)].filter((k) => !seenNotApplicable.has(k)), []);
      assert.ok(total >= 90, `only ${total} upstream tests registered`);
    }
    assert.deepEqual(unexpected, []);
  });
});
}
