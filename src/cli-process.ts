/**
 * `cei process ...`: process definitions and processes through any node's public ProcessDispatcher
 * service. Definitions and configurations come from YAML or JSON files (`--file`) and flags over
 * them; the dispatcher checks everything, so this module only reads files and flags and prints what
 * comes back.
 */
import type { Command } from 'commander';
import { InvalidArgumentError as CommanderArgError } from 'commander';
import YAML from 'yaml';
import { DispatcherClient, type DispatcherStatusView } from './client-dispatcher.js';
import type { ProcessDefinition, ProcessRecord } from './actors/dispatcher/core.js';
import { InvalidArgumentError, errorMessage } from './errors.js';
import { clientGroup, collect, indent, pairs, print, table, wholeNumber } from './cli-output.js';
import { documentOf } from './cli-epum.js';

/** How often `process logs --follow` asks for new lines. */
const LOG_POLL_MS = 500;

/** `30s`, `500ms`, `2m`, or a bare number of milliseconds. */
export function duration(flag: string) {
  return (value: string): number => {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
    if (!m) throw new CommanderArgError(`${flag} must be a duration such as 500ms, 30s or 2m`);
    const n = Number(m[1]) * (m[2] === 's' ? 1000 : m[2] === 'm' ? 60_000 : 1);
    if (!Number.isFinite(n) || n < 1) throw new CommanderArgError(`${flag} must be at least 1 ms`);
    return Math.round(n);
  };
}

/** `--at`: an ISO time, or `+30s` / `+2m` from now, as ms since the epoch. */
function whenOf(value: string): number {
  if (value.startsWith('+')) return Date.now() + duration('--at')(value.slice(1));
  const at = Date.parse(value);
  if (Number.isNaN(at)) throw new InvalidArgumentError(`--at ${JSON.stringify(value)}: expected an ISO time (2026-11-23T10:00:00Z) or +DURATION (+30s)`);
  return at;
}

/** `KEY=VALUE` flags into a map, each value read as YAML (`4`, `true`, `[a, b]`, `{">=": 4}`). */
function yamlPairs(flag: string, values: string[]): Record<string, unknown> | undefined {
  if (values.length === 0) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, text] of Object.entries(pairs(flag, values))) {
    try {
      out[key] = YAML.parse(text) ?? text;
    } catch (err) {
      throw new InvalidArgumentError(`${flag} ${key}=${text}: the value is not valid YAML: ${errorMessage(err).split('\n')[0]}`);
    }
  }
  return out;
}

interface DefinitionFlags {
  file?: string;
  set: string[];
  type?: string;
  argv: string[];
  module?: string;
  env: string[];
  cwd?: string;
  description?: string;
  json?: boolean;
}

/** A definition from `--file` and `--set`, with the inline flags over it; `id` is the argument's. */
export function definitionOf(id: string, opts: DefinitionFlags): { id: string; type: string; executable: unknown; config?: unknown; description?: string } {
  const doc: Record<string, unknown> = documentOf(opts.file, opts.set) ?? {};
  if (doc.id !== undefined && doc.id !== id) throw new InvalidArgumentError(`the file names definition "${String(doc.id)}", the command "${id}"`);
  const executable: Record<string, unknown> =
    typeof doc.executable === 'object' && doc.executable !== null && !Array.isArray(doc.executable) ? { ...(doc.executable as Record<string, unknown>) } : {};
  if (opts.argv.length > 0) executable.argv = opts.argv;
  if (opts.module !== undefined) executable.module = opts.module;
  if (opts.env.length > 0) executable.env = { ...(executable.env as Record<string, string> | undefined), ...pairs('--env', opts.env) };
  if (opts.cwd !== undefined) executable.cwd = opts.cwd;
  const type = opts.type ?? doc.type;
  if (type === undefined) throw new InvalidArgumentError('give the definition\'s type with --type (exec, js, or a transform) or in --file');
  return {
    ...doc,
    id,
    type: type as string,
    executable: doc.executable !== undefined && typeof doc.executable !== 'object' ? doc.executable : executable,
    ...(opts.description !== undefined ? { description: opts.description } : {}),
  };
}

function definitionText(d: ProcessDefinition): string {
  const lines = [`definition ${d.id}: type ${d.type}${d.description ? ` (${d.description})` : ''}`, 'executable:', indent(YAML.stringify(d.executable))];
  if (Object.keys(d.config).length > 0) lines.push('config:', indent(YAML.stringify(d.config)));
  return lines.join('\n');
}

function processRow(p: ProcessRecord): string[] {
  return [p.upid, p.definitionId, p.state, String(p.round), p.assigned?.nodeId ?? '-', p.lastError ?? ''];
}

