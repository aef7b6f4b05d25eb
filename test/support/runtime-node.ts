/**
 * One node's runtime on a real LevelDB directory, driven by a FakeClock, for unit tests: open it,
 * restart it on the same directory (as a node restart would), and clean everything up after each test.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach } from 'vitest';
import type { ActorType } from '../../src/runtime/actor-type.js';
import { FakeClock } from '../../src/runtime/clock-fake.js';
import { ActorSystem, RUNTIME_TEST_PRESET, type RuntimeDeps, type RuntimeOptions } from '../../src/runtime/runtime.js';
import { Store } from '../../src/runtime/store.js';

export interface TestNodeOptions {
  /** Runtime options over RUNTIME_TEST_PRESET. */
  options?: Partial<RuntimeOptions>;
  /** Shared with a node this one replaces, so that time keeps going across a restart. */
  clock?: FakeClock;
  /** The cluster's seams, for tests of how the runtime uses them (a stand-in replicator, say). */
  deps?: Pick<RuntimeDeps, 'placement' | 'replicator'>;
}

export class TestNode {
  private current: { store: Store; system: ActorSystem } | undefined;

  constructor(
    readonly dir: string,
    readonly types: ActorType<any>[],
    readonly clock: FakeClock,
    readonly options: Partial<RuntimeOptions>,
    readonly deps: TestNodeOptions['deps'] = {},
  ) {}

  get store(): Store {
    if (!this.current) throw new Error(`test node on ${this.dir} is stopped`);
    return this.current.store;
  }

  get system(): ActorSystem {
    if (!this.current) throw new Error(`test node on ${this.dir} is stopped`);
    return this.current.system;
  }

  get running(): boolean {
    return this.current !== undefined;
  }

  /** Opens the store and a fresh ActorSystem on it (without recovery). */
  async start(): Promise<void> {
    if (this.current) throw new Error(`test node on ${this.dir} is already running`);
    const store = await Store.open(this.dir);
    const system = new ActorSystem({ store, clock: this.clock, types: this.types, ...this.deps }, { ...RUNTIME_TEST_PRESET, ...this.options });
    this.current = { store, system };
  }

  /** Shuts the system down and closes the store, as a clean node stop. Idempotent. */
  async stop(): Promise<void> {
    const current = this.current;
    if (!current) return;
    this.current = undefined;
    await current.system.shutdown();
    await current.store.close();
  }

  /** Stops, opens the same directory again, and recovers the actors that had pending work. */
  async restart(): Promise<number> {
    await this.stop();
    await this.start();
    return this.system.recover();
  }
}

/**
 * Registers an afterEach that stops every node made through it and removes its directories.
 * Call once at the top of a test file (or describe block).
 */
export function useTestNodes(): {
  tempDir(): string;
  node(types: ActorType<any>[], opts?: TestNodeOptions): Promise<TestNode>;
} {
  const nodes: TestNode[] = [];
  const dirs: string[] = [];
  afterEach(async () => {
    for (const node of nodes.splice(0)) await node.stop();
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  const tempDir = (): string => {
    const dir = mkdtempSync(join(tmpdir(), 'cei-unit-'));
    dirs.push(dir);
    return dir;
  };
  return {
    tempDir,
    async node(types, opts = {}) {
      const node = new TestNode(tempDir(), types, opts.clock ?? new FakeClock(), opts.options ?? {}, opts.deps);
      nodes.push(node);
      await node.start();
      return node;
    },
  };
}
