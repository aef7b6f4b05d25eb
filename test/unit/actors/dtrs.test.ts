import { describe, expect, it } from 'vitest';
import { fillTemplate, templateError, templateVars } from '../../../src/actors/dtrs-template.js';
import { DTRS_REF, dtrs, parseDtrsMessage, type LaunchSpec } from '../../../src/actors/dtrs.js';
import { applyDtrs, emptyDtrsState, maskSecret, type DtrsState } from '../../../src/actors/dtrs-registry.js';
import { askRole, unwrapReply } from '../../../src/actors/role-reply.js';
import { CeiError, InvalidArgumentError } from '../../../src/errors.js';
import { defineActor } from '../../../src/runtime/actor-type.js';
import { keys } from '../../../src/runtime/store.js';
import { useTestNodes } from '../../support/runtime-node.js';
import { within } from '../../support/wait.js';

const LOCAL_SITE = { type: 'local', settings: { baseDir: '/var/lib/cei/here', capacity: 4 } };
const SIM_SITE = { type: 'sim', settings: { capacity: 100 } };
const SLEEPER = {
  description: 'sleeps',
  sites: {
    here: { args: ['--tag', '${name}', 'literal $${HOME}'], env: { WHO: '${who}', FIXED: 'x' }, slots: 2 },
    sim: { boot_latency_ms: 50, failure_rate: 0.25 },
  },
};
const SECRET = 'AKIAIOSFODNN7EXAMPLE';

/** Applies messages in order (each checked by the schema first), returning the final state and the last reply. */
function run(messages: unknown[], state: DtrsState = emptyDtrsState(), reveal = false): { state: DtrsState; reply: any } {
  let reply: unknown;
  for (const m of messages) ({ state, reply } = applyDtrs(state, parseDtrsMessage(m), { revealCredentials: reveal }));
  return { state, reply };
}

/** The CeiError `fn` throws (fails the test when it throws nothing). */
function refusal(fn: () => unknown): CeiError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CeiError);
    return err as CeiError;
  }
  throw new Error('expected a refusal');
}

const seeded = (): DtrsState =>
  run([
    { op: 'site.add', name: 'here', definition: LOCAL_SITE },
    { op: 'site.add', name: 'sim', definition: SIM_SITE },
    { op: 'dt.add', name: 'sleeper', definition: SLEEPER },
  ]).state;

describe('dtrs templates', () => {
  it('fills ${var} from the variables, keeps $${ as a literal ${ and other $ as they are', () => {
    expect(fillTemplate('a-${x}-${y}-${x}', { x: '1', y: '2' })).toEqual({ value: 'a-1-2-1' });
    expect(fillTemplate('$${HOME} costs $5 ${x}', { x: 'now' })).toEqual({ value: '${HOME} costs $5 now' });
    expect(fillTemplate('plain', {})).toEqual({ value: 'plain' });
  });

  it('names every missing variable once, and never reads inherited properties as variables', () => {
    expect(fillTemplate('${a}${b}${a}${c}', { b: '' })).toEqual({ missing: ['a', 'c'] });
    expect(fillTemplate('${constructor}', {})).toEqual({ missing: ['constructor'] });
  });

  it.each([
    ['unterminated', 'x ${name', /unterminated "\$\{" at position 2/],
    ['a bad name', '${1x}', /"\$\{1x\}" is not a variable name/],
    ['an empty name', '${}', /is not a variable name/],
  ])('rejects %s', (_, template, reason) => {
    expect(templateError(template)).toMatch(reason);
    expect(() => fillTemplate(template, {})).toThrow(/malformed template/);
  });

  it('lists the variables a template uses', () => {
    expect(templateVars('${b} ${a} ${b} $${c}')).toEqual(['b', 'a']);
    expect(templateError('${ok_1} $${not}')).toBeUndefined();
  });
});

