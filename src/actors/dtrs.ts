/**
 * The deployable type registry (`dtrs/registry`): deployable types, the sites they can be launched
 * at, and each site's credentials; `lookup` resolves a type at a site into a launch spec.
 *
 * The protocol is the zod schema below: it is the type's `validate`, so a message that does not fit
 * is refused before it is enqueued, and the gRPC service runs the same parse to give the same reason.
 * What depends on the registry's contents (does the site exist, do a type's parameters suit the
 * site's driver) is checked in the turn by ./dtrs-registry.ts and refused with an error reply.
 *
 * One actor holds the whole registry: it is small, every change must see the rest of it (a type may
 * only map registered sites), and one well-known actor is found from any node and fails over with
 * its state like any other.
 */
import { z } from 'zod';
import { defineActor } from '../runtime/actor-type.js';
import type { ActorRef } from '../runtime/ref.js';
import { InvalidArgumentError } from '../errors.js';
import { VAR_NAME, templateError } from './dtrs-template.js';
import { zodReason } from './zod-reason.js';
import { applyDtrs, emptyDtrsState, type DtrsState } from './dtrs-registry.js';
import { roleTurn } from './role-reply.js';

/** The registry's one actor: every node's Dtrs service asks it, wherever the cluster placed it. */
export const DTRS_REF: ActorRef = { type: 'dtrs', id: 'registry' };

// --- definitions -----------------------------------------------------------------------------------

const NAME_RULE = 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit';
const Name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, { error: NAME_RULE });
const Description = z.string().max(1024, { error: 'must be at most 1024 characters' });
const wholeAtLeast = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .number()
    .int({ error: `must be a whole number >= ${min}` })
    .min(min, { error: `must be a whole number >= ${min}` })
    .max(max, { error: `must be at most ${max}` });

/** A string that may hold `${var}` templates; malformed ones are refused when the type is stored. */
const TemplateString = z
  .string()
  .max(4096, { error: 'must be at most 4096 characters' })
  .superRefine((s, ctx) => {
    const reason = templateError(s);
    if (reason) ctx.addIssue({ code: 'custom', message: `bad template: ${reason}` });
  });

const EnvName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be an environment variable name (letters, digits, _)' });

/**
 * A site's driver settings, kept as given and handed to the site's IaaS driver, which checks them
 * with its own schema (src/iaas) when the provisioner creates it: the driver owns what its settings
 * mean, and a second copy of its schema here would drift from it. The registry checks only that
 * they are a JSON object.
 */
const SiteSettings = z.record(z.string(), z.unknown(), { error: 'must be an object of driver settings' });

export const SiteDefinitionSchema = z.strictObject({
  type: z.enum(['local', 'sim'], { error: 'must be one of "local", "sim"' }),
  description: Description.optional(),
  settings: SiteSettings.default({}),
});
export type SiteDefinition = z.infer<typeof SiteDefinitionSchema>;
export type SiteType = SiteDefinition['type'];

/**
 * A type's launch parameters at one site. The schema accepts the parameters of every driver; which
 * of them a site takes depends on its type, checked against the registry (SITE_PARAMS in
 * ./dtrs-registry.ts). Templates are allowed in string values only, so a number is always a number.
 */
export const DtSiteParamsSchema = z.strictObject({
  /** local: extra arguments of the worker's `cei node` command line. */
  args: z.array(TemplateString).max(256, { error: 'must have at most 256 entries' }).optional(),
  /** local: extra environment of the worker process. */
  env: z.record(EnvName, TemplateString).optional(),
  /** local and sim: process slots the instance's execution engine offers. */
  slots: wholeAtLeast(1, 1024).optional(),
  /** sim: how long a simulated instance takes from launch to RUNNING. */
  boot_latency_ms: wholeAtLeast(0, 3_600_000).optional(),
  /** sim: the probability that a simulated instance fails instead of reaching RUNNING. */
  failure_rate: z.number().min(0, { error: 'must be between 0 and 1' }).max(1, { error: 'must be between 0 and 1' }).optional(),
});
export type DtSiteParams = z.infer<typeof DtSiteParamsSchema>;

export const DtDefinitionSchema = z.strictObject({
  description: Description.optional(),
  sites: z
    .record(Name, DtSiteParamsSchema)
    .refine((sites) => Object.keys(sites).length > 0, { error: 'must map at least one site' }),
});
export type DtDefinition = z.infer<typeof DtDefinitionSchema>;

/** A site's credentials: named secrets handed in full to the IaaS driver only (see ./dtrs-registry.ts). */
export const CredentialsSchema = z
  .record(
    z.string().regex(/^[A-Za-z][A-Za-z0-9_.-]{0,62}$/, { error: 'must be 1-63 letters, digits, "_", "." or "-", starting with a letter' }),
    z.string().min(1, { error: 'must not be empty' }).max(4096, { error: 'must be at most 4096 characters' }),
  )
  .refine((c) => Object.keys(c).length > 0, { error: 'must hold at least one key' })
  .refine((c) => Object.keys(c).length <= 32, { error: 'must hold at most 32 keys' });
export type Credentials = z.infer<typeof CredentialsSchema>;

