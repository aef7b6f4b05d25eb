/**
 * The provisioner (`provisioner/main`): launches and terminates instances through a site's IaaS
 * driver and keeps a record of each, reconciled every `reconcileIntervalMs` with the drivers and the
 * cluster's membership. Its protocol is ./provisioner-protocol.ts; its logic is pure
 * (./provisioner-core.ts, ./provisioner-reconcile.ts over ./provisioner-records.ts); this module is
 * the shell that does the I/O: it asks the registry, calls drivers, and publishes changes.
 *
 * How work outlives a turn. A turn must end quickly: while it runs, the actor handles nothing else,
 * and an IaaS call may take seconds (a local terminate waits up to its grace period for the process
 * to leave). So a turn only *starts* IaaS calls; the ActorContext is gone when they finish, and the
 * result comes back as a message to self (`launched`, `terminated`, `observed`), told through the
 * cluster's ActorService with a message id derived from the call, and applied in a turn of its own.
 * Told through the router, the result reaches the provisioner wherever it lives by then, and a
 * duplicate is dropped by id (and would be harmless: applying a result is idempotent). If the node
 * dies before the result is told, nothing is lost but time: the record still says REQUESTED or
 * TERMINATING, and the reconciliation asks again (drivers are idempotent by instance id). Calls in
 * flight are tracked in memory only so that the reconciliation does not repeat one still running.
 *
 * Two things do wait within a turn, both short and bounded: the registry lookup of a new launch (an
 * actor-to-actor ask bounded by `lookupTimeoutMs`, so that a bad deployable type or site is in the
 * provision's reply), and a driver's `list`/`adopt` (local and sim drivers answer from memory and
 * the file system).
 *
 * Subscribers (per launch, and global through `subscribe`) are told every change through the
 * outbox, committed with the turn that made the change: durable and exactly once.
 */
import { defineActor, type ActorContext, type ActorType } from '../runtime/actor-type.js';
import { parseRefKey } from '../runtime/ref.js';
import type { TimerHandle } from '../runtime/clock.js';
import type { DriverFactory } from '../iaas/driver-factory.js';
import type { DriverInstance, InstanceHandle } from '../iaas/driver.js';
import { IaasError } from '../iaas/driver-errors.js';
import { CeiError, errorMessage } from '../errors.js';
import { DTRS_REF, type LaunchSpec } from './dtrs.js';
import { roleTurn, unwrapReply } from './role-reply.js';
import { messageValidator } from './message-schema.js';
import type { RoleEnv } from './role-env.js';
import { PROVISIONER_DEFAULTS, type ProvisionerOptions } from './provisioner-options.js';
import {
  PROVISIONER_REF,
  ProvisionerMessageSchema,
  parseProvisionerMessage,
  type CallError,
  type InstancesChanged,
  type ProvisionerMessage,
} from './provisioner-protocol.js';
import { Draft, emptyProvisionerState, isLive, own, type InstanceView, type ProvisionerEffect, type ProvisionerState } from './provisioner-records.js';
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
} from './provisioner-core.js';
import { announce, dueLookups, observe, reconcile, type StepEnv } from './provisioner-reconcile.js';
import { SiteDrivers } from './provisioner-drivers.js';
import { isFinalState, isUnlaunchedState } from './provisioner-states.js';

export * from './provisioner-protocol.js';
export type { ProvisionerState } from './provisioner-records.js';
export type { InstanceState, StateDesc } from './provisioner-states.js';

/** The messages the provisioner sends itself. */
const INTERNAL_OPS: ReadonlySet<string> = new Set(['tick', 'launched', 'terminated', 'observed']);

/** Registry lookups one tick makes at most (each may wait up to lookupTimeoutMs). */
const LOOKUPS_PER_TICK = 16;

export interface ProvisionerDeps {
  /** Makes a site's driver; tests pass one that builds SimDrivers over a shared SimCloud. */
  driverFactory?: DriverFactory;
}

