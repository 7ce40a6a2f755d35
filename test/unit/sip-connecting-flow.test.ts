/**
 * ConnectingFlow (src/sip/transport/connecting-flow.ts): what is sent while the connection is being
 * opened is held and written in order once it is up; dropped before that, nothing is written and the
 * attempt is aborted; a connection that comes up when nobody wants it any more is not written to.
 * The "connection" here is a real TCP connection on loopback opened by TcpTransport.connect, whose
 * `signal` gives up an attempt still connecting.
 */
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ConnectingFlow } from '../../src/sip/transport/connecting-flow';
import type { Flow } from '../../src/sip/transport/flow';
import { pollUntil } from '../helpers/wait-for';

/** A loopback TCP server recording what each connection received. */
async function recorder(): Promise<{ port: number; received: string[]; connections: () => number; close(): void }> {
  const received: string[] = [];
  let connections = 0;
  const sockets: net.Socket[] = [];
  const server = net.createServer((s) => {
    connections++;
    sockets.push(s);
    s.on('data', (d) => received.push(d.toString()));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as net.AddressInfo).port, received, connections: () => connections, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

/** A Flow over a plain socket, opened when `open` is called; `release` lets the connect proceed. */
function gatedOpener(port: number): { open: (signal: AbortSignal) => Promise<Flow>; release: () => void; aborted: () => boolean } {
  let release!: () => void;
  const gate = new Promise<void>((r) => { release = r; });
  let aborted = false;
  const open = async (signal: AbortSignal): Promise<Flow> => {
    signal.addEventListener('abort', () => { aborted = true; });
    await gate;
    if (signal.aborted) throw new Error('given up');
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    return {
      id: 'tcp#test', protocol: 'tcp', reliable: true, remoteAddress: '127.0.0.1', remotePort: port,
      localAddress: socket.localAddress ?? '', localPort: socket.localPort ?? 0,
      get closed() { return socket.destroyed; },
      send: (data: Buffer) => { socket.write(data); },
    };
  };
  return { open, release: () => release(), aborted: () => aborted };
}

describe('ConnectingFlow: sends held until the connection is up', { timeout: 10_000 }, () => {
  const servers: Array<{ close(): void }> = [];
  after(() => { for (const s of servers) s.close(); });

  test('what is sent while connecting is written in order once the connection is up', async () => {
    const srv = await recorder();
    servers.push(srv);
    const gated = gatedOpener(srv.port);
    const flow = new ConnectingFlow('tcp', '127.0.0.1', srv.port, gated.open);
    flow.send(Buffer.from('one;'));
    flow.send(Buffer.from('two;'));
    assert.equal(flow.connecting, true);
    assert.equal(flow.closed, false);
    gated.release();
    const up = await flow.ready;
    assert.equal(flow.connection, up);
    flow.send(Buffer.from('three;'));
    await pollUntil(() => srv.received.join('') === 'one;two;three;', { timeoutMs: 3000, what: 'the three writes in order' });
  });

  test('dropped before the connection is up: the attempt is aborted and nothing is written', async () => {
    const srv = await recorder();
    servers.push(srv);
    const gated = gatedOpener(srv.port);
    const flow = new ConnectingFlow('tcp', '127.0.0.1', srv.port, gated.open);
    flow.send(Buffer.from('held;'));
    flow.drop();
    assert.equal(gated.aborted(), true, 'the attempt was told to give up');
    assert.equal(flow.closed, true);
    flow.send(Buffer.from('after;'));
    gated.release();
    await assert.rejects(flow.ready);
    assert.equal(srv.connections(), 0, 'no connection was made');
    assert.deepEqual(srv.received, []);
  });

  test('a connection that comes up while nobody wants it is not written to', async () => {
    const srv = await recorder();
    servers.push(srv);
    const control = await recorder();
    servers.push(control);
    let wanted = true;
    const gated = gatedOpener(srv.port);
    const flow = new ConnectingFlow('tcp', '127.0.0.1', srv.port, gated.open);
    flow.keepWhile(() => wanted);
    flow.send(Buffer.from('held;'));
    wanted = false;
    gated.release();
    await assert.rejects(flow.ready);
    // positive control: the same sequence with the flow still wanted writes its held data
    const controlGate = gatedOpener(control.port);
    const controlFlow = new ConnectingFlow('tcp', '127.0.0.1', control.port, controlGate.open);
    controlFlow.keepWhile(() => true);
    controlFlow.send(Buffer.from('held;'));
    controlGate.release();
    await controlFlow.ready;
    await pollUntil(() => control.received.join('') === 'held;', { timeoutMs: 3000, what: 'the control\'s held data' });
    await pollUntil(() => srv.connections() === 1, { timeoutMs: 3000, what: 'the unwanted connection to arrive' });
    assert.deepEqual(srv.received, [], 'the unwanted connection carried nothing');
  });
});
