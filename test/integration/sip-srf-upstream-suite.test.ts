/**
 * drachtio-srf's own integration tests (its test/*.js, tape + SIPp; those of the drachtio-srf version
 * installed, 5.0.29), vendored unmodified in
 * test/fixtures/drachtio-srf-upstream/, run against ferry sip: each test file runs as its own
 * node process with the installed drachtio-srf, and each must pass (tape's "# ok", no "not ok",
 * every t.pass / t.ok message of the file seen).
 *
 * Upstream starts drachtio-server and one SIPp UAS per scenario with docker-compose
 * (test/docker-compose-testbed.yaml), each container on its own address. Here, in a work directory
 * copied from the fixture:
 *  - two `bin/ferry sip` stand in for the containers drachtio-sut and drachtio-uas (secret cymru, as
 *    upstream), and config/test.json gets their control ports;
 *  - each SIPp UAS service of the compose file runs as a local `sipp` with the same scenario, on
 *    127.0.0.1 and a free port;
 *  - the addresses the test files and scenarios use for those containers (host names such as
 *    sip:sipp-uas-prack and addresses such as 172.29.0.25) are rewritten to 127.0.0.1:<port>; nothing
 *    else in them changes;
 *  - test/sipp.js (docker run drachtio/sipp) is replaced by test/fixtures/drachtio-srf-upstream-adapter/sipp.js
 *    (the local sipp, same arguments, target from UPSTREAM_SIP_TARGET); a SIPp UAS a test file starts
 *    itself (sippUas(file, '<container name>')) gets a free port like the compose services;
 *  - SIPp 3.6 refuses a raw '<' in an XML attribute (three scenarios' regexp="<sip:(.*)>"): written &lt;;
 *  - `require('..')` finds an index.js that loads the drachtio-srf of node_modules.
 * The upstream files not run are listed in NOT_RUN with the reason. Besides the upstream assertions,
 * every error a SIPp UAS logs must be one UAS_ERRORS_EXPLAINED explains (docs/sip-engine.md,
 * "drachtio-srf's own test suite"). KEEP_UPSTREAM_WORKDIR=1 keeps the work directory with the SIPp
 * traces and ferry sip's logs.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSipEngine, type SipEngineProcess } from '../helpers/sip-engine-process';
import { startSipp, killAllSipp, type SippProcess } from '../helpers/sipp';
import { freePorts } from '../helpers/free-port';

const ROOT = path.resolve(__dirname, '../..');
const FIXTURE = path.join(ROOT, 'test/fixtures/drachtio-srf-upstream');
const ADAPTER = path.join(ROOT, 'test/fixtures/drachtio-srf-upstream-adapter');

/** The upstream test files run here, in the order of upstream's test/index.js, with a time bound each. */
const RUN: { file: string; timeoutMs: number }[] = [
  { file: 'b2b.js', timeoutMs: 240_000 },
  { file: 'reinvite-tests.js', timeoutMs: 60_000 },
  { file: 'uac.js', timeoutMs: 150_000 },
  { file: 'uas.js', timeoutMs: 150_000 },
  { file: 'proxy.js', timeoutMs: 90_000 },
  { file: 'utils.js', timeoutMs: 30_000 },
  { file: 'refer.js', timeoutMs: 60_000 },
];

