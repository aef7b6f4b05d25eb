import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDriver } from '../../../src/iaas/driver-factory.js';
import { LocalDriver } from '../../../src/iaas/driver-local.js';
import { SimDriver } from '../../../src/iaas/driver-sim.js';
import { InvalidArgumentError } from '../../../src/errors.js';
import type { SiteType } from '../../../src/iaas/driver.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cei-iaas-'));
  dirs.push(dir);
  return dir;
}

/** A stand-in for the built cli, so these tests need no build and start no process. */
function fakeCli(): string {
  const path = join(tempDir(), 'cli.js');
  writeFileSync(path, '');
  return path;
}

describe('createDriver', () => {
  it('builds a driver of each site type from registry-shaped settings', async () => {
    const sim = createDriver('sim', { capacity: 10 });
    expect(sim).toBeInstanceOf(SimDriver);
    expect((sim as SimDriver).cloud.options.capacity).toBe(10);
    await sim.close();
    const dataDir = join(tempDir(), 'instances');
    const local = createDriver('local', { data_dir: dataDir, max_instances: 3 }, { local: { cliPath: fakeCli() } });
    expect(local).toBeInstanceOf(LocalDriver);
    expect((local as LocalDriver).config).toMatchObject({ baseDir: dataDir, capacity: 3 });
    await local.close();
  });

  it('falls back to the host options where a site says nothing', async () => {
    const sim = createDriver('sim', undefined, { sim: { capacity: 7 } });
    expect((sim as SimDriver).cloud.options.capacity).toBe(7);
    await sim.close();
    const baseDir = join(tempDir(), 'default');
    const local = createDriver('local', {}, { local: { cliPath: fakeCli(), baseDir, capacity: 5 } }) as LocalDriver;
    expect(local.config).toMatchObject({ baseDir, capacity: 5 });
    await local.close();
  });

  it('rejects an unknown site type and settings that are not an object', () => {
    expect(() => createDriver('ec2' as SiteType, {})).toThrow(/unknown site type "ec2": expected one of local, sim/);
    expect(() => createDriver('sim', 'fast')).toThrow(/^sim site settings: /);
    expect(() => createDriver('local', [], { local: { baseDir: tempDir(), cliPath: fakeCli() } })).toThrow(InvalidArgumentError);
  });

  it('names every bad setting at once', () => {
    expect(() => createDriver('sim', { capacity: 1.5, boot_latency_ms: 3 })).toThrow(
      /^sim site settings: capacity: capacity must be a whole number; unknown field "boot_latency_ms"$/,
    );
    expect(() => createDriver('local', { max_instances: 0, data_dir: '' })).toThrow(
      /^local site settings: max_instances: max_instances must be >= 1; data_dir: data_dir must not be empty$/,
    );
    expect(() => createDriver('sim', {}, { sim: { heartbeatIntervalMs: -1 } })).toThrow(/^sim cloud options: heartbeatIntervalMs/);
    expect(() => createDriver('local', {}, { local: { baseDir: tempDir(), logLevel: 'loud' as 'warn' } })).toThrow(/^local driver options: logLevel/);
  });

  it('requires an instance directory for a local site and checks the paths it is given', () => {
    expect(() => createDriver('local', {}, { local: { cliPath: fakeCli() } })).toThrow(/data_dir: required/);
    expect(() => createDriver('local', { data_dir: tempDir() }, { local: { cliPath: '/nonexistent/cli.js' } })).toThrow(
      /cliPath \/nonexistent\/cli.js does not exist/,
    );
    const file = fakeCli();
    expect(() => createDriver('local', { data_dir: join(file, 'sub') }, { local: { cliPath: file } })).toThrow(/data_dir .* cannot be created/);
  });
});