describe('dtrs message schema', () => {
  it.each<[string, unknown, RegExp]>([
    ['an unknown op', { op: 'dt.explode', name: 'x' }, /^op: must be one of "dt.add",/],
    ['a bad name', { op: 'dt.describe', name: 'no spaces' }, /^name: must be 1-63 letters/],
    ['a missing name', { op: 'site.describe' }, /^name: expected string, received undefined/],
    ['an unknown field', { op: 'dt.list', extra: 1 }, /^unknown field "extra"/],
    ['a DT without sites', { op: 'dt.add', name: 'x', definition: { sites: {} } }, /^definition\.sites: must map at least one site/],
    ['zero slots', { op: 'dt.add', name: 'x', definition: { sites: { s: { slots: 0 } } } }, /^definition\.sites\.s\.slots: must be a whole number >= 1/],
    ['fractional slots', { op: 'dt.add', name: 'x', definition: { sites: { s: { slots: 1.5 } } } }, /definition\.sites\.s\.slots: must be a whole number/],
    ['a failure rate above 1', { op: 'dt.add', name: 'x', definition: { sites: { s: { failure_rate: 2 } } } }, /definition\.sites\.s\.failure_rate: must be between 0 and 1/],
    ['a parameter no driver takes', { op: 'dt.add', name: 'x', definition: { sites: { s: { cpus: 2 } } } }, /^definition\.sites\.s: unknown field "cpus"/],
    ['a non-string arg', { op: 'dt.add', name: 'x', definition: { sites: { s: { args: [1] } } } }, /^definition\.sites\.s\.args\[0\]: expected string, received number/],
    ['a malformed template', { op: 'dt.add', name: 'x', definition: { sites: { s: { args: ['${oops'] } } } }, /^definition\.sites\.s\.args\[0\]: bad template: unterminated/],
    ['a bad env name', { op: 'dt.add', name: 'x', definition: { sites: { s: { env: { 'A-B': 'v' } } } } }, /^definition\.sites\.s\.env\.A-B: bad name: must be an environment variable name/],
    ['a bad site name in a DT', { op: 'dt.add', name: 'x', definition: { sites: { 'a b': {} } } }, /^definition\.sites\.a b: bad name: must be 1-63/],
    ['an unknown site type', { op: 'site.add', name: 's', definition: { type: 'ec2' } }, /^definition\.type: must be one of "local", "sim"/],
    ['settings that are not an object', { op: 'site.add', name: 's', definition: { type: 'sim', settings: [1] } }, /^definition\.settings: must be an object of driver settings/],
    ['empty credentials', { op: 'credentials.add', site: 's', credentials: {} }, /^credentials: must hold at least one key/],
    ['an empty secret', { op: 'credentials.add', site: 's', credentials: { key: '' } }, /^credentials\.key: must not be empty/],
    ['a bad variable name', { op: 'lookup', dt: 'd', site: 's', vars: { '1x': 'v' } }, /^vars\.1x: bad name: must be a variable name/],
    ['a non-object', 'dt.list', /expected object, received string/],
  ])('refuses %s, naming the field', (_, message, reason) => {
    const err = refusal(() => parseDtrsMessage(message));
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect(err.message).toMatch(reason);
    expect(dtrs.validate!(message)).toBe(err.message);
  });

  it('names every bad field at once', () => {
    const err = refusal(() => parseDtrsMessage({ op: 'dt.add', name: 'x', definition: { sites: { s: { slots: 0, args: 'a' } } } }));
    expect(err.message).toMatch(/args: expected array.*; .*slots: must be a whole number >= 1/);
  });

  it('accepts a full definition and fills defaults only where the protocol has them', () => {
    expect(dtrs.validate!({ op: 'dt.add', name: 'sleeper', definition: SLEEPER })).toBeUndefined();
    expect(parseDtrsMessage({ op: 'lookup', dt: 'd', site: 's' })).toEqual({ op: 'lookup', dt: 'd', site: 's', vars: {} });
    expect(parseDtrsMessage({ op: 'site.add', name: 's', definition: { type: 'sim' } })).toEqual({ op: 'site.add', name: 's', definition: { type: 'sim', settings: {} } });
  });
});

