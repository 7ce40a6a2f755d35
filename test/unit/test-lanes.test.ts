/**
 * The lanes of `npm test` (test/lanes.json, test/lanes.ts, docs/testing.md "Lanes"): every test file
 * is in the parallel lane or in the serial lane with a reason, and no file that touches something
 * machine-wide (iptables, tc, network namespaces, pgrep/ps, a /proc scan, RSS/fd/CPU readings,
 * event-loop lag, Chromium, baresip, a Redis flush, a real-time window) — itself or through a helper
 * it loads — is in the parallel lane.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import {
  allTestFiles,
  GLOBAL_RESOURCE_PATTERNS,
  globalResourceUses,
  laneOf,
  localFilesLoaded,
  PAIRABLE_USES,
  quietOffences,
  readLanes,
  ROOT,
  scanSource,
  serialReason,
} from '../lanes';

/**
 * Sample code for the positive controls, written so that this file's own source does not match the
 * patterns (else it would have to be serial itself): « and » stand for quotes, ¦ is removed.
 */
function sample(code: string): string {
  return code.replace(/[«»]/g, "'").replace(/¦/g, '');
}

describe('test lanes (test/lanes.json)', { timeout: 30_000 }, () => {
  const lanes = readLanes();
  const files = allTestFiles();

  test('every test file is listed once: in the parallel lane, the beside lane, or in the serial lane under a reason', () => {
    const listed = new Map<string, number>();
    for (const f of lanes.parallel) listed.set(f, (listed.get(f) ?? 0) + 1);
    if (lanes.beside) assert.ok(lanes.beside.reason.trim().length >= 20, 'the beside lane needs a reason a newcomer understands');
    for (const f of lanes.beside?.files ?? []) listed.set(f, (listed.get(f) ?? 0) + 1);
    for (const g of lanes.serial) {
      assert.ok(g.reason.trim().length >= 20, `a serial group needs a reason a newcomer understands: ${JSON.stringify(g.reason)}`);
      assert.ok(g.files.length > 0, `serial group without files: ${g.reason}`);
      for (const f of g.files) listed.set(f, (listed.get(f) ?? 0) + 1);
    }
    // the quiet lane lists serial files a second time (they keep their group's reason): not counted here
    const unlisted = files.filter((f) => !listed.has(f));
    assert.deepEqual(unlisted, [], `test files in no lane (they run serially until listed): add each to "parallel" or to a "serial" group with its reason in test/lanes.json (docs/testing.md, "Lanes")`);
    const twice = [...listed].filter(([, n]) => n > 1).map(([f]) => f);
    assert.deepEqual(twice, [], 'test files listed more than once in test/lanes.json');
    const stale = [...listed.keys()].filter((f) => !files.includes(f));
    assert.deepEqual(stale, [], 'test/lanes.json names files that do not exist (renamed or removed)');
    for (const f of files) {
      if (laneOf(f, lanes) === 'serial') assert.ok(serialReason(f, lanes), `${f} is serial without a reason`);
    }
  });

  test('no file in the parallel or the beside lane touches a machine-wide resource, itself or through what it loads', () => {
    const offenders: string[] = [];
    for (const f of [...lanes.parallel, ...(lanes.beside?.files ?? [])]) {
      if (lanes.beside?.files.includes(f)) assert.equal(laneOf(f, lanes), 'beside', f);
      for (const use of globalResourceUses(f)) offenders.push(`${f}: ${use.name} (${use.file}:${use.line}): ${use.why}`);
    }
    assert.deepEqual(offenders, [], 'move these to a serial group in test/lanes.json');
  });

  test('a file of the quiet lane is a one-at-a-time serial file with a reason, listed once, and uses nothing machine-wide but its own (QUIET_USES)', () => {
    const quiet = lanes.quiet?.files ?? [];
    assert.ok(quiet.length > 0, 'positive control: the quiet lane has files');
    assert.ok(lanes.quiet!.reason.trim().length >= 20, 'the quiet lane needs a reason a newcomer understands');
    assert.equal(new Set(quiet).size, quiet.length, 'a file listed twice in the quiet lane');
    const offenders: string[] = [];
    for (const f of quiet) {
      assert.ok(files.includes(f), `the quiet lane names a file that does not exist: ${f}`);
      assert.equal(laneOf(f, lanes), 'quiet', f);
      const group = lanes.serial.find((g) => g.files.includes(f));
      assert.ok(group, `${f}: a quiet file stays listed in the serial group that says why it is not parallel`);
      assert.notEqual(group.twoAtATime, true, `${f}: a paired-lane file cannot be in the quiet lane as well`);
      for (const use of quietOffences(f)) offenders.push(`${f}: ${use.name} (${use.file}:${use.line}): ${use.why}`);
    }
    assert.deepEqual(offenders, [], 'move these out of the quiet lane (test/lanes.json "quiet")');
    // positive controls: a /proc scan, iptables on loopback, Chromium and baresip keep a file out; a namespace of its own with tc on its own veth does not
    const offences = (f: string): string[] => quietOffences(f).map((u) => u.name);
    assert.ok(offences('test/faults/f01-ferry-start-private-redis.test.ts').includes('process-table scan'));
    assert.ok(offences('test/integration/sip-srf-loss.test.ts').includes('iptables rule'));
    assert.ok(offences('test/e2e/nat-desk-phone.test.ts').includes('iptables rule'), 'the NAT router\'s iptables rules (helpers/nat-router.ts) are not excused');
    assert.ok(offences('test/e2e/gateway-baresip.test.ts').includes('baresip phone'));
    assert.ok(offences('test/lifecycle/s09-webphone-mute-chromium.test.ts').includes('Chromium'));
    assert.deepEqual(offences('test/lifecycle/s07-s10-cable-pull-and-blip-netns.test.ts'), [], 'own namespace, tc on its own veth, a real-time window');
    assert.ok(globalResourceUses('test/lifecycle/s07-s10-cable-pull-and-blip-netns.test.ts').some((u) => u.name === 'tc qdisc'), 'positive control: the scan sees its tc');
  });

  test('a file of a two-at-a-time group (the paired lane) uses nothing machine-wide but what two such files may share', () => {
    const paired = lanes.serial.filter((g) => g.twoAtATime === true).flatMap((g) => g.files);
    assert.ok(paired.length > 0, 'positive control: the paired lane has files');
    const offenders: string[] = [];
    for (const f of paired) {
      assert.equal(laneOf(f, lanes), 'paired', f);
      for (const use of globalResourceUses(f)) if (!PAIRABLE_USES.includes(use.name)) offenders.push(`${f}: ${use.name} (${use.file}:${use.line}): ${use.why}`);
    }
    assert.deepEqual(offenders, [], 'move these to a one-at-a-time group in test/lanes.json');
    // positive control: a Chromium file that also holds a short gateway lease is not pairable, and is serial
    const s14 = 'test/lifecycle/s14-two-gateways-one-dies.test.ts';
    assert.ok(globalResourceUses(s14).some((u) => !PAIRABLE_USES.includes(u.name)), 's14 holds a short lease');
    assert.equal(laneOf(s14, lanes), 'serial');
  });

  test('the scan finds the files known to use iptables, tc and netns, /proc scans, Chromium and baresip, and none of them is in the parallel lane', () => {
    const known: [string, string][] = [
      ['test/integration/sip-srf-loss.test.ts', 'iptables rule'],
      ['test/faults/f09-chaos-soak.test.ts', 'iptables rule'],
      ['test/lifecycle/s07-s10-cable-pull-and-blip-netns.test.ts', 'network namespace'],
      ['test/lifecycle/s07-s10-cable-pull-and-blip-netns.test.ts', 'tc qdisc'],
      ['test/faults/f01-ferry-start-private-redis.test.ts', 'process-table scan'],
      ['test/e2e/media-webrtc-chromium.test.ts', 'Chromium'],
      ['test/e2e/gateway-baresip.test.ts', 'baresip phone'],
    ];
    for (const [file, name] of known) {
      const uses = globalResourceUses(file);
      assert.ok(uses.some((u) => u.name === name), `${file}: expected a ${name} use, found ${JSON.stringify(uses.map((u) => u.name))}`);
      // a file whose only machine-wide use is Chromium runs in the paired lane; any other use keeps it serial
      // (or, when the use is its own network namespace, possibly in the quiet lane, held to its own rule above)
      if (name === 'Chromium') assert.equal(laneOf(file, lanes), 'paired', file);
      else assert.ok(['serial', 'quiet'].includes(laneOf(file, lanes)), `${file}: ${laneOf(file, lanes)}`);
    }
    // found through a helper: the test file itself names no iptables
    const loss = globalResourceUses('test/integration/sip-srf-loss.test.ts').find((u) => u.name === 'iptables rule');
    assert.equal(loss?.file, 'test/helpers/loopback-udp-loss.ts');
  });

  test('positive controls: each kind of use is found in sample code; prose in comments is not', () => {
    const samples: [string, string][] = [
      ['iptables rule', "await run(«iptables», ['-I', 'INPUT', '-i', 'lo']);"],
      ['tc qdisc', "await run(«tc», ['qdisc', 'replace', 'dev', 'lo', 'root', 'netem', 'loss', '100%']);"],
      ['network namespace', "await run('ip', [«netns», 'add', 'ferry-x']);"],
      ['network namespace', 'execSync(`ip ¦netns exec ferry-x node child.ts`);'],
      ['packet capture', "spawn(«tcpdump», ['-i', 'lo', '-w', '-']);"],
      ['process tools', "execFileSync(«pgrep», ['-f', 'bin/ferry']);"],
      ['process tools', "spawnSync(«ps», ['-eo', 'pid,args']);"],
      ['process-table scan', 'for (const pid of readdir¦Sync(«/proc»)) check(pid);'],
      ['resource measurement', 'const rss = /Vm¦RSS:\\s+(\\d+)/.exec(status);'],
      ['resource measurement', 'const fds = readdirSync(`/proc/${pid}/¦fd`).length;'],
      ['event-loop lag', 'const h = monitor¦EventLoopDelay({ resolution: 10 });'],
      ['Chromium', 'const browser = await launch¦Chromium();'],
      ['baresip phone', "spawn(«baresip», ['-f', dir]);"],
      ['Redis flush', 'await redis.flush¦all();'],
      ['fixed port', 'server.listen(5¦060, «127.0.0.1»);'],
      ['fixed port', 'socket.bind({ port: 4¦0000, address: «127.0.0.1» });'],
      ['short SIP timers', 'engine = await startSipEngine({ timers: { t¦1: 20, t2: 160, t4: 200 } });'],
      ['short SIP timers', 'await spawnSipEngine({ FERRY_SIP_T¦1_MS: «50» });'],
      ['short gateway lease', 'env: { FERRY_GATEWAY_LEASE_¦MS: «1500», FERRY_GATEWAY_ADOPT_INTERVAL_MS: «250» }'],
      ['real-time window', 'await realTime¦Pause(3000); // the blip lasts 3 s'],
    ];
    const names = new Set(GLOBAL_RESOURCE_PATTERNS.map((p) => p.name));
    for (const [name, code] of samples) {
      assert.ok(names.has(name), name);
      const found = scanSource(sample(code)).map((u) => u.name);
      assert.ok(found.includes(name), `${name} not found in ${sample(code)}: ${JSON.stringify(found)}`);
    }
    for (const p of GLOBAL_RESOURCE_PATTERNS) assert.ok(samples.some(([n]) => n === p.name), `no sample for ${p.name}`);
    // the same words in comments, or the helper that defines the pause, are no use
    const prose = sample('// needs root: «iptables» and «tc» on loopback\n/* ip ¦netns exec … monitor¦EventLoopDelay */\nexport function realTime¦Pause(ms: number) {}\n');
    assert.deepEqual(scanSource(prose), []);
    // and ordinary test code (free ports, a private Redis key prefix, a FakeClock) is clean
    const clean = "const port = await freePort();\nserver.listen(0, '127.0.0.1');\nsocket.bind(port);\nconst prefix = `ferry-test:${randomUUID()}:`;\nclock.advance(15_000);\nconst env = { FERRY_GATEWAY_LEASE_MS: '10000' };\nawait pollUntil(() => seen, { timeoutMs: 5_000, what: 'x' });\n";
    assert.deepEqual(scanSource(clean), []);
  });

  test('what a test loads is followed: relative imports and named child scripts under test/ and bench/', () => {
    const dir = path.join(ROOT, 'test', 'unit');
    const loaded = localFilesLoaded(
      sample("import { LoopbackUdpLoss } from «../helpers/loopback-udp-loss»;\nconst child = path.join(__dirname, «../helpers/rtp-phone-child.ts»);\nimport { x } from «../../src/common/clock»;\n"),
      dir,
    ).map((f) => path.relative(ROOT, f));
    assert.deepEqual(loaded.sort(), ['test/helpers/loopback-udp-loss.ts', 'test/helpers/rtp-phone-child.ts']);
  });

  test('a file listed nowhere is serial (the safe default)', () => {
    assert.equal(laneOf('test/unit/not-yet-listed.test.ts', { ...lanes, quiet: { reason: 'x'.repeat(20), files: [] } }), 'serial');
    assert.equal(laneOf('test/unit/not-yet-listed.test.ts', lanes), 'serial');
    assert.equal(serialReason('test/unit/not-yet-listed.test.ts', lanes), undefined);
    assert.equal(laneOf(lanes.parallel[0]!, lanes), 'parallel');
    assert.equal(laneOf(`./${lanes.parallel[0]!}`, lanes), 'parallel', 'a path given as ./test/… is the same file');
  });
});
