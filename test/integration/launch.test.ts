/**
 * `cei launch / status / runs / teardown` with real processes: plans/local.yaml booted in a
 * temporary home (three nodes, the sleeper domain with two local workers), a control node killed
 * and repaired, then torn down with nothing left; and a service whose `ready` fails the boot at its level, then a launch of the same
 * run after the fix continues from that level with the earlier level's node kept; and a run none of
 * whose nodes survived (voters in two levels, a worker with processes), brought back whole by a launch,
 * its processes recovered through the dispatcher's system boot.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join, resolve } from 'node:path';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import { removeDir, runCli, tempDir } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

const LOCAL_PLAN = resolve(import.meta.dirname, '../../plans/local.yaml');

/** Every pid a test saw (services, workers): killed in afterAll whatever happened. */
const seen = new Set<number>();
const homes: string[] = [];

/** A live process; a zombie (exited, not yet reaped) is not. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function killGroup(pid: number): void {
  for (const target of [-pid, pid]) {
    try {
      process.kill(target, 'SIGKILL');
    } catch {
      // Gone.
    }
  }
}

afterAll(() => {
  for (const pid of seen) if (alive(pid)) killGroup(pid);
  for (const home of homes) removeDir(home);
});

/** A fresh home directory, removed when the file is done. */
function newHome(): string {
  const home = tempDir('cei-launch-');
  homes.push(home);
  return home;
}

/** Writes a plan of `lines` to <home>/<name>.yaml and returns its path. */
function planIn(home: string, name: string, lines: string[]): string {
  const path = join(home, `${name}.yaml`);
  writeFileSync(path, [...lines, ''].join('\n'));
  return path;
}

interface StatusJson {
  run: { name: string; state: string; dir: string };
  services: Array<{ name: string; level: string; state: string; ready: boolean; pid?: number; address?: string; reason?: string }>;
  system?: { domains: Array<{ id: string; instances: Array<{ instance_id: string; state: string }> }>; processes: unknown[] };
}

async function status(home: string, run: string): Promise<StatusJson> {
  const r = await runCli(['status', run, '--json', '--home', home]);
  expect(r.code, r.stderr).toBe(0);
  const s = JSON.parse(r.stdout) as StatusJson;
  for (const v of s.services) if (v.pid !== undefined) seen.add(v.pid);
  return s;
}

/** Worker pids from the local driver's instance records under `dir`. */
function workerPids(dir: string): number[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((id) => {
    try {
      const pid = (JSON.parse(readFileSync(join(dir, id, 'instance.json'), 'utf8')) as { pid?: number }).pid;
      return typeof pid === 'number' ? [pid] : [];
    } catch {
      return [];
    }
  });
}