describe('dtrs registry logic', () => {
  it('adds, describes, lists, updates and removes deployable types', () => {
    let state = seeded();
    expect(run([{ op: 'dt.describe', name: 'sleeper' }], state).reply).toEqual({ name: 'sleeper', version: 1, definition: SLEEPER });
    const changed = { sites: { here: { slots: 3 } } };
    ({ state } = run([{ op: 'dt.update', name: 'sleeper', definition: changed }], state));
    const again = run([{ op: 'dt.update', name: 'sleeper', definition: changed }], state);
    expect(again.reply.version).toBe(2);
    state = run([{ op: 'dt.add', name: 'b', definition: { sites: { sim: {} } } }], again.state).state;
    expect(run([{ op: 'dt.list' }], state).reply.dts.map((d: { name: string; version: number }) => [d.name, d.version])).toEqual([
      ['b', 1],
      ['sleeper', 2],
    ]);
    const removed = run([{ op: 'dt.remove', name: 'sleeper' }], state);
    expect(removed.reply).toEqual({ removed: 'sleeper' });
    expect(refusal(() => run([{ op: 'dt.describe', name: 'sleeper' }], removed.state)).code).toBe('NOT_FOUND');
  });

  it('makes add idempotent for an identical definition (whatever the key order) and refuses a different one', () => {
    const state = seeded();
    const reordered = { sites: { sim: SLEEPER.sites.sim, here: SLEEPER.sites.here }, description: 'sleeps' };
    const same = run([{ op: 'dt.add', name: 'sleeper', definition: reordered }], state);
    expect(same.reply).toMatchObject({ created: false, record: { version: 1 } });
    expect(same.state).toBe(state);
    const err = refusal(() => run([{ op: 'dt.add', name: 'sleeper', definition: { sites: { here: {} } } }], state));
    expect(err.code).toBe('ALREADY_EXISTS');
    expect(err.message).toMatch(/deployable type "sleeper" exists with a different definition \(version 1\)/);
    expect(refusal(() => run([{ op: 'site.add', name: 'here', definition: SIM_SITE }], state)).code).toBe('ALREADY_EXISTS');
  });

  it('answers NOT_FOUND for updating or removing what does not exist', () => {
    const state = seeded();
    for (const m of [
      { op: 'dt.update', name: 'nope', definition: { sites: { here: {} } } },
      { op: 'dt.remove', name: 'nope' },
      { op: 'site.update', name: 'nope', definition: LOCAL_SITE },
      { op: 'site.remove', name: 'nope' },
      { op: 'credentials.update', site: 'here', credentials: { k: 'v' } },
      { op: 'credentials.remove', site: 'here' },
      { op: 'credentials.describe', site: 'here' },
    ]) {
      expect(refusal(() => run([m], state)).code, JSON.stringify(m)).toBe('NOT_FOUND');
    }
  });

  it('refuses a DT that maps an unregistered site, or gives a site parameters its driver does not take', () => {
    const state = seeded();
    const unknown = refusal(() => run([{ op: 'dt.add', name: 'x', definition: { sites: { ec2: {} } } }], state));
    expect(unknown.code).toBe('NOT_FOUND');
    expect(unknown.message).toBe('deployable type "x" maps site "ec2", which is not registered');
    const wrong = refusal(() => run([{ op: 'dt.add', name: 'x', definition: { sites: { sim: { args: ['a'], env: {} } } } }], state));
    expect(wrong.code).toBe('INVALID_ARGUMENT');
    expect(wrong.message).toBe('definition.sites.sim: "args", "env" are not settings of a sim site (it takes slots, boot_latency_ms, failure_rate)');
    expect(refusal(() => run([{ op: 'dt.update', name: 'sleeper', definition: { sites: { here: { failure_rate: 0.1 } } } }], state)).code).toBe(
      'INVALID_ARGUMENT',
    );
  });

  it('refuses to remove a site a DT uses; once unused, removes it with its credentials', () => {
    let state = run([{ op: 'credentials.add', site: 'here', credentials: { key: SECRET } }], seeded()).state;
    const err = refusal(() => run([{ op: 'site.remove', name: 'here' }], state));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toMatch(/site "here" is used by deployable types sleeper/);
    state = run([{ op: 'dt.remove', name: 'sleeper' }, { op: 'site.remove', name: 'here' }], state).state;
    expect(Object.keys(state.sites)).toEqual(['sim']);
    expect(state.credentials).toEqual({});
    // Re-adding the site does not bring the old credentials back.
    state = run([{ op: 'site.add', name: 'here', definition: LOCAL_SITE }], state).state;
    expect(run([{ op: 'site.describe', name: 'here' }], state).reply.has_credentials).toBe(false);
  });

  it('refuses a site type change that would leave a DT with parameters the new driver does not take', () => {
    const state = seeded();
    const err = refusal(() => run([{ op: 'site.update', name: 'here', definition: SIM_SITE }], state));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toMatch(/site "here" cannot become a sim site: .*sleeper \(args, env\)/);
    // slots fits both drivers, so a DT that gives only slots lets the site change type.
    const slotsOnly = run([{ op: 'dt.update', name: 'sleeper', definition: { sites: { here: { slots: 2 } } } }, { op: 'site.update', name: 'here', definition: SIM_SITE }], state);
    expect(slotsOnly.reply).toMatchObject({ version: 2, definition: SIM_SITE, used_by: ['sleeper'] });
  });

  it('resolves a launch spec: templates filled, defaults applied, per driver', () => {
    const state = seeded();
    const local = run([{ op: 'lookup', dt: 'sleeper', site: 'here', vars: { name: 'n1', who: 'me', unused: 'x' } }], state).reply as LaunchSpec;
    expect(local).toEqual({
      dt: 'sleeper',
      dt_version: 1,
      site: 'here',
      site_version: 1,
      site_type: 'local',
      site_settings: { baseDir: '/var/lib/cei/here', capacity: 4 },
      params: { args: ['--tag', 'n1', 'literal ${HOME}'], env: { WHO: 'me', FIXED: 'x' }, slots: 2 },
    });
    const sim = run([{ op: 'lookup', dt: 'sleeper', site: 'sim' }], state).reply as LaunchSpec;
    expect(sim).toMatchObject({ site_type: 'sim', site_settings: { capacity: 100 }, params: { slots: 1, boot_latency_ms: 50, failure_rate: 0.25 } });
    const bare = run([{ op: 'dt.add', name: 'bare', definition: { sites: { here: {} } } }, { op: 'lookup', dt: 'bare', site: 'here' }], state).reply;
    expect(bare.params).toEqual({ args: [], env: {}, slots: 1 });
  });

  it('refuses a lookup with a missing variable (naming it and where it is used), an unknown DT, or a site the DT does not map', () => {
    const state = run([{ op: 'site.add', name: 'other', definition: LOCAL_SITE }], seeded()).state;
    const missing = refusal(() => run([{ op: 'lookup', dt: 'sleeper', site: 'here', vars: { who: 'me' } }], state));
    expect(missing.code).toBe('INVALID_ARGUMENT');
    expect(missing.message).toBe('lookup of deployable type "sleeper" at site "here": missing variable "name" (used in args[1]); pass it in vars');
    const both = refusal(() => run([{ op: 'lookup', dt: 'sleeper', site: 'here' }], state));
    expect(both.message).toMatch(/missing variables "name" \(used in args\[1\]\), "who" \(used in env\.WHO\)/);
    const noDt = refusal(() => run([{ op: 'lookup', dt: 'nope', site: 'here' }], state));
    expect([noDt.code, noDt.message]).toEqual(['NOT_FOUND', 'no deployable type "nope"']);
    const unmapped = refusal(() => run([{ op: 'lookup', dt: 'sleeper', site: 'other' }], state));
    expect([unmapped.code, unmapped.message]).toEqual(['NOT_FOUND', 'deployable type "sleeper" has no launch parameters for site "other" (it maps: here, sim)']);
  });

  it('masks credentials in every reply; lookup reveals them only when asked to', () => {
    let state = seeded();
    const added = run([{ op: 'credentials.add', site: 'here', credentials: { key: SECRET, pw: 'short' } }], state);
    state = added.state;
    expect(added.reply).toEqual({ created: true, record: { site: 'here', version: 1, credentials: { key: '****MPLE', pw: '****' } } });
    expect(run([{ op: 'credentials.describe', site: 'here' }], state).reply.credentials).toEqual({ key: '****MPLE', pw: '****' });
    expect(JSON.stringify(run([{ op: 'credentials.list' }], state).reply)).not.toContain(SECRET);
    const lookup = { op: 'lookup', dt: 'sleeper', site: 'here', vars: { name: 'a', who: 'b' } };
    expect(run([lookup], state).reply.credentials).toEqual({ key: '****MPLE', pw: '****' });
    expect(run([lookup], state, true).reply.credentials).toEqual({ key: SECRET, pw: 'short' });
    expect(run([{ op: 'lookup', dt: 'sleeper', site: 'sim' }], state, true).reply.credentials).toBeUndefined();
    expect(refusal(() => run([{ op: 'credentials.add', site: 'nope', credentials: { k: 'v' } }], state)).code).toBe('NOT_FOUND');
    expect(refusal(() => run([{ op: 'credentials.add', site: 'here', credentials: { key: 'other' } }], state)).code).toBe('ALREADY_EXISTS');
    expect(run([{ op: 'credentials.update', site: 'here', credentials: { key: 'other' } }], state).reply.version).toBe(2);
    expect([maskSecret('x'), maskSecret('fifteen-chars!!'), maskSecret('sixteen-chars!!!')]).toEqual(['****', '****', '****s!!!']);
  });

  it('treats names like "constructor" as names, not as members of Object.prototype', () => {
    const state = seeded();
    expect(refusal(() => run([{ op: 'dt.describe', name: 'constructor' }], state)).code).toBe('NOT_FOUND');
    const added = run([{ op: 'dt.add', name: 'constructor', definition: { sites: { here: {} } } }], state);
    expect(added.reply.created).toBe(true);
    expect(refusal(() => run([{ op: 'lookup', dt: 'sleeper', site: 'toString' }], state)).code).toBe('NOT_FOUND');
  });
});

