/**
 * The process dispatcher through a real `cei node`: definitions and processes through the gRPC
 * client and the CLI (with `--json`), Wait, and bad input refused with the right status code and
 * CLI exit status 1. The node has no workers, so processes stay WAITING; placement on agents is
 * covered by the unit tests of the actor and by the agent's own tests.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { DispatcherClient } from '../../src/client-dispatcher.js';
import type { ProcessDefinition, ProcessRecord } from '../../src/actors/dispatcher/core.js';
import { CLI, removeDir, runCli, startNode, tempDir, type NodeProcess } from '../support/node-process.js';

const DEADLINE_MS = 20_000;

describe('the process dispatcher on a real node', () => {
  let dir: string;
  let node: NodeProcess | undefined;
  let client: DispatcherClient;

  beforeAll(async () => {
    expect(existsSync(CLI), 'run npm run build first').toBe(true);
    dir = tempDir('cei-dispatcher-');
    node = await startNode({ dataDir: join(dir, 'node'), role: 'bootstrap', readyTimeoutMs: DEADLINE_MS });
    client = new DispatcherClient(node.address);
  });

  afterAll(async () => {
    client?.close();
    if (node) {
      node.kill('SIGKILL');
      await node.exited;
    }
    if (dir) removeDir(dir);
  });

  const cli = (...args: string[]) => runCli(['process', '--node', node!.address, ...args]);

  it('creates, updates, describes, lists and removes definitions through the client', async () => {
    const created = await client.createDefinition({ id: 'sleep', type: 'exec', executable: { argv: ['sleep', '60'] }, config: { a: 1 } });
    expect(created).toEqual({ id: 'sleep', type: 'exec', executable: { argv: ['sleep', '60'] }, config: { a: 1 } });
    await expect(client.createDefinition({ id: 'sleep', type: 'exec', executable: { argv: ['true'] } })).rejects.toMatchObject({ code: grpc.status.ALREADY_EXISTS });
    const updated = await client.updateDefinition({ id: 'sleep', type: 'exec', executable: { argv: ['sleep', '90'] }, description: 'naps' });
    expect(updated).toEqual({ id: 'sleep', type: 'exec', executable: { argv: ['sleep', '90'] }, config: {}, description: 'naps' });
    expect(await client.describeDefinition('sleep')).toEqual(updated);
    expect((await client.listDefinitions()).map((d) => d.id)).toContain('sleep');

    await client.createDefinition({ id: 'gone', type: 'exec', executable: { argv: ['true'] } });
    expect(await client.removeDefinition('gone')).toEqual({ removed: 'gone' });
    await expect(client.describeDefinition('gone')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(client.updateDefinition({ id: 'gone', type: 'exec', executable: {} })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(client.createDefinition({ id: 'bad', type: 'exec', executable: 'ls' })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/createDefinition\.executable: must be an object/),
    });
  });

  it('manages definitions through the CLI, inline or from a file, with --json', async () => {
    const inline = await cli('definition', 'create', 'echo', '--type', 'exec', '--argv', 'echo', '--argv', 'hi', '--env', 'A=1', '--json');
    expect(inline.code, inline.stderr).toBe(0);
    expect(JSON.parse(inline.stdout) as ProcessDefinition).toEqual({ id: 'echo', type: 'exec', executable: { argv: ['echo', 'hi'], env: { A: '1' } }, config: {} });

    const file = join(dir, 'avg.yaml');
    writeFileSync(file, 'type: js\nexecutable:\n  module: ./avg.js\nconfig:\n  window: 5\ndescription: sliding average\n');
    const fromFile = await cli('definition', 'create', 'avg', '--file', file, '--set', 'config.window=10');
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(fromFile.stdout).toBe('created definition avg\n');
    expect(await client.describeDefinition('avg')).toEqual({ id: 'avg', type: 'js', executable: { module: './avg.js' }, config: { window: 10 }, description: 'sliding average' });

    const listed = await cli('definition', 'list', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { definitions: ProcessDefinition[] }).definitions.map((d) => d.id)).toEqual(expect.arrayContaining(['echo', 'avg']));
    const described = await cli('definition', 'describe', 'avg');
    expect(described.stdout).toMatch(/^definition avg: type js \(sliding average\)/);

    const taken = await cli('definition', 'create', 'echo', '--type', 'exec', '--argv', 'true');
    expect(taken.code).toBe(1);
    expect(taken.stderr).toMatch(/exists.*\(ALREADY_EXISTS\)\n$/);
    const removed = await cli('definition', 'remove', 'echo');
    expect(removed.code, removed.stderr).toBe(0);
    const missing = await cli('definition', 'describe', 'echo');
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/\(NOT_FOUND\)\n$/);
  });

  it('schedules, describes, lists, waits for and terminates processes through the client and the CLI', async () => {
    await client.createDefinition({ id: 'nap', type: 'exec', executable: { argv: ['sleep', '60'] } });
    // No agent anywhere: the process waits for a slot.
    const p1 = await client.schedule({ upid: 'p1', definitionId: 'nap', configuration: { x: 1 }, constraints: { cores: { '>=': 2 } }, name: 'first' });
    expect(p1).toMatchObject({ upid: 'p1', name: 'first', state: 'WAITING', round: 0, queueingMode: 'ALWAYS', restartMode: 'ABNORMAL', constraints: { cores: { '>=': 2 } } });
    // The same request again is no change.
    expect(await client.schedule({ upid: 'p1', definitionId: 'nap', configuration: { x: 1 }, constraints: { cores: { '>=': 2 } } })).toEqual(p1);
    expect(await client.describe('p1')).toEqual(p1);
    expect((await client.list(['WAITING'])).map((p) => p.upid)).toContain('p1');
    expect(await client.list(['RUNNING'])).toEqual([]);

    const scheduled = await cli('schedule', 'p2', '--definition', 'nap', '--set', 'y=2', '--constraint', 'zone=[a, b]', '--restart-mode', 'NEVER', '--json');
    expect(scheduled.code, scheduled.stderr).toBe(0);
    expect(JSON.parse(scheduled.stdout) as ProcessRecord).toMatchObject({ upid: 'p2', state: 'WAITING', configuration: { y: 2 }, constraints: { zone: ['a', 'b'] }, restartMode: 'NEVER' });

    const described = await cli('describe', 'p2', '--json');
    expect(described.code, described.stderr).toBe(0);
    expect((JSON.parse(described.stdout) as ProcessRecord).definition).toEqual({ id: 'nap', type: 'exec', executable: { argv: ['sleep', '60'] }, config: {} });
    const listed = await cli('list', '--state', 'WAITING', '--json');
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { processes: ProcessRecord[] }).processes.map((p) => p.upid).sort()).toEqual(['p1', 'p2']);
    const text = await cli('list');
    expect(text.stdout).toMatch(/^UPID\s+DEFINITION\s+STATE/);
    expect(text.stdout).toMatch(/p2\s+nap\s+WAITING/);

    // Wait: RUNNING never comes here, so it times out; a state it is in answers at once.
    const timedOut = await cli('wait', 'p2', '--state', 'RUNNING', '--timeout', '300ms');
    expect(timedOut.code).toBe(1);
    expect(timedOut.stderr).toMatch(/p2.*WAITING.*\(DEADLINE_EXCEEDED\)\n$/);
    expect((await client.wait('p2', ['WAITING'], 1_000)).state).toBe('WAITING');

    // Not placed: terminated at once.
    const terminated = await cli('terminate', 'p2');
    expect(terminated.code, terminated.stderr).toBe(0);
    expect(terminated.stdout).toBe('process p2: TERMINATED, round 0\n');
    const waited = await cli('wait', 'p2', '--state', 'TERMINATED', '--timeout', '5s', '--json');
    expect(waited.code, waited.stderr).toBe(0);
    expect((JSON.parse(waited.stdout) as ProcessRecord).state).toBe('TERMINATED');
    // Final and not what is asked for: no point in waiting.
    await expect(client.wait('p2', ['RUNNING'], 5_000)).rejects.toMatchObject({ code: grpc.status.FAILED_PRECONDITION });

    // Restart queues it again in a new round.
    expect(await client.restart('p2')).toMatchObject({ state: 'WAITING', round: 1 });
    expect((await client.terminate('p1')).state).toBe('TERMINATED');

    // The need for workers is kept, and why no domain took it is shown.
    const status = await client.status();
    expect(status.capacity.find((c) => c.engineType === 'default')).toMatchObject({ applied: false });
  });

  it('refuses bad input with the right status, and the CLI exits 1', async () => {
    await client.createDefinition({ id: 'nap2', type: 'exec', executable: { argv: ['sleep', '60'] } });
    await client.schedule({ upid: 'q1', definitionId: 'nap2' });

    await expect(client.schedule({ upid: 'q2', definitionId: 'nope' })).rejects.toMatchObject({ code: grpc.status.NOT_FOUND, details: 'process definition "nope" does not exist' });
    await expect(client.schedule({ upid: 'q2', definitionId: 'nap2', constraints: { cores: { about: 3 } } })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/constraint "cores": unknown operator "about"/),
    });
    await expect(client.schedule({ upid: 'q1', definitionId: 'nap2', configuration: { other: 1 } })).rejects.toMatchObject({
      code: grpc.status.INVALID_ARGUMENT,
      details: expect.stringMatching(/process "q1" exists .* with a different configuration/),
    });
    await expect(client.schedule({ upid: 'q3', definitionId: 'nap2', queueingMode: 'SOMETIMES' })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    await expect(client.describe('nobody')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(client.terminate('nobody')).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
    await expect(client.list(['SLEEPING'])).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'states: "SLEEPING" is not a process state' });
    expect(await client.describe('q1')).toMatchObject({ state: 'WAITING', configuration: {} });

    const unknown = await cli('schedule', 'q4', '--definition', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toBe('error: process definition "nope" does not exist (NOT_FOUND)\n');
    const malformed = await cli('schedule', 'q4', '--definition', 'nap2', '--constraint', 'cores={}');
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/constraint "cores".*\(INVALID_ARGUMENT\)\n$/);
    const conflicting = await cli('schedule', 'q1', '--definition', 'nap2', '--restart-mode', 'ALWAYS');
    expect(conflicting.code).toBe(1);
    expect(conflicting.stderr).toMatch(/different restartMode \(INVALID_ARGUMENT\)\n$/);
    const noType = await cli('definition', 'create', 'x');
    expect(noType.code).toBe(1);
    expect(noType.stderr).toMatch(/--type/);
    const badTimeout = await cli('wait', 'q1', '--timeout', 'soon');
    expect(badTimeout.code).toBe(1);
    expect(badTimeout.stderr).toMatch(/--timeout must be a duration/);

    const help = await cli('--help');
    expect(help.stdout).toMatch(/definition/);
    expect(help.stdout).toMatch(/schedule/);
    expect(help.stdout).toMatch(/wait/);
  });

  it('starts and ends the system boot through the client and the CLI: recovered processes are held, then queued again', async () => {
    await client.createDefinition({ id: 'nap3', type: 'exec', executable: { argv: ['sleep', '60'] } });
    const before = await client.schedule({ upid: 'b1', definitionId: 'nap3' });
    await client.schedule({ upid: 'b2', definitionId: 'nap3', configuration: { process: { omit_from_system_restart: true } } });

    const started = await cli('boot', 'start', '--recover', '--json');
    expect(started.code, started.stderr).toBe(0);
    const reply = JSON.parse(started.stdout) as { booting: boolean; recovered: string[] };
    expect(reply.booting).toBe(true);
    expect(reply.recovered).toContain('b1');
    expect(reply.recovered).not.toContain('b2');
    expect(await client.describe('b1')).toMatchObject({ state: 'UNSCHEDULED_PENDING', round: before.round + 1 });
    expect(await client.describe('b2')).toMatchObject({ state: 'FAILED', lastError: 'not restarted after a system restart' });
    expect((await client.status()).booting).toBe(true);
    expect((await cli('status')).stdout).toMatch(/queued; booting/);

    const ended = await client.setSystemBoot(false);
    expect(ended).toEqual({ booting: false, recovered: [] });
    expect(await client.describe('b1')).toMatchObject({ state: 'WAITING', round: before.round + 1 });
    const text = await cli('status');
    expect(text.stdout).not.toMatch(/booting/i);

    const badPhase = await cli('boot', 'begin');
    expect(badPhase.code).toBe(1);
    expect(badPhase.stderr).toMatch(/phase: "begin" is not start or end/);
    const badFlag = await cli('boot', 'end', '--recover');
    expect(badFlag.code).toBe(1);
    expect(badFlag.stderr).toMatch(/--recover goes with start only/);
    expect((await client.status()).booting).toBe(false);
  });
});