function processText(p: ProcessRecord): string {
  const lines = [
    `process ${p.upid}${p.name ? ` (${p.name})` : ''}: ${p.state}, round ${p.round}, started ${p.starts} time${p.starts === 1 ? '' : 's'}`,
    `definition ${p.definitionId} (type ${p.definition.type}); queueing ${p.queueingMode}, restart ${p.restartMode}`,
  ];
  if (p.assigned) lines.push(`placed on agent ${p.assigned.agentId} of node ${p.assigned.nodeId}${p.hostname ? ` (${p.hostname})` : ''}`);
  if (p.executionEngine) lines.push(`execution engine: ${p.executionEngine}`);
  if (p.nodeExclusive) lines.push(`node exclusive: ${p.nodeExclusive}`);
  if (Object.keys(p.constraints).length > 0) lines.push(`constraints: ${JSON.stringify(p.constraints)}`);
  if (Object.keys(p.configuration).length > 0) lines.push('configuration:', indent(YAML.stringify(p.configuration)));
  if (p.subscribers.length > 0) lines.push(`subscribers: ${p.subscribers.join(' ')}`);
  if (p.lastError) lines.push(`last error: ${p.lastError}`);
  return lines.join('\n');
}

function statusText(s: DispatcherStatusView): string {
  const lines = [`${s.queued} process round${s.queued === 1 ? '' : 's'} queued${s.booting ? '; booting' : ''}`];
  if (s.agents.length > 0) {
    lines.push(
      table([
        ['AGENT', 'NODE', 'ENGINE', 'SLOTS', 'USED', 'HEALTH', 'RETIRING'],
        ...s.agents.map((a) => [a.agentId, a.nodeId, a.engineType, String(a.slots), String(a.used), a.health, a.retiring ? 'yes' : 'no']),
      ]),
    );
  } else lines.push('no agents');
  for (const c of s.capacity) {
    lines.push(`engine ${c.engineType}: wants ${c.wanted} worker(s) of domain pd_${c.engineType}, ${c.applied ? 'taken' : `not taken${c.lastError ? `: ${c.lastError}` : ' yet'}`}`);
  }
  return lines.join('\n');
}

function definitionOptions(cmd: Command): Command {
  return cmd
    .option('--file <path>', 'the definition, YAML or JSON: {type, executable, config?, description?}')
    .option('--set <path=value>', 'a value over the file, e.g. config.window=10 (repeatable; the value read as YAML)', collect, [])
    .option('--type <type>', 'exec, js, or a built-in transform name')
    .option('--argv <arg>', 'for exec: one argument of the command line, in order (repeatable)', collect, [])
    .option('--module <path>', 'for js: the module to run')
    .option('--env <NAME=VALUE>', 'for exec: an environment variable (repeatable)', collect, [])
    .option('--cwd <dir>', 'for exec: the working directory')
    .option('--description <text>', 'what it is for')
    .option('--json', 'print JSON');
}