/** A failed IaaS call as a plain value for a message. */
function callError(err: unknown): CallError {
  if (err instanceof IaasError) return { code: err.code, reason: err.reason, message: err.message, retryable: err.retryable };
  if (err instanceof CeiError) return { code: err.code, message: err.message, retryable: err.retryable };
  return { code: 'INTERNAL', message: errorMessage(err), retryable: false };
}

/** Only what a message needs of a driver's instance (no class instances, no undefined fields). */
function plain(instance: DriverInstance): DriverInstance {
  return JSON.parse(JSON.stringify(instance)) as DriverInstance;
}

/**
 * The I/O around the pure logic, for one node: drivers, calls in flight, and the stale-driver
 * watchdog. One per registration of the type, so two actor systems in one process share nothing.
 */
class ProvisionerShell {
  readonly drivers: SiteDrivers;
  private readonly launching = new Set<string>();
  private readonly terminating = new Set<string>();
  /** Why each site's driver could not be made, last time it was tried. */
  private readonly siteErrors = new Map<string, CallError>();
  private readonly nonce = Math.random().toString(36).slice(2, 10);
  private counter = 0;
  private lastTurnAt = 0;
  private watchdog: TimerHandle | undefined;

  constructor(
    private readonly env: RoleEnv,
    readonly options: ProvisionerOptions,
    deps: ProvisionerDeps,
  ) {
    this.drivers = new SiteDrivers({
      factory: deps.driverFactory,
      clock: env.clock,
      log: env.log,
      dataDir: env.dataDir,
      options,
      onObserved: (site, instances) => {
        for (let i = 0; i < instances.length; i += options.notifyBatch) {
          void this.tellSelf({ op: 'observed', site, instances: instances.slice(i, i + options.notifyBatch).map(plain) }, this.nextId('observed'));
        }
      },
    });
  }

  stepEnv(now: number): StepEnv {
    const membersUp = new Set<string>();
    for (const m of this.env.members()) if (m.status === 'up') membersUp.add(m.id);
    return { now, options: this.options, membersUp };
  }

  /** Addresses new workers join: the up control-plane members (any up member when there is none). */
  private seeds(): string[] {
    const up = this.env.members().filter((m) => m.status === 'up');
    const control = up.filter((m) => m.role !== 'worker');
    return (control.length > 0 ? control : up).map((m) => m.address);
  }

  private nextId(kind: string): string {
    return `${PROVISIONER_REF.type}/${PROVISIONER_REF.id}:${kind}:${this.nonce}:${++this.counter}`;
  }

  /** Sends a message to the provisioner, wherever it lives now; resolves once it is enqueued (or failed). */
  private async tellSelf(message: ProvisionerMessage, messageId: string): Promise<void> {
    try {
      await this.env.service().tell(PROVISIONER_REF, message, { messageId });
    } catch (err) {
      // Lost: the records still say what is outstanding, and the reconciliation asks again.
      this.env.log.warn({ op: message.op, err: errorMessage(err) }, 'provisioner could not tell itself a result');
    }
  }

  inFlight() {
    return { launches: this.launching, terminates: this.terminating };
  }

  /** Asks the registry for a launch's spec, as an actor (so the registry reveals the credentials to the driver). */
  async lookup(ctx: ActorContext, state: ProvisionerState, launchId: string): Promise<LookupOutcome> {
    const launch = own(state.launches, launchId)!;
    try {
      const reply = await ctx.ask(DTRS_REF, { op: 'lookup', dt: launch.deployable_type, site: launch.site, vars: launch.vars }, this.options.lookupTimeoutMs);
      return { ok: true, spec: unwrapReply<LaunchSpec>(reply, 'dtrs/registry') };
    } catch (err) {
      if (err instanceof CeiError) return { ok: false, retryable: err.retryable, message: `${err.code}: ${err.message}` };
      return { ok: false, retryable: true, message: errorMessage(err) };
    }
  }

