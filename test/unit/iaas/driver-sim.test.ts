import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../../src/runtime/clock-fake.js';
import { SIM_TEST_PRESET, SimCloud } from '../../../src/iaas/sim-cloud.js';
import { SimDriver } from '../../../src/iaas/driver-sim.js';
import { createDriver } from '../../../src/iaas/driver-factory.js';
import type { DriverInstance, LaunchRequest } from '../../../src/iaas/driver.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../../src/errors.js';

const SEEDS = ['127.0.0.1:7000'];
const request = (instanceIds: string[], params: Record<string, unknown> = {}): LaunchRequest => ({ instanceIds, params, seeds: SEEDS });

function setup(): { clock: FakeClock; cloud: SimCloud; driver: SimDriver } {
  const clock = new FakeClock();
  const cloud = new SimCloud(SIM_TEST_PRESET, { clock });
  return { clock, cloud, driver: new SimDriver(cloud) };
}

describe('SimDriver', () => {
  it('launches, lists and terminates through the cloud', async () => {
    const { clock, driver } = setup();
    const launched = await driver.launch(request(['a', 'b']));
    expect(launched.map((i) => [i.instanceId, i.state, i.handle])).toEqual([
      ['a', 'pending', { instanceId: 'a' }],
      ['b', 'pending', { instanceId: 'b' }],
    ]);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect((await driver.list()).map((i) => i.state)).toEqual(['running', 'running']);
    await driver.terminate(['a']);
    expect((await driver.list()).map((i) => [i.instanceId, i.state])).toEqual([
      ['a', 'terminated'],
      ['b', 'running'],
    ]);
  });

  it('rejects bad requests with INVALID_ARGUMENT and launches nothing', async () => {
    const { driver } = setup();
    await expect(driver.launch(request([]))).rejects.toThrow(/at least one instance id/);
    await expect(driver.launch(request(['../etc']))).rejects.toThrow(InvalidArgumentError);
    await expect(driver.launch(request(['a', 'a']))).rejects.toThrow(/appears twice/);
    await expect(driver.launch({ instanceIds: ['a'], params: {}, seeds: ['nope'] })).rejects.toThrow(/seed "nope" is not HOST:PORT/);
    await expect(driver.launch(request(['a'], { failure_rate: 5 }))).rejects.toThrow(/sim launch params: failure_rate: failure_rate must be between 0 and 1/);
    await expect(driver.launch(request(['a'], { args: [] }))).rejects.toThrow(/unknown field "args"/);
    await expect(driver.launch(request(['a'], { slots: 0 }))).rejects.toThrow(/slots must be >= 1/);
    await expect(driver.terminate(['a/b'])).rejects.toThrow(InvalidArgumentError);
    expect(await driver.list()).toEqual([]);
  });

  it('applies the launch params the registry resolves', async () => {
    const { clock, driver } = setup();
    await driver.launch(request(['doomed'], { failure_rate: 1, slots: 2 }));
    await driver.launch(request(['quick'], { boot_latency_ms: 0, slots: 1 }));
    clock.advance(0);
    expect((await driver.list()).map((i) => [i.instanceId, i.state])).toEqual([
      ['doomed', 'pending'],
      ['quick', 'running'],
    ]);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect((await driver.list())[0]).toMatchObject({ state: 'failed', reason: 'IAAS_BOOT_FAILED' });
  });

  it('a driver recreated over the same cloud adopts what the earlier one launched', async () => {
    const { clock, cloud, driver } = setup();
    const launched = await driver.launch(request(['a', 'b']));
    await driver.close();
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    cloud.kill('b');
    const next = new SimDriver(cloud);
    const adopted = await next.adopt([...launched.map((i) => i.handle), { instanceId: 'never' }]);
    expect(adopted.map((i) => [i.instanceId, i.state, i.reason])).toEqual([
      ['a', 'running', undefined],
      ['b', 'terminated', 'NOT_FOUND'],
      ['never', 'terminated', 'NOT_FOUND'],
    ]);
    // Launching again after the fail-over starts nothing new.
    expect((await next.launch(request(['a'])))[0]?.state).toBe('running');
    await next.terminate(['a']);
    expect(cloud.get('a')?.state).toBe('terminated');
  });

  it('lists instances no driver launched (zombies)', async () => {
    const { cloud, driver } = setup();
    cloud.injectZombie('z');
    expect((await driver.list()).map((i) => i.instanceId)).toEqual(['z']);
  });

  it('watch delivers changes until unsubscribed or closed', async () => {
    const { clock, driver } = setup();
    const seen: DriverInstance[] = [];
    const stop = driver.watch((i) => seen.push(i));
    await driver.launch(request(['a']));
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect(seen.map((i) => i.state)).toEqual(['started', 'running']);
    stop();
    driver.watch((i) => seen.push(i));
    await driver.close();
    await new SimDriver((driver as SimDriver).cloud).terminate(['a']);
    expect(seen).toHaveLength(2);
  });

  it('a closed driver refuses calls; a shared cloud keeps running', async () => {
    const { clock, cloud, driver } = setup();
    await driver.launch(request(['a']));
    await driver.close();
    await expect(driver.list()).rejects.toThrow(FailedPreconditionError);
    clock.advance(SIM_TEST_PRESET.bootLatencyMs);
    expect(cloud.get('a')?.state).toBe('running');
  });

  it('createDriver builds a sim driver that owns its cloud', async () => {
    const clock = new FakeClock();
    const driver = createDriver('sim', { capacity: 1 }, { clock, sim: { bootLatencyMs: 5 } });
    expect(driver.siteType).toBe('sim');
    await driver.launch(request(['a']));
    await expect(driver.launch(request(['b']))).rejects.toMatchObject({ reason: 'IAAS_FULL' });
    clock.advance(5);
    expect((await driver.list())[0]?.state).toBe('running');
    await driver.close();
    expect(clock.timerCount).toBe(0);
  });
});
