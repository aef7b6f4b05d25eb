/**
 * `cei provisioner ...`: the provisioner through any node's public Provisioner service. This module
 * only reads flags and prints what comes back; the provisioner checks everything.
 */
import type { Command } from 'commander';
import { ProvisionerClient } from './client-provisioner.js';
import type { InstanceView } from './actors/provisioner-protocol.js';
import { isFinalState } from './actors/provisioner-states.js';
import { clientGroup, collect, pairs, print, table, wholeNumber } from './cli-output.js';

function instancesTable(instances: InstanceView[]): string {
  const rows = instances.map((i) => [
    i.instance_id,
    i.state,
    i.state_desc ?? '-',
    i.site,
    i.deployable_type,
    i.node_id ?? '-',
    i.address ?? '-',
    i.state_detail ?? '',
  ]);
  return table([['INSTANCE', 'STATE', 'DESC', 'SITE', 'DT', 'NODE', 'ADDRESS', 'DETAIL'], ...rows]);
}

const settled = (i: InstanceView): boolean => i.state === 'RUNNING' || i.state === 'RUNNING_FAILED' || isFinalState(i.state);

/** `cei provisioner provision|terminate|terminate-all|enable|describe|dump|subscribe|unsubscribe`. */
/** Instances as a table (or JSON), then the ids no record knows, which make the exit status 1. */
function printInstances(r: { instances: InstanceView[]; unknown: string[] }, json: boolean | undefined): void {
  if (json) print(r);
  else {
    print(instancesTable(r.instances));
    if (r.unknown.length > 0) print(`unknown: ${r.unknown.join(' ')}`);
  }
  if (r.unknown.length > 0) process.exitCode = 1;
}

export function registerProvisionerCommands(program: Command): void {
  const { cmd, run } = clientGroup(
    program,
    'provisioner',
    'launch and terminate instances of deployable types at sites, and see their states',
    (node) => new ProvisionerClient(node),
  );

  cmd
    .command('provision <launch-id>')
    .description('launch instances (ids <launch-id>-<index>); idempotent by launch id')
    .requiredOption('--dt <name>', 'the deployable type')
    .requiredOption('--site <name>', 'the site')
    .option('--count <n>', 'how many instances', wholeNumber('--count'), 1)
    .option('--var <name=value>', 'a template variable of the deployable type (repeatable)', collect, [])
    .option('--subscriber <type/id>', 'an actor told every change of these instances (repeatable)', collect, [])
    .option('--wait', 'wait until every instance is RUNNING (or failed), then print them; exit status 1 unless all are RUNNING')
    .option('--timeout <ms>', 'with --wait: give up after this long', wholeNumber('--timeout'), 120_000)
    .option('--json', 'print JSON')
    .action(
      run(async (client, launchId: string, opts: { dt: string; site: string; count: number; var: string[]; subscriber: string[]; wait?: boolean; timeout: number; json?: boolean }) => {
        const r = await client.provision({ launchId, deployableType: opts.dt, site: opts.site, count: opts.count, vars: pairs('--var', opts.var), subscribers: opts.subscriber });
        let instances = r.instances;
        if (opts.wait) {
          const ids = instances.map((i) => i.instance_id);
          const deadline = Date.now() + opts.timeout;
          while (!instances.every(settled) && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 200));
            instances = (await client.describe(ids)).instances;
          }
          if (!instances.every((i) => i.state === 'RUNNING')) process.exitCode = 1;
        } else if (instances.some((i) => isFinalState(i.state))) {
          process.exitCode = 1;
        }
        if (opts.json) print({ created: r.created, instances });
        else print(`${r.created ? 'launched' : 'exists'} ${launchId}\n${instancesTable(instances)}`);
      }),
    );

  cmd
    .command('terminate <instance-id...>')
    .description('terminate instances')
    .option('--json', 'print JSON')
    .action(
      run(async (client, ids: string[], opts: { json?: boolean }) => {
        const r = await client.terminate(ids);
        printInstances(r, opts.json);
      }),
    );

  cmd
    .command('terminate-all')
    .description('disable the provisioner (provisions are REJECTED until enable) and terminate every instance')
    .action(
      run(async (client) => {
        const r = await client.terminateAll();
        print(`provisioner disabled; terminating ${r.terminating} instance${r.terminating === 1 ? '' : 's'}`);
      }),
    );

  cmd
    .command('enable')
    .description('enable the provisioner again after terminate-all')
    .action(
      run(async (client) => {
        const r = await client.enable();
        print(r.changed ? 'provisioner enabled' : 'provisioner was enabled already');
      }),
    );

  cmd
    .command('describe [instance-id...]')
    .description('show instances (all of them when no id is given)')
    .option('--json', 'print JSON')
    .action(
      run(async (client, ids: string[], opts: { json?: boolean }) => {
        const r = await client.describe(ids ?? []);
        printInstances(r, opts.json);
      }),
    );

  cmd
    .command('dump')
    .description("print the provisioner's whole state as JSON")
    .action(
      run(async (client) => {
        print(JSON.stringify(await client.dump(), null, 2));
      }),
    );

  cmd
    .command('subscribe <actor>')
    .description('tell an actor (type/id) every change of every instance')
    .action(
      run(async (client, actor: string) => {
        const r = await client.subscribe(actor);
        print(r.changed ? `subscribed ${actor}` : `${actor} was subscribed already`);
      }),
    );

  cmd
    .command('unsubscribe <actor>')
    .description('stop telling an actor about instance changes')
    .action(
      run(async (client, actor: string) => {
        const r = await client.unsubscribe(actor);
        print(r.changed ? `unsubscribed ${actor}` : `${actor} was not subscribed`);
      }),
    );
}
