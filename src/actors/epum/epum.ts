/**
 * EPU management's actors: one per domain (`epum/<id>`, so domains fail over independently) and the
 * domain registry (`epum-registry/main`: the index of domains and the domain definitions). Their
 * protocol is ./protocol.ts; their logic is pure (./domain-core.ts over ./domain-state.ts,
 * ./domain-health.ts, ./registry.ts); this module is the shell that does the I/O.
 *
 * What a domain does outside its state:
 * - Provisions and terminations are TELLs to the provisioner through the outbox (durable, once); a
 *   provision names the domain as subscriber of its launch, and the provisioner's
 *   `instances.changed` reports come back the same way. A provision turn may wait seconds on the
 *   deployable type registry, so the domain never asks the provisioner and never waits on it.
 * - Asks in a turn, all bounded by `askTimeoutMs`: the registry asks a domain to create or remove
 *   itself, and a domain being created or reconfigured asks DTRS whether its deployable types and
 *   sites exist. No actor here asks one that may ask it back: registry -> domain -> dtrs.
 * - What it observes is kept in memory, per node (DomainMemory): when each worker last
 *   heartbeated and what it reported, and sensor series (heartbeat metrics, mailbox depths read
 *   between turns). Observations are not decisions: a domain that fails over starts hearing again,
 *   and the health rules do not hold the gap against its instances (./domain-health.ts).
 * - Membership: the node's RoleEnv.watchMembers calls the shell on every change of the view; a
 *   domain hosted here with an instance on a node whose status changed is told `members.changed`,
 *   and judges at once (a worker declared down is MISSING and replaced in that turn). Every tick
 *   reads the membership too, so nothing depends on that message arriving.
 *
 * The registry's index follows the domains (see ./registry.ts). An actor of the domain type that
 * holds no domain (never created, its creation refused, or a late message after a removal) answers
 * NOT_FOUND and stops itself, so a refused add leaves nothing behind.
 */
import { defineActor, type ActorContext, type ActorType } from '../../runtime/actor-type.js';
import { parseRefKey, type ActorRef } from '../../runtime/ref.js';
import type { TimerHandle } from '../../runtime/clock.js';
import { CeiError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, errorMessage } from '../../errors.js';
import { DTRS_REF, type DtRecord } from '../dtrs.js';
import { PROVISIONER_REF, type InstanceView } from '../provisioner-protocol.js';
import { askRole, roleTurn, unwrapReply } from '../role-reply.js';
import { streamRef, type StreamDescription } from '../stream.js';
import type { ActorService } from '../../runtime/actor-service.js';
import { messageValidator } from '../message-schema.js';
import type { RoleEnv, RoleMember } from '../role-env.js';
import { createEngineRegistry, type Engine, type EngineRegistry, type SensorReadings, type SensorSample } from './engine.js';
import { EPUM_DEFAULTS, type EpumOptions } from './options.js';
import {
  DOMAIN_TYPE,
  DomainMessageSchema,
  DomainName,
  EPUM_REGISTRY_REF,
  RegistryMessageSchema,
  domainRef,
  parseDomainMessage,
  parseRegistryMessage,
  type DomainDescription,
  type DomainMessage,
  type DomainMessageOf,
  type DomainReplies,
  type DomainSummary,
  type RegistryMessage,
} from './protocol.js';
import { DomainDraft, emptyDomainState, isConfigured, isFinal, reconfigureReply, viewOf, type DomainState } from './domain-state.js';
import {
  applyHeartbeat,
  applyReconfigure,
  applyReports,
  checkEngineConf,
  createDomain,
  describeDomain,
  launchTargets,
  noSuchDomain,
  reconfigured,
  sameConfig,
  startRemoval,
  step,
  subscribe,
  tickMsOf,
  unsubscribe,
  type StepInputs,
} from './domain-core.js';
import {
  applyDefinition,
  checkAddable,
  domainEntry,
  emptyRegistryState,
  listDomain,
  listDomains,
  markRemoving,
  resolveConfig,
  unlistDomain,
  type RegistryState,
} from './registry.js';

