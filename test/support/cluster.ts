/**
 * A cluster of real `cei node` processes on loopback for integration and chaos tests: fixed ports per
 * node (so a restarted node comes back on its address), real data directories, and waits on what
 * the nodes report through the public Cluster API - never on fixed sleeps.
 */
import { createServer } from 'node:net';
import { CeiClient } from '../../src/client.js';
import { removeDir, startNode, tempDir, type NodeProcess } from './node-process.js';
import { waitFor } from './wait.js';

export interface ClusterNodeSpec {
  role: 'bootstrap' | 'control' | 'worker';
  args?: string[];
  env?: Record<string, string>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export class TestCluster {
  readonly dirs: string[] = [];
  readonly ports: number[] = [];
  readonly procs: Array<NodeProcess | undefined> = [];
  readonly ids: string[] = [];
  private clients = new Map<number, CeiClient>();

  constructor(readonly specs: ClusterNodeSpec[], readonly commonArgs: string[] = []) {}

  address(i: number): string {
    return `127.0.0.1:${this.ports[i]}`;
  }

  /** Starts (or restarts) node i on its data directory and port; node 0 is the seed of the others. */
  async start(i: number): Promise<NodeProcess> {
    if (this.dirs[i] === undefined) {
      this.dirs[i] = tempDir(`cei-cluster-${i}-`);
      this.ports[i] = await freePort();
    }
    const spec = this.specs[i]!;
    const join = i === 0 ? [] : ['--join', this.address(0)];
    const node = await startNode({
      dataDir: this.dirs[i]!,
      role: spec.role,
      listen: this.address(i),
      args: [...join, ...this.commonArgs, ...(spec.args ?? [])],
      env: spec.env,
      readyTimeoutMs: 20_000,
    });
    this.procs[i] = node;
    this.ids[i] = node.id;
    return node;
  }

  /** Starts every node, node 0 first, and waits until every node sees all of them up. */
  async startAll(): Promise<void> {
    await this.start(0);
    await Promise.all(this.specs.slice(1).map((_, j) => this.start(j + 1)));
    await this.waitForStatuses(Object.fromEntries(this.ids.map((id) => [id, 'up'])));
  }

  client(i: number): CeiClient {
    let c = this.clients.get(i);
    if (!c) {
      c = new CeiClient(this.address(i));
      this.clients.set(i, c);
    }
    return c;
  }

  live(): number[] {
    return this.procs.flatMap((p, i) => (p && p.proc.exitCode === null && p.proc.signalCode === null ? [i] : []));
  }

  async kill(i: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const p = this.procs[i];
    if (!p) return;
    p.kill(signal);
    if (signal === 'SIGKILL' || signal === 'SIGTERM') await p.exited;
    this.clients.get(i)?.close();
    this.clients.delete(i);
  }

  /** Waits until every live node reports each listed member in the given status (or absent for 'gone'). */
  async waitForStatuses(want: Record<string, string>, timeoutMs = 20_000): Promise<void> {
    await waitFor(
      async () => {
        for (const i of this.live()) {
          const reply = await this.client(i).members(2_000).catch(() => undefined);
          if (!reply) return false;
          for (const [id, status] of Object.entries(want)) {
            const m = reply.members.find((x) => x.id === id);
            if (status === 'gone' ? m !== undefined : m?.status !== status) return false;
          }
        }
        return true;
      },
      { timeoutMs, what: `members ${JSON.stringify(want)} on every live node` },
    );
  }

  async stopAll(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    await Promise.all(this.live().map((i) => this.procs[i]!.stop()));
  }

  async destroy(): Promise<void> {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
    for (const p of this.procs) if (p && p.proc.exitCode === null && p.proc.signalCode === null) p.kill('SIGKILL');
    await Promise.all(this.procs.map((p) => p?.exited));
    for (const d of this.dirs) if (d) removeDir(d);
  }
}
