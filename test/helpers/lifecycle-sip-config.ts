import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * A sip-config file (sip-config/ferry.json format, docs/configuration.md) for one gateway lifecycle
 * test: webphone users alice and bob, and the scripted IP phone as trunk "phone" at its real UDP port
 * (calls from that address:port are the phone's; dialling 9<anything> from a webphone rings it).
 */
export const WEBPHONE_USERS = {
  alice: 'alice-lifecycle-secret',
  bob: 'bob-lifecycle-secret',
} as const;

export async function writeLifecycleSipConfig(phone: { address?: string; port: number }): Promise<{ file: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'ferry-lifecycle-'));
  const address = `${phone.address ?? '127.0.0.1'}:${phone.port}`;
  const config = {
    domain: 'ferry.local',
    users: Object.entries(WEBPHONE_USERS).map(([user, password]) => ({ user, password, displayName: `${user} (lifecycle webphone)` })),
    trunks: [{ name: 'phone', address, transport: 'udp', acceptFrom: [address] }],
    routes: [
      { match: '9(\\d+)', to: 'trunk:phone', rewrite: '$1' },
      { match: '.*', to: 'user' },
    ],
  };
  const file = path.join(dir, 'ferry.json');
  await writeFile(file, JSON.stringify(config, null, 2));
  return { file, remove: () => rm(dir, { recursive: true, force: true }) };
}
