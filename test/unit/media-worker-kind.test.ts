import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadMediaConfig, type RelayWorkerKind } from '../../src/media/server/media-config';
import { relayProcessExecArgv } from '../../src/media/workers/relay-transport';
import { parseOptions } from '../../bench/media/cli-options';

/**
 * FERRY_MEDIA_WORKER_KIND (docs/media-server.md, "Relay workers"): read and checked with the rest of
 * ferry media's configuration; the Node options a relay child process gets (the memory settings a
 * thread gets from its process and its resource limits); bench:media's --worker-kind.
 */
describe('FERRY_MEDIA_WORKER_KIND', { timeout: 10_000 }, () => {
  test('thread by default; process when set; anything else is refused naming the variable', () => {
    assert.equal(loadMediaConfig({}, {}).workerKind, 'thread');
    assert.equal(loadMediaConfig({}, { FERRY_MEDIA_WORKER_KIND: '' }).workerKind, 'thread');
    assert.equal(loadMediaConfig({}, { FERRY_MEDIA_WORKER_KIND: 'process' }).workerKind, 'process');
    assert.equal(loadMediaConfig({}, { FERRY_MEDIA_WORKER_KIND: 'thread' }).workerKind, 'thread');
    assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_WORKER_KIND: 'fork' }), /^Error: FERRY_MEDIA_WORKER_KIND="fork" must be thread or process/);
    assert.throws(() => loadMediaConfig({}, { FERRY_MEDIA_WORKER_KIND: 'Process' }), /FERRY_MEDIA_WORKER_KIND="Process" must be thread or process/);
    assert.throws(() => loadMediaConfig({ workerKind: 'cluster' as RelayWorkerKind }, {}), /must be thread or process/);
    assert.equal(loadMediaConfig({ workerKind: 'process' }, {}).workerKind, 'process', 'an override (startMediaServer config) wins');
  });

  test('a relay child process gets the young generation as --max-semi-space-size (a third of a thread\'s limit) and the heap growing step; tsx from the sources, source maps for the bundle', () => {
    assert.deepEqual(relayProcessExecArgv({ module: '/cache/k/relay-worker.js' }, 6, 25), ['--enable-source-maps', '--max-semi-space-size=2', '--heap-growing-percent=25']);
    assert.deepEqual(relayProcessExecArgv({ module: '/cache/k/relay-worker.js' }, undefined, 0), ['--enable-source-maps'], 'V8\'s own young generation and heap rule');
    const fromSources = relayProcessExecArgv({ module: '/src/media/workers/relay-worker.ts', tsxApi: '/x/tsx/api' }, 12, 40);
    assert.equal(fromSources[0], '--require');
    assert.match(fromSources[1]!, /tsx[\\/]dist[\\/]cjs[\\/]index\.cjs$/);
    assert.deepEqual(fromSources.slice(2), ['--max-semi-space-size=4', '--heap-growing-percent=40']);
  });

  test('bench:media --worker-kind sets FERRY_MEDIA_WORKER_KIND for ferry media; a bad or disagreeing value is refused', () => {
    const o = parseOptions(['--workers', '2', '--worker-kind', 'process', '--steps', '100,200']);
    assert.equal(o.mediaWorkerKind, 'process');
    assert.equal(o.mediaEnv.FERRY_MEDIA_WORKER_KIND, 'process');
    assert.equal(o.mediaEnv.FERRY_MEDIA_WORKERS, '2');
    assert.equal(parseOptions(['--worker-kind', 'thread']).mediaEnv.FERRY_MEDIA_WORKER_KIND, 'thread');
    assert.equal(parseOptions([]).mediaEnv.FERRY_MEDIA_WORKER_KIND, undefined, 'no --worker-kind: ferry media keeps its default');
    assert.throws(() => parseOptions(['--worker-kind', 'fork']), /--worker-kind must be thread or process, got "fork"/);
    assert.throws(() => parseOptions(['--worker-kind']), /--worker-kind must be thread or process/);
    assert.throws(() => parseOptions(['--worker-kind', 'process', '--media-env', 'FERRY_MEDIA_WORKER_KIND=thread']), /disagree/);
    assert.equal(parseOptions(['--worker-kind', 'process', '--media-env', 'FERRY_MEDIA_WORKER_KIND=process']).mediaWorkerKind, 'process');
  });
});
