/**
 * A simulated IaaS: instances that boot after a latency, fail at a seeded rate, fill a capacity and
 * heartbeat while running. It stands for the cloud itself, so it outlives the drivers that use it:
 * a SimDriver recreated after a fail-over (driver-sim.ts) sees the instances an earlier one
 * launched, exactly as a provisioner sees its VMs again after a restart.
 *
 * Cost: every instance is one record and at most one entry of a DueQueue, and the whole cloud runs
 * on one timer of the injected clock, armed for the earliest due entry. Nothing is allocated per
 * heartbeat but the event handed to listeners, so tens of thousands of instances are cheap.
 *
 * Besides the IaaS surface, it has the controls a test needs: `kill` (the instance vanishes from
 * the IaaS and stops heartbeating), `silence` (it stays listed but stops heartbeating, like a hung
 * node), `injectZombie` (an instance no driver launched) and `failNextCalls` (transient API errors).
 *
 * Re-entrancy: listeners run inside the cloud's timer callback and may call back into the cloud
 * (launch, terminate, kill, silence); what they schedule for now is handled in the same pass.
 */
import { z } from 'zod';
import { FailedPreconditionError } from '../errors.js';
import { systemClock, type Clock, type TimerHandle } from '../runtime/clock.js';
import { silentLogger, type Logger } from '../runtime/logger.js';
import { notFoundInstance, type DriverInstance, type DriverInstanceState, type DriverListener, type DriverReason } from './driver.js';
import { IaasFullError, IaasUnavailableError } from './driver-errors.js';
import { parseSettings } from './driver-settings.js';
import { DueQueue, type DueEntry } from './due-queue.js';
import { seededRandom } from './seeded-random.js';

export interface SimCloudOptions {
  /** From launch to `started`. */
  bootLatencyMs: number;
  /** Each launch adds a uniformly random extra boot time in [0, bootJitterMs). */
  bootJitterMs: number;
  /** From `started` to `running` (contextualization); 0 passes through `started` at once. */
  contextualizeMs: number;
  /** Chance that a launched instance fails to boot, in [0, 1]; drawn at launch from the seed. */
  failureRate: number;
  /** Instances that may be pending, started or running at once; launches past it are IAAS_FULL. */
  capacity: number;
  /** Each running instance heartbeats this often; 0 turns heartbeats off. */
  heartbeatIntervalMs: number;
  /** Terminated and failed instances stay listed this long, as a cloud's API shows them for a while. */
  retainFinalMs: number;
  /** Seed of the generator behind failures and jitter. */
  seed: number;
}

export const SIM_DEFAULTS: SimCloudOptions = {
  bootLatencyMs: 1_000,
  bootJitterMs: 0,
  contextualizeMs: 0,
  failureRate: 0,
  capacity: 100_000,
  heartbeatIntervalMs: 1_000,
  retainFinalMs: 60_000,
  seed: 1,
};

/** Short intervals for tests on a fake clock. */
export const SIM_TEST_PRESET: SimCloudOptions = {
  ...SIM_DEFAULTS,
  bootLatencyMs: 10,
  heartbeatIntervalMs: 100,
  retainFinalMs: 1_000,
};

const ms = (what: string) => z.number({ error: `${what} must be a number of milliseconds` }).int(`${what} must be whole milliseconds`).min(0, `${what} must be >= 0`);
const rate = z.number({ error: 'failureRate must be a number' }).min(0, 'failureRate must be between 0 and 1').max(1, 'failureRate must be between 0 and 1');

/** Checks SimCloud options; every field is optional and defaults to SIM_DEFAULTS. */
export const simCloudOptionsSchema = z.strictObject({
  bootLatencyMs: ms('bootLatencyMs').default(SIM_DEFAULTS.bootLatencyMs),
  bootJitterMs: ms('bootJitterMs').default(SIM_DEFAULTS.bootJitterMs),
  contextualizeMs: ms('contextualizeMs').default(SIM_DEFAULTS.contextualizeMs),
  failureRate: rate.default(SIM_DEFAULTS.failureRate),
  capacity: z.number().int('capacity must be a whole number').min(0, 'capacity must be >= 0').default(SIM_DEFAULTS.capacity),
  heartbeatIntervalMs: ms('heartbeatIntervalMs').default(SIM_DEFAULTS.heartbeatIntervalMs),
  retainFinalMs: ms('retainFinalMs').default(SIM_DEFAULTS.retainFinalMs),
  seed: z.number().int('seed must be a whole number').default(SIM_DEFAULTS.seed),
});

