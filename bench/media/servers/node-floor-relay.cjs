// The floor of a UDP relay in Node.js: a bare node:dgram relay with nothing but the per-datagram work every
// Node relay does (receive a Buffer, send it on a connect()ed socket). It runs as the "node floor" target of
// bench:media, so one run shows rtpengine, what Node alone costs per packet, and what ferry media costs.
// Plain CommonJS, no dependency: the process's CPU is Node's and the kernel's, nothing else.
// Control: newline-delimited JSON on stdin/stdout. {"op":"pair"} → {"a":port,"b":port,"id":n};
// {"op":"target","id":n,"a":portOfPhoneA,"b":portOfPhoneB} → {"ok":true}; {"op":"closeAll"} → {"ok":true,"open":0}.
'use strict';
const dgram = require('node:dgram');
const readline = require('node:readline');

const pairs = new Map();
let nextId = 1;

function bound() {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(0, '127.0.0.1', () => resolve(s));
  });
}

function connected(socket, port) {
  return new Promise((resolve) => socket.connect(port, '127.0.0.1', resolve));
}

async function handle(msg) {
  switch (msg.op) {
    case 'pair': {
      const a = await bound();
      const b = await bound();
      const id = nextId++;
      pairs.set(id, { a, b });
      return { id, a: a.address().port, b: b.address().port };
    }
    case 'target': {
      const p = pairs.get(msg.id);
      if (!p) throw new Error(`no pair ${msg.id}`);
      await Promise.all([connected(p.a, msg.a), connected(p.b, msg.b)]);
      // what A's phone sends goes out to B's phone, and back
      p.a.on('message', (buf) => p.b.send(buf));
      p.b.on('message', (buf) => p.a.send(buf));
      return { ok: true };
    }
    case 'closeAll': {
      for (const p of pairs.values()) {
        p.a.close();
        p.b.close();
      }
      pairs.clear();
      return { ok: true, open: pairs.size };
    }
    default:
      throw new Error(`unknown op ${msg.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let msg;
  try {
    msg = JSON.parse(line);
  } catch {
    return;
  }
  handle(msg).then(
    (result) => process.stdout.write(JSON.stringify({ seq: msg.seq, result }) + '\n'),
    (err) => process.stdout.write(JSON.stringify({ seq: msg.seq, error: String(err && err.message) }) + '\n'),
  );
});
rl.on('close', () => process.exit(0));
process.stdout.write(JSON.stringify({ ready: true }) + '\n');
