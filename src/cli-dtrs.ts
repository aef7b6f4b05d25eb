/**
 * `cei dt ...`, `cei site ...`, `cei credentials ...`: the deployable type registry through any
 * node's public Dtrs service. Definitions come from YAML or JSON files (`--file`); the registry
 * checks them, so this module only reads files and flags and prints what comes back.
 */
import { Option, type Command } from 'commander';
import YAML from 'yaml';
import { DtrsClient } from './client-dtrs.js';
import type { CredentialsRecord, DtRecord, SiteRecord } from './actors/dtrs.js';
import { InvalidArgumentError } from './errors.js';
import { clientGroup, collect, pairs, print, readDocument, table } from './cli-output.js';

/** A flat map of strings from a file; numbers and booleans are taken as their text (YAML reads `port: 22` as a number). */
function readStringMap(path: string): Record<string, string> {
  const doc = readDocument(path);
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new InvalidArgumentError(`--file ${path} must hold a map of NAME: value`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    if (typeof v === 'string') out[k] = v;
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = String(v);
    else throw new InvalidArgumentError(`--file ${path}: "${k}" must be a string`);
  }
  return out;
}

function describeText(value: unknown): string {
  return YAML.stringify(value).trimEnd();
}

function dtRow(d: DtRecord): string[] {
  return [d.name, String(d.version), Object.keys(d.definition.sites).sort().join(','), d.definition.description ?? ''];
}

function siteRow(s: SiteRecord): string[] {
  return [s.name, s.definition.type, String(s.version), s.used_by.join(',') || '-', s.has_credentials ? 'yes' : 'no'];
}

function credentialsRow(c: CredentialsRecord): string[] {
  return [c.site, String(c.version), Object.entries(c.credentials).map(([k, v]) => `${k}=${v}`).join(' ')];
}

function registerDt(program: Command): void {
  const { cmd, run } = clientGroup(program, 'dt', 'deployable types: add, describe, list, update, remove, and resolve one at a site (lookup)', (node) => new DtrsClient(node));

  cmd
    .command('add <name>')
    .description('add a deployable type from a YAML or JSON file (idempotent for an identical definition)')
    .requiredOption('--file <path>', 'the definition: {description?, sites: {<site>: {args, env, slots | boot_latency_ms, failure_rate}}}')
    .action(
      run(async (client, name: string, opts: { file: string }) => {
        const r = await client.addDt(name, readDocument(opts.file));
        print(`${r.created ? 'added' : 'exists (identical)'} dt ${name} version ${r.record.version}`);
      }),
    );

  cmd
    .command('update <name>')
    .description('replace a deployable type with the definition in a YAML or JSON file')
    .requiredOption('--file <path>', 'the new definition')
    .action(
      run(async (client, name: string, opts: { file: string }) => {
        const r = await client.updateDt(name, readDocument(opts.file));
        print(`updated dt ${name} version ${r.version}`);
      }),
    );

  cmd
    .command('describe <name>')
    .description('show a deployable type and its definition')
    .option('--json', 'print JSON')
    .action(
      run(async (client, name: string, opts: { json?: boolean }) => {
        const r = await client.describeDt(name);
        print(opts.json ? r : describeText(r));
      }),
    );

  cmd
    .command('list')
    .description('list deployable types')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const dts = await client.listDts();
        if (opts.json) print(dts);
        else print(table([['NAME', 'VERSION', 'SITES', 'DESCRIPTION'], ...dts.map(dtRow)]));
      }),
    );

  cmd
    .command('remove <name>')
    .description('remove a deployable type')
    .action(
      run(async (client, name: string) => {
        await client.removeDt(name);
        print(`removed dt ${name}`);
      }),
    );

  cmd
    .command('lookup <dt> <site>')
    .description('resolve a deployable type at a site into its launch spec, filling ${var} templates')
    .option('--var <name=value>', 'a template variable (repeatable)', collect, [])
    .option('--json', 'print JSON')
    .action(
      run(async (client, dt: string, site: string, opts: { var: string[]; json?: boolean }) => {
        const spec = await client.lookup(dt, site, pairs('--var', opts.var));
        print(opts.json ? spec : describeText(spec));
      }),
    );
}

