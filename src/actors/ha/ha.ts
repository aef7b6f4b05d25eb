/**
 * The HA service's actors: one per service (`ha/<name>`, control placement, sync durability) and the
 * registry (`ha-registry/main`). The protocol is ./protocol.ts, the decisions ./policy.ts; this
 * module is the shell that does the I/O.
 *
 * A service's loop, every tick: outside the turn, it describes each of its processes at the
 * dispatcher it scheduled it through (asks bounded by `askTimeoutMs`) and reads its sensor (the
 * sensor policy's `metric`: `stream:<stream>/<subscription>` or an actor's mailbox depth, as EPU
 * management reads them), and tells itself `observed`. That turn runs the policy; the schedules and
 * terminations it decides are asked of the dispatchers outside the turn too, and their results come
 * back as `scheduled` / `terminated`. So no turn waits on a dispatcher, and nothing the dispatcher
 * does can ask a service back. Upids are `<name>-<n>`, never reused, so a lost schedule is never
 * confused with a later one: a process no dispatcher knows `scheduleGraceMs` after it was scheduled
 * is dropped, and the policy schedules another.
 *
 * The registry asks a service to create and remove itself; a service only tells the registry
 * (`removed`), so there is no ask cycle. A service actor that holds no service answers NOT_FOUND and
 * stops itself.
 */
import { defineActor, type ActorContext, type ActorType } from '../../runtime/actor-type.js';
import { parseRefKey } from '../../runtime/ref.js';
import { CeiError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnavailableError, errorMessage } from '../../errors.js';
import { askRole, roleTurn, unwrapReply } from '../role-reply.js';
import { messageValidator, ResourceName } from '../message-schema.js';
import type { RoleEnv } from '../role-env.js';
import { streamRef, type StreamDescription } from '../stream.js';
import { mailboxRef, streamSubscription } from '../epum/epum.js';
import { isFinal, type ProcessState } from '../dispatcher/states.js';
import type { ProcessRecord } from '../dispatcher/core.js';
import { HA_DEFAULTS, type HaOptions } from './options.js';
import { decide, judgeFailures, type HaProcessState, type HaState, type PolicyParameters, type Sample, type SensorParameters } from './policy.js';
import {
  HA_REGISTRY_REF,
  HA_TYPE,
  HaMessageSchema,
  HaRegistryMessageSchema,
  haRef,
  parseHaConfig,
  parseHaMessage,
  parseHaRegistryMessage,
  parsePolicyParameters,
  type HaConfig,
  type HaDescription,
  type HaMessage,
  type HaMessageOf,
  type HaProcessView,
  type HaRegistryMessage,
  type HaRemoveReply,
  type HaSummary,
} from './protocol.js';

export interface HaServiceState {
  /** Undefined until created (and again once removed). */
  config?: HaConfig;
  status: HaState;
  processes: Record<string, HaProcessView>;
  /** The last final processes, newest last. */
  finals: HaProcessView[];
  next: number;
  samples: Sample[];
  last_value?: number;
  last_scale_at: number;
  failures: number;
  removing: boolean;
  created_at: number;
  last_tick_at?: number;
  last_error?: string;
}

export interface HaRegistryState {
  services: Record<string, HaSummary>;
}

const emptyService = (): HaServiceState => ({ status: 'PENDING', processes: {}, finals: [], next: 0, samples: [], last_scale_at: 0, failures: 0, removing: false, created_at: 0 });

function noSuchService(name: string): NotFoundError {
  return new NotFoundError(`HA service "${name}" does not exist`);
}

function describeService(name: string, s: HaServiceState): HaDescription {
  const d: HaDescription = {
    name,
    state: s.status,
    config: s.config!,
    processes: [...Object.values(s.processes), ...s.finals],
    samples: s.samples,
    failures: s.failures,
    removing: s.removing,
    created_at: s.created_at,
  };
  if (s.last_value !== undefined) d.last_value = s.last_value;
  if (s.last_tick_at !== undefined) d.last_tick_at = s.last_tick_at;
  if (s.last_error !== undefined) d.last_error = s.last_error;
  return d;
}

