/**
 * The provisioner actor on a real store (LevelDB), with the registry beside it and the sim driver
 * over one SimCloud that outlives the provisioner's incarnations (as a real IaaS outlives a node):
 * provision through the registry to RUNNING, subscribers told every change once, a restart that
 * re-adopts what runs, NODE_DISAPPEARED, terminate, and refusals.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { defineActor, type ActorType } from '../../../src/runtime/actor-type.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { keys } from '../../../src/runtime/store.js';
import { SimCloud, SIM_TEST_PRESET } from '../../../src/iaas/sim-cloud.js';
import { SimDriver } from '../../../src/iaas/driver-sim.js';
import { InvalidArgumentError } from '../../../src/errors.js';
import { dtrs, DTRS_REF } from '../../../src/actors/dtrs.js';
import { askRole } from '../../../src/actors/role-reply.js';
import type { RoleEnv } from '../../../src/actors/role-env.js';
import { PROVISIONER_TEST_PRESET } from '../../../src/actors/provisioner-options.js';
import {
  InstancesChangedSchema,
  PROVISIONER_REF,
  provisionerType,
  type InstanceView,
  type NodesReply,
  type ProvisionerType,
  type ProvisionReply,
} from '../../../src/actors/provisioner.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor, within } from '../../support/wait.js';

/** A subscriber: keeps every change it is told; `{get: true}` answers them. */
const recorder = defineActor<{ seen: InstanceView[] }>({
  name: 'recorder',
  initialState: () => ({ seen: [] }),
  validate(message) {
    if ((message as { get?: unknown }).get === true) return undefined;
    return InstancesChangedSchema.safeParse(message).success ? undefined : 'recorder takes instances.changed or {get: true}';
  },
  handle(state, message, ctx) {
    const m = message as { op?: string; instances?: InstanceView[] };
    if (m.op === 'instances.changed') return { seen: [...state.seen, ...m.instances!] };
    ctx.reply(state.seen);
    return state;
  },
});
const RECORDER = { type: 'recorder', id: 'r' };

