/**
 * `cei domain ...` and `cei domain-def ...`: EPU management through any node's public EpuManagement
 * service. Configs come from YAML or JSON files (`--file`) and `--set path=value` flags (the value
 * read as YAML, so `--set engine_conf.preserve_n=3` is a number); EPU management checks everything,
 * so this module only reads files and flags and prints what comes back.
 */
import type { Command } from 'commander';
import YAML from 'yaml';
import { EpumClient } from './client-epum.js';
import type { DefinitionRecord, DomainDescription, DomainInstanceView, DomainSummary } from './actors/epum/protocol.js';
import { InvalidArgumentError, errorMessage } from './errors.js';
import { clientGroup, collect, indent, print, readDocument, table, wholeNumber } from './cli-output.js';

/**
 * A document from `--file` (optional) with each `--set a.b=value` applied over it; the value is
 * read as YAML (`3`, `true`, `null`, `[a, b]`, `{k: v}`), anything else as a string.
 */
export function documentOf(file: string | undefined, sets: string[]): Record<string, unknown> | undefined {
  let doc: unknown = file === undefined ? undefined : readDocument(file);
  if (doc !== undefined && (typeof doc !== 'object' || doc === null || Array.isArray(doc))) throw new InvalidArgumentError(`--file ${file} must hold a map`);
  for (const set of sets) {
    const eq = set.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--set ${JSON.stringify(set)}: expected PATH=VALUE, e.g. engine_conf.preserve_n=3`);
    const path = set.slice(0, eq).split('.');
    if (path.some((p) => p === '')) throw new InvalidArgumentError(`--set ${JSON.stringify(set)}: the path has an empty part`);
    let value: unknown;
    try {
      value = YAML.parse(set.slice(eq + 1));
    } catch (err) {
      throw new InvalidArgumentError(`--set ${JSON.stringify(set)}: the value is not valid YAML: ${errorMessage(err).split('\n')[0]}`);
    }
    doc ??= {};
    let at = doc as Record<string, unknown>;
    for (const key of path.slice(0, -1)) {
      const next = Object.hasOwn(at, key) ? at[key] : undefined;
      if (next === undefined) at[key] = {};
      else if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new InvalidArgumentError(`--set ${set}: "${key}" is not a map`);
      at = at[key] as Record<string, unknown>;
    }
    at[path.at(-1)!] = value === undefined ? '' : value;
  }
  return doc as Record<string, unknown> | undefined;
}

function ago(ms: number | undefined, now = Date.now()): string {
  if (!ms) return '-';
  const s = Math.max(0, (now - ms) / 1000);
  return s < 10 ? `${s.toFixed(1)}s` : s < 120 ? `${Math.round(s)}s` : `${Math.round(s / 60)}m`;
}

function summaryRow(d: DomainSummary): string[] {
  return [d.id, d.engine, d.status, d.definition ?? '-', new Date(d.created_at).toISOString()];
}

export function instancesTable(instances: DomainInstanceView[]): string {
  const rows = instances.map((i) => [
    i.instance_id,
    i.state + (i.state_desc ? `/${i.state_desc}` : ''),
    i.health,
    i.node_id ?? '-',
    i.address ?? '-',
    ago(i.last_heartbeat),
    i.health_reason ?? i.state_detail ?? '',
  ]);
  return table([['INSTANCE', 'STATE', 'HEALTH', 'NODE', 'ADDRESS', 'HEARD', 'WHY'], ...rows]);
}

function describeText(d: DomainDescription): string {
  const lines = [
    `domain ${d.id} (${d.status}), engine ${d.config.engine}${d.definition ? `, from definition ${d.definition}` : ''}`,
    `config version ${d.version}${d.applied_version !== d.version ? ` (version ${d.applied_version} applied; the rest on the next tick)` : ''}, last tick ${ago(d.last_tick_at)} ago`,
  ];
  if (d.error) lines.push(`error: ${d.error}`);
  lines.push('config:', indent(YAML.stringify(d.config)));
  if (d.pending_config) lines.push('pending config:', indent(YAML.stringify(d.pending_config)));
  lines.push(`engine state: ${JSON.stringify(d.engine_state)}`);
  if (d.last_decision) {
    lines.push(`last decision ${ago(d.last_decision.at)} ago: launched ${d.last_decision.launched}, destroyed ${d.last_decision.destroyed.join(' ') || 'none'}`);
  }
  const sensors = Object.entries(d.sensors);
  if (sensors.length > 0) {
    lines.push('sensors (latest):');
    for (const [name, samples] of sensors) {
      const last = samples.at(-1);
      if (last) lines.push(`  ${name} = ${last.value}${last.instance_id ? ` (${last.instance_id})` : ''}, ${ago(last.time)} ago`);
    }
  }
  const counts = Object.entries(d.counts.states).map(([s, n]) => `${n} ${s}`);
  lines.push(`instances: ${counts.join(', ') || 'none live'}`);
  if (d.instances.length > 0) lines.push(instancesTable(d.instances));
  if (d.subscribers.length > 0) lines.push(`subscribers: ${d.subscribers.join(' ')}`);
  return lines.join('\n');
}

function registerDomain(program: Command): void {
  const { cmd, run } = clientGroup(program, 'domain', 'EPU domains: pools of instances a decision engine keeps sized (add, remove, list, describe, reconfigure)', (node) => new EpumClient(node));

  cmd
    .command('add <id>')
    .description('add a domain from a definition and/or a config (YAML or JSON: {engine, engine_conf, health?, tick_seconds?})')
    .option('--definition <name>', 'a domain definition to start from')
    .option('--file <path>', 'the config (over the definition\'s)')
    .option('--set <path=value>', 'a config value over the file, e.g. engine_conf.preserve_n=2 (repeatable)', collect, [])
    .option('--json', 'print JSON')
    .action(
      run(async (client, id: string, opts: { definition?: string; file?: string; set: string[]; json?: boolean }) => {
        const config = documentOf(opts.file, opts.set);
        const r = await client.add({ id, definition: opts.definition, config });
        if (opts.json) print(r);
        else print(`${r.created ? 'added' : 'exists (same config)'} domain ${id}: engine ${r.domain.config.engine}, ${r.domain.instances.length} instance(s) asked for`);
      }),
    );

  cmd
    .command('remove <id>')
    .description('terminate every instance of a domain, then delete it')
    .option('--wait', 'wait until the domain is gone')
    .option('--timeout <ms>', 'with --wait: give up after this long', wholeNumber('--timeout'), 120_000)
    .action(
      run(async (client, id: string, opts: { wait?: boolean; timeout: number }) => {
        const r = await client.remove(id);
        print(`removing domain ${id}: terminating ${r.terminating} instance${r.terminating === 1 ? '' : 's'}`);
        if (!opts.wait) return;
        const deadline = Date.now() + opts.timeout;
        while (Date.now() < deadline) {
          if (!(await client.list()).some((d) => d.id === id)) {
            print(`domain ${id} removed`);
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
        print(`domain ${id} is still being removed after ${opts.timeout} ms`);
        process.exitCode = 1;
      }),
    );

  cmd
    .command('list')
    .description('list the domains')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const domains = await client.list();
        if (opts.json) print({ domains });
        else print(table([['DOMAIN', 'ENGINE', 'STATUS', 'DEFINITION', 'CREATED'], ...domains.map(summaryRow)]));
      }),
    );

  cmd
    .command('describe <id>')
    .description('show a domain: config, engine state, sensors, instances with their state and health')
    .option('--json', 'print JSON')
    .action(
      run(async (client, id: string, opts: { json?: boolean }) => {
        const d = await client.describe(id);
        print(opts.json ? JSON.stringify(d, null, 2) : describeText(d));
      }),
    );

  cmd
    .command('reconfigure <id>')
    .description('change engine_conf (each top-level key replaced whole; null removes), health or tick_seconds; applied on the next tick')
    .option('--file <path>', 'the change: {engine_conf?, health?, tick_seconds?}')
    .option('--set <path=value>', 'a change over the file, e.g. engine_conf.preserve_n=1 (repeatable)', collect, [])
    .option('--json', 'print JSON')
    .action(
      run(async (client, id: string, opts: { file?: string; set: string[]; json?: boolean }) => {
        const patch = documentOf(opts.file, opts.set);
        if (patch === undefined) throw new InvalidArgumentError('give the change with --file or --set');
        const r = await client.reconfigure(id, patch);
        if (opts.json) print(r);
        else print(`domain ${id} reconfigured: version ${r.version}, applied on its next tick`);
      }),
    );

  cmd
    .command('subscribe <id> <actor>')
    .description('tell an actor (type/id) every change of the state or health of the domain\'s instances')
    .action(
      run(async (client, id: string, actor: string) => {
        const r = await client.subscribe(id, actor);
        print(r.changed ? `subscribed ${actor} to domain ${id}` : `${actor} was subscribed already`);
      }),
    );

  cmd
    .command('unsubscribe <id> <actor>')
    .description('stop telling an actor about the domain')
    .action(
      run(async (client, id: string, actor: string) => {
        const r = await client.unsubscribe(id, actor);
        print(r.changed ? `unsubscribed ${actor} from domain ${id}` : `${actor} was not subscribed`);
      }),
    );
}

function definitionRow(d: DefinitionRecord): string[] {
  return [d.name, String(d.version), d.definition.config.engine, d.definition.description ?? ''];
}

function registerDefinitions(program: Command): void {
  const { cmd, run } = clientGroup(program, 'domain-def', 'domain definitions: named config templates for `domain add --definition`', (node) => new EpumClient(node));

  cmd
    .command('add <name>')
    .description('add a definition from a YAML or JSON file (idempotent for an identical one)')
    .requiredOption('--file <path>', 'the definition: {description?, config: {engine, engine_conf?, health?, tick_seconds?}}')
    .action(
      run(async (client, name: string, opts: { file: string }) => {
        const r = await client.addDefinition(name, readDocument(opts.file));
        print(`${r.created ? 'added' : 'exists (identical)'} domain definition ${name} version ${r.record.version}`);
      }),
    );

  cmd
    .command('update <name>')
    .description('replace a definition (domains made from it keep their config)')
    .requiredOption('--file <path>', 'the new definition')
    .action(
      run(async (client, name: string, opts: { file: string }) => {
        const r = await client.updateDefinition(name, readDocument(opts.file));
        print(`updated domain definition ${name} version ${r.version}`);
      }),
    );

  cmd
    .command('describe <name>')
    .description('show a definition')
    .option('--json', 'print JSON')
    .action(
      run(async (client, name: string, opts: { json?: boolean }) => {
        const r = await client.describeDefinition(name);
        print(opts.json ? r : `domain definition ${r.name} version ${r.version}\n${YAML.stringify(r.definition).trimEnd()}`);
      }),
    );

  cmd
    .command('list')
    .description('list the definitions')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const definitions = await client.listDefinitions();
        if (opts.json) print({ definitions });
        else print(table([['DEFINITION', 'VERSION', 'ENGINE', 'DESCRIPTION'], ...definitions.map(definitionRow)]));
      }),
    );

  cmd
    .command('remove <name>')
    .description('remove a definition')
    .action(
      run(async (client, name: string) => {
        await client.removeDefinition(name);
        print(`removed domain definition ${name}`);
      }),
    );
}

/** `cei domain add|remove|list|describe|reconfigure|subscribe|unsubscribe` and `cei domain-def add|update|describe|list|remove`. */
export function registerEpumCommands(program: Command): void {
  registerDomain(program);
  registerDefinitions(program);
}