/** What one launch may set differently from the cloud's options. */
export interface SimLaunchOverrides {
  bootLatencyMs?: number;
  failureRate?: number;
}

export interface SimHeartbeat {
  readonly instanceId: string;
  /** The clock's time of the beat. */
  readonly at: number;
}

type Next = 'boot' | 'contextualize' | 'heartbeat' | 'forget';

interface SimInstance extends DueEntry {
  readonly id: string;
  state: DriverInstanceState;
  reason?: DriverReason;
  detail?: string;
  readonly launchedAt: number;
  since: number;
  /** Decided at launch so that the outcome depends on launch order only, not on timer order. */
  readonly failsToBoot: boolean;
  silent: boolean;
  next?: Next;
}

const ACTIVE: ReadonlySet<DriverInstanceState> = new Set(['pending', 'started', 'running']);

export class SimCloud {
  readonly options: SimCloudOptions;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly instances = new Map<string, SimInstance>();
  private readonly queue = new DueQueue<SimInstance>();
  private readonly listeners = new Set<DriverListener>();
  private readonly heartbeatListeners = new Set<(beat: SimHeartbeat) => void>();
  private active = 0;
  private failCalls = 0;
  private timer: TimerHandle | undefined;
  private armedAt: number | undefined;
  private firing = false;
  private stopped = false;

  /** Throws InvalidArgumentError for bad options (see simCloudOptionsSchema). */
  constructor(options: Partial<SimCloudOptions> = {}, deps: { clock?: Clock; log?: Logger } = {}) {
    this.options = parseSettings(simCloudOptionsSchema, options, 'sim cloud options');
    this.clock = deps.clock ?? systemClock;
    this.log = deps.log ?? silentLogger;
    this.random = seededRandom(this.options.seed);
  }

  /**
   * Launches the ids the cloud does not hold and returns all of them in order (see
   * IaasDriver.launch). All or nothing: past capacity, nothing is launched.
   */
  launch(instanceIds: readonly string[], overrides: SimLaunchOverrides = {}): DriverInstance[] {
    this.checkRunning();
    this.maybeFailCall(instanceIds, 'launch');
    const fresh = instanceIds.filter((id) => !this.instances.has(id));
    if (this.active + fresh.length > this.options.capacity) {
      throw new IaasFullError(
        `sim site is full: ${this.active} of ${this.options.capacity} instances in use, ${fresh.length} more requested`,
        fresh,
      );
    }
    const now = this.clock.now();
    const latency = overrides.bootLatencyMs ?? this.options.bootLatencyMs;
    const failureRate = overrides.failureRate ?? this.options.failureRate;
    for (const id of fresh) {
      // Both draws happen for every instance, so one launch's overrides do not shift later outcomes.
      const jitter = Math.floor(this.random() * this.options.bootJitterMs);
      const failsToBoot = this.random() < failureRate;
      const instance: SimInstance = {
        id,
        state: 'pending',
        launchedAt: now,
        since: now,
        failsToBoot,
        silent: false,
        dueAt: 0,
        dueSeq: 0,
        heapIndex: -1,
      };
      this.instances.set(id, instance);
      this.active++;
      this.schedule(instance, 'boot', now + latency + jitter);
    }
    if (fresh.length > 0) this.log.debug({ count: fresh.length }, 'sim instances launched');
    return instanceIds.map((id) => snapshot(this.instances.get(id)!));
  }