describe('the provisioner actor on a real store with the sim driver', () => {
  const nodes = useTestNodes();
  const registered: ProvisionerType[] = [];
  let cloud: SimCloud | undefined;

  afterEach(async () => {
    for (const t of registered.splice(0)) await t.close();
    cloud?.stop();
    cloud = undefined;
  });

  /** A provisioner type for `node` (its env reads node.system, so it follows restarts) over the shared cloud. */
  function provisioner(node: () => TestNode, dataDir: string, clock: FakeClock): ProvisionerType {
    const env: RoleEnv = { service: () => node().system, members: () => [], dataDir, clock, log: silentLogger };
    const type = provisionerType(env, PROVISIONER_TEST_PRESET, { driverFactory: () => new SimDriver(cloud!) });
    registered.push(type);
    return type;
  }

  async function start(): Promise<{ node: TestNode; types: ActorType<any>[] }> {
    let node: TestNode | undefined;
    const types: ActorType<any>[] = [dtrs, recorder];
    const dir = nodes.tempDir();
    const clock = new FakeClock();
    types.push(provisioner(() => node!, join(dir, 'role'), clock));
    node = await nodes.node(types, { clock });
    cloud = new SimCloud({ ...SIM_TEST_PRESET, heartbeatIntervalMs: 0 }, { clock });
    await ask(node, DTRS_REF, { op: 'site.add', name: 'sim1', definition: { type: 'sim' } });
    await ask(node, DTRS_REF, { op: 'dt.add', name: 'sleeper', definition: { sites: { sim1: { boot_latency_ms: 10 } } } });
    return { node, types };
  }

  const ask = <T>(node: TestNode, ref: { type: string; id: string }, message: Record<string, unknown>) =>
    within(askRole<T>(node.system, ref, message), `ask ${JSON.stringify(message)}`);

  async function states(node: TestNode, ids: string[] = []): Promise<string[]> {
    const r = await ask<NodesReply>(node, PROVISIONER_REF, { op: 'describe_nodes', instance_ids: ids });
    return r.instances.map((i) => `${i.instance_id}:${i.state}${i.state_desc ? `/${i.state_desc}` : ''}`);
  }

  /** Waits, moving the fake clock, until describe_nodes shows `expected`. */
  async function until(node: TestNode, expected: string[]): Promise<void> {
    let last: string[] = [];
    await waitFor(
      async () => {
        last = await states(node);
        return JSON.stringify(last) === JSON.stringify(expected);
      },
      { step: () => node.clock.advance(5), what: `states ${expected.join(', ')}` },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last: ${last.join(', ')}`);
    });
  }

  it('is a control-plane type that never passivates', async () => {
    const { types } = await start();
    const type = types[2] as ProvisionerType;
    expect([type.name, type.placement, type.idleMs]).toEqual(['provisioner', 'control', 0]);
  });

  it('provisions through the registry to RUNNING, telling the subscriber each change exactly once', async () => {
    const { node } = await start();
    const reply = await ask<ProvisionReply>(node, PROVISIONER_REF, {
      op: 'provision',
      launch_id: 'l1',
      deployable_type: 'sleeper',
      site: 'sim1',
      count: 2,
      subscribers: ['recorder/r'],
    });
    expect(reply.created).toBe(true);
    expect(reply.instances.map((i) => `${i.instance_id}:${i.state}`)).toEqual(['l1-0:REQUESTED', 'l1-1:REQUESTED']);
    await until(node, ['l1-0:RUNNING', 'l1-1:RUNNING']);
    let seen: InstanceView[] = [];
    await waitFor(
      async () => {
        seen = await within(node.system.ask<InstanceView[]>(RECORDER, { get: true }), 'recorder');
        return seen.filter((v) => v.state === 'RUNNING').length === 2;
      },
      { step: () => node.clock.advance(5), what: 'the recorder saw both RUNNING' },
    );
    for (const id of ['l1-0', 'l1-1']) {
      const history = seen.filter((v) => v.instance_id === id).map((v) => v.state);
      expect(history.slice(0, 3)).toEqual(['REQUESTING', 'REQUESTED', 'PENDING']);
      expect(history.at(-1)).toBe('RUNNING');
      // Exactly once: no state is reported twice in a row.
      expect(history.every((s, i) => i === 0 || s !== history[i - 1])).toBe(true);
    }
    // Idempotent: the same provision launches nothing more.
    const again = await ask<ProvisionReply>(node, PROVISIONER_REF, { op: 'provision', launch_id: 'l1', deployable_type: 'sleeper', site: 'sim1', count: 2 });
    expect(again.created).toBe(false);
    expect(cloud!.list()).toHaveLength(2);
  });

  it('re-adopts its instances after a restart, then notices one vanish and terminates the other', async () => {
    const { node, types } = await start();
    await ask(node, PROVISIONER_REF, { op: 'provision', launch_id: 'l2', deployable_type: 'sleeper', site: 'sim1', count: 2 });
    await until(node, ['l2-0:RUNNING', 'l2-1:RUNNING']);

    // A new incarnation on the same store, with drivers of its own (as after a fail-over).
    const old = types[2] as ProvisionerType;
    await old.close();
    types[2] = provisioner(() => node, join(node.dir, 'role'), node.clock);
    await node.restart();
    await until(node, ['l2-0:RUNNING', 'l2-1:RUNNING']);

    cloud!.kill('l2-0');
    await until(node, ['l2-0:TERMINATED/NODE_DISAPPEARED', 'l2-1:RUNNING']);
    const terminated = await ask<NodesReply>(node, PROVISIONER_REF, { op: 'terminate_nodes', instance_ids: ['l2-1', 'nope'] });
    expect(terminated.unknown).toEqual(['nope']);
    await until(node, ['l2-0:TERMINATED/NODE_DISAPPEARED', 'l2-1:TERMINATED/TERMINATE_REQUESTED']);
    expect(cloud!.counts()).toMatchObject({ pending: 0, started: 0, running: 0 });
    const info = await node.system.describe(PROVISIONER_REF);
    expect([info.restarts, info.deadLetters]).toEqual([0, 0]);
  });

  it('destroys a zombie, and after terminate_all rejects provisions until enabled', async () => {
    const { node } = await start();
    await ask(node, PROVISIONER_REF, { op: 'provision', launch_id: 'a', deployable_type: 'sleeper', site: 'sim1' });
    await until(node, ['a-0:RUNNING']);
    cloud!.injectZombie('zombie-1');
    await waitFor(() => cloud!.get('zombie-1')?.state === 'terminated', { step: () => node.clock.advance(20), what: 'the zombie terminated' });

    expect(await ask(node, PROVISIONER_REF, { op: 'terminate_all' })).toEqual({ terminating: 1 });
    await until(node, ['a-0:TERMINATED/TERMINATE_REQUESTED']);
    const rejected = await ask<ProvisionReply>(node, PROVISIONER_REF, { op: 'provision', launch_id: 'b', deployable_type: 'sleeper', site: 'sim1' });
    expect(rejected.instances.map((i) => `${i.state}/${i.state_desc}`)).toEqual(['REJECTED/PROVISIONER_DISABLED']);
    expect(await ask(node, PROVISIONER_REF, { op: 'enable' })).toEqual({ changed: true });
    await ask(node, PROVISIONER_REF, { op: 'provision', launch_id: 'c', deployable_type: 'sleeper', site: 'sim1' });
    await until(node, ['a-0:TERMINATED/TERMINATE_REQUESTED', 'b-0:REJECTED/PROVISIONER_DISABLED', 'c-0:RUNNING']);
  });

  it('fails a launch of an unknown deployable type in the reply, and refuses malformed messages before they are enqueued', async () => {
    const { node } = await start();
    const reply = await ask<ProvisionReply>(node, PROVISIONER_REF, { op: 'provision', launch_id: 'x', deployable_type: 'nope', site: 'sim1' });
    expect(reply.instances).toMatchObject([{ instance_id: 'x-0', state: 'FAILED', state_desc: 'DTRS_LOOKUP_FAILED', state_detail: expect.stringMatching(/NOT_FOUND/) }]);
    const opsBefore = node.store.committer.opsWritten;
    const err = await node.system.tell(PROVISIONER_REF, { op: 'provision', launch_id: 'y' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toMatch(/^message rejected by provisioner: deployable_type: .*site: /);
    expect(node.store.committer.opsWritten).toBe(opsBefore);
    const info = await node.system.describe(PROVISIONER_REF);
    expect([info.restarts, info.deadLetters]).toEqual([0, 0]);
    expect(await node.store.scanKeys(keys.actor({ type: 'recorder', id: 'r' }))).toEqual([]);
  });
});