/** Heartbeat metrics that become sensor series (per instance). */
export const HEARTBEAT_METRICS = ['cpu_load', 'free_memory', 'load_average'] as const;

/** Samples of each series describe shows. */
const SAMPLES_SHOWN = 20;

/** What one node observes of one domain hosted on it (memory only). */
class DomainMemory {
  readonly heard = new Map<string, { at: number; metrics: Record<string, number> }>();
  readonly series = new Map<string, SensorSample[]>();
  /** Node ids of the domain's live instances, for the membership watch. */
  nodes: ReadonlySet<string> = new Set();
  reading = false;
}

/** A sensor name that reads a stream subscription's queue length: `stream:<stream>/<subscription>`. */
export function streamSubscription(name: string): { stream: string; subscription: string } | undefined {
  if (!name.startsWith('stream:')) return undefined;
  const body = name.slice('stream:'.length);
  const slash = body.indexOf('/');
  if (slash <= 0 || slash === body.length - 1) return undefined;
  return { stream: body.slice(0, slash), subscription: body.slice(slash + 1) };
}

/** How to read a sensor series a domain's engine names, if cei knows how (else it is fed from outside). */
function sensorReader(service: () => ActorService, name: string): (() => Promise<number>) | undefined {
  const sub = streamSubscription(name);
  if (sub) {
    return async () => {
      const d = await askRole<StreamDescription>(service(), streamRef(sub.stream), { describe: true });
      const s = d.subscriptions.find((x) => x.name === sub.subscription);
      if (!s) throw new Error(`stream ${sub.stream} has no subscription ${sub.subscription}`);
      return s.queueLength;
    };
  }
  if (name.startsWith('stream:')) return undefined;
  const ref = mailboxRef(name);
  return ref ? () => service().describe(ref).then((d) => d.mailboxDepth) : undefined;
}

/** A sensor name that reads an actor's mailbox depth: `mailbox:<type>/<id>` or `<type>/<id>`. */
export function mailboxRef(name: string): ActorRef | undefined {
  const body = name.startsWith('mailbox:') ? name.slice('mailbox:'.length) : name;
  if (!body.includes('/')) return undefined;
  try {
    return parseRefKey(body);
  } catch {
    return undefined;
  }
}

/** The sensor series a conf reads, by the built-in engines' keys (`queue`, `metric`). */
function sensorNames(conf: Record<string, unknown>): string[] {
  return [conf.queue, conf.metric].filter((v): v is string => typeof v === 'string' && v !== '');
}

/** The I/O around the pure logic, for one node. One per registration, so two systems in one process share nothing. */
class EpumShell {
  private readonly memory = new Map<string, DomainMemory>();
  private lastStatus = new Map<string, RoleMember['status']>();
  private readonly nonce = Math.random().toString(36).slice(2, 10);
  private counter = 0;
  private readonly unwatch: (() => void) | undefined;

  constructor(
    readonly env: RoleEnv,
    readonly options: EpumOptions,
    readonly engines: EngineRegistry,
  ) {
    this.unwatch = env.watchMembers?.((members) => this.membersChanged(members));
  }

  close(): void {
    this.unwatch?.();
    this.memory.clear();
  }

  mem(id: string): DomainMemory {
    let m = this.memory.get(id);
    if (!m) {
      m = new DomainMemory();
      this.memory.set(id, m);
    }
    return m;
  }

  forget(id: string): void {
    this.memory.delete(id);
  }

  engine(name: string): Engine | undefined {
    return this.engines.hasEngine(name) ? this.engines.getEngine(name) : undefined;
  }

  /** After a turn: which nodes the domain's live instances run on. */
  track(state: DomainState): void {
    const nodes = new Set<string>();
    for (const i of Object.values(state.instances)) if (i.node_id !== undefined && !isFinal(i.state)) nodes.add(i.node_id);
    this.mem(state.id).nodes = nodes;
  }

