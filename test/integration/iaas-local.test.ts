/**
 * The local IaaS driver with real processes: `cei node --role=worker` instances that join a real
 * bootstrap node, and stand-in workers (a few lines of JS) for the failure paths a real node does
 * not take on demand (exiting before ready, never ready, ignoring SIGTERM).
 *
 * Every process an instance directory records is SIGKILLed after each test, whatever happened.
 */
import { NODE_V8_FLAGS } from '../../src/node-flags.js';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { CeiClient } from '../../src/client.js';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import { LOCAL_TEST_PRESET, LocalDriver, type LocalDriverOptions, type LocalSiteSettings } from '../../src/iaas/driver-local.js';
import { isInstanceProcess, signalInstance } from '../../src/iaas/local-process.js';
import { IaasFullError } from '../../src/iaas/driver-errors.js';
import type { DriverInstance, InstanceHandle } from '../../src/iaas/driver.js';
import { CLI, removeDir, startNode, tempDir, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const READY_MS = 20_000;

let baseDir: string;
const drivers: LocalDriver[] = [];
/** Instance processes seen in any way, besides those recorded on disk. */
const seen: Array<{ pid: number; id: string }> = [];

function driver(options: Partial<LocalDriverOptions> = {}, site: LocalSiteSettings = {}): LocalDriver {
  const d = new LocalDriver({ data_dir: baseDir, ...site }, { ...LOCAL_TEST_PRESET, ...options });
  drivers.push(d);
  return d;
}

function track(instances: DriverInstance[]): DriverInstance[] {
  for (const i of instances) if (i.handle.pid !== undefined) seen.push({ pid: i.handle.pid, id: i.instanceId });
  return instances;
}

/** Every instance process recorded under baseDir or seen by a test. */
function recordedProcesses(): Array<{ pid: number; id: string }> {
  const out = [...seen];
  if (baseDir && existsSync(baseDir)) {
    for (const name of readdirSync(baseDir)) {
      try {
        const record = JSON.parse(readFileSync(join(baseDir, name, 'instance.json'), 'utf8')) as { pid?: number };
        if (typeof record.pid === 'number') out.push({ pid: record.pid, id: name });
      } catch {
        // No record: no process was started for it.
      }
    }
  }
  return out;
}

async function byState(d: LocalDriver, id: string, state: string, timeoutMs = READY_MS): Promise<DriverInstance> {
  // waitFor resolves only with a truthy value, so the instance is there.
  return waitFor<DriverInstance | undefined>(
    async () => {
      const found = (await d.list()).find((i) => i.instanceId === id);
      return found?.state === state ? found : undefined;
    },
    { timeoutMs, what: `${id} ${state}` },
  ) as Promise<DriverInstance>;
}

beforeAll(() => {
  expect(existsSync(CLI), 'run npm run build first').toBe(true);
});

afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close();
  for (const { pid, id } of recordedProcesses()) if (isInstanceProcess(pid, id)) signalInstance(pid, 'SIGKILL');
  await waitFor(() => recordedProcesses().every(({ pid, id }) => !isInstanceProcess(pid, id)), { what: 'instance processes gone' });
  seen.length = 0;
  if (baseDir) removeDir(baseDir);
});

