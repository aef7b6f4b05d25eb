/**
 * `overflow`: keep `preserve_n` instances across an ordered list of sites, each holding at most its
 * `size`. The first site is filled first and the rest overflows to the next, in order; when
 * shrinking, the last sites give up instances first, so the domain drifts back toward the preferred
 * sites. Instances are never moved between sites while they work.
 *
 * A site whose launches keep failing (FAILED, REJECTED, RUNNING_FAILED, or any state with the reason
 * IAAS_FULL) is backed off once `failure_threshold` launches in a row have failed: for
 * `backoff_initial` seconds, doubling at every failure after that up to `backoff_max`. While backed
 * off it gets no launches and its share goes to the next sites; its running instances stay. An
 * instance of the site reaching RUNNING ends the streak and resets the backoff.
 *
 * The original engine's attempt at this never took effect (issue 4). Here the failure streak lives
 * in the engine state, keyed by site, and failures are recognised by instance id, so each is counted
 * exactly once however many ticks its record stays in view, and a backoff survives fail-over.
 */
import { z } from 'zod';
import {
  actionsFor,
  census,
  checkConf,
  confObject,
  nonEmptyString,
  pickVictims,
  seconds,
  wholeNumber,
  type ConfCheck,
  type Decision,
  type Engine,
  type EngineInput,
  type EngineInstance,
  type LaunchAction,
} from './engine.js';

const DEFAULT_FAILURE_THRESHOLD = 2;
const DEFAULT_BACKOFF_INITIAL_S = 10;
const DEFAULT_BACKOFF_MAX_S = 300;

const siteSchema = confObject(
  { site: nonEmptyString(), size: wholeNumber(), deployable_type: nonEmptyString().optional() },
  'an object like {"site": name, "size": n}',
);

const schema = confObject({
  preserve_n: wholeNumber(),
  /** For the sites that name none of their own. */
  deployable_type: nonEmptyString().optional(),
  sites: z.array(siteSchema, { error: 'must be a list of {site, size, deployable_type}' }).min(1, { error: 'must list at least one site' }),
  failure_threshold: wholeNumber(1).default(DEFAULT_FAILURE_THRESHOLD),
  backoff_initial: seconds().default(DEFAULT_BACKOFF_INITIAL_S),
  backoff_max: seconds().default(DEFAULT_BACKOFF_MAX_S),
}).superRefine((c, ctx) => {
  const seen = new Set<string>();
  c.sites.forEach((s, k) => {
    if (seen.has(s.site)) ctx.addIssue({ code: 'custom', path: ['sites', k, 'site'], message: `lists site "${s.site}" a second time` });
    seen.add(s.site);
    if (s.deployable_type === undefined && c.deployable_type === undefined) {
      ctx.addIssue({ code: 'custom', path: ['sites', k, 'deployable_type'], message: 'is required when there is no top-level deployable_type' });
    }
  });
  if (!(c.backoff_initial > 0)) ctx.addIssue({ code: 'custom', path: ['backoff_initial'], message: 'must be more than 0 seconds' });
  if (c.backoff_max < c.backoff_initial) {
    ctx.addIssue({ code: 'custom', path: ['backoff_max'], message: `must be at least backoff_initial (${c.backoff_max} < ${c.backoff_initial})` });
  }
}).transform((c) => ({
  ...c,
  // The refinement above guarantees one of the two; '' is never reached.
  sites: c.sites.map((s) => ({ site: s.site, size: s.size, deployable_type: s.deployable_type ?? c.deployable_type ?? '' })),
}));

export type OverflowConf = z.infer<typeof schema>;

/** What the engine remembers about one site's launches. */
export type SiteRecord = {
  /** Failed launches since the last success. */
  failures: number;
  /** The current backoff step, ms; 0 until the first backoff. */
  backoff_ms: number;
  /** While now < retry_at the site gets no launches; null when it was never backed off. */
  retry_at: number | null;
  /** Failed instances already counted in `failures`. */
  failed_seen: string[];
  /** Instances already seen RUNNING, so that only a new one counts as a success. */
  running_seen: string[];
};

