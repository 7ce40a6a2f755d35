import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { defaultElementTypes } from '../../src/media/objects/element-types';

/** The factory table holds every element type, each imported statically (a rename fails tsc, not a call). */

test('the factory table holds every element type ferry media implements', { timeout: 5_000 }, () => {
  const names = defaultElementTypes().names().sort();
  assert.deepEqual(names, ['AlphaBlending', 'Composite', 'Dispatcher', 'DispatcherOneToMany', 'HttpPostEndpoint', 'HubPort', 'Mixer', 'PassThrough', 'PlayerEndpoint', 'RecorderEndpoint', 'RtpEndpoint', 'WebRtcEndpoint']);
  assert.equal(defaultElementTypes().get('kurento.WebRtcEndpoint')?.type, 'WebRtcEndpoint');
});

test('element-types.ts loads no module at run time (no require, no dynamic import)', { timeout: 5_000 }, () => {
  const source = readFileSync(path.join(__dirname, '..', '..', 'src', 'media', 'objects', 'element-types.ts'), 'utf8');
  assert.doesNotMatch(source, /\brequire\s*\(|\bimport\s*\(/);
  assert.match(source, /^import \{ elementType as webRtcEndpointType \} from '\.\/webrtc-endpoint';$/m, 'positive control: the WebRTC endpoint is imported statically');
});
