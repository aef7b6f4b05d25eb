/**
 * The provisioner's logic as pure functions, against the sim driver on a fake clock: the lifecycle,
 * requests, the results of IaaS calls, and reconciliation (NODE_DISAPPEARED, zombies, IAAS_FULL,
 * the ready timeout, terminate_all and enable, idempotent provision). The harness plays the actor
 * shell: it runs each step on a Draft, then carries out the step's effects on the sim driver and
 * feeds their results back, as the shell does with messages to self.
 */
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { SimCloud, SIM_TEST_PRESET, type SimCloudOptions } from '../../../src/iaas/sim-cloud.js';
import { SimDriver } from '../../../src/iaas/driver-sim.js';
import { IaasError } from '../../../src/iaas/driver-errors.js';
import { CeiError } from '../../../src/errors.js';
import type { DriverInstance } from '../../../src/iaas/driver.js';
import type { LaunchSpec } from '../../../src/actors/dtrs.js';
import { PROVISIONER_TEST_PRESET } from '../../../src/actors/provisioner-options.js';
import { parseProvisionerMessage, type CallError, type MessageOf } from '../../../src/actors/provisioner-protocol.js';
import { Draft, emptyProvisionerState, type InstanceView, type ProvisionerEffect, type ProvisionerState } from '../../../src/actors/provisioner-records.js';
import {
  admitProvision,
  applyLaunched,
  applyTerminated,
  describeNodes,
  dumpState,
  enable,
  resolveLaunch,
  subscribe,
  terminateAll,
  terminateNodes,
  unsubscribe,
  type LookupOutcome,
} from '../../../src/actors/provisioner-core.js';
import { announce, dueLookups, observe, reconcile, retryDelay, type StepEnv } from '../../../src/actors/provisioner-reconcile.js';
import { INSTANCE_STATES, IllegalTransitionError, canTransition, checkTransition, isFinalState } from '../../../src/actors/provisioner-states.js';

const OPTIONS = PROVISIONER_TEST_PRESET;
const SITE = 'sim1';

function spec(params: Record<string, unknown> = {}): LaunchSpec {
  return {
    dt: 'sleeper',
    dt_version: 1,
    site: SITE,
    site_version: 1,
    site_type: 'sim',
    site_settings: {},
    params: { slots: 1, boot_latency_ms: 10, failure_rate: 0, ...params },
  } as LaunchSpec;
}

function callError(err: unknown): CallError {
  if (err instanceof IaasError) return { code: err.code, reason: err.reason, message: err.message, retryable: err.retryable };
  const e = err as CeiError;
  return { code: e.code, message: e.message, retryable: e.retryable };
}

/** The actor shell, played by hand: a state, the sim driver, and the effects of each step. */
class Harness {
  readonly clock = new FakeClock();
  readonly cloud: SimCloud;
  readonly driver: SimDriver;
  state: ProvisionerState = emptyProvisionerState();
  readonly membersUp = new Set<string>();
  /** Every change published so far. */
  readonly changes: InstanceView[] = [];
  /** Effects not carried out yet (run() carries them out). */
  effects: ProvisionerEffect[] = [];
  readonly inFlight = { launches: new Set<string>(), terminates: new Set<string>() };

  constructor(cloud: Partial<SimCloudOptions> = {}) {
    this.cloud = new SimCloud({ ...SIM_TEST_PRESET, heartbeatIntervalMs: 0, ...cloud }, { clock: this.clock });
    this.driver = new SimDriver(this.cloud);
  }

  env(): StepEnv {
    return { now: this.clock.now(), options: OPTIONS, membersUp: this.membersUp };
  }

  step<R>(fn: (d: Draft, env: StepEnv) => R): R {
    const d = new Draft(this.state, this.clock.now());
    const result = fn(d, this.env());
    this.state = d.state;
    this.changes.push(...d.changes);
    this.effects.push(...d.effects);
    return result;
  }