export type OverflowState = { sites: { [site: string]: SiteRecord } };

function freshSite(): SiteRecord {
  return { failures: 0, backoff_ms: 0, retry_at: null, failed_seen: [], running_seen: [] };
}

function launchFailed(i: EngineInstance): boolean {
  return i.state === 'FAILED' || i.state === 'REJECTED' || i.state === 'RUNNING_FAILED' || i.state_desc === 'IAAS_FULL';
}

export function isBackedOff(record: SiteRecord, now: number): boolean {
  return record.retry_at !== null && now < record.retry_at;
}

/** Folds one tick's view of a site's instances into its record. */
function observeSite(prev: SiteRecord, site: readonly EngineInstance[], conf: OverflowConf, now: number): SiteRecord {
  const failed = site.filter(launchFailed).map((i) => i.id);
  const running = site.filter((i) => i.state === 'RUNNING').map((i) => i.id);
  const newFailures = failed.filter((id) => !prev.failed_seen.includes(id)).length;
  const succeeded = running.some((id) => !prev.running_seen.includes(id));

  const next: SiteRecord = succeeded
    ? { ...freshSite(), failed_seen: failed, running_seen: running }
    : { ...prev, failed_seen: failed, running_seen: running };
  next.failures += newFailures;
  // Failures that surface during a backoff belong to launches made before it: counted, but they do
  // not extend it. The first failure after it expires doubles it.
  if (newFailures > 0 && next.failures >= conf.failure_threshold && !isBackedOff(next, now)) {
    next.backoff_ms = next.backoff_ms === 0 ? conf.backoff_initial * 1000 : Math.min(conf.backoff_max * 1000, next.backoff_ms * 2);
    next.retry_at = now + next.backoff_ms;
  }
  return next;
}

function decide({ conf, state, instances, now }: EngineInput<OverflowConf, OverflowState>): Decision<OverflowState> {
  const { counted, doomed } = census(instances);
  const destroy: EngineInstance[] = [...doomed];
  const launches: LaunchAction[] = [];

  // Records of sites dropped from the conf go with them; a site added later starts afresh.
  const sites: OverflowState['sites'] = {};
  const live = new Map<string, EngineInstance[]>();
  for (const s of conf.sites) {
    const here = instances.filter((i) => i.site === s.site);
    sites[s.site] = observeSite(state.sites[s.site] ?? freshSite(), here, conf, now);
    const mine = counted.filter((i) => i.site === s.site);
    // A size lowered by reconfigure is honoured at once, like preserve_n.
    const excess = pickVictims(mine, mine.length - s.size);
    destroy.push(...excess);
    live.set(s.site, mine.filter((i) => !excess.includes(i)));
  }
  const known = new Set(conf.sites.map((s) => s.site));
  destroy.push(...counted.filter((i) => !known.has(i.site)));

  let total = 0;
  for (const l of live.values()) total += l.length;
  let deficit = conf.preserve_n - total;

  for (const s of conf.sites) {
    if (deficit <= 0) break;
    if (isBackedOff(sites[s.site]!, now)) continue;
    const add = Math.min(s.size - live.get(s.site)!.length, deficit);
    if (add > 0) {
      launches.push({ type: 'launch', site: s.site, deployable_type: s.deployable_type, count: add, vars: {} });
      deficit -= add;
    }
  }
  for (const s of [...conf.sites].reverse()) {
    if (deficit >= 0) break;
    const victims = pickVictims(live.get(s.site)!, -deficit);
    destroy.push(...victims);
    deficit += victims.length;
  }
  return { actions: actionsFor(destroy, launches), state: { sites } };
}

export const overflowEngine: Engine<OverflowConf, OverflowState> = {
  name: 'overflow',
  validateConf: (conf: unknown): ConfCheck<OverflowConf> => checkConf(schema, conf),
  initialState: (conf) => ({ sites: Object.fromEntries(conf.sites.map((s) => [s.site, freshSite()])) }),
  decide,
};