describe('local driver with real cei workers', () => {
  let bootstrap: NodeProcess | undefined;
  let bootDir: string;
  let client: CeiClient;

  beforeAll(async () => {
    bootDir = tempDir('cei-iaas-boot-');
    bootstrap = await startNode({ dataDir: bootDir, role: 'bootstrap', readyTimeoutMs: READY_MS });
    client = new CeiClient(bootstrap.address);
  });

  afterAll(async () => {
    client?.close();
    if (bootstrap) {
      bootstrap.kill('SIGKILL');
      await bootstrap.exited;
    }
    removeDir(bootDir);
  });

  beforeEach(() => {
    baseDir = tempDir('cei-iaas-local-');
  });

  async function waitForWorkers(nodeIds: string[]): Promise<void> {
    await waitFor(
      async () => {
        const { members } = await client.members(2_000);
        return nodeIds.every((id) => members.some((m) => m.id === id && m.role === 'worker' && m.status === 'up'));
      },
      { timeoutMs: READY_MS, what: `workers ${nodeIds.join(', ')} up in the bootstrap's view` },
    );
  }

  it("gives a worker's execution engine the deployable type's slots", async () => {
    const d = driver();
    track(await d.launch({ instanceIds: ['s1'], params: { slots: 3 }, seeds: [bootstrap!.address] }));
    const nodeId = (await byState(d, 's1', 'started')).nodeId!;
    const dispatcher = new DispatcherClient(bootstrap!.address);
    try {
      const agent = await waitFor(async () => (await dispatcher.status()).agents.find((a) => a.nodeId === nodeId), { timeoutMs: READY_MS, what: `the agent of ${nodeId}` });
      expect(agent!.slots).toBe(3);
      expect(agent!.properties.instance_id).toBe('s1');
    } finally {
      dispatcher.close();
    }
  });

  it('launches workers that join the cluster, and terminating them leaves no process and no directory', async () => {
    const d = driver();
    const launched = track(await d.launch({ instanceIds: ['w1', 'w2'], params: {}, seeds: [bootstrap!.address] }));
    expect(launched.map((i) => [i.instanceId, i.state])).toEqual([
      ['w1', 'pending'],
      ['w2', 'pending'],
    ]);
    const started = [await byState(d, 'w1', 'started'), await byState(d, 'w2', 'started')];
    for (const s of started) expect(s.nodeId).toMatch(/\S/);
    // Started as every cei node is, with the node V8 flags (src/node-flags.ts).
    for (const i of launched) expect(readFileSync(`/proc/${i.handle.pid}/cmdline`, 'utf8').split('\0')).toEqual(expect.arrayContaining([...NODE_V8_FLAGS]));
    await waitForWorkers(started.map((s) => s.nodeId!));

    // Idempotent: the same ids again start nothing new.
    const again = await d.launch({ instanceIds: ['w1', 'w2'], params: {}, seeds: [bootstrap!.address] });
    expect(again.map((i) => i.handle.pid)).toEqual(launched.map((i) => i.handle.pid));

    const terminated = await d.terminate(['w1', 'w2']);
    expect(terminated.map((i) => [i.state, i.reason])).toEqual([
      ['terminated', 'TERMINATE_REQUESTED'],
      ['terminated', 'TERMINATE_REQUESTED'],
    ]);
    for (const i of launched) {
      expect(isInstanceProcess(i.handle.pid!, i.instanceId)).toBe(false);
      expect(existsSync(i.handle.dir!)).toBe(false);
    }
    // A late launch of a terminated id does not bring it back.
    expect((await d.launch({ instanceIds: ['w1'], params: {}, seeds: [bootstrap!.address] }))[0]?.state).toBe('terminated');
    expect(readdirSync(baseDir)).toEqual([]);
  });

  it('workers outlive the process that launched them; a new driver finds and adopts them, and terminates them', async () => {
    // The launcher is a separate Node process that launches through the built driver, prints the
    // handle the provisioner would persist, and dies by SIGKILL.
    const script = `
      import { LocalDriver } from ${JSON.stringify(resolve(CLI, '../iaas/index.js'))};
      const d = new LocalDriver({ data_dir: process.env.BASE }, { pollIntervalMs: 20 });
      const [i] = await d.launch({ instanceIds: ['a1'], params: {}, seeds: [process.env.SEED] });
      for (;;) {
        const now = (await d.list())[0];
        if (now.state !== 'pending') { process.stdout.write(JSON.stringify(now) + '\\n', () => process.kill(process.pid, 'SIGKILL')); break; }
        await new Promise((r) => setTimeout(r, 20));
      }`;
    const launcher = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, BASE: baseDir, SEED: bootstrap!.address },
    });
    let out = '';
    let err = '';
    launcher.stdout.on('data', (c) => (out += c));
    launcher.stderr.on('data', (c) => (err += c));
    const how = await new Promise<string | number | null>((r) => launcher.once('exit', (code, signal) => r(signal ?? code)));
    expect(how, err).toBe('SIGKILL');
    const reported = JSON.parse(out) as DriverInstance;
    track([reported]);
    expect(reported.state).toBe('started');
    const handle: InstanceHandle = reported.handle;

    expect(isInstanceProcess(handle.pid!, 'a1')).toBe(true);
    await waitForWorkers([reported.nodeId!]);

    const next = driver();
    // It sees the instance before adopting it: whatever is under baseDir is at the IaaS.
    expect((await next.list()).map((i) => [i.instanceId, i.state, i.handle.pid])).toEqual([['a1', 'started', handle.pid]]);
    const [adopted] = await next.adopt([handle]);
    expect(adopted).toMatchObject({ instanceId: 'a1', state: 'started', nodeId: reported.nodeId, handle });

    const [done] = await next.terminate(['a1']);
    expect(done).toMatchObject({ state: 'terminated', reason: 'TERMINATE_REQUESTED' });
    expect(isInstanceProcess(handle.pid!, 'a1')).toBe(false);
    expect(existsSync(handle.dir!)).toBe(false);
    // The handle of a terminated instance adopts as gone.
    expect((await driver().adopt([handle]))[0]).toMatchObject({ state: 'terminated', reason: 'NOT_FOUND' });
  });
});

