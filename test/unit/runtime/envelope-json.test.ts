import { describe, expect, it } from 'vitest';
import { defineActor } from '../../../src/runtime/actor-type.js';
import { deferred } from '../../support/deferred.js';
import { envelopeJson, type Envelope } from '../../../src/runtime/envelope.js';
import { keys } from '../../../src/runtime/store.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { waitFor } from '../../support/wait.js';

const nodes = useTestNodes();

describe('envelopeJson', () => {
  it('writes what JSON.stringify of the envelope writes when the text is compact', () => {
    const payloads: unknown[] = [{ add: 1 }, 'a "quoted" \u2028 line', null, [1, { x: [] }], 0];
    const extras: Array<Partial<Envelope>> = [{}, { i: 'id-"1"' }, { f: 'counter/a' }, { k: 'ask:1' }, { i: 'x', f: 'y', k: 'z' }];
    for (const p of payloads) {
      for (const extra of extras) {
        const env: Envelope = { s: 17, p, ...extra };
        expect(envelopeJson(env, JSON.stringify(p))).toBe(JSON.stringify(env));
      }
    }
  });

  it("stores a tell's mailbox entry with the payload text it came as", async () => {
    // A turn that waits: the enqueue's write goes without the turn's, so the mail entry is written.
    const gate = deferred<void>();
    const waiting = defineActor<number>({
      name: 'waiting',
      initialState: () => 0,
      async handle(state) {
        await gate.promise;
        return state + 1;
      },
    });
    const node = await nodes.node([waiting]);
    const ref = { type: 'waiting', id: 'w1' };
    const text = '{ "n" :\n 1 }';
    const ack = await node.system.tell(ref, { n: 1 }, { payloadJson: text });
    const key = keys.mail(keys.actor(ref), ack.seq);
    const stored = await waitFor(() => node.store.get(key), { what: 'the mail entry written' });
    expect(stored).toBe(`{"s":${ack.seq},"p":${text}}`);
    expect(JSON.parse(stored!)).toEqual({ s: ack.seq, p: { n: 1 } });
    gate.resolve();
    await waitFor(async () => (await node.store.get(key)) === undefined, { what: 'the mail entry removed by the turn' });
  });
});
