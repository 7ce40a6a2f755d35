import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { freePort, freePorts, isPortFree } from '../helpers/free-port';

/**
 * The tests' port finder picks below the kernel's ephemeral range: a port there cannot be taken by a
 * port-0 bind or an outgoing connection of another process between "found free" and "bound".
 */
describe('test helper freePort', { timeout: 30_000 }, () => {
  const ephemeralStart = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);

  test('ports come from below the ephemeral range and are free for UDP and TCP', async () => {
    for (let i = 0; i < 20; i++) {
      const port = await freePort();
      assert.ok(port >= 1024 && port < ephemeralStart, `${port} below ${ephemeralStart}`);
      assert.equal(await isPortFree(port, 'udp'), true);
      assert.equal(await isPortFree(port, 'tcp'), true);
    }
  });

  test('a run of even consecutive ports, and distinct ports', async () => {
    const base = await freePort({ count: 4, even: true });
    assert.equal(base % 2, 0);
    assert.ok(base + 3 < ephemeralStart);
    const ports = await freePorts(5, { count: 2 });
    assert.equal(new Set(ports).size, 5);
  });

  test('a port in use is not free (control for isPortFree)', async () => {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      assert.equal(await isPortFree(port, 'tcp'), false);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
