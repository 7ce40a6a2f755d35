import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_HTTP_POST_MAX_BYTES, httpPostMaxBytes, httpPostUrlBase } from '../../src/media/http-post/http-post-settings';
import { loadMediaConfig } from '../../src/media/server/media-config';

/**
 * The HttpPostEndpoint settings: the URL's host (FERRY_MEDIA_HTTP_POST_ADDRESS, else the control
 * address, else for a wildcard the advertised media address; IPv6 in brackets) and the upload cap
 * (FERRY_MEDIA_HTTP_POST_MAX_BYTES, default 4 MiB, at least 1024, else an error naming the variable).
 */
describe('media: HttpPostEndpoint settings', { timeout: 10_000 }, () => {
  const config = (host: string, env: Record<string, string> = {}) => loadMediaConfig({ host, port: 8888, workers: 1 }, { ...env });

  test('the URL names the control address, the advertised media address for a wildcard, or the setting', () => {
    assert.equal(httpPostUrlBase(config('127.0.0.1'), {}), 'http://127.0.0.1:8888');
    assert.equal(httpPostUrlBase(config('0.0.0.0', { FERRY_MEDIA_SDP_ADDRESS: '192.0.2.10' }), {}), 'http://192.0.2.10:8888');
    assert.equal(httpPostUrlBase(config('0.0.0.0', { FERRY_MEDIA_SDP_ADDRESS: '192.0.2.10' }), { FERRY_MEDIA_HTTP_POST_ADDRESS: 'media.example.org' }), 'http://media.example.org:8888');
    assert.equal(httpPostUrlBase(config('::1'), {}), 'http://[::1]:8888');
    assert.equal(httpPostUrlBase(config('127.0.0.1'), { FERRY_MEDIA_HTTP_POST_ADDRESS: '2001:db8::5' }), 'http://[2001:db8::5]:8888');
  });

  test('the upload cap: 4 MiB by default, at least 1024, an error naming the variable', () => {
    assert.equal(httpPostMaxBytes({}), DEFAULT_HTTP_POST_MAX_BYTES);
    assert.equal(DEFAULT_HTTP_POST_MAX_BYTES, 4 * 1024 * 1024);
    assert.equal(httpPostMaxBytes({ FERRY_MEDIA_HTTP_POST_MAX_BYTES: '2048' }), 2048);
    assert.throws(() => httpPostMaxBytes({ FERRY_MEDIA_HTTP_POST_MAX_BYTES: '10' }), /FERRY_MEDIA_HTTP_POST_MAX_BYTES=10 must be at least 1024/);
    assert.throws(() => httpPostMaxBytes({ FERRY_MEDIA_HTTP_POST_MAX_BYTES: 'lots' }), /FERRY_MEDIA_HTTP_POST_MAX_BYTES/);
  });
});
