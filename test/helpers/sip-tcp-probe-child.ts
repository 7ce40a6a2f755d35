/**
 * Child process for tests that need SIP TCP connections from addresses the test process cannot use (its
 * own network namespace): started as `ip netns exec <ns> node --import tsx sip-tcp-probe-child.ts <port>
 * <server> <local>...`. For each local address in turn it connects from that address to server:port, sends
 * an OPTIONS and waits for an answer (`served`) or for the server to close the connection unanswered
 * (`refused`), and prints one JSON line per connection: {"local","result","line"}. Then `done`; served
 * connections stay open until stdin ends (so they keep holding their slot), then it exits.
 */
import net from 'node:net';

const [portText, server, ...locals] = process.argv.slice(2);
const port = Number(portText);
const sockets: net.Socket[] = [];

function options(localAddress: string, localPort: number, n: number): string {
  const via = net.isIPv6(localAddress) ? `[${localAddress}]` : localAddress;
  const host = net.isIPv6(server!) ? `[${server}]` : server;
  return [`OPTIONS sip:probe@${host}:${port} SIP/2.0`, `Via: SIP/2.0/TCP ${via}:${localPort};branch=z9hG4bKprobe${n}x${localPort}`, 'Max-Forwards: 70',
    `From: <sip:probe@${via}>;tag=p${n}`, `To: <sip:probe@${host}>`, `Call-ID: probe${n}x${localPort}@test`, 'CSeq: 1 OPTIONS', 'Content-Length: 0', '', ''].join('\r\n');
}

function probe(localAddress: string, n: number): Promise<{ local: string; result: 'served' | 'refused' | 'error'; line: string }> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: server, localAddress });
    let text = '';
    let done = false;
    const finish = (result: 'served' | 'refused' | 'error', line: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ local: localAddress, result, line });
    };
    const timer = setTimeout(() => finish('error', 'neither an answer nor a close within 10 s'), 10_000);
    socket.once('connect', () => socket.write(options(localAddress, socket.localPort ?? 0, n)));
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes('\r\n')) {
        sockets.push(socket);
        finish('served', text.split('\r\n')[0]!);
      }
    });
    socket.on('error', (err) => finish(text === '' ? 'refused' : 'error', err.message));
    socket.on('close', () => finish(text === '' ? 'refused' : 'error', 'closed'));
  });
}

async function main(): Promise<void> {
  for (let i = 0; i < locals.length; i++) process.stdout.write(`${JSON.stringify(await probe(locals[i]!, i))}\n`);
  process.stdout.write('done\n');
  process.stdin.resume();
  process.stdin.on('end', () => {
    for (const s of sockets) s.destroy();
    process.exit(0);
  });
}

void main();