  membersNow(): Map<string, RoleMember['status']> {
    return new Map(this.env.members().map((m) => [m.id, m.status]));
  }

  /** The view changed: tell each domain hosted here whose instances run on a node that changed. */
  private membersChanged(members: readonly RoleMember[]): void {
    const now = new Map(members.map((m) => [m.id, m.status]));
    const changed = new Set<string>();
    for (const [id, status] of now) if (this.lastStatus.get(id) !== status) changed.add(id);
    for (const id of this.lastStatus.keys()) if (!now.has(id)) changed.add(id);
    this.lastStatus = now;
    if (changed.size === 0) return;
    for (const [domain, m] of this.memory) {
      if (![...m.nodes].some((n) => changed.has(n))) continue;
      const messageId = `epum/${domain}:members:${this.nonce}:${++this.counter}`;
      this.env
        .service()
        .tell(domainRef(domain), { op: 'members.changed' }, { messageId })
        .catch((err: unknown) => this.env.log.warn({ domain, err: errorMessage(err) }, 'could not tell a domain that the membership changed'));
    }
  }

  heard(id: string, instanceId: string, now: number, msg: DomainMessageOf<'heartbeat'>): void {
    const m = this.mem(id);
    const metrics: Record<string, number> = {};
    for (const name of HEARTBEAT_METRICS) {
      const value = msg[name];
      if (value === undefined) continue;
      metrics[name] = value;
      this.push(m, name, { time: now, value, instance_id: instanceId }, now);
    }
    m.heard.set(instanceId, { at: now, metrics });
  }

  private push(m: DomainMemory, name: string, sample: SensorSample, now: number): void {
    let series = m.series.get(name);
    if (!series) {
      series = [];
      m.series.set(name, series);
    }
    series.push(sample);
    this.prune(series, now);
  }

  private prune(series: SensorSample[], now: number): void {
    const cutoff = now - this.options.sensorWindowMs;
    let drop = 0;
    while (drop < series.length && series[drop]!.time < cutoff) drop++;
    drop = Math.max(drop, series.length - this.options.maxSamplesPerSeries);
    if (drop > 0) series.splice(0, drop);
  }

  sensors(id: string, now: number): SensorReadings {
    const out: Record<string, SensorSample[]> = {};
    for (const [name, series] of this.mem(id).series) {
      this.prune(series, now);
      out[name] = series;
    }
    return out;
  }

  /** Starts reading the mailbox and stream sensors the domain's engine conf names; results land in memory for the next step. */
  readSensors(state: DomainState): void {
    const m = this.mem(state.id);
    if (m.reading) return;
    const refs = sensorNames(state.config.engine_conf).flatMap((name) => {
      const read = sensorReader(() => this.env.service(), name);
      return read ? [{ name, read }] : [];
    });
    if (refs.length === 0) return;
    m.reading = true;
    const timeout = this.options.sensorReadTimeoutMs;
    void Promise.all(
      refs.map(async ({ name, read }) => {
        let timer: TimerHandle | undefined;
        try {
          const depth = await Promise.race([
            read(),
            new Promise<undefined>((resolve) => (timer = this.env.clock.setTimer(timeout, () => resolve(undefined)))),
          ]);
          if (depth !== undefined) this.push(m, name, { time: this.env.clock.now(), value: depth }, this.env.clock.now());
        } catch (err) {
          this.env.log.debug({ domain: state.id, sensor: name, err: errorMessage(err) }, 'sensor read failed');
        } finally {
          timer?.cancel();
        }
      }),
    ).finally(() => (m.reading = false));
  }

  stepInputs(state: DomainState, now: number): StepInputs {
    const m = this.mem(state.id);
    const members = this.membersNow();
    return {
      now,
      options: this.options,
      engine: this.engine(state.config.engine),
      health: { members, heardAt: (id) => m.heard.get(id)?.at },
      sensors: this.sensors(state.id, now),
    };
  }

