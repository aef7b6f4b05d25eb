/**
 * The public Dtrs service. It holds no registry logic: it turns each request into a dtrs message,
 * checks it with the registry's own schema (so bad input is refused here, naming the field, without
 * a hop to the registry's node), asks the one registry actor through the ActorService (the cluster's
 * router, which finds the actor's owner from any node and follows it through a fail-over), and maps
 * the reply to the proto. A refusal from the registry arrives as the CeiError it raised.
 */
import type { DtrsHandlers } from '../generated/cei/v1/Dtrs.js';
import type { Dt } from '../generated/cei/v1/Dt.js';
import type { Site } from '../generated/cei/v1/Site.js';
import type { Credentials } from '../generated/cei/v1/Credentials.js';
import type { LaunchSpec as LaunchSpecProto } from '../generated/cei/v1/LaunchSpec.js';
import type { ActorService } from '../runtime/actor-service.js';
import type { Logger } from '../runtime/logger.js';
import {
  DTRS_REF,
  parseDtrsMessage,
  type CredentialsRecord,
  type DtRecord,
  type DtrsReplies,
  type LaunchSpec,
  type SiteRecord,
} from '../actors/dtrs.js';
import { handlerFactory, jsonField, roleAsker } from './unary.js';

export interface DtrsServiceOptions {
  /** Largest accepted definition_json (bytes). */
  maxPayloadBytes: number;
}

function dtOut(r: DtRecord): Dt {
  return {
    name: r.name,
    version: r.version,
    definition_json: JSON.stringify(r.definition),
    sites: Object.keys(r.definition.sites).sort(),
    description: r.definition.description ?? '',
  };
}

function siteOut(r: SiteRecord): Site {
  return {
    name: r.name,
    version: r.version,
    type: r.definition.type,
    definition_json: JSON.stringify(r.definition),
    used_by: r.used_by,
    has_credentials: r.has_credentials,
    description: r.definition.description ?? '',
  };
}

function credentialsOut(r: CredentialsRecord): Credentials {
  return { site: r.site, version: r.version, credentials: r.credentials };
}

function specOut(s: LaunchSpec): LaunchSpecProto {
  return {
    dt: s.dt,
    dt_version: s.dt_version,
    site: s.site,
    site_version: s.site_version,
    site_type: s.site_type,
    site_settings_json: JSON.stringify(s.site_settings),
    params_json: JSON.stringify(s.params),
    credentials: s.credentials ?? {},
  };
}

export function dtrsService(system: ActorService, options: DtrsServiceOptions, log: Logger): DtrsHandlers {
  const json = (text: string, field: string): unknown => jsonField(text, field, options.maxPayloadBytes);
  const ask = roleAsker<DtrsReplies>(system, DTRS_REF, parseDtrsMessage);
  const h = handlerFactory(log);

  return {
    AddDt: h('AddDt', async (req, call) => {
      const r = await ask(call, { op: 'dt.add', name: req.name, definition: json(req.definition_json, 'definition_json') });
      return { created: r.created, dt: dtOut(r.record) };
    }),
    DescribeDt: h('DescribeDt', async (req, call) => dtOut(await ask(call, { op: 'dt.describe', name: req.name }))),
    ListDts: h('ListDts', async (_req, call) => ({ dts: (await ask(call, { op: 'dt.list' })).dts.map(dtOut) })),
    UpdateDt: h('UpdateDt', async (req, call) =>
      dtOut(await ask(call, { op: 'dt.update', name: req.name, definition: json(req.definition_json, 'definition_json') })),
    ),
    RemoveDt: h('RemoveDt', async (req, call) => ask(call, { op: 'dt.remove', name: req.name })),

    AddSite: h('AddSite', async (req, call) => {
      const r = await ask(call, { op: 'site.add', name: req.name, definition: json(req.definition_json, 'definition_json') });
      return { created: r.created, site: siteOut(r.record) };
    }),
    DescribeSite: h('DescribeSite', async (req, call) => siteOut(await ask(call, { op: 'site.describe', name: req.name }))),
    ListSites: h('ListSites', async (_req, call) => ({ sites: (await ask(call, { op: 'site.list' })).sites.map(siteOut) })),
    UpdateSite: h('UpdateSite', async (req, call) =>
      siteOut(await ask(call, { op: 'site.update', name: req.name, definition: json(req.definition_json, 'definition_json') })),
    ),
    RemoveSite: h('RemoveSite', async (req, call) => ask(call, { op: 'site.remove', name: req.name })),

    AddCredentials: h('AddCredentials', async (req, call) => {
      const r = await ask(call, { op: 'credentials.add', site: req.site, credentials: req.credentials });
      return { created: r.created, credentials: credentialsOut(r.record) };
    }),
    DescribeCredentials: h('DescribeCredentials', async (req, call) => credentialsOut(await ask(call, { op: 'credentials.describe', site: req.site }))),
    ListCredentials: h('ListCredentials', async (_req, call) => ({
      credentials: (await ask(call, { op: 'credentials.list' })).credentials.map(credentialsOut),
    })),
    UpdateCredentials: h('UpdateCredentials', async (req, call) =>
      credentialsOut(await ask(call, { op: 'credentials.update', site: req.site, credentials: req.credentials })),
    ),
    RemoveCredentials: h('RemoveCredentials', async (req, call) => ask(call, { op: 'credentials.remove', site: req.site })),

    Lookup: h('Lookup', async (req, call) => specOut(await ask(call, { op: 'lookup', dt: req.dt, site: req.site, vars: req.vars }))),
  };
}
