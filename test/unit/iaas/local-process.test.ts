import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ReadyScanner, isInstanceProcess, logTail } from '../../../src/iaas/local-process.js';
import { waitFor } from '../../support/wait.js';

const dirs: string[] = [];
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempFile(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cei-iaas-'));
  dirs.push(dir);
  return join(dir, 'node.log');
}

describe('ReadyScanner', () => {
  it('finds the ready line among log lines, across partial writes', () => {
    const log = tempFile();
    const scanner = new ReadyScanner(log);
    expect(scanner.scan()).toBeUndefined();
    appendFileSync(log, '{"level":40,"msg":"joining"}\nrea');
    expect(scanner.scan()).toBeUndefined();
    appendFileSync(log, 'dy n-1 127.0.0.1:4');
    expect(scanner.scan()).toBeUndefined();
    appendFileSync(log, '567\n{"msg":"after"}\n');
    expect(scanner.scan()).toEqual({ nodeId: 'n-1', address: '127.0.0.1:4567' });
  });

  it('ignores lines that only look like a ready line', () => {
    const log = tempFile();
    appendFileSync(log, '{"msg":"ready n 1:2"}\nready\nready a b c\n');
    expect(new ReadyScanner(log).scan()).toBeUndefined();
  });
});

describe('logTail', () => {
  it('returns the end of the log, or nothing for a missing one', () => {
    const log = tempFile();
    appendFileSync(log, `${'x'.repeat(5000)}\nthe end\n`);
    expect(logTail(log, 8)).toBe('the end');
    expect(logTail(join(log, 'missing'))).toBe('');
  });
});

describe('isInstanceProcess', () => {
  it('is true only for a live process whose command line names the instance', async () => {
    const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', '--', '--instance-id', 'i-1'], { stdio: 'ignore' });
    children.push(child);
    await waitFor(() => isInstanceProcess(child.pid!, 'i-1'), { what: 'the child to run' });
    expect(isInstanceProcess(child.pid!, 'i-2')).toBe(false);
    expect(isInstanceProcess(process.pid, 'i-1')).toBe(false);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
    expect(isInstanceProcess(child.pid!, 'i-1')).toBe(false);
  });
});
