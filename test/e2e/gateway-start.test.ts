import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { httpAsk, type HttpAnswer } from '../helpers/http-ask';
import { pollUntil } from '../helpers/wait-for';

/**
 * `ferry gateway` and `ferry start` (npm start) as processes: a bad sip-config fails start-up naming
 * file, line and field; `ferry start` runs the three parts, prints where the webphone page is, and
 * Ctrl-C (SIGINT) stops every child.
 */
const BIN = path.join(__dirname, '..', '..', 'bin', 'ferry');
const FREE_PORTS = {
  FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', FERRY_MEDIA_PORT: '0', FERRY_HTTP_PORT: '0',
};
const dir = mkdtempSync(path.join(tmpdir(), 'ferry-start-'));
const badConfig = path.join(dir, 'bad.json');
writeFileSync(badConfig, '{\n  "domain": "ferry.local",\n  "users": [\n    { "user": "alice", "secret": "x" }\n  ]\n}\n');
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], env: Record<string, string>): { child: ChildProcess; stdout: string[]; stderr: string[]; exit: Promise<number | null> } {
  // its own data directory: the private Redis of `ferry start` locks the default one
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, NODE_ENV: 'test', FERRY_DATA_DIR: path.join(dir, 'data'), ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  readline.createInterface({ input: child.stdout! }).on('line', (l) => stdout.push(l));
  readline.createInterface({ input: child.stderr! }).on('line', (l) => stderr.push(l));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, stdout, stderr, exit };
}

/** GET with a chosen Host header */
function getWithHost(port: number, p: string, host: string): Promise<HttpAnswer> {
  return httpAsk(port, p, { headers: { Host: host } });
}

async function waitReady(p: { stdout: string[]; stderr: string[] }): Promise<{ http: number; media: number; ws: number; pids: Record<string, number> }> {
  await pollUntil(() => p.stdout.some((l) => l.startsWith('ferry ready ')), { timeoutMs: 40_000, what: `ferry ready (output so far:\n${p.stdout.join('\n')}\n${p.stderr.join('\n')})` });
  const line = p.stdout.find((l) => l.startsWith('ferry ready '))!;
  return JSON.parse(line.slice('ferry ready '.length));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('ferry gateway / ferry start processes', { timeout: 60_000 }, () => {
  test('ferry gateway: a bad sip-config fails start-up naming file, line and field', async () => {
    const p = run(['gateway'], { FERRY_SIP_CONFIG: badConfig, FERRY_HTTP_PORT: '0', FERRY_SIP_CONTROL_URL: '127.0.0.1:1' });
    assert.equal(await p.exit, 1);
    const err = p.stderr.join('\n');
    assert.ok(err.includes(`${badConfig}:4: users[0].secret: unknown field`), err);
    assert.ok(err.includes(`${badConfig}:4: users[0].password: is required`), err);
  });

  test('ferry start: a bad sip-config fails before anything is spawned', async () => {
    const p = run(['start'], { ...FREE_PORTS, FERRY_SIP_CONFIG: badConfig });
    assert.equal(await p.exit, 1);
    assert.ok(p.stderr.join('\n').includes(`${badConfig}:4: users[0].secret: unknown field`), p.stderr.join('\n'));
    assert.ok(!p.stdout.some((l) => l.startsWith('ferry ready')));
  });

  test('ferry start: runs sip, media and gateway, prints the webphone page, Ctrl-C stops them all', async () => {
    const p = run(['start'], { ...FREE_PORTS, FERRY_LOG_LEVEL: 'warn' });
    const ready = await new Promise<{ http: number; media: number; ws: number; pids: Record<string, number> }>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`not ready: ${p.stdout.join('\n')}\n${p.stderr.join('\n')}`)), 40_000);
      const check = setInterval(() => {
        const line = p.stdout.find((l) => l.startsWith('ferry ready '));
        if (line) {
          clearInterval(check);
          clearTimeout(t);
          resolve(JSON.parse(line.slice('ferry ready '.length)));
        }
      }, 50);
    });
    await pollUntil(() => p.stdout.some((l) => l.includes(`webphone page at http://127.0.0.1:${ready.http}/`)),
      { timeoutMs: 5_000, what: `the "webphone page at" line (output so far:\n${p.stdout.join('\n')})` });
    const page = await (await fetch(`http://127.0.0.1:${ready.http}/`)).text();
    assert.match(page, /<title>ferry webphone<\/title>/);
    const js = await fetch(`http://127.0.0.1:${ready.http}/jssip.js`);
    assert.equal(js.status, 200);
    assert.ok((await js.text()).length > 100_000, 'JsSIP bundle served from node_modules');
    const cfg = (await (await fetch(`http://127.0.0.1:${ready.http}/api/webphone-config`)).json()) as { wsUrl: string };
    assert.equal(cfg.wsUrl, `ws://127.0.0.1:${ready.ws}`);
    const stats = (await (await fetch(`http://127.0.0.1:${ready.media}/stats`)).json()) as { sessions: number };
    assert.equal(stats.sessions, 1, 'the gateway holds one media session');
    const pids = Object.values(ready.pids);
    assert.equal(pids.length, 4, 'sip, media, gateway and the private redis-server');
    for (const pid of pids) assert.ok(alive(pid), `child ${pid} runs`);
    p.child.kill('SIGINT');
    assert.equal(await p.exit, 0);
    assert.ok(p.stdout.includes('ferry: stopped'));
    for (const pid of pids) assert.ok(!alive(pid), `child ${pid} stopped`);
  });

  test('ferry start with FERRY_HOST=0.0.0.0: prints the page on loopback, and the page connects its WebSocket to the name it was opened with', async () => {
    const p = run(['start'], { ...FREE_PORTS, FERRY_LOG_LEVEL: 'warn', FERRY_HOST: '0.0.0.0', FERRY_MEDIA_SDP_ADDRESS: '127.0.0.1', FERRY_STORE: 'memory', FERRY_TLS: '0' });
    const ready = await waitReady(p);
    await pollUntil(() => p.stdout.some((l) => l.includes('webphone page at ')),
      { timeoutMs: 5_000, what: `the "webphone page at" line (output so far:\n${p.stdout.join('\n')})` });
    // before: "webphone page at http://0.0.0.0:<port>/", an address no browser should be sent to
    assert.ok(p.stdout.some((l) => l.includes(`webphone page at http://127.0.0.1:${ready.http}/`)), p.stdout.join('\n'));
    assert.ok(!p.stdout.some((l) => l.includes('0.0.0.0:')  && !l.includes('reachable from other hosts')), p.stdout.join('\n'));
    // ferry start hands the gateway ws://0.0.0.0:<ws>; each page gets ws://<the name it was opened with>:<ws>
    for (const name of ['127.0.0.1', 'localhost']) {
      const cfg = await getWithHost(ready.http, '/api/webphone-config', `${name}:${ready.http}`);
      assert.equal(cfg.status, 200);
      assert.equal((JSON.parse(cfg.body) as { wsUrl: string }).wsUrl, `ws://${name}:${ready.ws}`);
      const page = await getWithHost(ready.http, '/', `${name}:${ready.http}`);
      assert.match(String(page.headers['content-security-policy']), new RegExp(`connect-src 'self' ws://${name}:${ready.ws};`), 'the page may open that WebSocket');
    }
    // the page's WebSocket really answers there (SIP over WebSocket: 426 to a plain GET)
    const ws = await getWithHost(ready.ws, '/', `localhost:${ready.ws}`);
    assert.equal(ws.status, 426);
    p.child.kill('SIGINT');
    assert.equal(await p.exit, 0);
  });
});