  /** Terminates the given instances at once; unknown ids come back terminated with NOT_FOUND. */
  terminate(instanceIds: readonly string[]): DriverInstance[] {
    this.checkRunning();
    this.maybeFailCall(instanceIds, 'terminate');
    return instanceIds.map((id) => {
      const instance = this.instances.get(id);
      if (!instance) return notFoundInstance(id, this.clock.now());
      if (ACTIVE.has(instance.state)) this.finish(instance, 'terminated', 'TERMINATE_REQUESTED');
      return snapshot(instance);
    });
  }

  get(instanceId: string): DriverInstance | undefined {
    const instance = this.instances.get(instanceId);
    return instance && snapshot(instance);
  }

  /** Each id's instance in order; an id the cloud does not hold comes back terminated with NOT_FOUND. */
  describe(instanceIds: readonly string[]): DriverInstance[] {
    return instanceIds.map((id) => {
      const instance = this.instances.get(id);
      return instance ? snapshot(instance) : notFoundInstance(id, this.clock.now());
    });
  }

  list(): DriverInstance[] {
    return [...this.instances.values()].map(snapshot);
  }

  /** How many instances are in each state, without copying them. */
  counts(): Record<DriverInstanceState, number> {
    const counts: Record<DriverInstanceState, number> = { pending: 0, started: 0, running: 0, terminated: 0, failed: 0 };
    for (const instance of this.instances.values()) counts[instance.state]++;
    return counts;
  }

  /** See IaasDriver.watch. */
  watch(listener: DriverListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Calls `listener` with every heartbeat of every running, non-silenced instance. */
  onHeartbeat(listener: (beat: SimHeartbeat) => void): () => void {
    this.heartbeatListeners.add(listener);
    return () => void this.heartbeatListeners.delete(listener);
  }

  /**
   * The instance vanishes: it is no longer listed, never heartbeats again and frees its capacity,
   * with no event (a cloud does not announce that a VM died). False if the cloud had no such id.
   */
  kill(instanceId: string): boolean {
    const instance = this.instances.get(instanceId);
    if (!instance) return false;
    this.queue.remove(instance);
    this.instances.delete(instanceId);
    if (ACTIVE.has(instance.state)) this.active--;
    this.rearm();
    return true;
  }

  /** The instance stays listed in its state but stops heartbeating, like a hung or cut-off node. */
  silence(instanceId: string): boolean {
    const instance = this.instances.get(instanceId);
    if (!instance) return false;
    instance.silent = true;
    if (instance.next === 'heartbeat') {
      this.queue.remove(instance);
      instance.next = undefined;
      this.rearm();
    }
    return true;
  }

  /**
   * Adds a running, heartbeating instance that no driver launched: what a provisioner's
   * reconciliation must find and destroy. It counts against capacity.
   */
  injectZombie(instanceId: string): DriverInstance {
    this.checkRunning();
    if (this.instances.has(instanceId)) throw new FailedPreconditionError(`sim instance ${instanceId} exists already`);
    const now = this.clock.now();
    const instance: SimInstance = {
      id: instanceId,
      state: 'running',
      launchedAt: now,
      since: now,
      failsToBoot: false,
      silent: false,
      dueAt: 0,
      dueSeq: 0,
      heapIndex: -1,
    };
    this.instances.set(instanceId, instance);
    this.active++;
    this.scheduleHeartbeat(instance, now);
    return snapshot(instance);
  }

  /** The next `n` launch or terminate calls throw IaasUnavailableError and change nothing. */
  failNextCalls(n: number): void {
    this.failCalls = n;
  }

  /** Cancels the cloud's timer; the cloud takes no more calls. */
  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    this.armedAt = undefined;
    this.listeners.clear();
    this.heartbeatListeners.clear();
  }

  private checkRunning(): void {
    if (this.stopped) throw new FailedPreconditionError('the sim cloud is stopped');
  }

  private maybeFailCall(instanceIds: readonly string[], call: string): void {
    if (this.failCalls <= 0) return;
    this.failCalls--;
    throw new IaasUnavailableError(`sim ${call} refused (injected failure)`, instanceIds);
  }

