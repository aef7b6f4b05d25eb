/**
 * EPU management's actors on a real store (LevelDB), with the deployable type registry and the
 * provisioner beside them and the sim driver over one SimCloud, all on a FakeClock: a domain added
 * through the registry reaches its size, repairs a vanished instance, a worker declared down, a
 * silent one and a zombie; reconfigures on the next tick; is removed with everything it launched;
 * and bad input leaves nothing behind.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { defineActor, type ActorType } from '../../../src/runtime/actor-type.js';
import { silentLogger } from '../../../src/runtime/logger.js';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { SimCloud, SIM_TEST_PRESET } from '../../../src/iaas/sim-cloud.js';
import { SimDriver } from '../../../src/iaas/driver-sim.js';
import { CeiError } from '../../../src/errors.js';
import { dtrs, DTRS_REF } from '../../../src/actors/dtrs.js';
import { askRole } from '../../../src/actors/role-reply.js';
import { stream, streamRef } from '../../../src/actors/stream.js';
import type { RoleEnv, RoleMember } from '../../../src/actors/role-env.js';
import { PROVISIONER_TEST_PRESET } from '../../../src/actors/provisioner-options.js';
import { PROVISIONER_REF, provisionerType, type NodesReply, type ProvisionerType } from '../../../src/actors/provisioner.js';
import { epumTypes, type EpumTypes } from '../../../src/actors/epum/epum.js';
import { EPUM_TEST_PRESET } from '../../../src/actors/epum/options.js';
import {
  DomainChangedSchema,
  EPUM_REGISTRY_REF,
  domainRef,
  type DomainDescription,
  type DomainInstanceView,
  type DomainReplies,
  type RegistryReplies,
} from '../../../src/actors/epum/protocol.js';
import { createEngineRegistry, type Engine } from '../../../src/actors/epum/engine.js';
import { useTestNodes, type TestNode } from '../../support/runtime-node.js';
import { waitFor, within } from '../../support/wait.js';

/** A domain subscriber: keeps every change it is told; `{get: true}` answers them. */
const recorder = defineActor<{ seen: DomainInstanceView[] }>({
  name: 'recorder',
  initialState: () => ({ seen: [] }),
  validate(message) {
    if ((message as { get?: unknown }).get === true) return undefined;
    return DomainChangedSchema.safeParse(message).success ? undefined : 'recorder takes domain.changed or {get: true}';
  },
  handle(state, message, ctx) {
    const m = message as { op?: string; instances?: DomainInstanceView[] };
    if (m.op === 'domain.changed') return { seen: [...state.seen, ...m.instances!] };
    ctx.reply(state.seen);
    return state;
  },
});

/** An actor whose mail waits until the test opens the gate: its mailbox depth is a queue the test controls. */
const gates = new Map<string, { open: () => void; opened: Promise<void> }>();
function gate(id: string): { open: () => void; opened: Promise<void> } {
  let g = gates.get(id);
  if (!g) {
    let open = (): void => {};
    const opened = new Promise<void>((resolve) => (open = resolve));
    g = { open, opened };
    gates.set(id, g);
  }
  return g;
}
const gated = defineActor<number>({
  name: 'gated',
  initialState: () => 0,
  async handle(state, _message, ctx) {
    await gate(ctx.self.id).opened;
    return state + 1;
  },
});

const NPRESERVING = (n: number, extra: Record<string, unknown> = {}) => ({
  engine: 'npreserving',
  engine_conf: { preserve_n: n, deployable_type: 'sleeper', site: 'sim1', ...extra },
});

