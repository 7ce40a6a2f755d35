import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { logFormatFromEnv, logLevelFromEnv, prettyLine } from '../../src/common/log-format';
import { portInUseMessage } from '../../src/common/port-in-use';
import { SupervisedChild } from '../../src/cli/supervisor/child-process-supervisor';
import { FerryStartProcess } from '../helpers/ferry-start-process';

/**
 * The command line for people: `ferry <part> --help`, a readable log format on a terminal
 * (FERRY_LOG_FORMAT), a start-up failure that says why once (no "restarting"), a port in use that
 * names the variable moving it, and `ferry start` naming its state store.
 */

const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');
const dataDir = mkdtempSync(path.join(tmpdir(), 'ferry-cli-people-'));
const cleanups: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(dataDir, { recursive: true, force: true });
});

/** A TCP listener on a free loopback port: the port another program holds. */
async function occupiedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return (server.address() as net.AddressInfo).port;
}

function ferry(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000, env: { ...process.env, NODE_ENV: 'test', FERRY_DATA_DIR: dataDir, ...env } });
}

describe('ferry <part> --help', { timeout: 60_000 }, () => {
  for (const part of ['start', 'sip', 'media', 'gateway']) {
    test(`ferry ${part} --help prints its help and exits 0 without starting anything`, { timeout: 20_000 }, async () => {
      // the part's own port is taken: had it started, it would fail (exit 1) instead of printing help
      const port = String(await occupiedPort());
      const r = ferry([part, '--help'], { FERRY_SIP_PORT: port, FERRY_MEDIA_PORT: port, FERRY_HTTP_PORT: port, FERRY_STORE: 'memory' });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^usage: ferry ${part}`));
      assert.match(r.stdout, /docs\/configuration\.md/);
      assert.equal(r.stderr, '', 'nothing logged: nothing started');
      assert.doesNotMatch(r.stdout, /^ferry \w+ ready |in use/m);
      assert.equal(ferry([part, '-h']).status, 0);
    });
  }

  test('positive control: without --help the same part with its port taken does start (and fails on the port)', { timeout: 20_000 }, async () => {
    const port = String(await occupiedPort());
    const r = ferry(['media'], { FERRY_MEDIA_PORT: port });
    assert.equal(r.status, 1);
  });

  test('ferry --help lists the commands and says how to get help on one', { timeout: 10_000 }, () => {
    const r = ferry(['--help']);
    assert.equal(r.status, 0);
    assert.match(r.stdout, /ferry <command> --help/);
  });
});

describe('FERRY_LOG_FORMAT', { timeout: 60_000 }, () => {
  test('json or pretty; unset: pretty on a terminal, json otherwise; anything else names the variable', { timeout: 5_000 }, () => {
    assert.equal(logFormatFromEnv({}, true), 'pretty');
    assert.equal(logFormatFromEnv({}, false), 'json');
    assert.equal(logFormatFromEnv({ FERRY_LOG_FORMAT: 'json' }, true), 'json');
    assert.equal(logFormatFromEnv({ FERRY_LOG_FORMAT: 'pretty' }, false), 'pretty');
    assert.throws(() => logFormatFromEnv({ FERRY_LOG_FORMAT: 'text' }, true), /FERRY_LOG_FORMAT="text" must be json or pretty/);
    assert.equal(logLevelFromEnv({ FERRY_LOG_LEVEL: 'debug' }), 'debug');
    assert.throws(() => logLevelFromEnv({ FERRY_LOG_LEVEL: 'loud' }), /FERRY_LOG_LEVEL="loud" must be one of/);
  });

  test('a pretty line: time, level, component, message, fields; one line whatever the values hold', { timeout: 5_000 }, () => {
    const line = prettyLine({ level: 'warn', message: 'teardown failed,\nwill retry', timestamp: '2026-12-02T16:31:02.114Z', component: 'media.server', pipeline: 'p1', error: 'socket "busy"', sdp: 'v=0\r\no=- 1 1\r\n' }, false);
    assert.equal(line, '16:31:02.114  WARN   media.server  teardown failed,\\nwill retry  pipeline=p1 error="socket \\"busy\\"" sdp="v=0\\no=- 1 1\\n"');
    assert.doesNotMatch(line, /\n/);
    assert.doesNotMatch(line, /\x1b/, 'no colour unless asked');
    assert.match(prettyLine({ level: 'error', message: 'x', component: 'c' }, true), /\x1b\[31mERROR/);
  });

  for (const format of ['pretty', 'json'] as const) {
    test(`ferry media with FERRY_LOG_FORMAT=${format} logs its start in that format`, { timeout: 20_000 }, async () => {
      const child = spawn(process.execPath, [BIN, 'media'], { env: { ...process.env, NODE_ENV: 'test', FERRY_MEDIA_PORT: '0', FERRY_LOG_LEVEL: 'info', FERRY_LOG_FORMAT: format }, stdio: ['ignore', 'pipe', 'pipe'] });
      cleanups.push(() => { if (child.exitCode === null) child.kill('SIGKILL'); });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const line = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start line: ${stderr}`)), 15_000);
        child.stderr.on('data', () => {
          const l = stderr.split('\n').find((x) => x.includes('ferry media listening'));
          if (l) {
            clearTimeout(timer);
            resolve(l);
          }
        });
      });
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
      if (format === 'pretty') {
        assert.match(line, /^\d\d:\d\d:\d\d\.\d{3}  INFO   media  ferry media listening  host=127\.0\.0\.1 port=\d+ relay=(native|js)$/);
      } else {
        const parsed = JSON.parse(line) as Record<string, unknown>;
        assert.equal(parsed.message, 'ferry media listening');
        assert.equal(parsed.component, 'media');
        assert.ok(parsed.relay === 'native' || parsed.relay === 'js', `the relay in use is named: ${String(parsed.relay)}`);
      }
    });
  }

  test('a bad FERRY_LOG_FORMAT stops a part at start-up with one line', { timeout: 20_000 }, () => {
    const r = ferry(['sip'], { FERRY_LOG_FORMAT: 'xml', FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0' });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'ferry sip: environment variable FERRY_LOG_FORMAT="xml" must be json or pretty\n');
  });
});