  provision(launchId: string, count = 1, lookup: LookupOutcome = { ok: true, spec: spec() }, extra: Record<string, unknown> = {}) {
    const msg = parseProvisionerMessage({ op: 'provision', launch_id: launchId, deployable_type: 'sleeper', site: SITE, count, ...extra }) as MessageOf<'provision'>;
    return this.step((d, env) => {
      const admitted = admitProvision(d, msg);
      if (admitted.lookup) resolveLaunch(d, launchId, lookup, env);
      return admitted;
    });
  }

  /** Carries out the pending effects on the driver and applies their results. */
  async run(): Promise<void> {
    while (this.effects.length > 0) {
      const effect = this.effects.shift()!;
      if (effect.kind === 'launch') {
        const launch = this.state.launches[effect.launch_id]!;
        let outcome: MessageOf<'launched'>['outcome'];
        try {
          outcome = { ok: true, instances: await this.driver.launch({ instanceIds: effect.instance_ids, params: launch.params!, seeds: [] }) };
        } catch (err) {
          outcome = { ok: false, error: callError(err) };
        }
        this.step((d, env) => applyLaunched(d, { op: 'launched', launch_id: effect.launch_id, attempt: effect.attempt, outcome }, env));
      } else {
        let outcome: MessageOf<'terminated'>['outcome'];
        try {
          outcome = { ok: true, instances: await this.driver.terminate(effect.instance_ids) };
        } catch (err) {
          outcome = { ok: false, error: callError(err) };
        }
        this.step((d) => applyTerminated(d, { op: 'terminated', site: effect.site, instance_ids: effect.instance_ids, outcome }));
      }
    }
  }

  async tick(): Promise<void> {
    const listings = new Map([[SITE, await this.driver.list()]]);
    this.step((d, env) => reconcile(d, { listings, inFlight: this.inFlight }, env));
  }

  state_(id: string): string {
    const r = this.state.instances[id];
    return r ? `${r.state}${r.state_desc ? `/${r.state_desc}` : ''}` : 'absent';
  }

  /** The states each instance went through, in order. */
  history(id: string): string[] {
    return this.changes.filter((c) => c.instance_id === id).map((c) => c.state);
  }
}

describe('provisioner instance lifecycle', () => {
  it('allows exactly the documented transitions; final states have none', () => {
    expect(canTransition('REQUESTING', 'REQUESTED')).toBe(true);
    expect(canTransition('REQUESTED', 'ERROR_RETRYING')).toBe(true);
    expect(canTransition('ERROR_RETRYING', 'REQUESTED')).toBe(true);
    expect(canTransition('PENDING', 'RUNNING')).toBe(true);
    expect(canTransition('STARTED', 'RUNNING_FAILED')).toBe(true);
    expect(canTransition('RUNNING', 'PENDING')).toBe(false);
    expect(canTransition('RUNNING', 'RUNNING_FAILED')).toBe(false);
    expect(canTransition('RUNNING_FAILED', 'RUNNING')).toBe(false);
    expect(canTransition('TERMINATING', 'RUNNING')).toBe(false);
    expect(canTransition('REQUESTING', 'PENDING')).toBe(false);
    for (const s of INSTANCE_STATES) {
      if (isFinalState(s)) for (const t of INSTANCE_STATES) expect(canTransition(s, t), `${s} -> ${t}`).toBe(false);
    }
  });

  it('throws a typed error for an illegal transition, and the draft leaves the base state as it was', () => {
    expect(() => checkTransition('x-0', 'RUNNING', 'PENDING')).toThrow(IllegalTransitionError);
    const h = new Harness();
    h.provision('a');
    const before = h.state;
    const d = new Draft(before, h.clock.now());
    expect(() => d.move(d.instance('a-0')!, 'TERMINATED')).not.toThrow();
    expect(() => d.move(d.instance('a-0')!, 'RUNNING')).toThrow(/illegal transition TERMINATED -> RUNNING/);
    expect(before.instances['a-0']!.state).toBe('REQUESTED');
  });
});

