import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CeiClient } from '../../src/client.js';
import { CLI, PACKAGE_ROOT } from '../support/cei-node.js';
import { startReadyChild, type ReadyChild } from '../support/ready-child.js';
import type { TempDirs } from '../support/temp-dirs.js';
import { reapOnExit } from './exit-reaper.js';
import { NODE_V8_FLAGS } from '../../src/node-flags.js';

export type NodeRole = 'bootstrap' | 'control' | 'worker';

/** One `node dist/cli.js node` of a LocalCluster: fixed port and data directory across restarts. */
export interface LocalNode {
  readonly index: number;
  readonly role: NodeRole;
  /** Chosen when the node is added, kept across restarts. */
  port: number;
  address: string;
  readonly dataDir: string;
  /** The node id of its ready line (stable across restarts on the same data directory). */
  id: string;
  /** The running process; undefined once it exited. */
  child: ReadyChild | undefined;
  /** performance.now() when the last start printed its ready line. */
  readyAt: number;
  /** True between SIGSTOP and SIGCONT. */
  stopped: boolean;
  /** Starts of this node so far (1 = never restarted). */
  starts: number;
}

export interface LocalClusterOptions {
  /** `--log-level` of every node (the CLI's default is info); the log of each node goes to a file. */
  logLevel: string;
  /** Extra flags for every node (none: the defaults are what is measured). */
  args: string[];
  /** Milliseconds a node may take to print its ready line. */
  readyDeadlineMs: number;
}

/** A loopback port nobody listens on right now (closed again before it is returned). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A cluster of real `cei node` processes on loopback, for the cluster bench: the built binary
 * (dist/cli.js) with default flags, one fixed port and data directory per node so that a restarted
 * node comes back as the same member on the same address, and node 0 (the bootstrap) as every other
 * node's `--join` seed. Each node's stderr is appended to `<logDir>/<name>-node-<i>.log` across restarts.
 *
 * Not safe for concurrent calls that start or signal the same node.
 */
export class LocalCluster {
  readonly nodes: LocalNode[] = [];
  private readonly clients = new Map<number, CeiClient>();
  private readonly logs = new Map<number, WriteStream>();

  constructor(
    private readonly tmp: TempDirs,
    readonly name: string,
    readonly logDir: string,
    private readonly options: LocalClusterOptions,
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  /** Adds a node of `role` on a fresh port and data directory and starts it; resolves at its ready line. */
  async add(role: NodeRole): Promise<LocalNode> {
    const index = this.nodes.length;
    const node: LocalNode = {
      index,
      role,
      port: 0,
      address: '',
      dataDir: this.tmp.make(`${this.name}-node-${index}`),
      id: '',
      child: undefined,
      readyAt: Number.NaN,
      stopped: false,
      starts: 0,
    };
    // Listed at once, so that nodes added concurrently get distinct indexes.
    this.nodes.push(node);
    node.port = await freePort();
    node.address = `127.0.0.1:${node.port}`;
    await this.start(node);
    return node;
  }

  /** Starts (or restarts) `node` on its data directory and port with the flags it was first started with. */
  async start(node: LocalNode): Promise<void> {
    if (node.child) throw new Error(`node ${node.index} is still running`);
    const join = node.index === 0 ? [] : ['--join', this.nodes[0]!.address];
    const args = [...NODE_V8_FLAGS, ...cpuProfileArgs(), CLI, 'node', `--role=${node.role}`, '--listen', node.address, '--data', node.dataDir, '--log-level', this.options.logLevel, ...join, ...this.options.args];
    const log = this.log(node.index);
    log.write(`--- bench: start ${node.starts + 1} of node ${node.index} (${node.role}) at ${new Date().toISOString()}\n`);
    let child: ReadyChild;
    try {
      child = await startReadyChild(process.execPath, args, {
        ready: /^ready (\S+) (\S+)$/,
        deadlineMs: this.options.readyDeadlineMs,
        name: `${this.name} node ${node.index}`,
        cwd: PACKAGE_ROOT,
      });
    } catch (err) {
      log.write(`--- bench: start failed: ${err instanceof Error ? err.message : String(err)}\n`);
      throw err;
    }
    node.readyAt = performance.now();
    const { proc } = child;
    reapOnExit(proc);
    // What the node wrote before its ready line is in child.stderr(); from here on it is streamed.
    log.write(child.stderr());
    proc.stderr!.on('data', (d: string) => log.write(d));
    void child.exited.then((how) => {
      log.write(`--- bench: node ${node.index} exited (${how}) at ${new Date().toISOString()}\n`);
      if (node.child === child) {
        node.child = undefined;
        node.stopped = false;
      }
    });
    node.child = child;
    node.starts++;
    this.clients.get(node.index)?.close();
    this.clients.delete(node.index);
    if (node.id !== '' && node.id !== child.match[1]) {
      log.write(`--- bench: node ${node.index} came back as ${child.match[1]}, was ${node.id}\n`);
      throw new Error(`node ${node.index} restarted on its data directory as ${child.match[1]}, not as ${node.id}`);
    }
    node.id = child.match[1]!;
  }

  /** Sends `signal` to the node's process; SIGKILL resolves once it has exited. */
  async signal(node: LocalNode, signal: 'SIGKILL' | 'SIGSTOP' | 'SIGCONT'): Promise<void> {
    const child = node.child;
    if (!child) throw new Error(`node ${node.index} is not running`);
    this.log(node.index).write(`--- bench: ${signal} to node ${node.index} at ${new Date().toISOString()}\n`);
    child.proc.kill(signal);
    if (signal === 'SIGSTOP') node.stopped = true;
    if (signal === 'SIGCONT') node.stopped = false;
    if (signal === 'SIGKILL') await child.exited;
  }

  /**
   * Brings every node back (SIGCONT to a stopped one, a restart of one that exited) and waits until
   * every member is up on every node: a measurement that failed half-way leaves the next a whole cluster.
   */
  async heal(timeoutMs: number): Promise<void> {
    for (const node of this.nodes) {
      if (node.child && node.stopped) await this.signal(node, 'SIGCONT');
      if (!node.child) await this.start(node);
    }
    await this.waitAllUp(timeoutMs);
  }

  /** Nodes whose process runs and is not stopped. */
  live(): LocalNode[] {
    return this.nodes.filter((n) => n.child !== undefined && !n.stopped);
  }

  /** One client per node, made again after a restart. */
  client(node: LocalNode): CeiClient {
    let c = this.clients.get(node.index);
    if (!c) {
      c = new CeiClient(node.address);
      this.clients.set(node.index, c);
    }
    return c;
  }

  /**
   * True when every live node answers Members with its view not fenced and every node of this
   * cluster listed as `up` in it. A stopped or exited node is not asked but must be listed up too.
   */
  async allUp(deadlineMs = 500): Promise<boolean> {
    const live = this.live();
    if (live.length !== this.nodes.length) return false;
    const views = await Promise.all(live.map((n) => this.client(n).members(deadlineMs).catch(() => undefined)));
    return views.every((v) => v !== undefined && !v.fenced && this.nodes.every((n) => v.members.some((m) => m.id === n.id && m.status === 'up')));
  }

  /** Polls `allUp` until it holds; rejects after `timeoutMs` with every live node's view. */
  async waitAllUp(timeoutMs: number): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (!(await this.allUp())) {
      if (performance.now() >= until) throw new Error(`not every member was up on every node within ${timeoutMs} ms: ${await this.views()}`);
      await sleep(10);
    }
  }