  describe(state: DomainState, now: number): DomainDescription {
    const m = this.mem(state.id);
    return describeDomain(state, { heard: (id) => m.heard.get(id), sensors: this.sensors(state.id, now), samplesShown: SAMPLES_SHOWN });
  }
}

/** A CeiError as it is, anything else (a timeout of the transport, say) as UNAVAILABLE. */
function asCeiError(err: unknown, what: string): CeiError {
  if (err instanceof CeiError) return err;
  return new UnavailableError(`${what}: ${errorMessage(err)}`, { cause: err });
}

/** EPU management's actor types for a node, and a way to let go of the membership watch. */
export interface EpumTypes {
  domain: ActorType<DomainState>;
  registry: ActorType<RegistryState>;
  types: ActorType<any>[];
  close(): void;
}

/**
 * The domain and registry actor types for a node. `env` gives them the node's router, membership
 * and clock; `options` over EPUM_DEFAULTS; `engines` the decision engines this node knows (the
 * built-in ones and any loaded with --engines).
 */
export function epumTypes(env: RoleEnv, options: Partial<EpumOptions> = {}, engines: EngineRegistry = createEngineRegistry()): EpumTypes {
  const shell = new EpumShell(env, { ...EPUM_DEFAULTS, ...options }, engines);
  const opts = shell.options;

  /** Refuses unless every (deployable type, site) the conf launches at is registered and the type maps the site. */
  async function checkTargets(ctx: ActorContext, conf: unknown): Promise<void> {
    for (const t of launchTargets(conf)) {
      let dt: DtRecord;
      try {
        dt = unwrapReply<DtRecord>(await ctx.ask(DTRS_REF, { op: 'dt.describe', name: t.deployable_type }, opts.askTimeoutMs), 'dtrs/registry');
      } catch (err) {
        if (err instanceof CeiError && err.code === 'NOT_FOUND') throw new NotFoundError(`engine_conf: deployable type "${t.deployable_type}" is not registered`);
        throw asCeiError(err, 'asking the deployable type registry');
      }
      if (Object.hasOwn(dt.definition.sites, t.site)) continue;
      try {
        unwrapReply(await ctx.ask(DTRS_REF, { op: 'site.describe', name: t.site }, opts.askTimeoutMs), 'dtrs/registry');
      } catch (err) {
        if (err instanceof CeiError && err.code === 'NOT_FOUND') throw new NotFoundError(`engine_conf: site "${t.site}" is not registered`);
        throw asCeiError(err, 'asking the deployable type registry');
      }
      const mapped = Object.keys(dt.definition.sites).sort().join(', ');
      throw new InvalidArgumentError(`engine_conf: deployable type "${t.deployable_type}" cannot be launched at site "${t.site}" (it maps ${mapped})`);
    }
  }

  /** Carries out a draft's effects and tells the subscribers what changed. */
  function finish(d: DomainDraft, ctx: ActorContext): void {
    const s = d.state;
    for (const e of d.effects) {
      switch (e.kind) {
        case 'provision':
          ctx.tell(PROVISIONER_REF, {
            op: 'provision',
            launch_id: e.launch.launch_id,
            deployable_type: e.launch.deployable_type,
            site: e.launch.site,
            count: e.launch.count,
            vars: e.launch.vars,
            subscribers: [e.subscriber],
          });
          break;
        case 'terminate':
          ctx.tell(PROVISIONER_REF, { op: 'terminate_nodes', instance_ids: e.instance_ids });
          break;
        case 'tick':
          ctx.every('tick', e.ms, { op: 'tick' });
          break;
        case 'registered':
          ctx.tell(EPUM_REGISTRY_REF, {
            op: 'domain.registered',
            id: s.id,
            generation: s.generation,
            engine: s.config.engine,
            created_at: s.created_at,
            ...(s.definition !== undefined && { definition: s.definition }),
          });
          break;
        case 'removed':
          ctx.cancelTimer('tick');
          ctx.tell(EPUM_REGISTRY_REF, { op: 'domain.removed', id: s.id, generation: s.generation });
          break;
      }
    }
    if (d.changed.size > 0 && s.subscribers.length > 0) {
      const m = shell.mem(s.id);
      const instances = [...d.changed.values()].map((i) => viewOf(i, m.heard.get(i.id)));
      for (const sub of s.subscribers) ctx.tell(parseRefKey(sub), { op: 'domain.changed', domain: s.id, instances });
    }
  }

  function runStep(d: DomainDraft): void {
    step(d, shell.stepInputs(d.state, d.now));
  }

  async function domainTurn(state: DomainState, msg: DomainMessage, ctx: ActorContext): Promise<{ state: DomainState; reply: unknown }> {
    const id = ctx.self.id;
    if (!isConfigured(state) && msg.op !== 'create') {
      // Nothing here: requests (and a worker's heartbeat) hear NOT_FOUND; the rest is dropped.
      if (msg.op === 'instances.changed' || msg.op === 'members.changed' || msg.op === 'tick') return { state, reply: null };
      throw noSuchDomain(id);
    }
    const d = new DomainDraft(state, ctx.now);
    let reply: unknown = null;
    switch (msg.op) {
      case 'create': {
        if (isConfigured(state)) {
          if (state.removing) throw new CeiError('ALREADY_EXISTS', `domain "${id}" is being removed; add it again once it is gone`);
          if (sameConfig(state.config, msg.config) && state.definition === msg.definition) {
            return { state, reply: { created: false, domain: shell.describe(state, ctx.now) } satisfies DomainReplies['create'] };
          }
          throw new CeiError('ALREADY_EXISTS', `domain "${id}" exists with a different config; reconfigure it, or remove it first`);
        }
        // The registry checks ids; an actor created around it must still name launches the provisioner takes.
        if (!DomainName.safeParse(id).success) throw new InvalidArgumentError(`"${id}" is not a domain id: ${DomainName.safeParse(id).error!.issues[0]!.message}`);
        const engine = shell.engines.getEngine(msg.config.engine);
        await checkTargets(ctx, checkEngineConf(engine, msg.config.engine_conf));
        createDomain(d, id, msg, engine, opts);
        runStep(d);
        reply = { created: true, domain: shell.describe(d.state, ctx.now) } satisfies DomainReplies['create'];
        break;
      }
      case 'remove':
        reply = startRemoval(d);
        runStep(d);
        break;
      case 'describe':
        return { state, reply: shell.describe(state, ctx.now) };
      case 'reconfigure': {
        if (state.removing) throw new FailedPreconditionError(`domain "${id}" is being removed`);
        const config = reconfigured(state, msg.patch);
        const engine = shell.engine(config.engine);
        if (!engine) throw new FailedPreconditionError(`decision engine "${config.engine}" is not registered on the node hosting domain "${id}"`);
        const conf = checkEngineConf(engine, config.engine_conf);
        if (msg.patch.engine_conf) await checkTargets(ctx, conf);
        applyReconfigure(d, config);
        reply = reconfigureReply(d.state);
        break;
      }
      case 'subscribe':
        reply = subscribe(d, msg.subscriber);
        break;
      case 'unsubscribe':
        reply = unsubscribe(d, msg.subscriber);
        break;
      case 'heartbeat': {
        const r = applyHeartbeat(d, msg);
        if (r.verdict !== 'unknown') shell.heard(id, msg.instance_id, ctx.now, msg);
        reply = r;
        if (d.lost || r.verdict === 'zombie') runStep(d);
        break;
      }
      case 'instances.changed':
        applyReports(d, msg.instances as InstanceView[]);
        if (d.lost) runStep(d);
        break;
      case 'members.changed':
      case 'tick':
        runStep(d);
        break;
    }
    finish(d, ctx);
    return { state: d.state, reply };
  }

  const domain = defineActor<DomainState>({
    name: DOMAIN_TYPE,
    placement: 'control',
    // A domain must keep ticking while nobody writes to it.
    idleMs: 0,
    initialState: () => emptyDomainState(),
    validate: messageValidator(DomainMessageSchema),
    onActivate(state, ctx) {
      if (!isConfigured(state)) return state;
      // Timers are persisted, but the interval may have changed with the options of this node.
      ctx.every('tick', tickMsOf(state.config, opts), { op: 'tick' });
      shell.track(state);
      return state;
    },
    async handle(state, message, ctx) {
      const next = await roleTurn(state, ctx, async () => {
        const msg = parseDomainMessage(message);
        try {
          return await domainTurn(state, msg, ctx);
        } catch (err) {
          if (msg.op === 'tick' || msg.op === 'instances.changed' || msg.op === 'members.changed') {
            env.log.error({ domain: ctx.self.id, op: msg.op, err: errorMessage(err) }, 'domain turn refused its own message');
          }
          throw err;
        }
      });
      if (!isConfigured(next)) {
        shell.forget(ctx.self.id);
        ctx.stop();
      } else {
        shell.track(next);
        if (!next.removing) shell.readSensors(next);
      }
      return next;
    },
  });

  /** Asks a domain in a registry turn; its refusal comes back as the CeiError it raised. */
  async function askDomain<Op extends keyof DomainReplies>(ctx: ActorContext, id: string, message: { op: Op } & Record<string, unknown>): Promise<DomainReplies[Op]> {
    try {
      return unwrapReply<DomainReplies[Op]>(await ctx.ask(domainRef(id), message, opts.askTimeoutMs), `epum/${id}`);
    } catch (err) {
      throw asCeiError(err, `asking domain "${id}"`);
    }
  }

  const summaryOf = (dd: DomainDescription): DomainSummary => ({
    id: dd.id,
    engine: dd.config.engine,
    status: dd.status,
    generation: dd.generation,
    created_at: dd.created_at,
    ...(dd.definition !== undefined && { definition: dd.definition }),
  });

  async function registryTurn(state: RegistryState, msg: RegistryMessage, ctx: ActorContext): Promise<{ state: RegistryState; reply: unknown }> {
    switch (msg.op) {
      case 'domain.add': {
        checkAddable(state, msg.id);
        const config = resolveConfig(state, msg);
        const r = await askDomain(ctx, msg.id, { op: 'create', config, ...(msg.definition !== undefined && { definition: msg.definition }) });
        return { state: listDomain(state, summaryOf(r.domain)), reply: r };
      }
      case 'domain.remove': {
        domainEntry(state, msg.id);
        const r = await askDomain(ctx, msg.id, { op: 'remove' });
        return { state: markRemoving(state, msg.id), reply: r };
      }
      case 'domain.list':
        return { state, reply: { domains: listDomains(state) } };
      case 'domain.get':
        return { state, reply: domainEntry(state, msg.id) };
      case 'domain.registered': {
        const old = Object.hasOwn(state.domains, msg.id) ? state.domains[msg.id] : undefined;
        if (old?.generation === msg.generation) return { state, reply: null };
        const summary: DomainSummary = { id: msg.id, engine: msg.engine, status: 'active', generation: msg.generation, created_at: msg.created_at };
        if (msg.definition !== undefined) summary.definition = msg.definition;
        return { state: listDomain(state, summary), reply: null };
      }
      case 'domain.removed':
        // The domain is done; its actor (and its state) goes now.
        ctx.stop(domainRef(msg.id));
        return { state: unlistDomain(state, msg.id, msg.generation), reply: null };
      default:
        return applyDefinition(state, msg);
    }
  }

  const registry = defineActor<RegistryState>({
    name: EPUM_REGISTRY_REF.type,
    placement: 'control',
    initialState: () => emptyRegistryState(),
    validate: messageValidator(RegistryMessageSchema),
    handle(state, message, ctx) {
      return roleTurn(state, ctx, () => registryTurn(state, parseRegistryMessage(message), ctx));
    },
  });

  return { domain, registry, types: [domain, registry], close: () => shell.close() };
}