/** Upstream test files (in the fixture's test/) that do not run here, and why. */
const NOT_RUN: Record<string, string> = {
  'index.js': 'the runner: requires docker_start, the test files and docker_stop in one process; this file runs each test file itself',
  'docker_start.js': 'starts the docker testbed; here ferry sip and local SIPp processes take its place (before())',
  'docker_stop.js': 'stops the docker testbed; here after() stops what before() started',
  'sipp.js': 'a helper, not a test: runs SIPp in docker; replaced by the adapter (local sipp)',
  'subscribe.js':
    "not in upstream's runner (test/index.js), and it cannot pass against any server: its app ends the subscription on the first " +
    'SUBSCRIBE (one NOTIFY, Subscription-State: terminated) while its scenario uac-subscribe.xml (written for uas.js, whose app sends ' +
    "two NOTIFYs) waits for a second NOTIFY until tape's 20 s timeout. The same SUBSCRIBE/NOTIFY exchange runs, and passes, in uas.js",
  'parser.js':
    "not in upstream's runner (test/index.js), and it fails by itself whatever the server: its test never calls t.end() (tape: " +
    "'test exited without ending'); its one assertion (Srf.parseUri is a function) is covered by utils.js, which runs",
};

/** Upstream tests not vendored at all (they never talk to a SIP server), and why. */
const NOT_VENDORED: Record<string, string> = {
  'test/unit-tests/*.js': "mocha unit tests of drachtio-srf's own parser, digest client, createB2BUA header copying (stub request) and wire protocol (mock socket); no SIP server takes part",
  'test/benchmark/': 'a load benchmark comparing two drachtio-srf versions, not a test',
};

/**
 * What a SIPp UAS of the testbed may log as an error (besides SIPp's own overload warnings) while the
 * suite runs, and why: scenarios that expect what no server sends, and ferry sip's cleanup after an
 * app that left (docs/sip-engine.md, "drachtio-srf's own test suite"). Anything else a UAS logs fails
 * the suite: ferry sip sent a SIPp peer something its scenario did not expect.
 */
const UAS_ERRORS_EXPLAINED: Record<string, { pattern: RegExp; why: string }> = {
  'sipp-uas': {
    pattern: /unexpected (CANCEL|BYE)|^Dead call|received '(ACK|CANCEL|BYE) /,
    why: "uac.js disconnects once createUAC(uri, opts, callback) has sent the INVITE: ferry sip CANCELs that gone app's call and ACKs/BYEs its 200, which uas.xml does not expect",
  },
  'sipp-uas-reinvite-overlap': {
    pattern: /unexpected BYE|^Dead call|received 'BYE /,
    why: 'uas-reinvite-overlap.xml ends after the re-INVITEs; uac.js then destroys the dialog (BYE)',
  },
  'sipp-uas-200-ok-no-contact-cancel': {
    pattern: /while expecting 'CANCEL' \(index 2\), received 'ACK |^Dead call/,
    why: "the scenario waits for a CANCEL after its 200 OK; drachtio-srf ACKs that 200 (it has no Contact: srf fails the call with 500), and the dialog no app took is BYEd after FERRY_SIP_ORPHAN_DIALOG_MS",
  },
};

/** SIPp's error log, one entry per event (each starts with a date and time), without its overload warnings. */
function sippErrorEvents(log: string): string[] {
  return log
    .replace(/^The following events occurred:\s*/, '')
    .split(/(?=\d{4}-\d\d-\d\d\t\d\d:\d\d:\d\d\.\d+\t[\d.]+: )/)
    .map((e) => e.replace(/^\d{4}-\d\d-\d\d\t\S+\t[\d.]+: /, '').trim())
    .filter((e) => e !== '' && !/^Overload warning/.test(e));
}

interface ComposeService {
  name: string;
  ip: string;
  /** the SIPp scenario (file name) of a SIPp UAS service */
  scenario?: string;
}

/** The services of upstream's docker-compose file: name, address, and the scenario of the SIPp ones. */
function composeServices(yaml: string): ComposeService[] {
  const services: ComposeService[] = [];
  const body = yaml.slice(yaml.indexOf('\nservices:'));
  for (const block of body.split(/\n(?= {2}[\w-]+:\s*\n)/).slice(1)) {
    const name = /^ {2}([\w-]+):/.exec(block)?.[1];
    const ip = /ipv4_address:\s*([\d.]+)/.exec(block)?.[1];
    if (!name || !ip) continue;
    const scenario = /command:\s*sipp\s+-sf\s+\/tmp\/([\w.-]+\.xml)/.exec(block)?.[1];
    services.push({ name, ip, scenario });
  }
  return services;
}