  /** Every live node's view, for errors: `node-i sees id=status ...`. */
  async views(): Promise<string> {
    const parts = await Promise.all(
      this.live().map(async (n) => {
        const v = await this.client(n).members(1_000).catch((err: Error) => err);
        if (v instanceof Error) return `node ${n.index} (${n.id}): ${v.message}`;
        return `node ${n.index} (${n.id})${v.fenced ? ' fenced' : ''} sees ${v.members.map((m) => `${m.id}=${m.status}`).join(' ')}`;
      }),
    );
    return parts.join('; ');
  }

  /** The last `bytes` of node i's stderr of its current (or last) run, for error reports. */
  stderrTail(node: LocalNode, bytes = 4_000): string {
    return (node.child?.stderr() ?? '').slice(-bytes);
  }

  /**
   * Ends every node at once: SIGCONT then SIGKILL (a stopped process is killed too), and waits for
   * them to exit. Not a graceful leave: the cluster's data is thrown away with the run's temp dirs,
   * and all members leaving at once would only measure the hand-off of a cluster that is going away.
   */
  async destroy(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    if (cpuProfileArgs().length > 0) await this.leaveForProfiles();
    await Promise.all(
      this.nodes.map(async (n) => {
        const child = n.child;
        if (!child) return;
        child.proc.kill('SIGCONT');
        child.proc.kill('SIGKILL');
        await child.exited;
      }),
    );
    await Promise.all([...this.logs.values()].map((s) => new Promise<void>((resolve) => s.end(resolve))));
    this.logs.clear();
  }

  /**
   * With CEI_BENCH_NODE_CPU_PROF, nodes write their profiles only on a clean exit: SIGTERM them one by
   * one, newest first (a graceful leave), each given 15 s before the SIGKILL of destroy().
   */
  private async leaveForProfiles(): Promise<void> {
    for (const n of [...this.nodes].reverse()) {
      const child = n.child;
      if (!child || n.stopped) continue;
      child.proc.kill('SIGTERM');
      await Promise.race([child.exited, sleep(15_000)]);
    }
  }

  /** Node i's log file. Writes after `destroy` (stderr may still drain after a process exited) are dropped. */
  private log(index: number): { write(text: string): void } {
    let s = this.logs.get(index);
    if (!s) {
      s = createWriteStream(join(this.logDir, `${this.name}-node-${index}.log`), { flags: 'a' });
      // A log that cannot be written must not end the run: the figures do not depend on it.
      s.on('error', () => {});
      this.logs.set(index, s);
    }
    const stream = s;
    return { write: (text) => void (stream.writableEnded || stream.write(text)) };
  }
}

/** `--cpu-prof` flags for every node when CEI_BENCH_NODE_CPU_PROF names a directory for the profiles. */
function cpuProfileArgs(): string[] {
  const dir = process.env.CEI_BENCH_NODE_CPU_PROF;
  return dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
}