describe('cei launch', () => {
  it('boots plans/local.yaml, shows it in status, repairs a killed control node, and tears it down leaving no process', async () => {
    const home = newHome();
    const launched = await runCli(['launch', LOCAL_PLAN, '--name', 'boot', '--home', home], 60_000);
    expect(launched.code, launched.stdout + launched.stderr).toBe(0);
    expect(launched.stdout).toMatch(/level 1 seed: 1\/1 started, 1\/1 verified .* done/);
    expect(launched.stdout).toMatch(/level 2 control: 2\/2 started, 2\/2 verified .* done/);
    expect(launched.stdout).toMatch(/domain sleeper: created/);
    expect(launched.stdout).toMatch(/control\/control-1 node 127\.0\.0\.1:\d+ pid \d+ verified/);

    const up = (await waitFor(
      async () => {
        const s = await status(home, 'boot');
        const sleeper = s.system?.domains.find((d) => d.id === 'sleeper');
        return sleeper?.instances.filter((i) => i.state === 'RUNNING').length === 2 ? s : undefined;
      },
      { timeoutMs: 30_000, what: 'the sleeper domain with 2 RUNNING instances in cei status' },
    ))!;
    expect(up.run.state).toBe('up');
    expect(up.services.map((s) => [s.level, s.name, s.state, s.ready])).toEqual([
      ['seed', 'bootstrap', 'verified', true],
      ['control', 'control-0', 'verified', true],
      ['control', 'control-1', 'verified', true],
    ]);
    const servicePids = up.services.map((s) => s.pid!);
    const workers = workerPids(join(up.run.dir, 'sleepers'));
    expect(workers).toHaveLength(2);
    for (const pid of workers) seen.add(pid);
    expect([...servicePids, ...workers].every(alive)).toBe(true);

    // A control node dies: status reports it, repair starts it again (same data, a new pid).
    const victim = up.services.find((s) => s.name === 'control-1')!;
    killGroup(victim.pid!);
    await waitFor(() => !alive(victim.pid!), { timeoutMs: 5_000, what: 'control-1 gone after SIGKILL' });
    const hurt = await status(home, 'boot');
    expect(hurt.services.find((s) => s.name === 'control-1')).toMatchObject({ ready: false, reason: `process ${victim.pid} is gone` });
    const repaired = await runCli(['repair', 'boot', '--home', home], 60_000);
    expect(repaired.code, repaired.stdout + repaired.stderr).toBe(0);
    expect(repaired.stdout).toMatch(/control-1: recorded verified but process \d+ is gone; starting it again/);
    const healed = await status(home, 'boot');
    expect(healed.services.map((s) => s.ready)).toEqual([true, true, true]);
    const reborn = healed.services.find((s) => s.name === 'control-1')!;
    expect(reborn.pid).not.toBe(victim.pid);
    // Back at its old address, the one the other members know it by.
    expect(reborn.address).toBe(victim.address);
    expect(healed.services.filter((s) => s.name !== 'control-1').map((s) => s.pid)).toEqual(servicePids.filter((p) => p !== victim.pid));
    servicePids.push(reborn.pid!);

    const down = await runCli(['teardown', 'boot', '--home', home], 60_000);
    expect(down.code, down.stdout + down.stderr).toBe(0);
    expect(down.stdout).toMatch(/domains removed: sleeper/);
    expect(down.stdout).toMatch(/nothing left behind/);
    for (const pid of [...servicePids, ...workers]) expect(alive(pid), `pid ${pid}`).toBe(false);

    const runs = await runCli(['runs', '--json', '--home', home]);
    expect((JSON.parse(runs.stdout) as Array<{ name: string; state: string }>).map((r) => [r.name, r.state])).toEqual([['boot', 'torn-down']]);
  }, 90_000);

  it('fails the boot at the level whose service never gets ready, and continues from there once fixed', async () => {
    const home = newHome();
    const plan = planIn(home, 'gated', [
      'name: gated',
      'levels:',
      '  - name: seed',
      '    services:',
      '      - name: bootstrap',
      '        node: {role: bootstrap}',
      '  - name: gate',
      '    services:',
      '      - name: gate',
      '        run: exec sleep 300',
      '        ready: test -f ${vars.flag}',
      '        timeout: 2',
    ]);
    const flag = join(home, 'gate.ok');
    const failed = await runCli(['launch', plan, '--var', `flag=${flag}`, '--home', home], 30_000);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/launch of gated failed: level 2 gate: service gate: not ready within 2 s: ready command "test -f [^"]*gate\.ok": exit code 1/);
    const broken = await status(home, 'gated');
    expect(broken.run.state).toBe('failed');
    expect(broken.services.map((s) => [s.name, s.state])).toEqual([
      ['bootstrap', 'verified'],
      ['gate', 'failed'],
    ]);
    const bootstrapPid = broken.services[0]!.pid!;
    // The failed service's process was started, and stopped.
    expect(broken.services[1]!.pid).toBeDefined();
    expect(alive(broken.services[1]!.pid!)).toBe(false);

    writeFileSync(flag, 'ok\n');
    const fixed = await runCli(['launch', plan, '--home', home], 30_000);
    expect(fixed.code, fixed.stdout + fixed.stderr).toBe(0);
    expect(fixed.stdout).toMatch(/continuing run gated/);
    expect(fixed.stdout).toMatch(/level 1 seed: 1\/1 started, 1\/1 verified \(1 kept\)/);
    const up = await status(home, 'gated');
    expect(up.run.state).toBe('up');
    expect(up.services.map((s) => [s.name, s.state, s.ready])).toEqual([
      ['bootstrap', 'verified', true],
      ['gate', 'verified', true],
    ]);
    expect(up.services[0]!.pid).toBe(bootstrapPid);

    // The gate still ran when it was verified: a long-running service, not ready once it dies, even
    // though its ready command still passes.
    killGroup(up.services[1]!.pid!);
    await waitFor(() => !alive(up.services[1]!.pid!), { timeoutMs: 5_000, what: 'the gate gone after SIGKILL' });
    const dead = await status(home, 'gated');
    expect(dead.services[1]).toMatchObject({ name: 'gate', ready: false, reason: `process ${up.services[1]!.pid} is gone` });

    const down = await runCli(['teardown', 'gated', '--home', home], 30_000);
    expect(down.code, down.stdout + down.stderr).toBe(0);
    for (const s of up.services) expect(alive(s.pid!), s.name).toBe(false);
  }, 60_000);

  it('brings back a run none of whose nodes survived: every node at once, its processes through the system boot', async () => {
    const home = newHome();
    // The voters span two levels (bootstrap, control): alone, the restarted bootstrap is no majority.
    const plan = planIn(home, 'whole', [
      'name: whole',
      'levels:',
      '  - name: seed',
      '    services:',
      '      - name: bootstrap',
      '        node: {role: bootstrap}',
      '        timeout: 20',
      '  - name: control',
      '    services:',
      '      - name: control',
      '        node: {role: control}',
      '        timeout: 20',
      '  - name: workers',
      '    services:',
      '      - name: worker',
      '        node: {role: worker, slots: 2}',
      '        timeout: 20',
      'process_definitions:',
      '  sleeper:',
      '    type: exec',
      '    executable: {argv: [sleep, "300"], protocol: none}',
      'processes:',
      '  kept: {definitionId: sleeper}',
      '  omitted: {definitionId: sleeper, configuration: {process: {omit_from_system_restart: true}}}',
    ]);
    const first = await runCli(['launch', plan, '--home', home], 60_000);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const before = await status(home, 'whole');
    const entry = before.services[0]!.address!;
    let dispatcher = new DispatcherClient(entry);
    const running = (await waitFor(
      async () => {
        const ps = await dispatcher.list(['RUNNING']).catch(() => []);
        return ps.length === 2 ? ps : undefined;
      },
      { timeoutMs: 30_000, what: 'both processes RUNNING' },
    ))!;
    dispatcher.close();
    const roundBefore = running.find((p) => p.upid === 'kept')!.round;

    for (const s of before.services) killGroup(s.pid!);
    await waitFor(() => before.services.every((s) => !alive(s.pid!)), { timeoutMs: 5_000, what: 'every node gone after SIGKILL' });

    const again = await runCli(['launch', plan, '--home', home], 60_000);
    // Read first: status records the new pids for afterAll, whatever fails below.
    const after = await status(home, 'whole');
    expect(again.code, again.stdout + again.stderr).toBe(0);
    expect(again.stdout).toMatch(/no node of the run is left: starting bootstrap, control, worker again at once/);
    // `omitted` is not among them: its configuration keeps it from coming back after a system restart.
    expect(again.stdout).toMatch(/system boot started: 1 process\(es\) from before the restart held until the boot ends \(kept\)/);
    expect(again.stdout).toMatch(/system boot ended/);
    expect(after.services.map((s) => [s.name, s.state, s.ready])).toEqual([
      ['bootstrap', 'verified', true],
      ['control', 'verified', true],
      ['worker', 'verified', true],
    ]);
    expect(after.services.map((s) => s.address)).toEqual(before.services.map((s) => s.address));

    dispatcher = new DispatcherClient(entry);
    try {
      const kept = await dispatcher.wait('kept', ['RUNNING'], 30_000);
      expect(kept.round).toBeGreaterThan(roundBefore);
      const omitted = await dispatcher.describe('omitted');
      expect(omitted).toMatchObject({ state: 'FAILED', lastError: 'not restarted after a system restart' });
      expect((await dispatcher.status()).booting).toBe(false);
    } finally {
      dispatcher.close();
    }

    const down = await runCli(['teardown', 'whole', '--home', home], 60_000);
    expect(down.code, down.stdout + down.stderr).toBe(0);
    for (const s of after.services) expect(alive(s.pid!), s.name).toBe(false);
  }, 150_000);

  it('starts a node again on a free port when the one it had is taken', async () => {
    const home = newHome();
    const plan = planIn(home, 'solo', ['name: solo', 'levels:', '  - services:', '      - name: seed', '        node: {role: bootstrap}', '        timeout: 20']);
    const first = await runCli(['launch', plan, '--home', home], 30_000);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const [before] = (await status(home, 'solo')).services;
    killGroup(before!.pid!);
    await waitFor(() => !alive(before!.pid!), { timeoutMs: 5_000, what: 'the node gone after SIGKILL' });
    const [host, port] = before!.address!.split(':');
    let squatter: Server | undefined;
    const listens = () =>
      new Promise<boolean>((resolve) => {
        const server = createServer();
        server.once('error', () => resolve(false)).listen(Number(port), host, () => resolve(Boolean((squatter = server))));
      });
    // The port is freed a moment after the process is gone.
    await waitFor(listens, { timeoutMs: 5_000, what: `listening on ${before!.address} in the node's place` });
    try {
      const again = await runCli(['launch', plan, '--home', home], 30_000);
      const [after] = (await status(home, 'solo')).services;
      expect(again.code, again.stdout + again.stderr).toBe(0);
      expect(again.stdout).toMatch(new RegExp(`seed: did not come back at ${before!.address!.replace(/\./g, '\\.')} \\(exited .*\\); starting it on 127\\.0\\.0\\.1:0`));
      expect(after).toMatchObject({ state: 'verified', ready: true });
      expect(after!.address).not.toBe(before!.address);
    } finally {
      squatter!.close();
    }
    const down = await runCli(['teardown', 'solo', '--home', home], 30_000);
    expect(down.code, down.stdout + down.stderr).toBe(0);
  }, 60_000);

  it('a relaunch that fails at a level still records the nodes it started again before the walk', async () => {
    const home = newHome();
    const plan = planIn(home, 'early', ['name: early', 'levels:', '  - services:', '      - name: gate', '        run: test -f ${vars.flag} || exit 3; exec sleep 300', '        ready: test -f ${vars.flag}', '  - services:', '      - name: seed', '        node: {role: bootstrap}', '        timeout: 20']);
    const flag = join(home, 'gate.ok');
    writeFileSync(flag, 'ok\n');
    const first = await runCli(['launch', plan, '--var', `flag=${flag}`, '--home', home], 30_000);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    const before = (await status(home, 'early')).services.find((s) => s.name === 'seed')!;
    killGroup(before.pid!);
    await waitFor(() => !alive(before.pid!), { timeoutMs: 5_000, what: 'the node gone after SIGKILL' });

    // The gate now fails at once, while the node started before the walk is still coming up.
    rmSync(flag);
    const again = await runCli(['launch', plan, '--home', home], 30_000);
    const after = (await status(home, 'early')).services.find((s) => s.name === 'seed')!;
    expect(again.code, again.stdout + again.stderr).toBe(1);
    expect(again.stdout).toMatch(/launch of early failed: level 1 .*service gate: exited \(exit code 3\) before it was ready/);
    expect(again.stderr).toBe('');
    expect(after).toMatchObject({ state: 'verified', ready: true });
    expect(after.pid).not.toBe(before.pid);
    const down = await runCli(['teardown', 'early', '--home', home], 30_000);
    expect(down.code, down.stdout + down.stderr).toBe(0);
  }, 60_000);
});
