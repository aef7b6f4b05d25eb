#!/usr/bin/env -S node --max-semi-space-size=64
/**
 * The `cei` command. It only turns flags into option objects and starts things; what it starts lives
 * in src/node.ts (a node), src/demo.ts (the embedded default) and src/cli-actor.ts (client commands).
 */
import { Command, InvalidArgumentError as CommanderArgError, Option } from 'commander';
import { CeiNode, NODE_DEFAULTS, NODE_ROLES, type NodeOptions, type NodeRole } from './node.js';
import { createLogger, type LogLevel } from './log.js';
import { errorMessage } from './errors.js';
import { registerActorCommands, registerNodesCommand } from './cli-actor.js';
import { registerDtrsCommands } from './cli-dtrs.js';
import { registerProvisionerCommands } from './cli-provisioner.js';
import { registerEpumCommands } from './cli-epum.js';
import { registerStreamCommands } from './cli-stream.js';
import { registerProcessCommands } from './cli-process.js';
import { registerHaCommands } from './cli-ha.js';
import { registerLaunchCommands } from './cli-launch.js';
import { SleeperDemo, DEMO_DOMAIN } from './demo.js';

function positiveInt(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new CommanderArgError(`${name} must be a whole number >= 0`);
    return n;
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function splitList(value: string, previous: string[]): string[] {
  return [...previous, ...value.split(',').map((s) => s.trim()).filter(Boolean)];
}

const logLevelOption = () =>
  new Option('--log-level <level>', 'log verbosity').choices(['debug', 'info', 'warn', 'error', 'silent']).default('info');

/** Runs `node` until SIGINT or SIGTERM, then runs `onStop` (while the node still serves), stops the node gracefully and exits 0. */
function serveUntilSignal(node: CeiNode, onStop?: () => void | Promise<void>): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    node.log.info({ signal }, 'stopping');
    Promise.resolve()
      .then(onStop)
      .catch((err: unknown) => node.log.error({ err: errorMessage(err) }, 'stopping: cleanup failed'))
      .then(() => node.stop())
      .then(
        () => process.exit(0),
        (err) => {
          node.log.error({ err: errorMessage(err) }, 'unclean stop');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

async function startNode(options: NodeOptions, level: LogLevel): Promise<CeiNode> {
  const log = createLogger(level, { role: options.role });
  const node = await CeiNode.start(options, log);
  process.stdout.write(`ready ${node.id} ${node.address}\n`);
  return node;
}

const program = new Command();
program
  .name('cei')
  .description('cei: elastic execution infrastructure as a distributed actor runtime')
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => write(str) });

program
  .command('node')
  .description('run a node: serves the public gRPC API and hosts actors until SIGTERM')
  .addOption(new Option('--role <role>', 'node role').choices(NODE_ROLES as string[]).makeOptionMandatory())
  .requiredOption('--listen <host:port>', 'address for the gRPC API (port 0 picks a free port)')
  .requiredOption('--data <dir>', 'data directory (LevelDB store and node identity)')
  .option('--join <host:port,...>', 'seed nodes to join (repeatable or comma-separated)', splitList, [])
  .option('--actors <path.js>', 'module with extra actor types (repeatable)', collect, [])
  .option('--engines <path.js>', 'module with extra EPU decision engines (repeatable)', collect, [])
  .option('--instance-id <id>', 'instance id given by the provisioner to worker VMs')
  .option('--engine-type <name>', 'a worker\'s execution engine type: processes that ask for a type go only to workers of it', 'default')
  .option('--slots <n>', 'processes a worker runs at once', positiveInt('--slots'), 8)
  .option('--max-payload <bytes>', 'largest accepted message payload', positiveInt('--max-payload'), 1024 * 1024)
  .option('--idle-ms <ms>', 'unload actors idle this long (0 = never)', positiveInt('--idle-ms'), 5 * 60 * 1000)
  .option('--replicas <n>', 'copies of each actor: its owner and n-1 replicas', positiveInt('--replicas'), 2)
  .option('--heartbeat-ms <ms>', 'heartbeat interval between nodes', positiveInt('--heartbeat-ms'), 100)
  .option('--link-grace-ms <ms>', 'suspect a peer whose link stays down this long', positiveInt('--link-grace-ms'), 150)
  .option('--join-timeout-ms <ms>', 'a fresh bootstrap node whose seeds never answer starts a new cluster after this', positiveInt('--join-timeout-ms'), 3000)
  .addOption(logLevelOption())
  .action(async (opts) => {
    const options: NodeOptions = {
      ...NODE_DEFAULTS,
      role: opts.role as NodeRole,
      listen: opts.listen,
      dataDir: opts.data,
      join: opts.join,
      actorModules: opts.actors,
      engineModules: opts.engines,
      instanceId: opts.instanceId,
      roles: { eeAgent: { engineType: opts.engineType, slots: opts.slots } },
      // A worker its domain calls a zombie stops as on SIGTERM.
      onZombie: () => process.kill(process.pid, 'SIGTERM'),
      runtime: { maxPayloadBytes: opts.maxPayload, idleMs: opts.idleMs },
      cluster: { replicas: opts.replicas, heartbeatIntervalMs: opts.heartbeatMs, linkGraceMs: opts.linkGraceMs, joinTimeoutMs: opts.joinTimeoutMs },
    };
    const node = await startNode(options, opts.logLevel);
    serveUntilSignal(node);
  });

program
  .command('up')
  .description('embedded default: one node holding every role; with --demo, drives real traffic through it')
  .option('--listen <host:port>', 'address for the gRPC API', '127.0.0.1:7000')
  .option('--data <dir>', 'data directory', './data/up')
  .option('--demo', 'Sleeper Must Awaken (a domain of 2 real local workers; kill one, watch it replaced), then a window-average transform on them that survives the SIGKILL of its worker', false)
  .addOption(logLevelOption().default('warn'))
  .action(async (opts) => {
    const node = await startNode({ ...NODE_DEFAULTS, role: 'bootstrap', listen: opts.listen, dataDir: opts.data }, opts.logLevel);
    const print = (line: string): void => void process.stdout.write(`${line}\n`);
    const demo = opts.demo ? new SleeperDemo({ address: node.address, dataDir: opts.data, print }) : undefined;
    serveUntilSignal(node, () => demo?.shutdown());
    // A demo that fails says so and leaves the node serving (Ctrl-C still cleans its workers up).
    await demo?.run().catch((err: unknown) => print(`demo: failed: ${errorMessage(err)}`));
    const hint = demo ? `domain describe ${DEMO_DOMAIN}` : 'actor list';
    print(`serving on ${node.address} (Ctrl-C to stop); try: node dist/cli.js ${hint} --node ${node.address}`);
  });

registerActorCommands(program);
registerNodesCommand(program);
registerDtrsCommands(program);
registerProvisionerCommands(program);
registerEpumCommands(program);
registerStreamCommands(program);
registerProcessCommands(program);
registerHaCommands(program);
registerLaunchCommands(program);

program.parseAsync(process.argv).catch((err) => {
  process.stderr.write(`error: ${errorMessage(err)}\n`);
  process.exit(1);
});
