import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';

export interface SipEngineProcess {
  ports: { sip: number; ws: number; control: number };
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

/** Spawns `bin/ferry sip` on free ports (port 0) and waits for its ready line. */
export async function spawnSipEngine(env: Record<string, string> = {}): Promise<SipEngineProcess> {
  const bin = path.resolve(__dirname, '../../bin/ferry');
  const child = spawn(process.execPath, [bin, 'sip'], {
    env: { ...process.env, FERRY_SIP_PORT: '0', FERRY_SIP_WS_PORT: '0', FERRY_SIP_CONTROL_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { err += d.toString(); });
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  };
  const ports = await new Promise<SipEngineProcess['ports']>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`ferry sip did not start: ${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ferry sip ready (\{.*\})/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(JSON.parse(m[1]));
      }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`ferry sip exited ${code}: ${err}`)); });
  }).catch(async (e) => { await stop(); throw e; });
  return { ports, child, stderr: () => err, stop };
}
