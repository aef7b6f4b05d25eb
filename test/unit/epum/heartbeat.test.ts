/**
 * The worker's heartbeat: it finds its domain in its instance record, heartbeats with its metrics,
 * stops at the domain's NOT_FOUND, and calls onZombie at a zombie verdict. On a FakeClock, with an
 * ActorService stand-in that answers the asks.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import type { ActorService } from '../../../src/runtime/actor-service.js';
import type { ActorRef } from '../../../src/runtime/ref.js';
import { startHeartbeat } from '../../../src/actors/epum/heartbeat.js';
import { waitFor } from '../../support/wait.js';

function service(answer: (ref: ActorRef, message: Record<string, unknown>) => unknown): { service: ActorService; asked: Array<[string, Record<string, unknown>]> } {
  const asked: Array<[string, Record<string, unknown>]> = [];
  const s = {
    async ask(ref: ActorRef, message: Record<string, unknown>) {
      asked.push([`${ref.type}/${ref.id}`, message]);
      const r = answer(ref, message);
      if (r instanceof Error) throw r;
      return r;
    },
  } as unknown as ActorService;
  return { service: s, asked };
}

const record = (vars: Record<string, string>) => ({ ok: true, value: { instances: [{ instance_id: 'i-0', vars }], unknown: [] } });

describe('startHeartbeat', () => {
  it('heartbeats to the domain named in its instance record, every interval, with its metrics', async () => {
    const clock = new FakeClock();
    const { service: s, asked } = service((ref) => (ref.type === 'provisioner' ? record({ epum_domain: 'd1' }) : { ok: true, value: { verdict: 'ok' } }));
    const hb = startHeartbeat(s, { instanceId: 'i-0', nodeId: 'n1' }, clock, silentLogger, { intervalMs: 1_000 });
    await waitFor(() => asked.length === 2);
    expect(hb.domain).toBe('d1');
    expect(asked[1]![0]).toBe('epum/d1');
    expect(asked[1]![1]).toMatchObject({ op: 'heartbeat', instance_id: 'i-0', node_id: 'n1', cpu_load: expect.any(Number), free_memory: expect.any(Number) });
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    expect(asked).toHaveLength(2);
    clock.advance(1);
    await waitFor(() => asked.length === 3);
    hb.stop();
    clock.advance(5_000);
    expect(asked).toHaveLength(3);
  });

  it('does not heartbeat for an instance of no domain, stops when the domain is gone, and reports a zombie', async () => {
    const clock = new FakeClock();
    const none = service(() => record({}));
    startHeartbeat(none.service, { instanceId: 'i-0', nodeId: 'n1' }, clock, silentLogger);
    await waitFor(() => none.asked.length === 1);
    clock.advance(10_000);
    expect(none.asked).toHaveLength(1);

    const gone = service((ref) => (ref.type === 'provisioner' ? record({ epum_domain: 'd1' }) : { ok: false, error: { code: 'NOT_FOUND', message: 'no domain "d1"' } }));
    startHeartbeat(gone.service, { instanceId: 'i-0', nodeId: 'n1' }, clock, silentLogger);
    await waitFor(() => gone.asked.length === 2);
    clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    expect(gone.asked).toHaveLength(2);

    let zombies = 0;
    const z = service((ref) => (ref.type === 'provisioner' ? record({ epum_domain: 'd1' }) : { ok: true, value: { verdict: 'zombie' } }));
    startHeartbeat(z.service, { instanceId: 'i-0', nodeId: 'n1' }, clock, silentLogger, { onZombie: () => zombies++ });
    await waitFor(() => zombies === 1);
    clock.advance(10_000);
    expect(z.asked).toHaveLength(2);
  });

  it('retries the record lookup with backoff while the provisioner is out of reach', async () => {
    const clock = new FakeClock();
    let fail = 3;
    const { service: s, asked } = service((ref) => {
      if (ref.type !== 'provisioner') return { ok: true, value: { verdict: 'ok' } };
      return fail-- > 0 ? new Error('unreachable') : record({ epum_domain: 'd1' });
    });
    const hb = startHeartbeat(s, { instanceId: 'i-0', nodeId: 'n1' }, clock, silentLogger);
    await waitFor(() => asked.some(([to]) => to === 'epum/d1'), { step: () => clock.advance(100) });
    expect(asked.filter(([to]) => to === 'provisioner/main')).toHaveLength(4);
    hb.stop();
  });
});