describe('EPU management on a real store with the provisioner and the sim driver', () => {
  const nodes = useTestNodes();
  const closers: Array<() => unknown> = [];
  let cloud: SimCloud | undefined;
  let members: RoleMember[] = [];
  let listeners: Array<(m: readonly RoleMember[]) => void> = [];

  afterEach(async () => {
    for (const close of closers.splice(0)) await close();
    cloud?.stop();
    cloud = undefined;
    members = [];
    listeners = [];
    gates.clear();
  });

  async function start(opts: { engines?: Engine[]; heartbeats?: boolean } = {}): Promise<{ node: TestNode; epum: EpumTypes }> {
    let node: TestNode | undefined;
    const dir = nodes.tempDir();
    const clock = new FakeClock();
    const env: RoleEnv = {
      service: () => node!.system,
      members: () => members,
      watchMembers: (l) => {
        listeners.push(l);
        return () => (listeners = listeners.filter((x) => x !== l));
      },
      dataDir: join(dir, 'role'),
      clock,
      log: silentLogger,
    };
    const provisioner: ProvisionerType = provisionerType(env, PROVISIONER_TEST_PRESET, { driverFactory: () => new SimDriver(cloud!) });
    closers.push(() => provisioner.close());
    const engines = createEngineRegistry();
    for (const e of opts.engines ?? []) engines.registerEngine(e.name, e);
    const epum = epumTypes(env, EPUM_TEST_PRESET, engines);
    closers.push(() => epum.close());
    const types: ActorType<any>[] = [dtrs, provisioner, ...epum.types, recorder, gated, stream];
    node = await nodes.node(types, { clock });
    cloud = new SimCloud({ ...SIM_TEST_PRESET, heartbeatIntervalMs: opts.heartbeats ? 100 : 0 }, { clock });
    if (opts.heartbeats) {
      // The workers' side: each running sim instance heartbeats to its domain.
      cloud.onHeartbeat((beat) => {
        void node!.system.tell(domainRef('d'), { op: 'heartbeat', instance_id: beat.instanceId, cpu_load: 0.5 }).catch(() => {});
      });
    }
    await ask(node, DTRS_REF, { op: 'site.add', name: 'sim1', definition: { type: 'sim' } });
    await ask(node, DTRS_REF, { op: 'site.add', name: 'sim2', definition: { type: 'sim' } });
    await ask(node, DTRS_REF, { op: 'dt.add', name: 'sleeper', definition: { sites: { sim1: { boot_latency_ms: 10 } } } });
    return { node, epum };
  }

  const ask = <T>(node: TestNode, ref: { type: string; id: string }, message: Record<string, unknown>) =>
    within(askRole<T>(node.system, ref, message), `ask ${JSON.stringify(message)}`);

  const describeDomain = (node: TestNode, id = 'd') => ask<DomainDescription>(node, domainRef(id), { op: 'describe' });

  const addDomain = (node: TestNode, config: Record<string, unknown>, id = 'd') =>
    ask<RegistryReplies['domain.add']>(node, EPUM_REGISTRY_REF, { op: 'domain.add', id, config });

  const summary = (d: DomainDescription) =>
    d.instances
      .filter((i) => i.state !== 'TERMINATED' && i.state !== 'FAILED')
      .map((i) => `${i.state}/${i.health}`)
      .sort();

  /** Waits, moving the fake clock, until `check` holds for the domain's description. */
  async function until(node: TestNode, what: string, check: (d: DomainDescription) => boolean, id = 'd'): Promise<DomainDescription> {
    let last: DomainDescription | undefined;
    try {
      return (await waitFor(
        async () => {
          last = await describeDomain(node, id);
          return check(last) ? last : undefined;
        },
        { step: () => node.clock.advance(5), what, timeoutMs: 10_000 },
      ))!;
    } catch (err) {
      throw new Error(`${(err as Error).message}; last: ${JSON.stringify(last?.instances.map((i) => [i.instance_id, i.state, i.health]))}`);
    }
  }

  const running = (n: number) => (d: DomainDescription) => summary(d).join(',') === Array(n).fill('RUNNING/OK').join(',');

  it('registers a domain type that never passivates, placed on control nodes, and a registry', async () => {
    const { epum } = await start();
    expect([epum.domain.name, epum.domain.placement, epum.domain.idleMs]).toEqual(['epum', 'control', 0]);
    expect([epum.registry.name, epum.registry.placement]).toEqual(['epum-registry', 'control']);
  });

  it('adds a domain that reaches its size, lists it, and tells subscribers every change', async () => {
    const { node } = await start();
    const added = await addDomain(node, NPRESERVING(2));
    expect(added.created).toBe(true);
    expect(added.domain).toMatchObject({ id: 'd', status: 'active', version: 1, applied_version: 1, config: { engine: 'npreserving' } });
    // The first step ran in the add's turn: both launches are asked for already.
    expect(added.domain.instances.map((i) => i.state)).toEqual(['REQUESTING', 'REQUESTING']);
    expect(added.domain.instances[0]!.vars).toEqual({ epum_domain: 'd' });
    expect(added.domain.instances[0]!.launch_id).toMatch(/^d-[0-9a-z]+-1$/);
    await ask(node, domainRef('d'), { op: 'subscribe', subscriber: 'recorder/r' });

    const d = await until(node, '2 RUNNING', running(2));
    expect(d.counts).toEqual({ states: { RUNNING: 2 }, health: { OK: 2 } });
    const listed = await ask<RegistryReplies['domain.list']>(node, EPUM_REGISTRY_REF, { op: 'domain.list' });
    expect(listed.domains).toEqual([{ id: 'd', engine: 'npreserving', status: 'active', generation: d.generation, created_at: d.created_at }]);
    const provisioned = await ask<NodesReply>(node, PROVISIONER_REF, { op: 'describe_nodes' });
    expect(provisioned.instances.map((i) => i.state)).toEqual(['RUNNING', 'RUNNING']);

    // Adding the same config again is idempotent; another config is ALREADY_EXISTS.
    expect((await addDomain(node, NPRESERVING(2))).created).toBe(false);
    await expect(addDomain(node, NPRESERVING(3))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });

    const seen = (await waitFor(async (): Promise<DomainInstanceView[] | false> => {
      const s = await within(node.system.ask<DomainInstanceView[]>({ type: 'recorder', id: 'r' }, { get: true }), 'recorder');
      return s.filter((v) => v.state === 'RUNNING').length === 2 && s;
    })) as DomainInstanceView[];
    for (const id of d.instances.map((i) => i.instance_id)) {
      const history = seen.filter((v) => v.instance_id === id).map((v) => v.state);
      expect(history.at(-1)).toBe('RUNNING');
      expect(history.every((s, i) => i === 0 || s !== history[i - 1])).toBe(true);
    }
  });

  it('replaces an instance that vanished, at once', async () => {
    const { node } = await start();
    await addDomain(node, NPRESERVING(2));
    const before = await until(node, '2 RUNNING', running(2));
    const victim = before.instances[0]!.instance_id;
    cloud!.kill(victim);
    const after = await until(node, 'a replacement RUNNING', (d) => running(2)(d) && !d.instances.some((i) => i.instance_id === victim && i.state !== 'TERMINATED'));
    expect(after.instances.find((i) => i.instance_id === victim)).toMatchObject({ state: 'TERMINATED', state_desc: 'NODE_DISAPPEARED' });
    expect(after.instances.filter((i) => i.state === 'RUNNING').map((i) => i.instance_id)).not.toContain(victim);
  });

  it('marks a worker the cluster declares down MISSING as soon as the membership changes, and replaces it', async () => {
    const { node } = await start();
    await addDomain(node, NPRESERVING(1));
    const d = await until(node, '1 RUNNING', running(1));
    const id = d.instances[0]!.instance_id;
    // As the provisioner reports a local worker: RUNNING on a cluster node.
    const view = (await ask<NodesReply>(node, PROVISIONER_REF, { op: 'describe_nodes', instance_ids: [id] })).instances[0]!;
    await node.system.tell(domainRef('d'), { op: 'instances.changed', instances: [{ ...view, node_id: 'w1' }] });
    members = [{ id: 'w1', address: '127.0.0.1:1', role: 'worker', status: 'up' }];
    for (const l of listeners) l(members);
    await until(node, 'node id known', (x) => x.instances.some((i) => i.node_id === 'w1'));

    members = [{ id: 'w1', address: '127.0.0.1:1', role: 'worker', status: 'down' }];
    for (const l of listeners) l(members);
    // No clock movement: the members.changed message alone judges and repairs.
    const judged = (await waitFor(async (): Promise<DomainDescription | false> => {
      const x = await describeDomain(node);
      return x.instances.find((i) => i.instance_id === id)?.health === 'MISSING' && x;
    })) as DomainDescription;
    expect(judged.instances.find((i) => i.instance_id === id)).toMatchObject({ health: 'MISSING', health_reason: 'its node w1 is down' });
    expect(judged.instances.filter((i) => i.state === 'REQUESTING' || i.state === 'REQUESTED')).toHaveLength(1);
    await until(node, 'replacement RUNNING, the missing one terminated', (x) =>
      running(1)(x) && x.instances.some((i) => i.instance_id === id && i.state === 'TERMINATED'),
    );
  });

  it('judges silence: OUT_OF_CONTACT, then MISSING and replaced; a heartbeat long after termination is a ZOMBIE', async () => {
    const { node } = await start({ heartbeats: true });
    await addDomain(node, { ...NPRESERVING(2), health: { missing_timeout: 1, really_missing_timeout: 1, zombie_seconds: 1 } });
    const d = await until(node, '2 RUNNING and heard', (x) => running(2)(x) && x.instances.every((i) => i.last_heartbeat !== undefined || i.state !== 'RUNNING'));
    expect(d.sensors.cpu_load!.length).toBeGreaterThan(0);
    expect(d.instances.find((i) => i.state === 'RUNNING')!.metrics).toEqual({ cpu_load: 0.5 });
    const hung = d.instances.find((i) => i.state === 'RUNNING')!.instance_id;
    cloud!.silence(hung);
    await until(node, 'out of contact', (x) => x.instances.some((i) => i.instance_id === hung && i.health === 'OUT_OF_CONTACT'));
    await until(node, 'missing and replaced', (x) => running(2)(x) && x.instances.some((i) => i.instance_id === hung && i.health === 'MISSING'));

    // The hung worker wakes up after its termination: a zombie, told so, and terminated again.
    await until(node, 'the hung one terminated', (x) => x.instances.some((i) => i.instance_id === hung && i.state === 'TERMINATED'));
    node.clock.advance(1_500);
    const r = await ask<DomainReplies['heartbeat']>(node, domainRef('d'), { op: 'heartbeat', instance_id: hung });
    expect(r).toEqual({ verdict: 'zombie' });
    const z = await describeDomain(node);
    expect(z.instances.find((i) => i.instance_id === hung)).toMatchObject({ health: 'ZOMBIE', health_reason: expect.stringMatching(/^heartbeat \d+ s after/) });
    expect(await ask(node, domainRef('d'), { op: 'heartbeat', instance_id: 'nope' })).toEqual({ verdict: 'unknown' });
  });

  it('applies a reconfigure on the next tick, terminating the retirable nodes first', async () => {
    const { node } = await start();
    await addDomain(node, NPRESERVING(3));
    const d = await until(node, '3 RUNNING', running(3));
    const [a, b, c] = d.instances.map((i) => i.instance_id);
    // Newest first would pick c and b; retirable_nodes names a and b.
    const r = await ask<DomainReplies['reconfigure']>(node, domainRef('d'), {
      op: 'reconfigure',
      patch: { engine_conf: { preserve_n: 1, retirable_nodes: [a, b] } },
    });
    expect(r.version).toBe(2);
    expect(r.pending_config.engine_conf).toMatchObject({ preserve_n: 1, deployable_type: 'sleeper', retirable_nodes: [a, b] });
    const pending = await describeDomain(node);
    expect([pending.version, pending.applied_version, pending.config.engine_conf.preserve_n]).toEqual([2, 1, 3]);
    const after = await until(node, '1 RUNNING', running(1));
    expect([after.version, after.applied_version, after.pending_config]).toEqual([2, 2, undefined]);
    expect(after.instances.filter((i) => i.state === 'RUNNING').map((i) => i.instance_id)).toEqual([c]);
    expect(after.last_decision?.destroyed.sort()).toEqual([a, b].sort());

    // Reconfigure checks like add: bad keys, an unknown deployable type, and the engine cannot change.
    await expect(ask(node, domainRef('d'), { op: 'reconfigure', patch: { engine_conf: { preserve: 2 } } })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringContaining('unknown key "preserve"'),
    });
    await expect(ask(node, domainRef('d'), { op: 'reconfigure', patch: { engine_conf: { deployable_type: 'nope' } } })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'engine_conf: deployable type "nope" is not registered',
    });
    await expect(node.system.tell(domainRef('d'), { op: 'reconfigure', patch: { engine: 'queuelen' } })).rejects.toThrow(/engine: cannot be changed/);
    expect((await describeDomain(node)).version).toBe(2);
  });

  it('removes a domain: terminates everything it launched, unlists it, and stops its actor', async () => {
    const { node } = await start();
    await addDomain(node, NPRESERVING(2));
    await until(node, '2 RUNNING', running(2));
    const r = await ask<RegistryReplies['domain.remove']>(node, EPUM_REGISTRY_REF, { op: 'domain.remove', id: 'd' });
    expect(r).toEqual({ id: 'd', status: 'removing', terminating: 2 });
    expect((await ask<RegistryReplies['domain.get']>(node, EPUM_REGISTRY_REF, { op: 'domain.get', id: 'd' })).status).toBe('removing');
    await expect(addDomain(node, NPRESERVING(2))).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await waitFor(
      async () => (await ask<RegistryReplies['domain.list']>(node, EPUM_REGISTRY_REF, { op: 'domain.list' })).domains.length === 0,
      { step: () => node.clock.advance(5), what: 'the domain unlisted' },
    );
    const provisioned = await ask<NodesReply>(node, PROVISIONER_REF, { op: 'describe_nodes' });
    expect(provisioned.instances.map((i) => `${i.state}/${i.state_desc}`)).toEqual(['TERMINATED/TERMINATE_REQUESTED', 'TERMINATED/TERMINATE_REQUESTED']);
    expect(cloud!.counts()).toMatchObject({ pending: 0, started: 0, running: 0 });
    await waitFor(async () => (await node.system.list({ type: 'epum' })).actors.length === 0, { step: () => node.clock.advance(5), what: 'the domain actor stopped' });
    await expect(ask(node, EPUM_REGISTRY_REF, { op: 'domain.get', id: 'd' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // The id can be used again, for a new domain whose launches do not collide with the old ones.
    const again = await addDomain(node, NPRESERVING(1));
    expect(again.created).toBe(true);
    await until(node, '1 RUNNING', running(1));
  });

  it('refuses bad input with INVALID_ARGUMENT or NOT_FOUND and leaves no domain behind', async () => {
    const { node } = await start();
    await ask(node, DTRS_REF, { op: 'dt.add', name: 'elsewhere', definition: { sites: { sim2: {} } } });
    const cases: Array<[Record<string, unknown>, string, RegExp | string]> = [
      [{ engine: 'nope', engine_conf: {} }, 'NOT_FOUND', /unknown decision engine "nope" \(known: npreserving, overflow, queuelen, sensor\)/],
      [{ engine: 'npreserving', engine_conf: { deployable_type: 'sleeper', site: 'sim1' } }, 'INVALID_ARGUMENT', 'engine_conf for "npreserving": missing required key "preserve_n"'],
      [{ engine: 'npreserving', engine_conf: { preserve_n: -1, deployable_type: 'sleeper', site: 'sim1', extra: 1 } }, 'INVALID_ARGUMENT', /"preserve_n" must be a whole number >= 0 \(got -1\); unknown key "extra"/],
      [NPRESERVING(1, { deployable_type: 'nope' }), 'NOT_FOUND', 'engine_conf: deployable type "nope" is not registered'],
      [NPRESERVING(1, { site: 'nowhere' }), 'NOT_FOUND', 'engine_conf: site "nowhere" is not registered'],
      [NPRESERVING(1, { deployable_type: 'elsewhere' }), 'INVALID_ARGUMENT', 'engine_conf: deployable type "elsewhere" cannot be launched at site "sim1" (it maps sim2)'],
      [{ ...NPRESERVING(1), health: { missing_timeout: -1 } }, 'INVALID_ARGUMENT', /config\.health\.missing_timeout: must be a number of seconds >= 0$/],
      [{ ...NPRESERVING(1), bogus: true }, 'INVALID_ARGUMENT', /config: unknown field "bogus"$/],
    ];
    for (const [config, code, message] of cases) {
      const err = await addDomain(node, config, 'bad').catch((e: unknown) => e);
      expect(err, JSON.stringify(config)).toBeInstanceOf(CeiError);
      expect((err as CeiError).code, JSON.stringify(config)).toBe(code);
      if (typeof message === 'string') expect((err as CeiError).message).toBe(message);
      else expect((err as CeiError).message).toMatch(message);
    }
    await expect(ask(node, EPUM_REGISTRY_REF, { op: 'domain.add', id: 'bad id', config: NPRESERVING(1) })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/^message rejected by epum-registry: id: must be 1-63/),
    });
    await expect(ask(node, EPUM_REGISTRY_REF, { op: 'domain.add', id: 'x' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(ask(node, EPUM_REGISTRY_REF, { op: 'domain.add', id: 'x', definition: 'nope' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: 'no domain definition "nope"',
    });
    await expect(ask(node, EPUM_REGISTRY_REF, { op: 'domain.remove', id: 'ghost' })).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'no domain "ghost"' });
    expect((await ask<RegistryReplies['domain.list']>(node, EPUM_REGISTRY_REF, { op: 'domain.list' })).domains).toEqual([]);
    await waitFor(async () => (await node.system.list({ type: 'epum' })).actors.length === 0, { step: () => node.clock.advance(5), what: 'no domain actor left' });
    expect((await ask<NodesReply>(node, PROVISIONER_REF, { op: 'describe_nodes' })).instances).toEqual([]);
    await expect(describeDomain(node, 'bad')).rejects.toMatchObject({ code: 'NOT_FOUND', message: 'no domain "bad"' });
  });

  it('makes domains from definitions, the request\'s config over the template', async () => {
    const { node } = await start();
    const def = { description: 'sleepers on sim1', config: { engine: 'npreserving', engine_conf: { deployable_type: 'sleeper', site: 'sim1', preserve_n: 5 }, health: { missing_timeout: 3 } } };
    const added = await ask<RegistryReplies['def.add']>(node, EPUM_REGISTRY_REF, { op: 'def.add', name: 'sleepers', definition: def });
    expect(added).toEqual({ created: true, record: { name: 'sleepers', version: 1, definition: def } });
    expect((await ask<RegistryReplies['def.add']>(node, EPUM_REGISTRY_REF, { op: 'def.add', name: 'sleepers', definition: def })).created).toBe(false);
    const r = await ask<RegistryReplies['domain.add']>(node, EPUM_REGISTRY_REF, {
      op: 'domain.add',
      id: 'd',
      definition: 'sleepers',
      config: { engine_conf: { preserve_n: 1 } },
    });
    expect(r.domain.definition).toBe('sleepers');
    expect(r.domain.config).toEqual({
      engine: 'npreserving',
      engine_conf: { deployable_type: 'sleeper', site: 'sim1', preserve_n: 1 },
      health: { monitor_health: true, boot_timeout: 300, missing_timeout: 3, really_missing_timeout: 10, zombie_seconds: 10 },
    });
    await until(node, '1 RUNNING', running(1));
    await expect(
      ask(node, EPUM_REGISTRY_REF, { op: 'domain.add', id: 'e', definition: 'sleepers', config: { engine: 'queuelen' } }),
    ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });

    const updated = await ask<RegistryReplies['def.update']>(node, EPUM_REGISTRY_REF, {
      op: 'def.update',
      name: 'sleepers',
      definition: { config: { engine: 'npreserving' } },
    });
    expect(updated.version).toBe(2);
    expect((await ask<RegistryReplies['def.list']>(node, EPUM_REGISTRY_REF, { op: 'def.list' })).definitions.map((x) => x.name)).toEqual(['sleepers']);
    expect(await ask(node, EPUM_REGISTRY_REF, { op: 'def.remove', name: 'sleepers' })).toEqual({ removed: 'sleepers' });
    await expect(ask(node, EPUM_REGISTRY_REF, { op: 'def.describe', name: 'sleepers' })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // The domain keeps its config: a definition is a template.
    expect((await describeDomain(node)).config.engine_conf.preserve_n).toBe(1);
  });

  it('reads an actor\'s mailbox depth as a sensor: queuelen grows with the queue', async () => {
    const { node } = await start();
    for (let k = 0; k < 5; k++) await node.system.tell({ type: 'gated', id: 'q' }, { k });
    await addDomain(node, {
      engine: 'queuelen',
      engine_conf: { queue: 'mailbox:gated/q', high_water: 2, low_water: 1, min_instances: 0, max_instances: 2, deployable_type: 'sleeper', site: 'sim1' },
    });
    const d = await until(node, 'grown to 2 RUNNING', running(2));
    expect(d.sensors['mailbox:gated/q']!.at(-1)!.value).toBeGreaterThanOrEqual(4);
    expect(d.engine_state).toEqual({ target: 2 });
    gate('q').open();
    await until(node, 'shrunk to 1 while work is queued, then 0', (x) => summary(x).length === 0);
  });

  it("reads a stream subscription's queue length as a sensor: queuelen follows the backlog", async () => {
    const { node } = await start();
    const s = streamRef('work');
    await askRole(node.system, s, { subscribe: { subscription: 'workers', from: 'earliest' } });
    await askRole(node.system, s, { publish: { messages: Array.from({ length: 5 }, (_, k) => ({ data: k })) } });
    await addDomain(node, {
      engine: 'queuelen',
      engine_conf: { queue: 'stream:work/workers', high_water: 2, low_water: 1, min_instances: 0, max_instances: 2, deployable_type: 'sleeper', site: 'sim1' },
    });
    const d = await until(node, 'grown to 2 RUNNING', running(2));
    expect(d.sensors['stream:work/workers']!.at(-1)!.value).toBe(5);
    // The backlog is handled: the queue length falls to 0 and the domain shrinks.
    await askRole(node.system, s, { ack: { subscription: 'workers', offset: 4 } });
    await until(node, 'shrunk to 0 once the backlog is gone', (x) => summary(x).length === 0);
    expect((await describeDomain(node)).sensors['stream:work/workers']!.at(-1)!.value).toBe(0);
  });

  it('loads user engines from the registry it is given, and survives a restart of its node', async () => {
    const fixed: Engine<{ n: number }, { decided: number }> = {
      name: 'fixed',
      validateConf: (c) => (typeof (c as { n?: unknown }).n === 'number' ? { ok: true, conf: c as { n: number } } : { ok: false, errors: ['missing required key "n"'] }),
      initialState: () => ({ decided: 0 }),
      decide: ({ conf, state, instances }) => {
        const live = instances.filter((i) => i.state !== 'TERMINATED' && i.state !== 'FAILED' && i.state !== 'TERMINATING');
        const need = conf.n - live.length;
        return {
          actions: need > 0 ? [{ type: 'launch', site: 'sim1', deployable_type: 'sleeper', count: need, vars: {} }] : [],
          state: { decided: state.decided + 1 },
        };
      },
    };
    const { node } = await start({ engines: [fixed as unknown as Engine] });
    await addDomain(node, { engine: 'fixed', engine_conf: { n: 2 } });
    const before = await until(node, '2 RUNNING', running(2));
    expect((before.engine_state as { decided: number }).decided).toBeGreaterThan(0);
    await node.restart();
    const after = await until(node, 'ticking again after the restart', (x) => running(2)(x) && (x.last_tick_at ?? 0) > (before.last_tick_at ?? 0));
    expect(after.instances.map((i) => i.instance_id)).toEqual(before.instances.map((i) => i.instance_id));
    expect((after.engine_state as { decided: number }).decided).toBeGreaterThan((before.engine_state as { decided: number }).decided);
  });
});