  /** The handles to adopt when a site's driver is made: every record of the site the IaaS may hold. */
  private handlesOf(state: ProvisionerState, site: string): InstanceHandle[] {
    const handles: InstanceHandle[] = [];
    for (const r of Object.values(state.instances)) {
      if (r.handle && !isFinalState(r.state) && !isUnlaunchedState(r.state) && own(state.launches, r.launch_id)?.site === site) handles.push(r.handle);
    }
    return handles;
  }

  /**
   * Makes sure `site` has a driver (adopting the site's instances when one is made, and observing
   * what it reports of them). False when the site's driver cannot be made from its settings.
   */
  async ensureSite(d: Draft, site: string, env: StepEnv): Promise<boolean> {
    const config = own(d.state.sites, site);
    if (!config) return false;
    try {
      const { adopted } = await this.drivers.ensure(site, config, () => this.handlesOf(d.state, site));
      if (adopted.length > 0) observe(d, site, adopted, env, false);
      return true;
    } catch (err) {
      this.env.log.error({ site, err: errorMessage(err) }, 'cannot make the site driver');
      this.siteErrors.set(site, callError(err));
      return false;
    }
  }

  /** Sites with records the IaaS may hold. */
  liveSites(state: ProvisionerState): string[] {
    const sites = new Set<string>();
    for (const r of Object.values(state.instances)) {
      if (isLive(r) && r.state !== 'REQUESTING') {
        const site = own(state.launches, r.launch_id)?.site;
        if (site !== undefined && own(state.sites, site)) sites.add(site);
      }
    }
    return [...sites];
  }

  /** Each open driver's complete listing (a driver that cannot list now is left out this time). */
  async listings(): Promise<Map<string, DriverInstance[]>> {
    const out = new Map<string, DriverInstance[]>();
    for (const site of this.drivers.sites()) {
      try {
        out.set(site, await this.drivers.get(site)!.list());
      } catch (err) {
        this.env.log.warn({ site, err: errorMessage(err) }, 'listing a site failed');
      }
    }
    return out;
  }

  /**
   * Ends a turn's step: makes the drivers the effects need (a site whose driver cannot be made fails
   * its launches with SITE_INVALID at once), publishes the changes, then starts the IaaS calls.
   */
  async finish(d: Draft, ctx: ActorContext, env: StepEnv): Promise<void> {
    // Adoption may find zombies, whose terminations are effects for possibly other sites: loop.
    const ready = new Map<string, boolean>();
    for (let i = 0; i < d.effects.length; i++) {
      const effect = d.effects[i]!;
      if (!ready.has(effect.site)) ready.set(effect.site, await this.ensureSite(d, effect.site, env));
    }
    const effects = d.effects.splice(0);
    const runnable: ProvisionerEffect[] = [];
    for (const effect of effects) {
      if (ready.get(effect.site)) {
        runnable.push(effect);
        continue;
      }
      const error: CallError = { ...(this.siteErrors.get(effect.site) ?? { code: 'NOT_FOUND', message: `no driver config for site "${effect.site}"`, retryable: false }), reason: 'SITE_INVALID' };
      if (effect.kind === 'launch') applyLaunched(d, { op: 'launched', launch_id: effect.launch_id, attempt: effect.attempt, outcome: { ok: false, error } }, env);
      else applyTerminated(d, { op: 'terminated', site: effect.site, instance_ids: effect.instance_ids, outcome: { ok: false, error } });
    }
    this.publish(d, ctx);
    for (const effect of runnable) this.start(d.state, effect);
    this.touch();
  }

  /** Tells each subscriber the changes it follows, in order, `notifyBatch` instances per message. */
  private publish(d: Draft, ctx: ActorContext): void {
    if (d.changes.length === 0) return;
    const byRecipient = new Map<string, InstanceView[]>();
    const add = (key: string, view: InstanceView): void => {
      let list = byRecipient.get(key);
      if (!list) byRecipient.set(key, (list = []));
      list.push(view);
    };
    for (const view of d.changes) {
      const targets = new Set(d.state.subscribers);
      for (const s of d.launch(view.launch_id)?.subscribers ?? []) targets.add(s);
      for (const key of targets) add(key, view);
    }
    for (const [key, views] of byRecipient) {
      const to = parseRefKey(key);
      for (let i = 0; i < views.length; i += this.options.notifyBatch) {
        ctx.tell(to, { op: 'instances.changed', instances: views.slice(i, i + this.options.notifyBatch) } satisfies InstancesChanged);
      }
    }
  }