/** The dispatcher's schedule request for a new process of the service. */
function scheduleRequest(config: HaConfig, upid: string, name: string): Record<string, unknown> {
  const s = config.schedule ?? {};
  return {
    upid,
    definitionId: config.definition_id,
    name,
    ...(config.configuration !== undefined && { configuration: config.configuration }),
    ...(s.constraints !== undefined && { constraints: s.constraints }),
    ...(s.queueing_mode !== undefined && { queueingMode: s.queueing_mode }),
    ...(s.restart_mode !== undefined && { restartMode: s.restart_mode }),
    ...(s.execution_engine !== undefined && { executionEngine: s.execution_engine }),
    ...(s.node_exclusive !== undefined && { nodeExclusive: s.node_exclusive }),
  };
}

/** HA's actor types for a node. */
export interface HaTypes {
  service: ActorType<HaServiceState>;
  registry: ActorType<HaRegistryState>;
  types: ActorType<any>[];
}

/** The service and registry actor types; `env` gives them the node's router and clock. */
export function haTypes(env: RoleEnv, options: Partial<HaOptions> = {}): HaTypes {
  const opts: HaOptions = { ...HA_DEFAULTS, ...options };
  /** Services this node is reading for now (memory only: a read in flight is not started again). */
  const observing = new Set<string>();
  const nonce = Math.random().toString(36).slice(2, 10);
  let counter = 0;

  const tellSelf = (name: string, message: HaMessage): void => {
    env
      .service()
      .tell(haRef(name), message, { messageId: `ha/${name}:${nonce}:${++counter}` })
      .catch((err: unknown) => env.log.warn({ service: name, op: message.op, err: errorMessage(err) }, 'HA service could not tell itself a result'));
  };

  async function readSensor(metric: string): Promise<number | undefined> {
    const sub = streamSubscription(metric);
    if (sub) {
      const d = await askRole<StreamDescription>(env.service(), streamRef(sub.stream), { describe: true }, opts.askTimeoutMs);
      return d.subscriptions.find((x) => x.name === sub.subscription)?.queueLength;
    }
    const ref = mailboxRef(metric);
    return ref ? (await env.service().describe(ref)).mailboxDepth : undefined;
  }

  /** Outside the turn: what the dispatchers say of the service's processes, and the sensor. */
  function observe(name: string, s: HaServiceState): void {
    if (observing.has(name)) return;
    observing.add(name);
    const live = Object.values(s.processes);
    const metric = s.config!.policy === 'sensor' ? (s.config!.policy_parameters as SensorParameters).metric : undefined;
    void (async () => {
      const processes: HaMessageOf<'observed'>['processes'] = [];
      const missing: string[] = [];
      await Promise.all(
        live.map(async (p) => {
          try {
            const r = await askRole<ProcessRecord>(env.service(), parseRefKey(p.dispatcher), { describe: { upid: p.upid } }, opts.askTimeoutMs);
            processes.push({ upid: p.upid, state: r.state, dispatcher: p.dispatcher, ...(r.lastError !== undefined && { lastError: r.lastError }) });
          } catch (err) {
            if (err instanceof CeiError && err.code === 'NOT_FOUND') missing.push(p.upid);
            else env.log.debug({ service: name, upid: p.upid, err: errorMessage(err) }, 'HA service could not describe a process');
          }
        }),
      );
      let sample: number | undefined;
      if (metric !== undefined) {
        try {
          sample = await readSensor(metric);
        } catch (err) {
          env.log.debug({ service: name, metric, err: errorMessage(err) }, 'HA sensor read failed');
        }
      }
      tellSelf(name, { op: 'observed', processes, missing, ...(sample !== undefined && { sample }) });
    })().finally(() => observing.delete(name));
  }

  /** Outside the turn: a dispatcher ask whose result the service is told. */
  function dispatch(name: string, dispatcher: string, message: unknown, result: (error?: string) => HaMessage): void {
    askRole(env.service(), parseRefKey(dispatcher), message, opts.askTimeoutMs).then(
      () => tellSelf(name, result()),
      (err: unknown) => tellSelf(name, result(err instanceof CeiError && err.code === 'NOT_FOUND' ? 'NOT_FOUND' : errorMessage(err))),
    );
  }

  function tickMs(config: HaConfig): number {
    return config.tick_seconds !== undefined ? Math.round(config.tick_seconds * 1000) : opts.tickMs;
  }

  /** Moves a final process out of the live set into the last few shown. */
  function retire(s: HaServiceState, upid: string): void {
    const p = s.processes[upid]!;
    delete s.processes[upid];
    s.finals.push(p);
    if (s.finals.length > opts.finalShown) s.finals.splice(0, s.finals.length - opts.finalShown);
  }

  /** Runs the policy and carries its decision out (asks start after this returns). */
  function apply(name: string, s: HaServiceState, now: number): void {
    const config = s.config!;
    const toTerminate: string[] = [];
    let toSchedule = 0;
    if (s.removing) {
      for (const p of Object.values(s.processes)) if (!p.terminating) toTerminate.push(p.upid);
    } else {
      const d = decide(config.policy, config.policy_parameters as PolicyParameters, {
        processes: Object.values(s.processes).filter((p) => !p.terminating),
        samples: s.samples,
        now,
        lastScaleAt: s.last_scale_at,
        status: s.status,
      });
      s.status = d.status;
      if (d.value !== undefined) s.last_value = d.value;
      if (d.scaled) s.last_scale_at = now;
      toTerminate.push(...d.terminate);
      toSchedule = s.status === 'FAILED' ? 0 : d.schedule;
    }
    for (const upid of toTerminate) {
      const p = s.processes[upid]!;
      p.terminating = true;
      dispatch(name, p.dispatcher, { terminate: { upid } }, (error) => ({ op: 'terminated', upid, ...(error !== undefined && { error }) }));
    }
    for (let i = 0; i < toSchedule; i++) {
      const upid = `${name}-${++s.next}`;
      const dispatcher = leastUsed(config.dispatchers, s);
      s.processes[upid] = { upid, state: 'SCHEDULING', dispatcher, scheduled_at: now, terminating: false };
      dispatch(name, dispatcher, { schedule: scheduleRequest(config, upid, name) }, (error) => ({ op: 'scheduled', upid, ...(error !== undefined && { error }) }));
    }
  }

  /** The dispatcher holding fewest of the service's live processes (the original's least used PD). */
  function leastUsed(dispatchers: string[], s: HaServiceState): string {
    const count = new Map(dispatchers.map((d) => [d, 0]));
    for (const p of Object.values(s.processes)) if (count.has(p.dispatcher)) count.set(p.dispatcher, count.get(p.dispatcher)! + 1);
    return [...count.entries()].sort((a, b) => a[1] - b[1])[0]![0];
  }

  function failed(s: HaServiceState, n: number, reachedRunning: boolean, config: HaConfig): void {
    if (n === 0 && !reachedRunning) return;
    const j = judgeFailures(s.failures, n, reachedRunning, config.failure_bound);
    s.failures = j.failures;
    if (j.failed) s.status = 'FAILED';
  }

  function observed(name: string, s: HaServiceState, msg: HaMessageOf<'observed'>, now: number): void {
    const config = s.config!;
    let failures = 0;
    let reachedRunning = false;
    for (const o of msg.processes) {
      const p = s.processes[o.upid];
      if (!p) continue;
      const before: HaProcessState = p.state;
      p.state = o.state;
      if (o.lastError !== undefined) p.last_error = o.lastError;
      if (o.state === 'RUNNING' && before !== 'RUNNING') reachedRunning = true;
      if (isFinal(o.state as ProcessState)) {
        if ((o.state === 'FAILED' || o.state === 'REJECTED') && !p.terminating) failures++;
        retire(s, o.upid);
      }
    }
    for (const upid of msg.missing) {
      const p = s.processes[upid];
      if (!p) continue;
      if (p.state === 'SCHEDULING' && now - p.scheduled_at < opts.scheduleGraceMs) continue;
      p.state = 'TERMINATED';
      p.last_error = 'no dispatcher knows it';
      retire(s, upid);
    }
    failed(s, failures, reachedRunning, config);
    if (msg.sample !== undefined) {
      s.samples.push({ time: now, value: msg.sample });
      const period = config.policy === 'sensor' ? (config.policy_parameters as SensorParameters).sample_period * 1000 : 0;
      const keep = s.samples.filter((x) => x.time >= now - period);
      s.samples = keep.slice(-opts.maxSamples);
    }
    apply(name, s, now);
  }

  async function serviceTurn(state: HaServiceState, msg: HaMessage, ctx: ActorContext): Promise<{ state: HaServiceState; reply: unknown }> {
    const name = ctx.self.id;
    if (state.config === undefined && msg.op !== 'create') {
      if (msg.op === 'tick' || msg.op === 'observed' || msg.op === 'scheduled' || msg.op === 'terminated') return { state, reply: null };
      throw noSuchService(name);
    }
    // Handlers change a copy; a refusal leaves the state as it was.
    const s: HaServiceState = structuredClone(state);
    switch (msg.op) {
      case 'create': {
        const config = parseHaConfig(msg.config);
        if (state.config !== undefined) {
          if (JSON.stringify(state.config) === JSON.stringify(config) && !state.removing) return { state, reply: describeService(name, state) };
          throw new CeiError('ALREADY_EXISTS', state.removing ? `HA service "${name}" is being removed` : `HA service "${name}" exists with a different config; reconfigure it, or remove it first`);
        }
        const named = ResourceName.safeParse(name);
        if (!named.success) throw new InvalidArgumentError(`"${name}" is not an HA service name: ${named.error.issues[0]!.message}`);
        Object.assign(s, emptyService(), { config, created_at: ctx.now });
        ctx.every('tick', tickMs(config), { op: 'tick' });
        apply(name, s, ctx.now);
        return { state: s, reply: describeService(name, s) };
      }
      case 'describe':
        return { state, reply: describeService(name, state) };
      case 'reconfigure': {
        if (state.removing) throw new FailedPreconditionError(`HA service "${name}" is being removed`);
        const config = s.config!;
        const policy = msg.policy ?? config.policy;
        const merged = policy === config.policy ? { ...config.policy_parameters, ...(msg.policy_parameters ?? {}) } : (msg.policy_parameters ?? {});
        config.policy_parameters = parsePolicyParameters(policy, merged);
        config.policy = policy;
        // As the original: a new target makes a READY or STEADY service READY; FAILED waits for this.
        if (s.status === 'FAILED') {
          s.status = 'PENDING';
          s.failures = 0;
        } else if (s.status === 'STEADY') s.status = 'READY';
        s.last_scale_at = 0;
        return { state: s, reply: describeService(name, s) };
      }
      case 'remove': {
        const terminating = Object.keys(s.processes).length;
        s.removing = true;
        if (terminating === 0) return finishRemoval(name, ctx, { name, terminating });
        apply(name, s, ctx.now);
        return { state: s, reply: { name, terminating } satisfies HaRemoveReply };
      }
      case 'tick':
        s.last_tick_at = ctx.now;
        observe(name, s);
        return { state: s, reply: null };
      case 'observed':
        observed(name, s, msg, ctx.now);
        if (s.removing && Object.keys(s.processes).length === 0) return finishRemoval(name, ctx, null);
        return { state: s, reply: null };
      case 'scheduled': {
        const p = s.processes[msg.upid];
        if (p && msg.error !== undefined) {
          p.state = 'REJECTED';
          p.last_error = msg.error;
          s.last_error = `scheduling ${msg.upid}: ${msg.error}`;
          retire(s, msg.upid);
          failed(s, 1, false, s.config!);
        }
        return { state: s, reply: null };
      }
      case 'terminated': {
        const p = s.processes[msg.upid];
        if (p && msg.error !== undefined) {
          if (msg.error === 'NOT_FOUND') retire(s, msg.upid);
          else {
            // Asked again on the next decision.
            p.terminating = false;
            s.last_error = `terminating ${msg.upid}: ${msg.error}`;
          }
        }
        return { state: s, reply: null };
      }
    }
  }

  function finishRemoval(name: string, ctx: ActorContext, reply: unknown): { state: HaServiceState; reply: unknown } {
    ctx.cancelTimer('tick');
    ctx.tell(HA_REGISTRY_REF, { op: 'removed', name });
    return { state: emptyService(), reply };
  }

  const service = defineActor<HaServiceState>({
    name: HA_TYPE,
    placement: 'control',
    durability: 'sync',
    // A service must keep ticking while nobody writes to it.
    idleMs: 0,
    initialState: () => emptyService(),
    validate: messageValidator(HaMessageSchema),
    onActivate(state, ctx) {
      if (state.config !== undefined) ctx.every('tick', tickMs(state.config), { op: 'tick' });
      return state;
    },
    async handle(state, message, ctx) {
      const next = await roleTurn(state, ctx, () => serviceTurn(state, parseHaMessage(message), ctx));
      if (next.config === undefined) ctx.stop();
      return next;
    },
  });

  async function askService<T>(ctx: ActorContext, name: string, message: unknown): Promise<T> {
    try {
      return unwrapReply<T>(await ctx.ask(haRef(name), message, opts.askTimeoutMs), `ha/${name}`);
    } catch (err) {
      if (err instanceof CeiError) throw err;
      throw new UnavailableError(`asking HA service "${name}": ${errorMessage(err)}`, { cause: err });
    }
  }

  function entry(state: HaRegistryState, name: string): HaSummary {
    const e = Object.hasOwn(state.services, name) ? state.services[name] : undefined;
    if (!e) throw noSuchService(name);
    return e;
  }

  async function registryTurn(state: HaRegistryState, msg: HaRegistryMessage, ctx: ActorContext): Promise<{ state: HaRegistryState; reply: unknown }> {
    switch (msg.op) {
      case 'create': {
        const existing = Object.hasOwn(state.services, msg.name) ? state.services[msg.name] : undefined;
        if (existing?.removing) throw new CeiError('ALREADY_EXISTS', `HA service "${msg.name}" is being removed; create it again once it is gone`);
        parseHaConfig(msg.config);
        const d = await askService<HaDescription>(ctx, msg.name, { op: 'create', config: msg.config });
        const summary: HaSummary = { name: msg.name, policy: d.config.policy, definition_id: d.config.definition_id, created_at: d.created_at, removing: false };
        return { state: { services: { ...state.services, [msg.name]: summary } }, reply: d };
      }
      case 'list':
        return { state, reply: { services: Object.values(state.services).sort((a, b) => a.name.localeCompare(b.name)) } };
      case 'get':
        return { state, reply: entry(state, msg.name) };
      case 'remove': {
        const e = entry(state, msg.name);
        const r = await askService<HaRemoveReply | null>(ctx, msg.name, { op: 'remove' });
        const services = { ...state.services };
        // A service with nothing to terminate is gone already (its `removed` is on the way).
        services[msg.name] = { ...e, removing: true };
        return { state: { services }, reply: r ?? { name: msg.name, terminating: 0 } };
      }
      case 'removed': {
        const services = { ...state.services };
        delete services[msg.name];
        return { state: { services }, reply: null };
      }
    }
  }

  const registry = defineActor<HaRegistryState>({
    name: HA_REGISTRY_REF.type,
    placement: 'control',
    durability: 'sync',
    initialState: () => ({ services: {} }),
    validate: messageValidator(HaRegistryMessageSchema),
    handle(state, message, ctx) {
      return roleTurn(state, ctx, () => registryTurn(state, parseHaRegistryMessage(message), ctx));
    },
  });

  return { service, registry, types: [service, registry] };
}