/** Replaces each container host name and address with its local 127.0.0.1:port. */
function rewriteAddresses(text: string, names: Map<string, string>, ips: Map<string, string>): { text: string; replaced: string[] } {
  const replaced = new Set<string>();
  let out = text;
  for (const name of [...names.keys()].sort((a, b) => b.length - a.length)) {
    out = out.replace(new RegExp(`(?<![\\w.-])${name.replace(/[-.]/g, '\\$&')}(?![\\w-])`, 'g'), () => {
      replaced.add(name);
      return names.get(name)!;
    });
  }
  out = out.replace(/(?<![\w.])172\.29\.0\.(\d{1,3})(?![\d])/g, (m) => {
    const to = ips.get(m);
    if (!to) return m;
    replaced.add(m);
    return to;
  });
  return { text: out, replaced: [...replaced] };
}

interface TapResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  oks: string[];
  notOks: string[];
  summaryOk: boolean;
}

function parseTap(stdout: string): Pick<TapResult, 'oks' | 'notOks' | 'summaryOk'> {
  const oks: string[] = [];
  const notOks: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^(not ok|ok) \d+ ?(.*)$/.exec(line);
    if (m) (m[1] === 'ok' ? oks : notOks).push(m[2]!.trim());
  }
  return { oks, notOks, summaryOk: /^# ok\s*$/m.test(stdout) && !/^# fail/m.test(stdout) };
}