function registerSite(program: Command): void {
  const { cmd, run } = clientGroup(program, 'site', 'sites (local or sim) and their driver settings: add, describe, list, update, remove', (node) => new DtrsClient(node));
  const definition = (opts: { file?: string; type?: string }): unknown => {
    if (opts.file && opts.type) throw new InvalidArgumentError('give either --file or --type, not both');
    if (opts.file) return readDocument(opts.file);
    if (opts.type) return { type: opts.type };
    throw new InvalidArgumentError('give the site with --file <path> (YAML or JSON) or --type local|sim');
  };
  const fileOption = () => new Option('--file <path>', 'the definition: {type: local|sim, description?, settings?: <driver settings>}');
  const typeOption = () => new Option('--type <type>', 'a site of this type with default settings').choices(['local', 'sim']);

  cmd
    .command('add <name>')
    .description('add a site (idempotent for an identical definition)')
    .addOption(fileOption())
    .addOption(typeOption())
    .action(
      run(async (client, name: string, opts: { file?: string; type?: string }) => {
        const r = await client.addSite(name, definition(opts));
        print(`${r.created ? 'added' : 'exists (identical)'} site ${name} version ${r.record.version}`);
      }),
    );

  cmd
    .command('update <name>')
    .description("replace a site's definition (refused if a deployable type's parameters no longer fit)")
    .addOption(fileOption())
    .addOption(typeOption())
    .action(
      run(async (client, name: string, opts: { file?: string; type?: string }) => {
        const r = await client.updateSite(name, definition(opts));
        print(`updated site ${name} version ${r.version}`);
      }),
    );

  cmd
    .command('describe <name>')
    .description('show a site, the deployable types that use it, and whether it has credentials')
    .option('--json', 'print JSON')
    .action(
      run(async (client, name: string, opts: { json?: boolean }) => {
        const r = await client.describeSite(name);
        print(opts.json ? r : describeText(r));
      }),
    );

  cmd
    .command('list')
    .description('list sites')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const sites = await client.listSites();
        if (opts.json) print(sites);
        else print(table([['NAME', 'TYPE', 'VERSION', 'USED_BY', 'CREDENTIALS'], ...sites.map(siteRow)]));
      }),
    );

  cmd
    .command('remove <name>')
    .description('remove a site and its credentials (refused while a deployable type maps it)')
    .action(
      run(async (client, name: string) => {
        await client.removeSite(name);
        print(`removed site ${name}`);
      }),
    );
}

function registerCredentials(program: Command): void {
  const { cmd, run } = clientGroup(program, 'credentials', "a site's credentials (never shown in full): add, describe, list, update, remove", (node) => new DtrsClient(node));
  // --file is the way for real secrets: a --set value stays in the shell's history and in ps.
  const values = (opts: { file?: string; set: string[] }): Record<string, string> => {
    if (opts.file && opts.set.length > 0) throw new InvalidArgumentError('give either --file or --set, not both');
    if (opts.file) return readStringMap(opts.file);
    if (opts.set.length > 0) return pairs('--set', opts.set);
    throw new InvalidArgumentError('give the credentials with --file <path> (a YAML or JSON map) or --set NAME=VALUE');
  };

  cmd
    .command('add <site>')
    .description("add a site's credentials (idempotent for identical ones)")
    .option('--file <path>', 'a YAML or JSON map of NAME: secret')
    .option('--set <name=value>', 'one credential (repeatable)', collect, [])
    .action(
      run(async (client, site: string, opts: { file?: string; set: string[] }) => {
        const r = await client.addCredentials(site, values(opts));
        print(`${r.created ? 'added' : 'exists (identical)'} credentials for site ${site} version ${r.record.version}`);
      }),
    );

  cmd
    .command('update <site>')
    .description("replace a site's credentials")
    .option('--file <path>', 'a YAML or JSON map of NAME: secret')
    .option('--set <name=value>', 'one credential (repeatable)', collect, [])
    .action(
      run(async (client, site: string, opts: { file?: string; set: string[] }) => {
        const r = await client.updateCredentials(site, values(opts));
        print(`updated credentials for site ${site} version ${r.version}`);
      }),
    );

  cmd
    .command('describe <site>')
    .description("show a site's credentials, masked")
    .option('--json', 'print JSON')
    .action(
      run(async (client, site: string, opts: { json?: boolean }) => {
        const r = await client.describeCredentials(site);
        print(opts.json ? r : describeText(r));
      }),
    );

  cmd
    .command('list')
    .description('list the sites with credentials, values masked')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const all = await client.listCredentials();
        if (opts.json) print(all);
        else print(table([['SITE', 'VERSION', 'CREDENTIALS'], ...all.map(credentialsRow)]));
      }),
    );

  cmd
    .command('remove <site>')
    .description("remove a site's credentials")
    .action(
      run(async (client, site: string) => {
        await client.removeCredentials(site);
        print(`removed credentials for site ${site}`);
      }),
    );
}

/** `cei dt`, `cei site` and `cei credentials`. */
export function registerDtrsCommands(program: Command): void {
  registerDt(program);
  registerSite(program);
  registerCredentials(program);
}