  private schedule(instance: SimInstance, next: Next, at: number): void {
    instance.next = next;
    this.queue.schedule(instance, at);
    if (!this.firing && (this.armedAt === undefined || at < this.armedAt)) this.rearm();
  }

  private scheduleHeartbeat(instance: SimInstance, from: number): void {
    const interval = this.options.heartbeatIntervalMs;
    if (interval > 0 && !instance.silent) this.schedule(instance, 'heartbeat', from + interval);
  }

  /** Arms the one timer for the earliest due entry (or none). Never called while firing. */
  private rearm(): void {
    if (this.firing || this.stopped) return;
    const first = this.queue.peek();
    if (first && first.dueAt === this.armedAt) return;
    this.timer?.cancel();
    this.timer = undefined;
    this.armedAt = undefined;
    if (!first) return;
    this.armedAt = first.dueAt;
    this.timer = this.clock.setTimer(first.dueAt - this.clock.now(), () => this.fire());
  }

  private fire(): void {
    this.timer = undefined;
    this.armedAt = undefined;
    this.firing = true;
    try {
      // Entries a listener schedules for now are handled in this same pass.
      for (let instance = this.queue.popDue(this.clock.now()); instance; instance = this.queue.popDue(this.clock.now())) {
        this.advance(instance);
      }
    } finally {
      this.firing = false;
    }
    this.rearm();
  }

  private advance(instance: SimInstance): void {
    const next = instance.next;
    instance.next = undefined;
    const now = this.clock.now();
    switch (next) {
      case 'boot':
        if (instance.failsToBoot) {
          this.finish(instance, 'failed', 'IAAS_BOOT_FAILED', 'simulated boot failure');
          return;
        }
        this.transition(instance, 'started');
        if (this.options.contextualizeMs > 0) {
          this.schedule(instance, 'contextualize', now + this.options.contextualizeMs);
          return;
        }
        // A listener may have terminated or killed it on `started`.
        if (instance.state === 'started' && this.instances.get(instance.id) === instance) this.becomeRunning(instance, now);
        return;
      case 'contextualize':
        this.becomeRunning(instance, now);
        return;
      case 'heartbeat':
        this.scheduleHeartbeat(instance, now);
        this.beat(instance.id, now);
        return;
      case 'forget':
        this.instances.delete(instance.id);
        return;
      case undefined:
        return;
    }
  }

  private becomeRunning(instance: SimInstance, now: number): void {
    this.transition(instance, 'running');
    if (instance.state === 'running' && instance.heapIndex < 0) this.scheduleHeartbeat(instance, now);
  }

  private beat(instanceId: string, at: number): void {
    if (this.heartbeatListeners.size === 0) return;
    const beat: SimHeartbeat = { instanceId, at };
    for (const listener of this.heartbeatListeners) {
      try {
        listener(beat);
      } catch (err) {
        this.log.warn({ err, instanceId }, 'sim heartbeat listener threw');
      }
    }
  }

  private finish(instance: SimInstance, state: 'terminated' | 'failed', reason: DriverReason, detail?: string): void {
    if (ACTIVE.has(instance.state)) this.active--;
    instance.reason = reason;
    instance.detail = detail;
    this.schedule(instance, 'forget', this.clock.now() + this.options.retainFinalMs);
    this.transition(instance, state);
  }

  private transition(instance: SimInstance, state: DriverInstanceState): void {
    instance.state = state;
    instance.since = this.clock.now();
    if (this.listeners.size === 0) return;
    const view = snapshot(instance);
    for (const listener of this.listeners) {
      try {
        listener(view);
      } catch (err) {
        this.log.warn({ err, instanceId: instance.id }, 'sim driver listener threw');
      }
    }
  }
}

function snapshot(instance: SimInstance): DriverInstance {
  return {
    instanceId: instance.id,
    state: instance.state,
    ...(instance.reason !== undefined && { reason: instance.reason }),
    ...(instance.detail !== undefined && { detail: instance.detail }),
    launchedAt: instance.launchedAt,
    since: instance.since,
    handle: { instanceId: instance.id },
  };
}
