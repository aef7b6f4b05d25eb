import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isInstanceProcess, signalInstance } from '../../src/iaas/local-process.js';
import { CLI, removeDir, runCli, startNode, tempDir, type NodeProcess } from '../support/node-process.js';
import { waitFor } from '../support/wait.js';

describe('cei actor commands against a real node', () => {
  let dir: string;
  let node: NodeProcess;
  const cei = (...args: string[]) => runCli(['actor', '--node', node.address, ...args]);

  beforeAll(async () => {
    dir = tempDir();
    node = await startNode({ dataDir: dir });
  });

  afterAll(async () => {
    if (node) expect(await node.stop()).toBe(0);
    removeDir(dir);
  });

  it('spawns, tells, asks, describes, lists and stops', async () => {
    expect((await cei('spawn', 'counter/cli-1', '{"value": 5}')).stdout).toBe(`created counter/cli-1 on ${node.id}\n`);
    expect((await cei('spawn', 'counter/cli-1')).stdout).toBe(`exists counter/cli-1 on ${node.id}\n`);
    expect((await cei('tell', 'counter/cli-1', '{"add": 2}', '--id', 'k1')).stdout).toBe('seq 1 id k1\n');
    expect((await cei('tell', 'counter/cli-1', '{"add": 2}', '--id', 'k1')).stdout).toBe('seq 1 id k1\n');
    expect(JSON.parse((await cei('ask', 'counter/cli-1', '{"get": true}')).stdout)).toEqual({ value: 7, count: 1 });

    const described = JSON.parse((await cei('describe', 'counter/cli-1', '--json')).stdout);
    expect(described).toMatchObject({ ref: 'counter/cli-1', node: node.id, status: 'active', mailbox_depth: 0, dead_letters: 0 });
    const listed = JSON.parse((await cei('list', '--type', 'counter', '--json')).stdout) as Array<{ ref: string }>;
    expect(listed.map((a) => a.ref)).toContain('counter/cli-1');
    const table = (await cei('list')).stdout;
    expect(table.split('\n')[0]).toMatch(/^REF\s+STATUS\s+NODE/);
    expect(table).toContain('counter/cli-1');

    expect((await cei('stop', 'counter/cli-1')).stdout).toBe('stopped counter/cli-1\n');
    expect(JSON.parse((await cei('describe', 'counter/cli-1', '--json')).stdout).status).toBe('inactive');
  });

  it('prints the error with its status and exits 1 on bad input', async () => {
    const badJson = await cei('tell', 'counter/x', '{nope');
    expect(badJson.code).toBe(1);
    expect(badJson.stderr).toMatch(/not valid JSON/);
    const badMessage = await cei('tell', 'counter/x', '{"add": "one"}');
    expect(badMessage.code).toBe(1);
    expect(badMessage.stderr).toBe('error: message rejected by counter: "add" must be a finite number (INVALID_ARGUMENT)\n');
    const unknown = await cei('describe', 'nosuch/x');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown actor type "nosuch".*\(NOT_FOUND\)/);
    const badRef = await cei('describe', 'no-slash');
    expect(badRef.code).toBe(1);
    expect(badRef.stderr).toMatch(/not of the form type\/id/);
  });

  it('says UNAVAILABLE when no node listens', async () => {
    const r = await runCli(['actor', '--node', '127.0.0.1:1', 'describe', 'counter/a']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\(UNAVAILABLE\)/);
  });
});

describe('cei --help and flag checks', () => {
  it('documents the commands', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    for (const cmd of ['node', 'up', 'actor']) expect(top.stdout).toContain(cmd);
    const node = await runCli(['node', '--help']);
    for (const flag of ['--role', '--listen', '--join', '--data', '--actors']) expect(node.stdout).toContain(flag);
    const actor = await runCli(['actor', '--help']);
    for (const cmd of ['spawn', 'tell', 'ask', 'stop', 'describe', 'list', 'dead-letters', 'redrive']) expect(actor.stdout).toContain(cmd);
  });

  it('rejects a bad role, a bad listen address and a missing --actors module before touching the data directory', async () => {
    const dir = tempDir();
    try {
      const role = await runCli(['node', '--role=boss', '--listen', '127.0.0.1:0', '--data', dir]);
      expect(role.code).not.toBe(0);
      expect(role.stderr).toMatch(/--role.*boss/);
      const listen = await runCli(['node', '--role=worker', '--listen', 'nowhere', '--data', dir]);
      expect(listen.code).toBe(1);
      expect(listen.stderr).toMatch(/--listen "nowhere" is not HOST:PORT/);
      const actors = await runCli(['node', '--role=worker', '--listen', '127.0.0.1:0', '--data', dir, '--actors', '/no/such.js']);
      expect(actors.code).toBe(1);
      expect(actors.stderr).toMatch(/--actors \/no\/such\.js: no such file/);
      const { readdirSync } = await import('node:fs');
      expect(readdirSync(dir)).toEqual([]);
    } finally {
      removeDir(dir);
    }
  });
});

