/**
 * The rule that decides where a dialog's requests may go (src/sip/dialog/dialog-flow.ts: peerOnlyTarget for
 * a target as written, addressNotForPeer for an address, literal or resolved from a name), including a dialog
 * rebuilt from an app's snapshot, which has no recorded peer. The network side:
 * test/integration/sip-dialog-target-capture.test.ts (literals) and sip-dialog-target-resolved.test.ts (names).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { addressNotForPeer, peerOnlyTarget } from '../../src/sip/dialog/dialog-flow';

describe('dialog target rule', () => {
  test('a peer elsewhere: loopback, link-local, multicast, unspecified and reserved refused; public and private addresses and its own allowed', { timeout: 5000 }, () => {
    const peer = '203.0.113.7';
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '169.254.169.254', '224.0.0.1', '0.0.0.0', '240.0.0.1', '255.255.255.255', 'fe80::1', 'ff02::1', '::']) {
      assert.equal(addressNotForPeer(a, peer, false), true, a);
    }
    for (const a of ['198.51.100.1', '10.0.0.5', '192.168.1.20', '2001:db8::1', peer]) assert.equal(addressNotForPeer(a, peer, false), false, a);
  });

  test('a peer on loopback may name loopback, not link-local; a peer may name its own link-local address', { timeout: 5000 }, () => {
    assert.equal(addressNotForPeer('127.0.0.1', '127.0.0.1', false), false);
    assert.equal(addressNotForPeer('::1', '127.0.0.1', false), false);
    assert.equal(addressNotForPeer('169.254.169.254', '127.0.0.1', false), true);
    assert.equal(addressNotForPeer('169.254.10.10', '169.254.10.10', false), false);
  });

  test('a rebuilt dialog (no recorded peer): never link-local, multicast, unspecified or reserved; loopback only when ferry sip listens on loopback only', { timeout: 5000 }, () => {
    for (const a of ['169.254.169.254', '224.0.0.1', '0.0.0.0', 'fe80::1']) {
      assert.equal(addressNotForPeer(a, undefined, false), true, a);
      assert.equal(addressNotForPeer(a, undefined, true), true, `${a} (listening on loopback)`);
    }
    assert.equal(addressNotForPeer('127.0.0.1', undefined, false), true);
    assert.equal(addressNotForPeer('127.0.0.1', undefined, true), false);
    assert.equal(addressNotForPeer('198.51.100.1', undefined, false), false);
  });

  test('a target as written: literals judged at once, names left to their resolved addresses', { timeout: 5000 }, () => {
    assert.equal(peerOnlyTarget('<sip:x@127.0.0.1:6379;transport=tcp>', '203.0.113.7'), true);
    assert.equal(peerOnlyTarget('<sip:x@localhost:6379>', '203.0.113.7'), true);
    assert.equal(peerOnlyTarget('<sip:x@[fe80::1]:5060>', '203.0.113.7'), true);
    assert.equal(peerOnlyTarget('<sip:x@evil.example:6379>', '203.0.113.7'), false);
    assert.equal(peerOnlyTarget('<sip:x@127.0.0.1:5060>', '127.0.0.1'), false);
  });
});