describe('local driver with stand-in workers', () => {
  /** Behaves per FAKE_MODE: ready (prints the ready line), exit (fails at once), silent (never ready), stubborn (ready, ignores SIGTERM). */
  const FAKE_WORKER = `
    const mode = process.env.FAKE_MODE ?? 'ready';
    const id = process.argv[process.argv.indexOf('--instance-id') + 1];
    if (mode === 'exit') { console.error('fake worker: unknown option --bogus'); process.exit(3); }
    if (mode === 'stubborn') process.on('SIGTERM', () => {});
    if (mode !== 'silent') console.log('ready node-' + id + ' 127.0.0.1:1');
    setInterval(() => {}, 1000);
  `;
  let cliDir: string;
  let fakeCli: string;
  const SEEDS = ['127.0.0.1:1'];
  const env = (mode: string) => ({ env: { FAKE_MODE: mode } });

  beforeAll(() => {
    cliDir = mkdtempSync(join(tmpdir(), 'cei-iaas-cli-'));
    fakeCli = join(cliDir, 'fake-cli.js');
    writeFileSync(fakeCli, FAKE_WORKER);
  });

  afterAll(() => rmSync(cliDir, { recursive: true, force: true }));

  beforeEach(() => {
    baseDir = tempDir('cei-iaas-fake-');
  });

  const fake = (options: Partial<LocalDriverOptions> = {}, site: LocalSiteSettings = {}) => driver({ cliPath: fakeCli, ...options }, site);

  it('a worker that exits before it is ready fails with IAAS_BOOT_FAILED and its log', async () => {
    const d = fake();
    track(await d.launch({ instanceIds: ['x'], params: env('exit'), seeds: SEEDS }));
    const failed = await byState(d, 'x', 'failed');
    expect(failed.reason).toBe('IAAS_BOOT_FAILED');
    expect(failed.detail).toMatch(/exited with code 3 before it was ready; log: .*unknown option --bogus/);
    // Its directory (and log) stays until terminate.
    expect(existsSync(failed.handle.dir!)).toBe(true);
    expect((await d.terminate(['x']))[0]).toMatchObject({ state: 'failed', reason: 'IAAS_BOOT_FAILED' });
    expect(existsSync(failed.handle.dir!)).toBe(false);
  });

  it('a worker not ready within startTimeoutMs is killed and fails with IAAS_TIMEOUT, also as a later driver sees it', async () => {
    const d = fake({ startTimeoutMs: 200 });
    const [launched] = track(await d.launch({ instanceIds: ['slow'], params: env('silent'), seeds: SEEDS }));
    const failed = await byState(d, 'slow', 'failed');
    expect(failed).toMatchObject({ reason: 'IAAS_TIMEOUT' });
    await waitFor(() => !isInstanceProcess(launched!.handle.pid!, 'slow'), { what: 'the slow worker killed' });
    expect((await fake().list())[0]).toMatchObject({ instanceId: 'slow', state: 'failed', reason: 'IAAS_TIMEOUT' });
  });

  it('a started worker killed from outside is terminated with EXITED, and watchers hear of it', async () => {
    const d = fake();
    const events: string[] = [];
    d.watch((i) => events.push(`${i.state}${i.reason ? `:${i.reason}` : ''}`));
    const [launched] = track(await d.launch({ instanceIds: ['k'], params: env('ready'), seeds: SEEDS }));
    const started = await byState(d, 'k', 'started');
    expect(started).toMatchObject({ nodeId: 'node-k', address: '127.0.0.1:1' });
    process.kill(launched!.handle.pid!, 'SIGKILL');
    await waitFor(() => events.length === 2, { what: 'the exit noticed without a list() call' });
    expect(events).toEqual(['started', 'terminated:EXITED']);
    expect((await d.list())[0]).toMatchObject({ state: 'terminated', reason: 'EXITED', detail: 'killed by SIGKILL' });
  });

  it('a worker that ignores SIGTERM is SIGKILLed after the grace', async () => {
    const d = fake({ terminateGraceMs: 200 });
    const [launched] = track(await d.launch({ instanceIds: ['s'], params: env('stubborn'), seeds: SEEDS }));
    await byState(d, 's', 'started');
    const [done] = await d.terminate(['s']);
    expect(done).toMatchObject({ state: 'terminated', reason: 'TERMINATE_REQUESTED' });
    expect(isInstanceProcess(launched!.handle.pid!, 's')).toBe(false);
    expect(existsSync(launched!.handle.dir!)).toBe(false);
  });

  it('never starts a second process for an id, even from another driver on the same baseDir', async () => {
    const a = fake();
    const b = fake();
    const [first] = track(await a.launch({ instanceIds: ['once'], params: env('ready'), seeds: SEEDS }));
    const [second] = track(await b.launch({ instanceIds: ['once'], params: env('ready'), seeds: SEEDS }));
    expect(second!.handle.pid).toBe(first!.handle.pid);
    expect(readdirSync(baseDir)).toEqual(['once']);
  });

  it('refuses a launch past capacity with IAAS_FULL and starts none of it', async () => {
    const d = fake({}, { max_instances: 2 });
    track(await d.launch({ instanceIds: ['c1'], params: env('ready'), seeds: SEEDS }));
    await expect(d.launch({ instanceIds: ['c2', 'c3'], params: env('ready'), seeds: SEEDS })).rejects.toThrow(IaasFullError);
    expect(readdirSync(baseDir)).toEqual(['c1']);
    await d.terminate(['c1']);
    expect(track(await d.launch({ instanceIds: ['c2', 'c3'], params: env('ready'), seeds: SEEDS }))).toHaveLength(2);
  });

  it('adopt does not take an unrelated process for the instance, and terminate leaves it alone', async () => {
    const other = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    try {
      const d = fake();
      const handle = { instanceId: 'ghost', pid: other.pid!, dir: join(baseDir, 'ghost') };
      expect((await d.adopt([handle]))[0]).toMatchObject({ state: 'terminated', reason: 'NOT_FOUND' });
      expect((await d.terminate(['ghost']))[0]).toMatchObject({ state: 'terminated', reason: 'NOT_FOUND' });
      expect(other.exitCode).toBeNull();
      expect(() => process.kill(other.pid!, 0)).not.toThrow();
      await expect(d.adopt([{ instanceId: 'ghost', dir: '/' }])).rejects.toThrow(/must be an absolute path ending in the instance id/);
    } finally {
      other.kill('SIGKILL');
    }
  });
});
