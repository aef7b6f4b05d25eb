/**
 * A typed client of a node's public Dtrs service. It speaks the registry's own types
 * (src/actors/dtrs.ts): definitions go out as JSON and come back parsed; errors are grpc
 * ServiceErrors whose details say what was wrong.
 */
import * as grpc from '@grpc/grpc-js';
import type { DtrsClient as DtrsGrpcClient } from './generated/cei/v1/Dtrs.js';
import type { Dt__Output } from './generated/cei/v1/Dt.js';
import type { Site__Output } from './generated/cei/v1/Site.js';
import type { Credentials__Output } from './generated/cei/v1/Credentials.js';
import type { LaunchSpec__Output } from './generated/cei/v1/LaunchSpec.js';
import type { AddReply, Credentials, CredentialsRecord, DtRecord, LaunchSpec, SiteRecord } from './actors/dtrs.js';
import { publicApi } from './api/proto.js';
import { unary } from './client.js';

function dtIn(d: Dt__Output): DtRecord {
  return { name: d.name, version: Number(d.version), definition: JSON.parse(d.definition_json) };
}

function siteIn(s: Site__Output): SiteRecord {
  return { name: s.name, version: Number(s.version), definition: JSON.parse(s.definition_json), used_by: s.used_by, has_credentials: s.has_credentials };
}

function credentialsIn(c: Credentials__Output): CredentialsRecord {
  return { site: c.site, version: Number(c.version), credentials: c.credentials };
}

function specIn(s: LaunchSpec__Output): LaunchSpec {
  const hasCredentials = Object.keys(s.credentials).length > 0;
  return {
    dt: s.dt,
    dt_version: Number(s.dt_version),
    site: s.site,
    site_version: Number(s.site_version),
    site_type: s.site_type,
    site_settings: JSON.parse(s.site_settings_json),
    params: JSON.parse(s.params_json),
    ...(hasCredentials ? { credentials: s.credentials } : {}),
  } as LaunchSpec;
}

export class DtrsClient {
  /** The generated client, for calls this class does not wrap (e.g. tests sending malformed JSON). */
  readonly raw: DtrsGrpcClient;

  /** `channel` shares an existing client's connection (e.g. CeiClient's `actors.getChannel()`). */
  constructor(
    readonly address: string,
    channel?: grpc.Channel,
  ) {
    const { actors } = publicApi();
    this.raw = new actors.cei.v1.Dtrs(address, grpc.credentials.createInsecure(), channel ? { channelOverride: channel } : {});
  }

  async addDt(name: string, definition: unknown, deadlineMs?: number): Promise<AddReply<DtRecord>> {
    const r = await unary<{ created: boolean; dt: Dt__Output | null }>(
      (o, cb) => this.raw.AddDt({ name, definition_json: JSON.stringify(definition) }, o, cb),
      deadlineMs,
    );
    return { created: r.created, record: dtIn(r.dt!) };
  }

  async describeDt(name: string, deadlineMs?: number): Promise<DtRecord> {
    return dtIn(await unary<Dt__Output>((o, cb) => this.raw.DescribeDt({ name }, o, cb), deadlineMs));
  }

  async listDts(deadlineMs?: number): Promise<DtRecord[]> {
    return (await unary<{ dts: Dt__Output[] }>((o, cb) => this.raw.ListDts({}, o, cb), deadlineMs)).dts.map(dtIn);
  }

  async updateDt(name: string, definition: unknown, deadlineMs?: number): Promise<DtRecord> {
    return dtIn(await unary<Dt__Output>((o, cb) => this.raw.UpdateDt({ name, definition_json: JSON.stringify(definition) }, o, cb), deadlineMs));
  }

  async removeDt(name: string, deadlineMs?: number): Promise<void> {
    await unary((o, cb) => this.raw.RemoveDt({ name }, o, cb), deadlineMs);
  }

  async addSite(name: string, definition: unknown, deadlineMs?: number): Promise<AddReply<SiteRecord>> {
    const r = await unary<{ created: boolean; site: Site__Output | null }>(
      (o, cb) => this.raw.AddSite({ name, definition_json: JSON.stringify(definition) }, o, cb),
      deadlineMs,
    );
    return { created: r.created, record: siteIn(r.site!) };
  }

  async describeSite(name: string, deadlineMs?: number): Promise<SiteRecord> {
    return siteIn(await unary<Site__Output>((o, cb) => this.raw.DescribeSite({ name }, o, cb), deadlineMs));
  }

  async listSites(deadlineMs?: number): Promise<SiteRecord[]> {
    return (await unary<{ sites: Site__Output[] }>((o, cb) => this.raw.ListSites({}, o, cb), deadlineMs)).sites.map(siteIn);
  }

  async updateSite(name: string, definition: unknown, deadlineMs?: number): Promise<SiteRecord> {
    return siteIn(await unary<Site__Output>((o, cb) => this.raw.UpdateSite({ name, definition_json: JSON.stringify(definition) }, o, cb), deadlineMs));
  }

  async removeSite(name: string, deadlineMs?: number): Promise<void> {
    await unary((o, cb) => this.raw.RemoveSite({ name }, o, cb), deadlineMs);
  }

  async addCredentials(site: string, credentials: Credentials, deadlineMs?: number): Promise<AddReply<CredentialsRecord>> {
    const r = await unary<{ created: boolean; credentials: Credentials__Output | null }>(
      (o, cb) => this.raw.AddCredentials({ site, credentials }, o, cb),
      deadlineMs,
    );
    return { created: r.created, record: credentialsIn(r.credentials!) };
  }

  async describeCredentials(site: string, deadlineMs?: number): Promise<CredentialsRecord> {
    return credentialsIn(await unary<Credentials__Output>((o, cb) => this.raw.DescribeCredentials({ site }, o, cb), deadlineMs));
  }

  async listCredentials(deadlineMs?: number): Promise<CredentialsRecord[]> {
    return (await unary<{ credentials: Credentials__Output[] }>((o, cb) => this.raw.ListCredentials({}, o, cb), deadlineMs)).credentials.map(credentialsIn);
  }

  async updateCredentials(site: string, credentials: Credentials, deadlineMs?: number): Promise<CredentialsRecord> {
    return credentialsIn(await unary<Credentials__Output>((o, cb) => this.raw.UpdateCredentials({ site, credentials }, o, cb), deadlineMs));
  }

  async removeCredentials(site: string, deadlineMs?: number): Promise<void> {
    await unary((o, cb) => this.raw.RemoveCredentials({ site }, o, cb), deadlineMs);
  }

  /** The resolved launch spec of `dt` at `site`; credentials, if the site has any, come masked. */
  async lookup(dt: string, site: string, vars: Record<string, string> = {}, deadlineMs?: number): Promise<LaunchSpec> {
    return specIn(await unary<LaunchSpec__Output>((o, cb) => this.raw.Lookup({ dt, site, vars }, o, cb), deadlineMs));
  }

  close(): void {
    this.raw.close();
  }
}
