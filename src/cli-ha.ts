/**
 * `cei ha create|describe|list|reconfigure|remove`: HA services through any node's public
 * HighAvailability service. Configs come from YAML or JSON files (`--file`) and `--set path=value`
 * flags, as for `cei domain`; the HA actors check everything.
 */
import type { Command } from 'commander';
import YAML from 'yaml';
import { HaClient } from './client-ha.js';
import type { HaDescription } from './actors/ha/protocol.js';
import { InvalidArgumentError } from './errors.js';
import { clientGroup, collect, indent, print, table } from './cli-output.js';
import { documentOf } from './cli-epum.js';

function describeText(d: HaDescription): string {
  const lines = [`HA service ${d.name}: ${d.state}${d.removing ? ' (removing)' : ''}, policy ${d.config.policy}, definition ${d.config.definition_id}`];
  if (d.failures > 0) lines.push(`failures in a row: ${d.failures}`);
  if (d.last_error) lines.push(`last error: ${d.last_error}`);
  if (d.last_value !== undefined) lines.push(`last sensor value: ${d.last_value}`);
  lines.push('config:', indent(YAML.stringify(d.config)));
  const rows = d.processes.map((p) => [p.upid, p.state + (p.terminating ? ' (terminating)' : ''), p.dispatcher, p.last_error ?? '']);
  lines.push(rows.length > 0 ? table([['UPID', 'STATE', 'DISPATCHER', 'ERROR'], ...rows]) : 'no processes');
  return lines.join('\n');
}

/** `cei ha ...`. */
export function registerHaCommands(program: Command): void {
  const { cmd, run } = clientGroup(program, 'ha', 'HA services: keep N processes of a definition running, or scale them by a sensor', (node) => new HaClient(node));

  cmd
    .command('create <name>')
    .description('create a service from a config (YAML or JSON: {definition_id, policy, policy_parameters, configuration?, dispatchers?, schedule?, failure_bound?, tick_seconds?})')
    .option('--file <path>', 'the config')
    .option('--set <path=value>', 'a config value over the file, e.g. policy_parameters.preserve_n=2 (repeatable)', collect, [])
    .option('--json', 'print JSON')
    .action(
      run(async (client, name: string, opts: { file?: string; set: string[]; json?: boolean }) => {
        const config = documentOf(opts.file, opts.set);
        if (config === undefined) throw new InvalidArgumentError('give the config with --file or --set');
        const d = await client.create(name, config);
        print(opts.json ? JSON.stringify(d, null, 2) : `HA service ${name}: ${d.state}, ${d.processes.length} process(es) scheduled`);
      }),
    );

  cmd
    .command('describe <name>')
    .description('show a service: state, policy, processes with their states, last sensor value')
    .option('--json', 'print JSON')
    .action(run(async (client, name: string, opts: { json?: boolean }) => print(opts.json ? JSON.stringify(await client.describe(name), null, 2) : describeText(await client.describe(name)))));

  cmd
    .command('list')
    .description('list the services')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const services = await client.list();
        if (opts.json) print({ services });
        else print(table([['SERVICE', 'POLICY', 'DEFINITION', 'CREATED'], ...services.map((s) => [s.name + (s.removing ? ' (removing)' : ''), s.policy, s.definition_id, new Date(s.created_at).toISOString()])]));
      }),
    );

  cmd
    .command('reconfigure <name>')
    .description('change the policy parameters (merged over the old ones), or the policy; decided on the next tick')
    .option('--file <path>', 'the change: {policy?, policy_parameters?}')
    .option('--set <path=value>', 'a change over the file, e.g. policy_parameters.preserve_n=1 (repeatable)', collect, [])
    .option('--json', 'print JSON')
    .action(
      run(async (client, name: string, opts: { file?: string; set: string[]; json?: boolean }) => {
        const change = documentOf(opts.file, opts.set);
        if (change === undefined) throw new InvalidArgumentError('give the change with --file or --set');
        const d = await client.reconfigure(name, change as { policy?: string; policy_parameters?: unknown });
        print(opts.json ? JSON.stringify(d, null, 2) : `HA service ${name} reconfigured: ${d.state}`);
      }),
    );

  cmd
    .command('remove <name>')
    .description('terminate every process of a service, then delete it')
    .action(
      run(async (client, name: string) => {
        const r = await client.remove(name);
        print(`removing HA service ${name}: terminating ${r.terminating} process${r.terminating === 1 ? '' : 'es'}`);
      }),
    );
}