describe('cei up --demo (what npm start runs): Sleeper Must Awaken, then a transform', () => {
  it('keeps 2 real workers, repairs a killed one, runs a window-average transform on them through the SIGKILL of its worker, serves until SIGINT, then terminates its workers and exits 0', async () => {
    const dir = tempDir();
    const pids = new Map<string, number>();
    const scan = (): void => {
      const sleepers = join(dir, 'sleepers');
      if (!existsSync(sleepers)) return;
      for (const id of readdirSync(sleepers)) {
        try {
          pids.set(id, (JSON.parse(readFileSync(join(sleepers, id, 'instance.json'), 'utf8')) as { pid: number }).pid);
        } catch {
          // not started yet
        }
      }
    };
    const proc = spawn(process.execPath, [CLI, 'up', '--demo', '--listen', '127.0.0.1:0', '--data', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));
      const lines: string[] = [];
      let serving = (): void => {};
      const served = new Promise<void>((res) => (serving = res));
      createInterface({ input: proc.stdout }).on('line', (line) => {
        lines.push(line);
        if (line.startsWith('serving on ')) serving();
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        served,
        new Promise((_, rej) => (timer = setTimeout(() => rej(new Error(`demo did not start serving:\n${lines.join('\n')}`)), 45_000))),
      ]).finally(() => clearTimeout(timer));
      scan();
      expect(lines[0]).toMatch(/^ready node-[0-9a-f]{10} 127\.0\.0\.1:\d+$/);
      const address = /^ready \S+ (\S+)$/.exec(lines[0]!)![1]!;
      expect(lines.some((l) => /^demo: all 2 sleepers RUNNING/.test(l)), lines.join('\n')).toBe(true);
      expect(lines.some((l) => /^demo: killing sleeper-\S+ \(pid \d+, node node-[0-9a-f]{10}\) with SIGKILL/.test(l)), lines.join('\n')).toBe(true);
      expect(lines.some((l) => /^demo: repaired: 2 sleepers RUNNING again .*time to repair \d+ ms$/.test(l)), lines.join('\n')).toBe(true);
      expect(lines.some((l) => /^demo: \+\d+\.\d+s sleeper-\S+ RUNNING \(node node-/.test(l))).toBe(true);
      // The transform half: placed on a sleeper, its worker killed mid-stream, every step out once.
      expect(lines.some((l) => /^demo: transform average-\S+ RUNNING on node node-[0-9a-f]{10}, placed by the dispatcher$/.test(l)), lines.join('\n')).toBe(true);
      expect(lines.some((l) => /^demo: t=49s  temperature .* -> .*\(avg of 10\)$/.test(l)), lines.join('\n')).toBe(true);
      expect(lines.some((l) => /^demo: killed the worker hosting the transform \(node node-[0-9a-f]{10}\) with SIGKILL, mid-stream$/.test(l))).toBe(true);
      expect(lines.some((l) => /^demo: transform: 100 of 100 steps averaged, 0 doubled, 0 wrong; it moved from node node-\S+ to node-\S+ \(round 1\) without losing a step$/.test(l)), lines.join('\n')).toBe(true);
      // Two sleepers killed, each replaced.
      expect(pids.size).toBe(4);

      // From another terminal: the same domain, with both sleepers RUNNING again.
      await waitFor(
        async () => {
          const cli = await runCli(['domain', 'describe', 'sleeper', '--json', '--node', address]);
          expect(cli.code, cli.stderr).toBe(0);
          const d = JSON.parse(cli.stdout) as { instances: Array<{ state: string; health: string }> };
          return d.instances.filter((i) => i.state === 'RUNNING' && i.health === 'OK').length === 2;
        },
        { timeoutMs: 20_000, what: 'two sleepers RUNNING after the second kill' },
      );

      proc.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(lines.at(-1)).toBe('demo: sleepers terminated');
      expect([...pids].filter(([id, pid]) => isInstanceProcess(pid, id))).toEqual([]);
    } finally {
      proc.kill('SIGKILL');
      scan();
      for (const [id, pid] of pids) if (isInstanceProcess(pid, id)) signalInstance(pid, 'SIGKILL');
      removeDir(dir);
    }
  });
});
