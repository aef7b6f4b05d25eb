/**
 * The local driver's paths that start no process: validation, capacity, and launches that cannot
 * start one. Real processes are in test/integration/iaas-local.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LOCAL_TEST_PRESET, LocalDriver, type LocalDriverOptions } from '../../../src/iaas/driver-local.js';
import { IaasFullError, IaasUnavailableError } from '../../../src/iaas/driver-errors.js';
import { FailedPreconditionError } from '../../../src/errors.js';
import { waitFor } from '../../support/wait.js';

const dirs: string[] = [];
const drivers: LocalDriver[] = [];
afterEach(async () => {
  for (const d of drivers.splice(0)) await d.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cei-iaas-'));
  dirs.push(dir);
  return dir;
}

/** A file that exists but cannot be executed: a cli for validation, a node binary that never starts. */
function inertFile(): string {
  const path = join(tempDir(), 'inert.js');
  writeFileSync(path, '', { mode: 0o644 });
  return path;
}

function driver(options: Partial<LocalDriverOptions> = {}, site: Record<string, unknown> = {}): LocalDriver {
  const d = new LocalDriver({ data_dir: join(tempDir(), 'instances'), ...site }, { ...LOCAL_TEST_PRESET, cliPath: inertFile(), ...options });
  drivers.push(d);
  return d;
}

const SEEDS = ['127.0.0.1:7000'];

describe('LocalDriver without processes', () => {
  it('rejects bad launch params before starting anything', async () => {
    const d = driver();
    const launch = (params: Record<string, unknown>, seeds = SEEDS) => d.launch({ instanceIds: ['a'], params, seeds });
    await expect(launch({ args: ['--data', '/tmp/x'] })).rejects.toThrow(
      /local launch params: args: args may not set --role, --instance-id, --join, --data, --listen/,
    );
    await expect(launch({ args: ['--instance-id=b'] })).rejects.toThrow(/args may not set/);
    await expect(launch({ args: ['a\0b'] })).rejects.toThrow(/args\[0\]: args must not contain NUL/);
    await expect(launch({ env: { A: 1 } })).rejects.toThrow(/env/);
    await expect(launch({ env: { 'A=B': 'x' } })).rejects.toThrow(/env names must not contain "="/);
    await expect(launch({ slots: 0 })).rejects.toThrow(/slots must be >= 1/);
    await expect(launch({ boot_latency_ms: 5 })).rejects.toThrow(/unknown field "boot_latency_ms"/);
    await expect(launch({}, [])).rejects.toThrow(/at least one seed/);
    await expect(d.terminate(['../x'])).rejects.toThrow(/instance id "..\/x" is invalid/);
    expect(await d.list()).toEqual([]);
  });

  it('refuses a launch past max_instances with IAAS_FULL before starting any of it', async () => {
    const d = driver({}, { max_instances: 1 });
    await expect(d.launch({ instanceIds: ['a', 'b'], params: {}, seeds: SEEDS })).rejects.toThrow(IaasFullError);
    expect(await d.list()).toEqual([]);
  });

  it('an instance whose process cannot be started fails with IAAS_BOOT_FAILED', async () => {
    const d = driver({ nodePath: inertFile() });
    const [launched] = await d.launch({ instanceIds: ['a'], params: {}, seeds: SEEDS });
    expect(launched).toMatchObject({ state: 'pending', handle: { instanceId: 'a' } });
    expect(launched!.handle.pid).toBeUndefined();
    const failed = await waitFor(async () => (await d.list()).find((i) => i.state === 'failed'), { what: 'a failed' });
    expect(failed).toMatchObject({ reason: 'IAAS_BOOT_FAILED', detail: expect.stringMatching(/^could not start: .*EACCES/) });
    await d.terminate(['a']);
    expect(existsSync(launched!.handle.dir!)).toBe(false);
  });

  it('a launch that cannot make its directory fails as retryable IAAS_UNAVAILABLE', async () => {
    const d = driver();
    rmSync(d.config.baseDir, { recursive: true });
    const err = await d.launch({ instanceIds: ['a'], params: {}, seeds: SEEDS }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(IaasUnavailableError);
    expect(err).toMatchObject({ retryable: true, instanceIds: ['a'], message: expect.stringMatching(/local launch of a failed: ENOENT/) });
  });

  it('a closed driver refuses calls', async () => {
    const d = driver();
    await d.close();
    await expect(d.list()).rejects.toThrow(FailedPreconditionError);
    expect(() => d.watch(() => {})).toThrow(/closed/);
  });
});