/** The messages of the file's t.pass('..') and t.ok(.., '..') calls: each must be seen as "ok". */
function expectedMessages(source: string): string[] {
  const found = new Set<string>();
  for (const m of source.matchAll(/\bt\.pass\(\s*(['"])((?:(?!\1).)*)\1\s*\)/g)) found.add(m[2]!.trim());
  for (const m of source.matchAll(/\bt\.ok\([^\n]*,\s*(['"])((?:(?!\1).)*)\1\s*\)/g)) found.add(m[2]!.trim());
  return [...found];
}

/**
 * Runs one upstream test file (node test/<file>) in its own process group and waits for it to exit;
 * once tape has printed its summary the file gets 10 s to exit on its own, then its group is killed
 * (a file that leaves an srf connected never exits; upstream runs them all in one process).
 */
function runUpstreamFile(workDir: string, file: string, env: Record<string, string>, timeoutMs: number): Promise<TapResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join('test', file)], {
      cwd: workDir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    let graceTimer: NodeJS.Timeout | undefined;
    const killGroup = () => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    };
    const overall = setTimeout(() => killGroup(), timeoutMs); // a deadline: the file overran its bound
    child.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!graceTimer && /^# (ok|fail)/m.test(stdout)) graceTimer = setTimeout(() => killGroup(), 10_000); // a deadline after the summary
    });
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.once('exit', (code, signal) => {
      clearTimeout(overall);
      if (graceTimer) clearTimeout(graceTimer);
      killGroup(); // SIPp children the file may have left behind
      resolve({ code, signal, stdout, stderr, ...parseTap(stdout) });
    });
  });
}

/** Nice -5 for this process and everything it starts afterwards (inherited); a no-op without the privilege. */
function raisePriority(): void {
  try {
    os.setPriority(0, -5);
  } catch {
    // not permitted (not root): the scenarios still run, at the default priority
  }
}

describe("drachtio-srf's own test suite against ferry sip", () => {
  let workDir: string;
  let sut: SipEngineProcess;
  let uasServer: SipEngineProcess;
  const uasSipps: { service: string; sipp: SippProcess }[] = [];
  const rewritten: Record<string, string[]> = {};

  before(async () => {
    // The upstream scenarios run on SIP's real timers (SIPp retransmits an unanswered PRACK after
    // 500 ms and aborts on the answer's retransmission), and this file runs beside the Chromium files
    // of the paired lane: the processes it starts (ferry sip, SIPp, the upstream test files and their
    // SIPp) take their CPU first, so a browser's burst cannot hold a relayed answer past T1. They
    // inherit this process's priority; without the right to raise it (not root) they keep the default.
    raisePriority();
    workDir = mkdtempSync(path.join(os.tmpdir(), 'ferry-srf-upstream-'));
    cpSync(FIXTURE, workDir, { recursive: true });
    cpSync(path.join(ADAPTER, 'sipp.js'), path.join(workDir, 'test/sipp.js'));
    writeFileSync(
      path.join(workDir, 'index.js'),
      `'use strict';\n// the drachtio-srf under test: the one ferry installs\nmodule.exports = require(${JSON.stringify(path.join(ROOT, 'node_modules/drachtio-srf'))});\n`,
    );

    [sut, uasServer] = await Promise.all([spawnSipEngine(), spawnSipEngine()]);

    const services = composeServices(readFileSync(path.join(FIXTURE, 'test/docker-compose-testbed.yaml'), 'utf8'));
    const sippServices = services.filter((s) => s.scenario);
    assert.ok(sippServices.length >= 15, `the compose file lists the SIPp UAS services (${sippServices.map((s) => s.name)})`);
    // per SIPp UAS: its SIP port, and four UDP ports in a row for its media (SIPp binds -mp, +1, +2, +3)
    const sipPorts = await freePorts(sippServices.length);
    const mediaPorts = await freePorts(sippServices.length, { count: 4, protocols: ['udp'] });
    const names = new Map<string, string>();
    const ips = new Map<string, string>();
    sippServices.forEach((s, i) => {
      names.set(s.name, `127.0.0.1:${sipPorts[i]}`);
      ips.set(s.ip, `127.0.0.1:${sipPorts[i]}`);
    });
    // SIPp UAS containers a test file starts itself (sipp.js sippUas(file, '<container name>')): a free port each
    const dynamicUas = new Set<string>();
    for (const f of readdirSync(path.join(FIXTURE, 'test')).filter((x) => x.endsWith('.js'))) {
      for (const m of readFileSync(path.join(FIXTURE, 'test', f), 'utf8').matchAll(/sippUas\([^,)]+,\s*'([\w-]+)'\)/g)) dynamicUas.add(m[1]!);
    }
    const dynamicPorts = await freePorts(dynamicUas.size);
    [...dynamicUas].forEach((name, i) => names.set(name, `127.0.0.1:${dynamicPorts[i]}`));
    for (const s of services.filter((x) => !x.scenario)) {
      const engine = s.name === 'drachtio-uas' ? uasServer : s.name === 'drachtio-sut' ? sut : undefined;
      if (engine) ips.set(s.ip, `127.0.0.1:${engine.ports.sip}`);
    }

    const rewriteDir = (dir: string, ext: string) => {
      for (const f of readdirSync(path.join(workDir, dir))) {
        if (!f.endsWith(ext) || (dir === 'test' && f === 'sipp.js')) continue;
        const p = path.join(workDir, dir, f);
        const { text, replaced } = rewriteAddresses(readFileSync(p, 'utf8'), names, ips);
        if (replaced.length) {
          writeFileSync(p, text);
          rewritten[`${dir}/${f}`] = replaced;
        }
      }
    };
    rewriteDir('test', '.js');
    rewriteDir('test/scripts', '.js');
    rewriteDir('test/scenarios', '.xml');
    // SIPp 3.6 refuses a raw '<' or '>' in an attribute (regexp="<sip:(.*)>"), which the docker
    // image's SIPp accepted: they are written as &lt; / &gt;, which SIPp reads back as the same regexp
    for (const f of readdirSync(path.join(workDir, 'test/scenarios')).filter((x) => x.endsWith('.xml'))) {
      const p = path.join(workDir, 'test/scenarios', f);
      const before = readFileSync(p, 'utf8');
      const after = before.replace(/regexp="([^"]*)"/g, (_m, re: string) => `regexp="${re.replace(/</g, '&lt;').replace(/>/g, '&gt;')}"`);
      if (after !== before) {
        writeFileSync(p, after);
        (rewritten[`test/scenarios/${f}`] ??= []).push('< and > escaped in regexp="..."');
      }
    }

    const configPath = path.join(workDir, 'config/test.json');
    const config = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, Record<string, unknown>>;
    config['drachtio-sut'] = { ...config['drachtio-sut'], host: '127.0.0.1', port: sut.ports.control };
    config['drachtio-uas'] = { ...config['drachtio-uas'], host: '127.0.0.1', port: uasServer.ports.control };
    writeFileSync(configPath, JSON.stringify(config, null, 2));

    // a UAS's media ports are checked free when picked, but another test process running at the same time
    // can bind one of the four before this SIPp does (a clean-clone run: 'Unable to bind video RTP socket ...
    // errno = 98'): such a SIPp is started again on freshly picked media ports (its SIP port is in the
    // upstream config and stays; nothing else refers to its media ports)
    const startUas = async (i: number): Promise<SippProcess> => {
      const s = sippServices[i]!;
      let mediaPort = mediaPorts[i]!;
      for (let attempt = 1; ; attempt++) {
        const sipp = await startSipp({
          scenario: path.join(workDir, 'test/scenarios', s.scenario!),
          localPort: sipPorts[i]!,
          mediaPort,
          calls: 100_000,
          timeoutS: 3600,
        });
        try {
          await sipp.ready();
          return sipp;
        } catch (err) {
          if (attempt >= 3 || !/Unable to bind (audio|video) RTC?P socket.*errno = 98/.test((err as Error).message)) throw err;
          mediaPort = (await freePorts(1, { count: 4, protocols: ['udp'] }))[0]!;
        }
      }
    };
    const started = await Promise.all(sippServices.map((_, i) => startUas(i)));
    for (const [i, s] of sippServices.entries()) uasSipps.push({ service: s.name, sipp: started[i]! });
  });

  after(async () => {
    killAllSipp();
    await Promise.all([sut?.stop(), uasServer?.stop()]);
    if (workDir && !process.env.KEEP_UPSTREAM_WORKDIR) rmSync(workDir, { recursive: true, force: true });
  });

  test('every upstream test file is run or listed as not run, with the reason', { timeout: 10_000 }, (t) => {
    const files = readdirSync(path.join(FIXTURE, 'test')).filter((f) => f.endsWith('.js'));
    const unaccounted = files.filter((f) => !RUN.some((r) => r.file === f) && !(f in NOT_RUN));
    assert.deepEqual(unaccounted, []);
    for (const [f, why] of Object.entries({ ...NOT_RUN, ...NOT_VENDORED })) t.diagnostic(`not run: ${f}: ${why}`);
    for (const [f, what] of Object.entries(rewritten)) t.diagnostic(`addresses rewritten in ${f}: ${what.join(', ')}`);
  });

  // upstream's runner (test/index.js) requires every test file into one process, in this order
  const ALL_IN_ONE = 'all-in-one-process.js';
  const runnerOrder = (): string[] =>
    [...readFileSync(path.join(FIXTURE, 'test/index.js'), 'utf8').matchAll(/require\('\.\/([\w-]+)'\)/g)]
      .map((m) => `${m[1]}.js`)
      .filter((f) => !(f in NOT_RUN));
  const cases = [
    ...RUN.map((r) => ({ ...r, title: `upstream test/${r.file} passes`, sources: [r.file] })),
    {
      file: ALL_IN_ONE,
      timeoutMs: 480_000,
      title: "upstream's runner order in one process (test/index.js without docker_start/docker_stop) passes",
      sources: runnerOrder(),
    },
  ];

  test('upstream runner order covers every file run', { timeout: 10_000 }, () => {
    assert.deepEqual([...runnerOrder()].sort(), RUN.map((r) => r.file).sort());
  });

  for (const { file, timeoutMs, title, sources } of cases) {
    test(title, { timeout: timeoutMs + 20_000 }, async (t) => {
      if (file === ALL_IN_ONE) {
        writeFileSync(
          path.join(workDir, 'test', ALL_IN_ONE),
          `'use strict';\n// upstream test/index.js without docker_start/docker_stop (and without mocha's unit tests)\n${sources.map((f) => `require('./${f}');`).join('\n')}\n`,
        );
      }
      const logStart = sut.stderr().length;
      const uasLogStart = uasServer.stderr().length;
      const result = await runUpstreamFile(
        workDir,
        file,
        {
          NODE_ENV: 'test',
          NODE_CONFIG_DIR: path.join(workDir, 'config'),
          NODE_PATH: path.join(ROOT, 'node_modules'),
          UPSTREAM_SIP_TARGET: `127.0.0.1:${sut.ports.sip}`,
        },
        timeoutMs,
      );
      const report = [
        `exit ${result.code} ${result.signal ?? ''}`,
        `stdout:\n${result.stdout.slice(-6000)}`,
        `stderr:\n${result.stderr.slice(-3000)}`,
        `ferry sip (sut) log tail:\n${sut.stderr().slice(-3000)}`,
      ].join('\n');
      for (const ok of result.oks) t.diagnostic(`ok: ${ok}`);
      assert.deepEqual(result.notOks, [], report);
      assert.ok(result.summaryOk, `tape printed "# ok"\n${report}`);
      for (const line of (sut.stderr().slice(logStart) + uasServer.stderr().slice(uasLogStart)).split('\n')) {
        if (/"level":"(warn|error)"/.test(line)) t.diagnostic(`ferry sip: ${line.slice(0, 400)}`);
      }
      const missing = sources
        .flatMap((f) => expectedMessages(readFileSync(path.join(FIXTURE, 'test', f), 'utf8')))
        .filter((m) => !result.oks.includes(m));
      assert.deepEqual(missing, [], `every assertion of ${file} ran and passed\n${report}`);
      assert.ok(sut.running() && uasServer.running(), 'both ferry sip processes are still running');
    });
  }
  test('the SIPp UAS services logged no error but the explained ones', { timeout: 30_000 }, async (t) => {
    killAllSipp();
    const unexplained: string[] = [];
    for (const { service, sipp } of uasSipps) {
      const r = await sipp.done;
      t.diagnostic(`${service}: calls ${r.stats?.totalCalls} ok ${r.stats?.successfulCalls} failed ${r.stats?.failedCalls} retrans ${r.stats?.retransmissions}`);
      const explained = UAS_ERRORS_EXPLAINED[service];
      for (const event of sippErrorEvents(r.errors)) {
        if (explained?.pattern.test(event)) t.diagnostic(`${service} (explained: ${explained.why}): ${event.split('\n')[0]!.slice(0, 200)}`);
        else unexplained.push(`${service}: ${event.slice(0, 1500)}`);
      }
      if (process.env.KEEP_UPSTREAM_WORKDIR) writeFileSync(path.join(workDir, `uas-${service}.messages.log`), r.messages);
    }
    if (process.env.KEEP_UPSTREAM_WORKDIR) {
      writeFileSync(path.join(workDir, 'ferry-sip-sut.log'), sut.stdout() + sut.stderr());
      writeFileSync(path.join(workDir, 'ferry-sip-uas.log'), uasServer.stdout() + uasServer.stderr());
      t.diagnostic(`kept: ${workDir}`);
    }
    assert.deepEqual(unexplained, []);
  });
});