  /** Starts one IaaS call; its result comes back as a message (see the top of this file). */
  private start(state: ProvisionerState, effect: ProvisionerEffect): void {
    const driver = this.drivers.get(effect.site)!;
    if (effect.kind === 'launch') {
      const launch = own(state.launches, effect.launch_id)!;
      this.launching.add(effect.launch_id);
      const call = driver.launch({ instanceIds: effect.instance_ids, params: launch.params ?? {}, seeds: this.seeds() });
      void settle(call).then(async (outcome) => {
        await this.tellSelf({ op: 'launched', launch_id: effect.launch_id, attempt: effect.attempt, outcome }, `${PROVISIONER_REF.type}/${PROVISIONER_REF.id}:launched:${effect.launch_id}:${effect.attempt}`);
        this.launching.delete(effect.launch_id);
      });
      return;
    }
    for (const id of effect.instance_ids) this.terminating.add(id);
    void settle(driver.terminate(effect.instance_ids)).then(async (outcome) => {
      await this.tellSelf({ op: 'terminated', site: effect.site, instance_ids: effect.instance_ids, outcome }, this.nextId('terminated'));
      for (const id of effect.instance_ids) this.terminating.delete(id);
    });
  }

  async close(): Promise<void> {
    this.watchdog?.cancel();
    this.watchdog = undefined;
    await this.drivers.closeAll();
  }

  /**
   * Notes a turn. The reconciliation timer makes one every interval while this node hosts the
   * provisioner; when turns stop for many intervals, the actor lives elsewhere now (or this node is
   * cut off), so the drivers are closed: their instances stay with the IaaS, and whoever hosts the
   * provisioner adopts them. A later turn here makes them again.
   */
  private touch(): void {
    this.lastTurnAt = this.env.clock.now();
    if (this.watchdog) return;
    // Generous: closing a sim driver loses its simulated cloud, so only a provisioner surely gone lets go.
    const staleMs = Math.max(30_000, this.options.reconcileIntervalMs * 30);
    const check = (): void => {
      this.watchdog = undefined;
      if (this.drivers.sites().length === 0) return;
      if (this.env.clock.now() - this.lastTurnAt >= staleMs) {
        this.env.log.info({}, 'provisioner has not run here for a while; closing its drivers');
        void this.drivers.closeAll();
        return;
      }
      this.watchdog = this.env.clock.setTimer(staleMs, check);
    };
    this.watchdog = this.env.clock.setTimer(staleMs, check);
  }
}

/** A call's result as a message outcome. */
async function settle(call: Promise<DriverInstance[]>): Promise<{ ok: true; instances: DriverInstance[] } | { ok: false; error: CallError }> {
  try {
    return { ok: true, instances: (await call).map(plain) };
  } catch (err) {
    return { ok: false, error: callError(err) };
  }
}

/** The provisioner's actor type, and a way to let go of its drivers when the host is done with it. */
export type ProvisionerType = ActorType<ProvisionerState> & {
  /** Closes the drivers this registration made (their instances stay with the IaaS). */
  close(): Promise<void>;
};

/**
 * The provisioner actor type for a node. `env` gives it the node's router, membership and data
 * directory; `options` over PROVISIONER_DEFAULTS.
 */