describe('start-up failures say why once', { timeout: 90_000 }, () => {
  test('a supervised child that exits before it is ready is not restarted; one that crashes after ready is (positive control)', { timeout: 20_000 }, async () => {
    const out: string[] = [];
    const ready = (line: string) => (line === 'ready' ? {} : undefined);
    const failing = new SupervisedChild({ name: 'broken', command: process.execPath, args: ['-e', 'console.error("bad setting"); process.exit(1)'], ready }, (l) => out.push(l));
    const crashing = new SupervisedChild({ name: 'crashy', command: process.execPath, args: ['-e', 'console.log("ready"); setTimeout(() => process.exit(3), 50)'], ready }, (l) => out.push(l));
    cleanups.push(() => failing.kill(), () => crashing.kill());
    await assert.rejects(failing.start(10_000), /broken exited \(1\) before it was ready/);
    await crashing.start(10_000);
    // the crashing child is restarted after its first back-off step (250 ms) and becomes ready again
    await new Promise<void>((resolve) => crashing.once('ready', () => resolve()));
    assert.ok(out.some((l) => l.startsWith('[crashy] exited unexpectedly (code 3); restarting in')), out.join('\n'));
    // in the same window the child that never started was not restarted
    assert.ok(out.includes('[broken] bad setting'), out.join('\n'));
    assert.ok(!out.some((l) => l.startsWith('[broken]') && /restarting/.test(l)), out.join('\n'));
    assert.equal(failing.pid, undefined);
    crashing.kill();
  });

  test('port in use: ferry sip and ferry media name the variable that moves the port', { timeout: 30_000 }, async () => {
    const port = await occupiedPort();
    const sip = ferry(['sip'], { FERRY_SIP_PORT: String(port), FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0' });
    assert.equal(sip.status, 1);
    assert.equal(sip.stderr, `ferry sip: cannot start: port ${port} on 127.0.0.1 is already in use by another program: set FERRY_SIP_PORT to a free port (0 = any free port)\n`);
    const control = ferry(['sip'], { FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: String(port) });
    assert.match(control.stderr, new RegExp(`port ${port} .*set FERRY_SIP_CONTROL_PORT`));
    const media = ferry(['media'], { FERRY_MEDIA_PORT: String(port) });
    assert.equal(media.status, 1);
    assert.match(media.stderr, new RegExp(`^ferry media: cannot start: port ${port} on 127\\.0\\.0\\.1 is already in use by another program: set FERRY_MEDIA_PORT`));
  });

  test('ferry start with the HTTP port taken: the gateway names FERRY_HTTP_PORT, ferry start exits 1, nothing says "restarting"', { timeout: 60_000 }, async () => {
    const port = await occupiedPort();
    const start = FerryStartProcess.spawn({ FERRY_STORE: 'memory', FERRY_TLS: '0', FERRY_HTTP_PORT: String(port), FERRY_DATA_DIR: dataDir });
    cleanups.push(() => { if (start.child.exitCode === null) start.child.kill('SIGKILL'); });
    assert.equal(await start.exited, 1);
    const text = start.lines.map((l) => l.line).join('\n');
    assert.match(text, new RegExp(`\\[gateway\\] ferry gateway: cannot start: port ${port} .*set FERRY_HTTP_PORT to a free port`));
    assert.match(text, /ferry start: gateway exited \(1\) before it was ready/);
    assert.doesNotMatch(text, /restarting/);
    assert.ok(!start.lines.some((l) => l.line.startsWith('ferry ready')));
  });

  test('ferry start names the state store it uses', { timeout: 60_000 }, async () => {
    const start = FerryStartProcess.spawn({ FERRY_STORE: 'memory', FERRY_TLS: '0', FERRY_DATA_DIR: dataDir });
    cleanups.push(() => { if (start.child.exitCode === null) start.child.kill('SIGKILL'); });
    const ready = await start.ready(45_000);
    assert.equal(ready.store, 'memory');
    await start.waitLine((l) => l.startsWith("ferry: calls and registrations are kept in the gateway's memory only"), 0, 10_000, 'the store line');
    start.child.kill('SIGINT');
    assert.equal(await start.exited, 0);
  });
});

test('portInUseMessage: only EADDRINUSE, the variable found by the port the error names', { timeout: 5_000 }, () => {
  const err = Object.assign(new Error('listen EADDRINUSE: address already in use 127.0.0.1:5060'), { code: 'EADDRINUSE', port: 5060, address: '127.0.0.1' });
  const settings = [{ variable: 'FERRY_SIP_PORT', port: 5060 }, { variable: 'FERRY_SIP_WS_PORT', port: 8088 }];
  assert.equal(portInUseMessage(err, settings), 'port 5060 on 127.0.0.1 is already in use by another program: set FERRY_SIP_PORT to a free port (0 = any free port)');
  const noPortField = Object.assign(new Error('bind EADDRINUSE 127.0.0.1:8088'), { code: 'EADDRINUSE' });
  assert.match(portInUseMessage(noPortField, settings) ?? '', /set FERRY_SIP_WS_PORT/);
  assert.equal(portInUseMessage(Object.assign(new Error('x'), { code: 'EACCES' }), settings), undefined);
});