export const VarsSchema = z
  .record(
    z.string().regex(VAR_NAME, { error: 'must be a variable name (letters, digits, _; not starting with a digit)' }),
    z.string().max(4096, { error: 'must be at most 4096 characters' }),
  )
  .refine((v) => Object.keys(v).length <= 256, { error: 'must hold at most 256 variables' });

// --- the protocol ----------------------------------------------------------------------------------

const named = <Op extends string>(op: Op) => z.strictObject({ op: z.literal(op), name: Name });

export const DtrsMessageSchema = z.discriminatedUnion('op', [
  z.strictObject({ op: z.literal('dt.add'), name: Name, definition: DtDefinitionSchema }),
  z.strictObject({ op: z.literal('dt.update'), name: Name, definition: DtDefinitionSchema }),
  named('dt.describe'),
  named('dt.remove'),
  z.strictObject({ op: z.literal('dt.list') }),
  z.strictObject({ op: z.literal('site.add'), name: Name, definition: SiteDefinitionSchema }),
  z.strictObject({ op: z.literal('site.update'), name: Name, definition: SiteDefinitionSchema }),
  named('site.describe'),
  named('site.remove'),
  z.strictObject({ op: z.literal('site.list') }),
  z.strictObject({ op: z.literal('credentials.add'), site: Name, credentials: CredentialsSchema }),
  z.strictObject({ op: z.literal('credentials.update'), site: Name, credentials: CredentialsSchema }),
  z.strictObject({ op: z.literal('credentials.describe'), site: Name }),
  z.strictObject({ op: z.literal('credentials.remove'), site: Name }),
  z.strictObject({ op: z.literal('credentials.list') }),
  z.strictObject({ op: z.literal('lookup'), dt: Name, site: Name, vars: VarsSchema.default({}) }),
]);

/** Every message the registry accepts (as an ask; each is answered with a RoleReply). */
export type DtrsMessage = z.infer<typeof DtrsMessageSchema>;

/** The message as the registry will see it (defaults filled), or InvalidArgumentError naming each bad field. */
export function parseDtrsMessage(message: unknown): DtrsMessage {
  const r = DtrsMessageSchema.safeParse(message);
  if (!r.success) throw new InvalidArgumentError(zodReason(r.error));
  return r.data;
}

// --- replies ---------------------------------------------------------------------------------------

export interface DtRecord {
  name: string;
  /** 1 when added; bumped by each update that changes the definition. */
  version: number;
  definition: DtDefinition;
}

export interface SiteRecord {
  name: string;
  version: number;
  definition: SiteDefinition;
  /** The deployable types that map this site (which is why it cannot be removed while they do). */
  used_by: string[];
  has_credentials: boolean;
}

export interface CredentialsRecord {
  site: string;
  version: number;
  /** Every value masked: credentials never leave the registry in full through a listing. */
  credentials: Credentials;
}

/** Parameters of a local launch, templates filled and defaults applied. */
export interface LocalLaunchParams {
  args: string[];
  env: Record<string, string>;
  slots: number;
}

/** Parameters of a simulated launch, defaults applied. */
export interface SimLaunchParams {
  slots: number;
  boot_latency_ms: number;
  failure_rate: number;
}

/** What `lookup` resolves: everything a driver needs to launch one instance of `dt` at `site`. */
export type LaunchSpec = {
  dt: string;
  dt_version: number;
  site: string;
  site_version: number;
  /**
   * The site's credentials: in full only when an actor asked (the provisioner, which hands them to
   * the driver); masked when the ask came from outside, e.g. through the public API.
   */
  credentials?: Credentials;
  /** The site's driver settings, as registered. */
  site_settings: SiteDefinition['settings'];
} & ({ site_type: 'local'; params: LocalLaunchParams } | { site_type: 'sim'; params: SimLaunchParams });

export type AddReply<R> = { created: boolean; record: R };

/** The reply value of each message, by op. */
export interface DtrsReplies {
  'dt.add': AddReply<DtRecord>;
  'dt.update': DtRecord;
  'dt.describe': DtRecord;
  'dt.remove': { removed: string };
  'dt.list': { dts: DtRecord[] };
  'site.add': AddReply<SiteRecord>;
  'site.update': SiteRecord;
  'site.describe': SiteRecord;
  'site.remove': { removed: string };
  'site.list': { sites: SiteRecord[] };
  'credentials.add': AddReply<CredentialsRecord>;
  'credentials.update': CredentialsRecord;
  'credentials.describe': CredentialsRecord;
  'credentials.remove': { removed: string };
  'credentials.list': { credentials: CredentialsRecord[] };
  lookup: LaunchSpec;
}

// --- the actor -------------------------------------------------------------------------------------

export const dtrs = defineActor<DtrsState>({
  name: 'dtrs',
  placement: 'control',
  initialState: () => emptyDtrsState(),
  validate(message) {
    const r = DtrsMessageSchema.safeParse(message);
    return r.success ? undefined : zodReason(r.error);
  },
  handle(state, message, ctx) {
    return roleTurn(state, ctx, () =>
      // Parsed again (validate only checks) to fill defaults; a message stored before a schema change
      // that no longer parses is refused by the parse's InvalidArgumentError rather than crashing.
      applyDtrs(state, parseDtrsMessage(message), { revealCredentials: ctx.sender !== undefined }),
    );
  },
});
