/**
 * The HA service and registry actors on a real store with a FakeClock, against a stand-in dispatcher
 * (`dispatcher/main`) that records schedules and terminations and answers describes with states the
 * test sets. The sensor policy reads a real stream subscription's queue length.
 */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { defineActor } from '../../../../src/runtime/actor-type.js';
import { silentLogger } from '../../../../src/runtime/logger.js';
import { FakeClock } from '../../../../src/runtime/clock-fake.js';
import { CeiError } from '../../../../src/errors.js';
import { askRole } from '../../../../src/actors/role-reply.js';
import { stream, streamRef } from '../../../../src/actors/stream.js';
import type { RoleEnv } from '../../../../src/actors/role-env.js';
import { haTypes } from '../../../../src/actors/ha/ha.js';
import { HA_TEST_PRESET } from '../../../../src/actors/ha/options.js';
import { HA_REGISTRY_REF, haRef, type HaDescription, type HaSummary } from '../../../../src/actors/ha/protocol.js';
import { useTestNodes, type TestNode } from '../../../support/runtime-node.js';
import { waitFor, within } from '../../../support/wait.js';

interface FakeProc {
  state: string;
  terminateAsked: boolean;
}

/** A stand-in dispatcher: `schedule`, `describe`, `terminate` as the real one answers them; `{set}` and `{get}` for the test. */
const fakeDispatcher = defineActor<{ procs: Record<string, FakeProc> }>({
  name: 'dispatcher',
  initialState: () => ({ procs: {} }),
  handle(state, message, ctx) {
    const m = message as Record<string, any>;
    const ok = (value: unknown) => ctx.reply({ ok: true, value });
    const procs = { ...state.procs };
    if (m.schedule) {
      procs[m.schedule.upid] = { state: 'REQUESTED', terminateAsked: false };
      ok({ upid: m.schedule.upid, state: 'REQUESTED' });
    } else if (m.describe || m.terminate) {
      const upid = (m.describe ?? m.terminate).upid as string;
      const p = procs[upid];
      if (!p) {
        ctx.reply({ ok: false, error: { code: 'NOT_FOUND', message: `no process ${upid}` } });
        return state;
      }
      if (m.terminate) procs[upid] = { state: 'TERMINATED', terminateAsked: true };
      ok({ upid, state: procs[upid]!.state });
    } else if (m.set) {
      procs[m.set.upid] = { ...procs[m.set.upid]!, state: m.set.state };
      ok(null);
    } else ok(procs);
    return { procs };
  },
});