export function provisionerType(env: RoleEnv, options: Partial<ProvisionerOptions> = {}, deps: ProvisionerDeps = {}): ProvisionerType {
  const shell = new ProvisionerShell(env, { ...PROVISIONER_DEFAULTS, ...options }, deps);

  /** The periodic pass: retry lookups, make the drivers live records need, list them, reconcile. */
  async function tick(state: ProvisionerState, ctx: ActorContext): Promise<Draft> {
    const step = shell.stepEnv(ctx.now);
    const d = new Draft(state, ctx.now);
    let lookups = 0;
    for (const launchId of dueLookups(d.state, ctx.now)) {
      if (lookups++ >= LOOKUPS_PER_TICK) break;
      const outcome = await shell.lookup(ctx, d.state, launchId);
      resolveLaunch(d, launchId, outcome, step);
      // The registry is out of reach: the other lookups would only wait for it too.
      if (!outcome.ok && outcome.retryable) break;
    }
    for (const site of shell.liveSites(d.state)) await shell.ensureSite(d, site, step);
    reconcile(d, { listings: await shell.listings(), inFlight: shell.inFlight() }, step);
    return d;
  }

  const type = defineActor<ProvisionerState>({
    name: PROVISIONER_REF.type,
    placement: 'control',
    // The provisioner must keep reconciling while it has nothing else to do.
    idleMs: 0,
    initialState: () => emptyProvisionerState(),
    validate: messageValidator(ProvisionerMessageSchema),
    async onActivate(state, ctx) {
      ctx.every('reconcile', shell.options.reconcileIntervalMs, { op: 'tick' });
      // Made again after every load (a fail-over, a restart): adopt what the records name, and
      // reconcile at once rather than a tick later.
      const d = await tick(state, ctx);
      await shell.finish(d, ctx, shell.stepEnv(ctx.now));
      return d.state;
    },
    handle(state, message, ctx) {
      return roleTurn(state, ctx, async () => {
        const msg = parseProvisionerMessage(message);
        try {
          return await turn(state, msg, ctx);
        } catch (err) {
          // A refusal of a request goes back to its caller; one of the provisioner's own messages
          // has no caller, and means a bug or a broken driver: say so.
          if (INTERNAL_OPS.has(msg.op)) env.log.error({ op: msg.op, err: errorMessage(err) }, 'provisioner turn refused its own message');
          throw err;
        }
      });
    },
  });

  async function turn(state: ProvisionerState, msg: ProvisionerMessage, ctx: ActorContext): Promise<{ state: ProvisionerState; reply: unknown }> {
    const step = shell.stepEnv(ctx.now);
    let d = new Draft(state, ctx.now);
    let reply: unknown = null;
    switch (msg.op) {
      case 'provision': {
        const admitted = admitProvision(d, msg);
        if (admitted.lookup) {
          resolveLaunch(d, msg.launch_id, await shell.lookup(ctx, d.state, msg.launch_id), step);
          admitted.reply.instances = describeNodes(d.state, admitted.reply.instances.map((i) => i.instance_id)).instances;
        }
        reply = admitted.reply;
        break;
      }
      case 'terminate_nodes':
        reply = terminateNodes(d, msg.instance_ids);
        break;
      case 'terminate_all':
        reply = terminateAll(d);
        break;
      case 'enable':
        reply = enable(d);
        break;
      case 'describe_nodes':
        return { state, reply: describeNodes(state, msg.instance_ids) };
      case 'dump_state':
        return { state, reply: dumpState(state) };
      case 'subscribe':
        reply = subscribe(d, msg.subscriber);
        break;
      case 'unsubscribe':
        reply = unsubscribe(d, msg.subscriber);
        break;
      case 'announce': {
        const known = announce(d, msg.instance_id, msg.node_id, msg.address, step);
        if (!known) env.log.warn({ instanceId: msg.instance_id, node: msg.node_id }, 'a worker announced an instance id no record knows');
        reply = { known };
        break;
      }
      case 'tick':
        d = await tick(state, ctx);
        break;
      case 'launched':
        applyLaunched(d, msg, step);
        break;
      case 'terminated':
        applyTerminated(d, msg);
        break;
      case 'observed':
        observe(d, msg.site, msg.instances as DriverInstance[], step, false, shell.inFlight());
        break;
    }
    await shell.finish(d, ctx, step);
    return { state: d.state, reply };
  }

  return Object.assign(type, { close: () => shell.close() });
}