describe('provisioner requests and reconciliation against the sim driver', () => {
  it('takes a launch from REQUESTING to RUNNING and publishes every change in order', async () => {
    const h = new Harness();
    const admitted = h.provision('web', 2, { ok: true, spec: spec() }, { vars: { role: 'w' } });
    expect(admitted.reply.created).toBe(true);
    expect(admitted.reply.instances.map((i) => [i.instance_id, i.state])).toEqual([
      ['web-0', 'REQUESTING'],
      ['web-1', 'REQUESTING'],
    ]);
    expect(h.effects).toEqual([{ kind: 'launch', launch_id: 'web', site: SITE, instance_ids: ['web-0', 'web-1'], attempt: 1 }]);
    await h.run();
    expect(h.state_('web-0')).toBe('PENDING');
    expect(h.state.instances['web-0']!.launched_at).toBe(h.clock.now());
    h.clock.advance(10);
    await h.tick();
    expect([h.state_('web-0'), h.state_('web-1')]).toEqual(['RUNNING', 'RUNNING']);
    expect(h.history('web-0')).toEqual(['REQUESTING', 'REQUESTED', 'PENDING', 'RUNNING']);
    expect(h.changes.at(-1)).toMatchObject({ instance_id: 'web-1', launch_id: 'web', site: SITE, deployable_type: 'sleeper', vars: { role: 'w' } });
    // Nothing more happens while nothing changes.
    const published = h.changes.length;
    h.clock.advance(1_000);
    await h.tick();
    expect(h.changes.length).toBe(published);
    expect(h.effects).toEqual([]);
  });

  it('is idempotent by launch id: the same provision launches nothing again; other parameters are ALREADY_EXISTS', async () => {
    const h = new Harness();
    h.provision('p', 2);
    await h.run();
    const published = h.changes.length;
    const again = h.provision('p', 2, { ok: true, spec: spec() }, { subscribers: ['epum/d1'] });
    expect(again.reply.created).toBe(false);
    expect(again.lookup).toBe(false);
    expect(again.reply.instances.map((i) => i.state)).toEqual(['PENDING', 'PENDING']);
    expect(h.effects).toEqual([]);
    expect(h.changes.length).toBe(published);
    expect(h.state.launches.p!.subscribers).toEqual(['epum/d1']);
    expect(h.cloud.list()).toHaveLength(2);
    let err: unknown;
    try {
      h.provision('p', 3);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CeiError);
    expect((err as CeiError).code).toBe('ALREADY_EXISTS');
    expect(Object.keys(h.state.instances)).toEqual(['p-0', 'p-1']);
  });

  it('fails a launch the registry refuses with DTRS_LOOKUP_FAILED, and retries one it cannot reach', () => {
    const h = new Harness();
    h.provision('bad', 1, { ok: false, retryable: false, message: 'NOT_FOUND: no deployable type "nope"' });
    expect(h.state.instances['bad-0']).toMatchObject({ state: 'FAILED', state_desc: 'DTRS_LOOKUP_FAILED', state_detail: 'NOT_FOUND: no deployable type "nope"' });
    expect(h.effects).toEqual([]);

    h.provision('later', 1, { ok: false, retryable: true, message: 'UNAVAILABLE: registry moving' });
    expect(h.state.instances['later-0']).toMatchObject({ state: 'REQUESTING', state_desc: 'DTRS_UNAVAILABLE' });
    expect(dueLookups(h.state, h.clock.now())).toEqual([]);
    h.clock.advance(retryDelay(1, OPTIONS));
    expect(dueLookups(h.state, h.clock.now())).toEqual(['later']);
    h.step((d, env) => resolveLaunch(d, 'later', { ok: true, spec: spec() }, env));
    expect(h.state_('later-0')).toBe('REQUESTED');
    expect(h.state.instances['later-0']!.state_desc).toBeUndefined();

    h.provision('never', 1, { ok: false, retryable: true, message: 'UNAVAILABLE' });
    for (let i = 1; i < OPTIONS.launchMaxAttempts; i++) h.step((d, env) => resolveLaunch(d, 'never', { ok: false, retryable: true, message: 'UNAVAILABLE' }, env));
    expect(h.state.instances['never-0']).toMatchObject({ state: 'FAILED', state_desc: 'DTRS_LOOKUP_FAILED' });
  });

  it('fails a launch past the site capacity with IAAS_FULL, launching none of it', async () => {
    const h = new Harness({ capacity: 2 });
    h.provision('big', 3);
    await h.run();
    expect(['big-0', 'big-1', 'big-2'].map((id) => h.state_(id))).toEqual(['FAILED/IAAS_FULL', 'FAILED/IAAS_FULL', 'FAILED/IAAS_FULL']);
    expect(h.state.instances['big-0']!.state_detail).toMatch(/sim site is full/);
    expect(h.cloud.list()).toEqual([]);
    h.provision('fits', 2);
    await h.run();
    expect(h.state_('fits-1')).toBe('PENDING');
  });

  it('retries a launch the IaaS refused for a passing reason after a backoff (ERROR_RETRYING), and gives up after the attempts', async () => {
    const h = new Harness();
    h.cloud.failNextCalls(1);
    h.provision('r');
    await h.run();
    expect(h.state_('r-0')).toBe('ERROR_RETRYING/IAAS_UNAVAILABLE');
    await h.tick();
    expect(h.effects).toEqual([]);
    h.clock.advance(retryDelay(1, OPTIONS));
    await h.tick();
    expect(h.effects).toEqual([{ kind: 'launch', launch_id: 'r', site: SITE, instance_ids: ['r-0'], attempt: 2 }]);
    expect(h.state_('r-0')).toBe('REQUESTED');
    await h.run();
    expect(h.state_('r-0')).toBe('PENDING');
    expect(h.history('r-0')).toEqual(['REQUESTING', 'REQUESTED', 'ERROR_RETRYING', 'REQUESTED', 'PENDING']);

    h.cloud.failNextCalls(100);
    h.provision('doomed');
    await h.run();
    for (let i = 1; i < OPTIONS.launchMaxAttempts; i++) {
      h.clock.advance(OPTIONS.launchRetryMaxMs);
      await h.tick();
      await h.run();
    }
    expect(h.state_('doomed-0')).toBe('FAILED/IAAS_UNAVAILABLE');
    expect(h.state.instances['doomed-0']!.state_detail).toMatch(/gave up after 3 attempts/);
  });

  it('marks a launched instance the IaaS no longer lists TERMINATED with NODE_DISAPPEARED (PENDING or RUNNING)', async () => {
    const h = new Harness({ bootLatencyMs: 50 });
    h.provision('v', 2);
    await h.run();
    h.cloud.kill('v-0');
    await h.tick();
    expect(h.state_('v-0')).toBe('TERMINATED/NODE_DISAPPEARED');
    expect(h.state_('v-1')).toBe('PENDING');
    h.clock.advance(50);
    await h.tick();
    expect(h.state_('v-1')).toBe('RUNNING');
    h.cloud.kill('v-1');
    await h.tick();
    expect(h.state.instances['v-1']).toMatchObject({ state: 'TERMINATED', state_desc: 'NODE_DISAPPEARED', state_detail: 'the IaaS no longer lists it' });
    expect(h.effects).toEqual([]);
  });

  it('fails an instance that does not boot with the driver reason', async () => {
    const h = new Harness();
    h.provision('f', 1, { ok: true, spec: spec({ failure_rate: 1 }) });
    await h.run();
    h.clock.advance(10);
    await h.tick();
    expect(h.state_('f-0')).toBe('FAILED/IAAS_BOOT_FAILED');
  });

  it('destroys zombies: instances the IaaS runs that no record knows, or whose record is final', async () => {
    const h = new Harness();
    h.cloud.injectZombie('z1');
    h.provision('k');
    await h.run();
    h.clock.advance(10);
    await h.tick();
    expect(h.effects).toEqual([{ kind: 'terminate', site: SITE, instance_ids: ['z1'] }]);
    // A zombie whose terminate is still in flight is not asked again.
    const pending = h.effects.splice(0);
    h.inFlight.terminates.add('z1');
    await h.tick();
    expect(h.effects).toEqual([]);
    h.inFlight.terminates.clear();
    h.effects.push(...pending);
    await h.run();
    expect(h.cloud.get('z1')?.state).toBe('terminated');
    expect(h.state.instances.z1).toBeUndefined();
    expect(h.state_('k-0')).toBe('RUNNING');

    // A record that became final while its instance lives on (a launch that landed after the terminate).
    h.step((d) => d.move(d.instance('k-0')!, 'TERMINATED', 'NODE_DISAPPEARED'));
    await h.tick();
    expect(h.effects).toEqual([{ kind: 'terminate', site: SITE, instance_ids: ['k-0'] }]);
    await h.run();
    expect(h.cloud.get('k-0')?.state).toBe('terminated');
  });

  it('terminates an instance whose launch lands after its termination (a zombie from a race)', async () => {
    const h = new Harness();
    h.provision('race');
    const launch = h.effects.splice(0);
    h.step((d) => terminateNodes(d, ['race-0']));
    expect(h.state_('race-0')).toBe('TERMINATING');
    await h.run();
    expect(h.state_('race-0')).toBe('TERMINATED/TERMINATE_REQUESTED');
    h.effects.push(...launch);
    await h.run();
    // The launch result finds a live instance for a final record: terminate it again.
    expect(h.cloud.get('race-0')?.state).toBe('terminated');
    expect(h.state_('race-0')).toBe('TERMINATED/TERMINATE_REQUESTED');
  });

  it('marks an instance not RUNNING within the ready timeout RUNNING_FAILED, and leaves it running', async () => {
    const h = new Harness({ contextualizeMs: 10 * OPTIONS.readyTimeoutMs });
    h.provision('slow');
    await h.run();
    h.clock.advance(10);
    await h.tick();
    expect(h.state_('slow-0')).toBe('STARTED');
    h.clock.advance(OPTIONS.readyTimeoutMs - 20);
    await h.tick();
    expect(h.state_('slow-0')).toBe('STARTED');
    h.clock.advance(10);
    await h.tick();
    expect(h.state.instances['slow-0']).toMatchObject({ state: 'RUNNING_FAILED', state_desc: 'READY_TIMEOUT' });
    expect(h.cloud.get('slow-0')?.state).toBe('started');
    expect(h.effects).toEqual([]);
    h.step((d) => terminateNodes(d, ['slow-0']));
    await h.run();
    expect(h.state_('slow-0')).toBe('TERMINATED/TERMINATE_REQUESTED');
  });

  it('makes an announced worker RUNNING only once it is up in the membership', () => {
    const h = new Harness();
    h.provision('w');
    const started: DriverInstance = {
      instanceId: 'w-0',
      state: 'started',
      launchedAt: h.clock.now(),
      since: h.clock.now(),
      handle: { instanceId: 'w-0', pid: 4242, dir: '/tmp/x/w-0' },
      nodeId: 'n-w0',
      address: '127.0.0.1:7100',
    };
    h.step((d, env) => observe(d, SITE, [started], env, false));
    expect(h.state.instances['w-0']).toMatchObject({ state: 'STARTED', node_id: 'n-w0', address: '127.0.0.1:7100', handle: started.handle });
    expect(h.step((d, env) => announce(d, 'w-0', 'n-w0', '127.0.0.1:7100', env))).toBe(true);
    expect(h.state_('w-0')).toBe('STARTED');
    expect(h.step((d, env) => announce(d, 'nobody', 'n-x', '', env))).toBe(false);
    h.membersUp.add('n-w0');
    h.step((d, env) => reconcile(d, { listings: new Map([[SITE, [started]]]), inFlight: h.inFlight }, env));
    expect(h.state_('w-0')).toBe('RUNNING');
    expect(h.history('w-0')).toEqual(['REQUESTING', 'REQUESTED', 'STARTED', 'RUNNING']);
  });

  it('terminate_all disables and terminates everything; provisions are REJECTED until enable', async () => {
    const h = new Harness();
    h.provision('a', 2);
    await h.run();
    h.provision('later', 1, { ok: false, retryable: true, message: 'UNAVAILABLE' });
    const reply = h.step((d) => terminateAll(d));
    expect(reply).toEqual({ terminating: 3 });
    expect(h.state.enabled).toBe(false);
    expect(h.state_('later-0')).toBe('TERMINATED/TERMINATE_REQUESTED');
    await h.run();
    expect(['a-0', 'a-1'].map((id) => h.state_(id))).toEqual(['TERMINATED/TERMINATE_REQUESTED', 'TERMINATED/TERMINATE_REQUESTED']);
    expect(h.cloud.counts()).toMatchObject({ pending: 0, started: 0, running: 0 });

    const rejected = h.provision('no');
    expect(rejected.lookup).toBe(false);
    expect(rejected.reply.instances).toMatchObject([{ instance_id: 'no-0', state: 'REJECTED', state_desc: 'PROVISIONER_DISABLED' }]);
    expect(h.effects).toEqual([]);
    expect(h.step((d) => enable(d))).toEqual({ changed: true });
    expect(h.step((d) => enable(d))).toEqual({ changed: false });
    h.provision('yes');
    await h.run();
    expect(h.state_('yes-0')).toBe('PENDING');
  });

  it('terminates by id: unknown ids are listed, final ones left alone, a failed terminate is asked again', async () => {
    const h = new Harness();
    h.provision('t', 2);
    await h.run();
    h.cloud.failNextCalls(1);
    const reply = h.step((d) => terminateNodes(d, ['t-0', 'ghost', 't-0']));
    expect(reply.unknown).toEqual(['ghost']);
    expect(reply.instances.map((i) => [i.instance_id, i.state])).toEqual([['t-0', 'TERMINATING']]);
    await h.run();
    expect(h.state.instances['t-0']).toMatchObject({ state: 'TERMINATING', state_detail: expect.stringMatching(/terminate failed, will retry/) });
    // The terminate is asked again once terminateRetryMs passed.
    await h.tick();
    expect(h.effects).toEqual([]);
    h.clock.advance(OPTIONS.terminateRetryMs);
    await h.tick();
    expect(h.effects).toEqual([{ kind: 'terminate', site: SITE, instance_ids: ['t-0'] }]);
    await h.run();
    expect(h.state_('t-0')).toBe('TERMINATED/TERMINATE_REQUESTED');
    expect(h.step((d) => terminateNodes(d, ['t-0'])).instances[0]!.state).toBe('TERMINATED');
    expect(h.effects).toEqual([]);
  });

  it('asks again for a launch whose call was lost (REQUESTED, nothing in flight), and ignores a stale attempt failure', async () => {
    const h = new Harness();
    h.provision('lost');
    const lostCall = h.effects.splice(0);
    h.inFlight.launches.add('lost');
    await h.tick();
    expect(h.effects).toEqual([]);
    h.inFlight.launches.clear();
    await h.tick();
    expect(h.effects).toEqual([{ kind: 'launch', launch_id: 'lost', site: SITE, instance_ids: ['lost-0'], attempt: 2 }]);
    await h.run();
    expect(h.state_('lost-0')).toBe('PENDING');
    // The first call's failure arrives late: it decides nothing.
    h.step((d, env) =>
      applyLaunched(d, { op: 'launched', launch_id: 'lost', attempt: lostCall[0]!.kind === 'launch' ? lostCall[0]!.attempt : 0, outcome: { ok: false, error: { code: 'UNAVAILABLE', message: 'late', retryable: true } } }, env),
    );
    expect(h.state_('lost-0')).toBe('PENDING');
  });

  it('forgets final records past their retention, and their launches with them', async () => {
    const h = new Harness();
    h.provision('old');
    await h.run();
    h.step((d) => terminateNodes(d, ['old-0']));
    await h.run();
    h.clock.advance(OPTIONS.retainFinalMs - 1);
    await h.tick();
    expect(h.state.instances['old-0']).toBeDefined();
    h.clock.advance(1);
    await h.tick();
    expect(h.state.instances['old-0']).toBeUndefined();
    expect(h.state.launches.old).toBeUndefined();
  });

  it('takes names like "constructor" as names, not as members of Object.prototype', async () => {
    const h = new Harness();
    expect(h.provision('constructor').reply.created).toBe(true);
    await h.run();
    expect(h.state_('constructor-0')).toBe('PENDING');
    expect(h.provision('constructor').reply.created).toBe(false);
    expect(describeNodes(h.state, ['toString'])).toEqual({ instances: [], unknown: ['toString'] });
    expect(h.step((d) => terminateNodes(d, ['hasOwnProperty'])).unknown).toEqual(['hasOwnProperty']);
  });

  it('describes, dumps and keeps subscribers', async () => {
    const h = new Harness();
    h.provision('d', 2);
    await h.run();
    expect(describeNodes(h.state, []).instances.map((i) => i.instance_id)).toEqual(['d-0', 'd-1']);
    expect(describeNodes(h.state, ['d-1', 'x'])).toMatchObject({ instances: [{ instance_id: 'd-1', state: 'PENDING' }], unknown: ['x'] });
    expect(h.step((d) => subscribe(d, 'epum/a'))).toEqual({ changed: true });
    expect(h.step((d) => subscribe(d, 'epum/a'))).toEqual({ changed: false });
    const dump = dumpState(h.state);
    expect(dump).toMatchObject({ enabled: true, subscribers: ['epum/a'], sites: { [SITE]: { type: 'sim', version: 1 } } });
    expect(dump.counts.PENDING).toBe(2);
    expect(dump.launches).toMatchObject([{ launch_id: 'd', count: 2, attempt: 1 }]);
    expect(h.step((d) => unsubscribe(d, 'epum/a'))).toEqual({ changed: true });
    expect(h.state.subscribers).toEqual([]);
  });
});

describe('provisioner message schema', () => {
  it('fills defaults and normalizes subscriber refs', () => {
    expect(parseProvisionerMessage({ op: 'provision', launch_id: 'l1', deployable_type: 'dt', site: 's', subscribers: [{ type: 'epum', id: 'd1' }, 'epum/d2'] })).toEqual({
      op: 'provision',
      launch_id: 'l1',
      deployable_type: 'dt',
      site: 's',
      count: 1,
      vars: {},
      subscribers: ['epum/d1', 'epum/d2'],
    });
  });

  it('names every bad field at once', () => {
    expect(() => parseProvisionerMessage({ op: 'provision', launch_id: '-x', deployable_type: 'dt', site: 's', count: 0, subscribers: ['nope'] })).toThrow(
      /launch_id: must be 1-100 letters.*count: must be a whole number from 1 to 1000.*subscribers\[0\]: must be an actor ref/,
    );
    expect(() => parseProvisionerMessage({ op: 'terminate_nodes', instance_ids: [] })).toThrow(/instance_ids: must list at least one instance id/);
    expect(() => parseProvisionerMessage({ op: 'launch_all' })).toThrow(/must be one of/);
  });
});