describe('HA service actors with a stand-in dispatcher', () => {
  const nodes = useTestNodes();

  async function start(): Promise<TestNode> {
    let node: TestNode | undefined;
    const clock = new FakeClock();
    const env: RoleEnv = { service: () => node!.system, members: () => [], dataDir: join(nodes.tempDir(), 'role'), clock, log: silentLogger };
    node = await nodes.node([...haTypes(env, HA_TEST_PRESET).types, fakeDispatcher, stream], { clock });
    return node;
  }

  const ask = <T>(node: TestNode, ref: { type: string; id: string }, message: unknown) => within(askRole<T>(node.system, ref, message), `ask ${JSON.stringify(message)}`);
  const D = { type: 'dispatcher', id: 'main' };
  const procs = (node: TestNode) => ask<Record<string, FakeProc>>(node, D, { get: true });
  const setState = (node: TestNode, upid: string, state: string) => ask(node, D, { set: { upid, state } });
  const describeHa = (node: TestNode, name = 's') => ask<HaDescription>(node, haRef(name), { op: 'describe' });
  const live = (d: HaDescription) => d.processes.filter((p) => !['TERMINATED', 'FAILED', 'EXITED', 'REJECTED'].includes(p.state));
  const wait = <T>(node: TestNode, what: string, fn: () => Promise<T>) => waitFor(fn, { step: () => node.clock.advance(20), what, timeoutMs: 10_000 });

  const npreserving = (n: number) => ({ definition_id: 'sleeper', policy: 'npreserving', policy_parameters: { preserve_n: n } });

  it('npreserving: PENDING -> STEADY, a FAILED process replaced, preserve_n down terminates the extra, remove terminates all', async () => {
    const node = await start();
    const created = await ask<HaDescription>(node, HA_REGISTRY_REF, { op: 'create', name: 's', config: npreserving(2) });
    expect(created.state).toBe('PENDING');
    expect(created.config.dispatchers).toEqual(['dispatcher/main']);
    await wait(node, 'two schedules', async () => Object.keys(await procs(node)).length === 2);
    expect(Object.keys(await procs(node)).sort()).toEqual(['s-1', 's-2']);

    await setState(node, 's-1', 'RUNNING');
    await wait(node, 'READY', async () => (await describeHa(node)).state === 'READY');
    await setState(node, 's-2', 'RUNNING');
    await wait(node, 'STEADY', async () => (await describeHa(node)).state === 'STEADY');

    await setState(node, 's-1', 'FAILED');
    await wait(node, 'a replacement', async () => Object.keys(await procs(node)).includes('s-3'));
    await setState(node, 's-3', 'RUNNING');
    await wait(node, 'STEADY again', async () => (await describeHa(node)).state === 'STEADY' && live(await describeHa(node)).length === 2);

    await ask(node, haRef('s'), { op: 'reconfigure', policy_parameters: { preserve_n: 1 } });
    await wait(node, 'one terminated', async () => Object.values(await procs(node)).filter((p) => p.terminateAsked).length === 1);
    await wait(node, 'STEADY with one', async () => (await describeHa(node)).state === 'STEADY' && live(await describeHa(node)).length === 1);

    const r = await ask<{ terminating: number }>(node, HA_REGISTRY_REF, { op: 'remove', name: 's' });
    expect(r.terminating).toBe(1);
    await wait(node, 'unlisted', async () => (await ask<{ services: HaSummary[] }>(node, HA_REGISTRY_REF, { op: 'list' })).services.length === 0);
    expect(Object.values(await procs(node)).map((p) => p.state).sort()).toEqual(['FAILED', 'TERMINATED', 'TERMINATED']);
    await expect(describeHa(node)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('npreserving: processes that keep failing make the service FAILED; a reconfigure clears it', async () => {
    const node = await start();
    await ask(node, HA_REGISTRY_REF, { op: 'create', name: 's', config: { ...npreserving(1), failure_bound: 2 } });
    for (const upid of ['s-1', 's-2']) {
      await wait(node, `${upid} scheduled`, async () => Object.keys(await procs(node)).includes(upid));
      await setState(node, upid, 'FAILED');
    }
    await wait(node, 'FAILED', async () => (await describeHa(node)).state === 'FAILED');
    node.clock.advance(1_000);
    expect(Object.keys(await procs(node))).toEqual(['s-1', 's-2']);
    const d = await ask<HaDescription>(node, haRef('s'), { op: 'reconfigure', policy_parameters: { preserve_n: 1 } });
    expect(d.state).toBe('PENDING');
    await wait(node, 'scheduling again', async () => Object.keys(await procs(node)).includes('s-3'));
  });

  it('sensor: scales up above the threshold, and down below it after the cooldown', async () => {
    const node = await start();
    await ask(node, streamRef('work'), { subscribe: { subscription: 'q' } });
    await ask(node, streamRef('work'), { publish: { messages: Array.from({ length: 20 }, (_, i) => ({ data: i })) } });
    const config = {
      definition_id: 'sleeper',
      policy: 'sensor',
      policy_parameters: { metric: 'stream:work/q', sample_function: 'max', sample_period: 1, minimum: 1, maximum: 3, scale_up_threshold: 10, scale_up_n: 1, scale_down_threshold: 5, scale_down_n: 1, cooldown_period: 2 },
    };
    await ask(node, HA_REGISTRY_REF, { op: 'create', name: 's', config });
    await wait(node, 'scaled to the maximum', async () => Object.keys(await procs(node)).length === 3);
    const d = await describeHa(node);
    expect(d.last_value).toBe(20);
    expect(d.samples.length).toBeGreaterThan(0);

    await ask(node, streamRef('work'), { ack: { subscription: 'q', offset: 19 } });
    await wait(node, 'scaled down to the minimum', async () => live(await describeHa(node)).length === 1);
    const terminated = Object.values(await procs(node)).filter((p) => p.terminateAsked).length;
    expect(terminated).toBe(2);
  });

  it('refuses bad input naming the field, and unknown services as NOT_FOUND', async () => {
    const node = await start();
    const refusal = async (message: unknown) => {
      try {
        await ask(node, HA_REGISTRY_REF, message);
      } catch (err) {
        return err as CeiError;
      }
      throw new Error('not refused');
    };
    const bad = [
      [{ ...npreserving(1), policy: 'roundrobin' }, 'policy'],
      [{ ...npreserving(1), policy_parameters: { preserve_n: 'two' } }, 'preserve_n'],
      [{ definition_id: 'x', policy: 'sensor', policy_parameters: { metric: 'a/b', minimum: 1, maximum: 2, scale_up_threshold: 1 } }, 'scale_down_threshold'],
      [{ policy: 'npreserving', policy_parameters: { preserve_n: 1 } }, 'definition_id'],
    ] as const;
    for (const [config, field] of bad) {
      const err = await refusal({ op: 'create', name: 's', config });
      expect(err.code).toBe('INVALID_ARGUMENT');
      expect(err.message).toContain(field);
    }
    expect((await refusal({ op: 'get', name: 'nope' })).code).toBe('NOT_FOUND');
    expect((await refusal({ op: 'remove', name: 'nope' })).code).toBe('NOT_FOUND');
    await expect(describeHa(node, 'nope')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect((await ask<{ services: HaSummary[] }>(node, HA_REGISTRY_REF, { op: 'list' })).services).toEqual([]);
    expect(Object.keys(await procs(node))).toEqual([]);
  });
});
