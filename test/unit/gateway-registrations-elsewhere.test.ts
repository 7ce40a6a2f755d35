import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { AddedRegistrations, SharedRegistrationNews } from '../../src/gateway/registrar/registrations-elsewhere';
import { captureLog } from '../helpers/captured-log';
import { RedisServerProcess } from '../helpers/redis-server-process';
import { waitFor } from '../helpers/stack';

/**
 * The news of new bindings the gateways on one Redis store tell each other (registrations-elsewhere.ts;
 * docs/gateway.md, "A call", step 2, "Registered at another gateway"), over the real Redis at
 * 127.0.0.1:6379 with a prefix of this test's own: a gateway hears what another announced, never its own
 * news, nor that of gateways on another prefix (another store); an unsubscribed listener hears nothing
 * more; after Redis restarted they hear each other again; with Redis unreachable an announcement is
 * dropped with one log line, nothing thrown.
 */
const REDIS_URL = 'redis://127.0.0.1:6379';

describe('registrations made at another gateway: Redis pub/sub news', { timeout: 30_000 }, () => {
  const prefix = `ferry-test-${randomUUID().slice(0, 8)}:`;
  const opened: SharedRegistrationNews[] = [];
  const open = (instanceId: string, p = prefix, url = REDIS_URL): { news: SharedRegistrationNews; heard: AddedRegistrations[]; lines: Record<string, unknown>[] } => {
    const { log, lines } = captureLog('info');
    const news = new SharedRegistrationNews({ redisUrl: url, prefix: p, instanceId, log });
    opened.push(news);
    const heard: AddedRegistrations[] = [];
    news.subscribe((c) => heard.push(c));
    news.start();
    return { news, heard, lines };
  };
  after(async () => {
    for (const n of opened) await n.close();
  });

  /** an announcement of `from` reaches `to` (both subscriptions are up) */
  async function listening(from: SharedRegistrationNews, to: { heard: AddedRegistrations[] }, user: string): Promise<void> {
    await waitFor(() => {
      from.announce({ user, added: ['sip:ready@127.0.0.1'] });
      return to.heard.some((c) => c.user === user);
    }, 5000, 50, 'the subscription is up');
  }

  test('a gateway hears the bindings another added, not its own nor another store\'s; an unsubscribed listener hears nothing more', { timeout: 20_000 }, async () => {
    const a = open('gw-a');
    const b = open('gw-b');
    const other = open('gw-c', `${prefix}other:`);
    const otherPeer = open('gw-d', `${prefix}other:`);
    await listening(a.news, b, 'ready-ab');
    await listening(b.news, a, 'ready-ba');
    // control: the gateway on the other prefix listens (it hears its own store's gateways)
    await listening(otherPeer.news, other, 'ready-other');
    // (a subscription's readiness checks may still arrive: only this test's users count below)
    const news = (h: AddedRegistrations[]): AddedRegistrations[] => h.filter((c) => !c.user.startsWith('ready-'));
    // a's news reaches b (control), then b's reaches a: a heard b's and not its own, told before it
    a.news.announce({ user: 'ann', added: ['sip:ann@127.0.0.2:5070'] });
    await waitFor(() => b.heard.some((c) => c.user === 'ann'), 5000, 10, 'b hears a\'s news');
    b.news.announce({ user: 'bob', added: ['sip:bob@127.0.0.2:5071', 'sip:bob@127.0.0.2:5072'] });
    await waitFor(() => a.heard.some((c) => c.user === 'bob'), 5000, 10, 'a hears b\'s news');
    assert.deepEqual(news(b.heard), [{ user: 'ann', added: ['sip:ann@127.0.0.2:5070'] }]);
    assert.deepEqual(news(a.heard), [{ user: 'bob', added: ['sip:bob@127.0.0.2:5071', 'sip:bob@127.0.0.2:5072'] }], 'a never hears its own news');
    assert.deepEqual(news(other.heard), [], 'a gateway on another prefix heard neither');
    // nothing added: nothing told
    a.news.announce({ user: 'none', added: [] });
    // an unsubscribed listener: b's second listener hears the next news (control), the first does not
    const late: AddedRegistrations[] = [];
    const stop = b.news.subscribe((c) => late.push(c));
    stop();
    const kept: AddedRegistrations[] = [];
    b.news.subscribe((c) => kept.push(c));
    a.news.announce({ user: 'cy', added: ['sip:cy@127.0.0.2:5073'] });
    await waitFor(() => news(kept).length === 1, 5000, 10, 'the subscribed listener hears the news');
    assert.deepEqual(news(late), []);
    assert.deepEqual(late, []);
    assert.deepEqual(news(b.heard).map((c) => c.user), ['ann', 'cy'], 'an announcement adding nothing is not told (it came before cy\'s)');
  });

  test('Redis restarted (a private redis-server, SIGKILLed and started again empty): the gateways hear each other again without being told', { timeout: 20_000 }, async () => {
    const redis = await RedisServerProcess.start();
    try {
      const a = open('gw-a', prefix, redis.url);
      const b = open('gw-b', prefix, redis.url);
      await listening(a.news, b, 'ready-before');
      await redis.kill('SIGKILL');
      await redis.restart();
      // the subscription is made again on the new server: b hears a's news again
      await listening(a.news, b, 'ready-after');
      a.news.announce({ user: 'dee', added: ['sip:dee@127.0.0.2:5074'] });
      await waitFor(() => b.heard.some((c) => c.user === 'dee'), 5000, 10, 'b hears a\'s news after the restart');
    } finally {
      await redis.stop();
    }
  });

  test('Redis unreachable: an announcement is dropped with one log line, nothing thrown', { timeout: 20_000 }, async () => {
    const gone = open('gw-x', prefix, 'redis://127.0.0.1:1');
    gone.news.announce({ user: 'ann', added: ['sip:ann@127.0.0.2:5070'] });
    gone.news.announce({ user: 'ann', added: ['sip:ann@127.0.0.2:5071'] });
    await waitFor(() => gone.lines.some((l) => l.message === 'registration news not shared' && l.what === 'publish'), 5000, 10, 'the dropped news logged');
    assert.equal(gone.lines.filter((l) => l.message === 'registration news not shared' && l.what === 'publish').length, 1, 'one line per 10 s');
  });
});