export function registerProcessCommands(program: Command): void {
  const { cmd, run } = clientGroup(
    program,
    'process',
    'processes on execution engine agents: definitions, schedule, describe, list, terminate, restart, wait',
    (node) => new DispatcherClient(node),
  );

  const timer = cmd.command('timer').description('timed runs of a definition: at a time and/or every interval (create, list, cancel)');
  timer
    .command('create <name>')
    .description('run a definition at a time and/or every interval; each run is a process <name>-<n> (restart mode NEVER); --set result=STREAM publishes each run\'s result')
    .requiredOption('--definition <id>', 'the process definition to run')
    .option('--at <when>', 'the first run: an ISO time, or +DURATION from now (30s, 2m)')
    .option('--every <duration>', 'then again every interval (100ms at least)', duration('--every'))
    .option('--count <n>', 'runs at most', wholeNumber('--count'))
    .option('--file <path>', 'the configuration, YAML or JSON, over the definition\'s')
    .option('--set <path=value>', 'a configuration value over the file (repeatable)', collect, [])
    .option('--engine <type>', 'only agents of this execution engine type')
    .option('--json', 'print JSON')
    .action(
      run(async (client, name: string, opts: { definition: string; at?: string; every?: number; count?: number; file?: string; set: string[]; engine?: string; json?: boolean }) => {
        const configuration = documentOf(opts.file, opts.set);
        const t = await client.createTimer({
          name,
          definitionId: opts.definition,
          ...(opts.at !== undefined && { at: whenOf(opts.at) }),
          ...(opts.every !== undefined && { every: opts.every }),
          ...(opts.count !== undefined && { count: opts.count }),
          ...(configuration !== undefined && { configuration }),
          ...(opts.engine !== undefined && { executionEngine: opts.engine }),
        });
        print(opts.json ? t : `timer ${t.name}: next run ${new Date(t.next).toISOString()}${t.every ? `, then every ${t.every} ms` : ''}${t.count ? `, ${t.count} runs at most` : ''}`);
      }),
    );
  timer
    .command('list')
    .description('the timers, with their next run and the runs so far')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const timers = await client.listTimers();
        if (opts.json) print({ timers });
        else if (timers.length === 0) print('no timers');
        else
          print(
            table([
              ['TIMER', 'DEFINITION', 'NEXT', 'EVERY', 'RUNS', 'LAST ERROR'],
              ...timers.map((t) => [t.name, t.definitionId, new Date(t.next).toISOString(), t.every ? `${t.every}ms` : '-', `${t.runs}${t.count ? `/${t.count}` : ''}`, t.lastError ?? '-']),
            ]),
          );
      }),
    );
  timer
    .command('cancel <name>')
    .description('stop a timer (runs already started go on)')
    .action(
      run(async (client, name: string) => {
        await client.cancelTimer(name);
        print(`timer ${name} cancelled`);
      }),
    );

  const def = cmd.command('definition').description('process definitions: what to run (create, update, remove, describe, list)');

  definitionOptions(def.command('create <id>').description('create a process definition (ALREADY_EXISTS if the id is taken)')).action(
    run(async (client, id: string, opts: DefinitionFlags) => {
      const d = await client.createDefinition(definitionOf(id, opts));
      print(opts.json ? d : `created definition ${d.id}`);
    }),
  );

  definitionOptions(def.command('update <id>').description('replace a process definition (processes already scheduled keep theirs)')).action(
    run(async (client, id: string, opts: DefinitionFlags) => {
      const d = await client.updateDefinition(definitionOf(id, opts));
      print(opts.json ? d : `updated definition ${d.id}`);
    }),
  );

  def
    .command('remove <id>')
    .description('remove a process definition')
    .action(
      run(async (client, id: string) => {
        await client.removeDefinition(id);
        print(`removed definition ${id}`);
      }),
    );

  def
    .command('describe <id>')
    .description('show a process definition')
    .option('--json', 'print JSON')
    .action(
      run(async (client, id: string, opts: { json?: boolean }) => {
        const d = await client.describeDefinition(id);
        print(opts.json ? d : definitionText(d));
      }),
    );

  def
    .command('list')
    .description('list the process definitions')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const definitions = await client.listDefinitions();
        if (opts.json) print({ definitions });
        else print(table([['DEFINITION', 'TYPE', 'DESCRIPTION'], ...definitions.map((d) => [d.id, d.type, d.description ?? ''])]));
      }),
    );

  cmd
    .command('schedule <upid>')
    .description('schedule a process of a definition (a repeat with the same parameters is no change)')
    .requiredOption('--definition <id>', 'the process definition to run')
    .option('--file <path>', 'the configuration, YAML or JSON, over the definition\'s')
    .option('--set <path=value>', 'a configuration value over the file, e.g. process.omit_from_system_restart=true (repeatable)', collect, [])
    .option('--constraint <property=value>', 'an agent property the placement needs; the value is YAML: a value, [a, b], or {">=": 4} (repeatable)', collect, [])
    .option('--queueing-mode <mode>', 'NEVER, ALWAYS (default), START_ONLY or RESTART_ONLY')
    .option('--restart-mode <mode>', 'NEVER, ALWAYS or ABNORMAL (default)')
    .option('--engine <type>', 'only agents of this execution engine type')
    .option('--node-exclusive <tag>', 'no two processes with this tag on one node')
    .option('--subscriber <type/id>', 'an actor told every state change (repeatable)', collect, [])
    .option('--name <name>', 'a name to show')
    .option('--json', 'print JSON')
    .action(
      run(
        async (
          client,
          upid: string,
          opts: {
            definition: string;
            file?: string;
            set: string[];
            constraint: string[];
            queueingMode?: string;
            restartMode?: string;
            engine?: string;
            nodeExclusive?: string;
            subscriber: string[];
            name?: string;
            json?: boolean;
          },
        ) => {
          const configuration = documentOf(opts.file, opts.set);
          const constraints = yamlPairs('--constraint', opts.constraint);
          const p = await client.schedule({
            upid,
            definitionId: opts.definition,
            ...(configuration !== undefined && { configuration }),
            ...(constraints !== undefined && { constraints }),
            ...(opts.queueingMode !== undefined && { queueingMode: opts.queueingMode }),
            ...(opts.restartMode !== undefined && { restartMode: opts.restartMode }),
            ...(opts.engine !== undefined && { executionEngine: opts.engine }),
            ...(opts.nodeExclusive !== undefined && { nodeExclusive: opts.nodeExclusive }),
            ...(opts.subscriber.length > 0 && { subscribers: opts.subscriber }),
            ...(opts.name !== undefined && { name: opts.name }),
          });
          print(opts.json ? p : `process ${p.upid}: ${p.state}, round ${p.round}`);
        },
      ),
    );

  cmd
    .command('describe <upid>')
    .description('show a process: state, round, placement, configuration')
    .option('--json', 'print JSON')
    .action(
      run(async (client, upid: string, opts: { json?: boolean }) => {
        const p = await client.describe(upid);
        print(opts.json ? p : processText(p));
      }),
    );

  cmd
    .command('list')
    .description('list the processes')
    .option('--state <state>', 'only processes in this state (repeatable)', collect, [])
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { state: string[]; json?: boolean }) => {
        const processes = await client.list(opts.state);
        if (opts.json) print({ processes });
        else print(table([['UPID', 'DEFINITION', 'STATE', 'ROUND', 'NODE', 'ERROR'], ...processes.map(processRow)]));
      }),
    );

  for (const [name, description] of [
    ['terminate', 'stop a process (TERMINATING until its agent reports it stopped)'],
    ['restart', 'run a process again in a new round'],
  ] as const) {
    cmd
      .command(`${name} <upid>`)
      .description(description)
      .option('--json', 'print JSON')
      .action(
        run(async (client, upid: string, opts: { json?: boolean }) => {
          const p = name === 'terminate' ? await client.terminate(upid) : await client.restart(upid);
          print(opts.json ? p : `process ${p.upid}: ${p.state}, round ${p.round}`);
        }),
      );
  }

  cmd
    .command('wait <upid>')
    .description('wait until a process is in one of the given states (exit 1 on timeout or a final state not asked for)')
    .option('--state <state>', 'a state to wait for (repeatable; RUNNING when none is given)', collect, [])
    .option('--timeout <duration>', 'give up after this long: 500ms, 30s, 2m', duration('--timeout'), 30_000)
    .option('--json', 'print JSON')
    .action(
      run(async (client, upid: string, opts: { state: string[]; timeout: number; json?: boolean }) => {
        const states = opts.state.length > 0 ? opts.state : ['RUNNING'];
        const p = await client.wait(upid, states, opts.timeout);
        print(opts.json ? p : `process ${p.upid}: ${p.state}, round ${p.round}`);
      }),
    );

  cmd
    .command('logs <upid>')
    .description("a process's output (stdout, stderr, the engine's notes) from the worker that runs or ran it")
    .option('--follow', 'keep printing new lines until Ctrl-C')
    .option('--json', 'print each line as JSON {seq, at, source, line}')
    .action(
      run(async (client, upid: string, opts: { follow?: boolean; json?: boolean }) => {
        let since = 0;
        let stop = false;
        const onSigint = () => (stop = true);
        process.once('SIGINT', onSigint);
        try {
          do {
            const r = await client.logs(upid, since);
            for (const l of r.lines) {
              // A gap in seqs: the worker's bound dropped lines in between.
              if (since > 0 && l.seq > since + 1 && !opts.json) print(`... ${l.seq - since - 1} lines dropped ...`);
              print(opts.json ? l : `${new Date(l.at).toISOString()} ${l.source.padEnd(6)} ${l.line}`);
              since = l.seq;
            }
            if (opts.follow && !stop) await new Promise((resolve) => setTimeout(resolve, LOG_POLL_MS));
          } while (opts.follow && !stop);
        } finally {
          process.off('SIGINT', onSigint);
        }
      }),
    );

  cmd
    .command('boot')
    .description('start or end the system boot: while it lasts, processes recovered from before a whole-system restart wait in UNSCHEDULED_PENDING; ending it places them (cei launch does both when it brings a whole run back)')
    .argument('<phase>', 'start or end')
    .option('--recover', 'with start: every live process is from before the restart and goes to its next round (held), or FAILED when its restart mode or configuration says it does not come back')
    .option('--json', 'print JSON')
    .action(
      run(async (client, phase: string, opts: { recover?: boolean; json?: boolean }) => {
        if (phase !== 'start' && phase !== 'end') throw new InvalidArgumentError(`phase: "${phase}" is not start or end`);
        if (phase === 'end' && opts.recover) throw new InvalidArgumentError('--recover goes with start only');
        const r = await client.setSystemBoot(phase === 'start', opts.recover === true);
        print(opts.json ? r : `system boot ${r.booting ? 'started' : 'ended'}${r.recovered.length > 0 ? `; ${r.recovered.length} process(es) recovered: ${r.recovered.join(', ')}` : ''}`);
      }),
    );

  cmd
    .command('status')
    .description('the dispatcher: its agents, the queue, and the capacity it wants of each EPU domain')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { json?: boolean }) => {
        const s = await client.status();
        print(opts.json ? s : statusText(s));
      }),
    );
}