describe('role replies', () => {
  it('unwraps a value, rebuilds a refusal as the CeiError it was, and calls anything else INTERNAL', () => {
    expect(unwrapReply({ ok: true, value: 5 }, 'x/y')).toBe(5);
    const err = refusal(() => unwrapReply({ ok: false, error: { code: 'NOT_FOUND', message: 'gone' } }, 'x/y'));
    expect([err.code, err.message]).toEqual(['NOT_FOUND', 'gone']);
    expect(refusal(() => unwrapReply({ ok: false, error: { code: 'BOGUS', message: 'm' } }, 'x/y')).code).toBe('INTERNAL');
    expect(refusal(() => unwrapReply(null, 'x/y')).message).toMatch(/x\/y gave a reply that is not a role reply/);
  });
});

describe('the dtrs actor on a real store', () => {
  const nodes = useTestNodes();

  /** Asks another actor, as the provisioner will: the registry sees an actor sender. */
  const prober = defineActor<null>({
    name: 'prober',
    initialState: () => null,
    async handle(state, message, ctx) {
      ctx.reply(await ctx.ask(DTRS_REF, message));
      return state;
    },
  });

  const ask = <T>(node: { system: Parameters<typeof askRole>[0] }, message: Record<string, unknown>) =>
    within(askRole<T>(node.system, DTRS_REF, message), `ask ${JSON.stringify(message)}`);

  it('is a control-plane type', () => {
    expect(dtrs.placement).toBe('control');
  });

  it('keeps the registry across a node restart', async () => {
    const node = await nodes.node([dtrs]);
    await ask(node, { op: 'site.add', name: 'here', definition: LOCAL_SITE });
    await ask(node, { op: 'site.add', name: 'sim', definition: SIM_SITE });
    await ask(node, { op: 'dt.add', name: 'sleeper', definition: SLEEPER });
    await node.restart();
    const spec = await ask<LaunchSpec>(node, { op: 'lookup', dt: 'sleeper', site: 'here', vars: { name: 'a', who: 'b' } });
    expect(spec.params).toEqual({ args: ['--tag', 'a', 'literal ${HOME}'], env: { WHO: 'b', FIXED: 'x' }, slots: 2 });
  });

  it('answers a refusal without crashing and without changing its state', async () => {
    const node = await nodes.node([dtrs]);
    await ask(node, { op: 'site.add', name: 'here', definition: LOCAL_SITE });
    const before = await ask(node, { op: 'site.list' });
    await expect(ask(node, { op: 'dt.add', name: 'x', definition: { sites: { ec2: {} } } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(ask(node, { op: 'site.add', name: 'here', definition: SIM_SITE })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    expect(await ask(node, { op: 'site.list' })).toEqual(before);
    const info = await node.system.describe(DTRS_REF);
    expect([info.status, info.restarts, info.deadLetters]).toEqual(['active', 0, 0]);
  });

  it('refuses a malformed message before it is enqueued', async () => {
    const node = await nodes.node([dtrs]);
    const opsBefore = node.store.committer.opsWritten;
    const err = await ask(node, { op: 'dt.add', name: 'x', definition: { sites: { s: { slots: -1 } } } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as Error).message).toBe('message rejected by dtrs: definition.sites.s.slots: must be a whole number >= 1');
    expect(node.store.committer.opsWritten).toBe(opsBefore);
    expect(await node.store.scanKeys(keys.actor(DTRS_REF))).toEqual([]);
  });

  it('gives credentials in full to an actor that asks, and masked to an outside ask', async () => {
    const node = await nodes.node([dtrs, prober]);
    await ask(node, { op: 'site.add', name: 'here', definition: LOCAL_SITE });
    await ask(node, { op: 'site.add', name: 'sim', definition: SIM_SITE });
    await ask(node, { op: 'dt.add', name: 'sleeper', definition: SLEEPER });
    await ask(node, { op: 'credentials.add', site: 'here', credentials: { key: SECRET } });
    const lookup = { op: 'lookup', dt: 'sleeper', site: 'here', vars: { name: 'a', who: 'b' } };
    expect((await ask<LaunchSpec>(node, lookup)).credentials).toEqual({ key: '****MPLE' });
    const viaActor = await within(node.system.ask({ type: 'prober', id: 'p' }, lookup), 'prober ask');
    expect(unwrapReply<LaunchSpec>(viaActor, 'prober').credentials).toEqual({ key: SECRET });
  });
});
