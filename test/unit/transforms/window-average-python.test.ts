import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import create, { type TransformMessage } from '../../../src/transforms/window-average.js';
import { within } from '../../support/wait.js';
import { expectClose, messages, readings } from './window-average-input.js';

const PROGRAM = fileURLToPath(new URL('../../../examples/window_average.py', import.meta.url));
const REPLY_MS = 10_000;

type Reply = Record<string, unknown>;

/** One python3 child speaking the line protocol; replies come back in request order. */
class PythonTransform {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  private readonly replies: Reply[] = [];
  private readonly waiters: ((reply: Reply) => void)[] = [];
  private stderr = '';
  private nextId = 1;

  constructor() {
    this.child = spawn('python3', [PROGRAM], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.stderr.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const reply = JSON.parse(line) as Reply;
      const waiter = this.waiters.shift();
      if (waiter === undefined) this.replies.push(reply);
      else waiter(reply);
    });
  }

  send(request: object): void {
    this.child.stdin.write(`${JSON.stringify(request)}\n`);
  }

  reply(what: string): Promise<Reply> {
    const queued = this.replies.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return within(new Promise<Reply>((resolve) => this.waiters.push(resolve)), `python ${what} (stderr: ${this.stderr})`, REPLY_MS);
  }

  async start(config: object, checkpoint: unknown = null): Promise<Reply> {
    this.send({ op: 'start', config, checkpoint });
    return this.reply('start');
  }

  async batch(msgs: readonly TransformMessage[]): Promise<Reply> {
    const id = this.nextId++;
    this.send({ op: 'batch', id, messages: msgs });
    const reply = await this.reply(`batch ${id}`);
    expect(reply['id']).toBe(id);
    return reply;
  }

  async outputs(msgs: readonly TransformMessage[]): Promise<{ data: Record<string, unknown>; time: number }[]> {
    const reply = await this.batch(msgs);
    expect(reply['op'], JSON.stringify(reply)).toBe('outputs');
    return reply['outputs'] as { data: Record<string, unknown>; time: number }[];
  }

  async snapshot(): Promise<unknown> {
    const id = this.nextId++;
    this.send({ op: 'snapshot', id });
    const reply = await this.reply(`snapshot ${id}`);
    expect(reply).toMatchObject({ op: 'snapshot', id });
    return reply['state'];
  }
}

const children: PythonTransform[] = [];
afterEach(() => {
  for (const p of children.splice(0)) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
});

function python(): PythonTransform {
  const p = new PythonTransform();
  children.push(p);
  return p;
}

function jsOutputs(msgs: readonly TransformMessage[]) {
  return create({ window: 10 }, undefined).process(msgs);
}

async function feed(p: PythonTransform, msgs: readonly TransformMessage[], batchSize: number) {
  const out: { data: Record<string, unknown>; time: number }[] = [];
  for (let i = 0; i < msgs.length; i += batchSize) out.push(...(await p.outputs(msgs.slice(i, i + batchSize))));
  return out;
}

describe('examples/window_average.py', () => {
  it('gives the JS outputs for 100 steps fed in batches', async () => {
    for (const input of [messages(readings(100)), messages(readings(100, { irregular: true, seed: 11 }))]) {
      const p = python();
      expect(await p.start({ window: 10 })).toEqual({ op: 'started' });
      const out = await feed(p, input, 30);
      const js = jsOutputs(input);
      expect(out.map((o) => Object.keys(o.data))).toEqual(js.map((o) => Object.keys(o.data)));
      expect(out.map((o) => o.time)).toEqual(js.map((o) => o.time));
      expectClose(
        out.map((o) => o.data),
        js.map((o) => o.data),
      );
      p.send({ op: 'stop' });
      expect(await within(p.exited, 'python exit')).toBe(0);
    }
  });

  it('writes the JS snapshot shape, resumes from it in a new process, and JS resumes from it too', async () => {
    const input = messages(readings(100, { irregular: true, seed: 5 }));
    const js = jsOutputs(input);
    const first = python();
    await first.start({ window: 10 });
    const before = await feed(first, input.slice(0, 43), 20);
    const state = await first.snapshot();

    const jsFirst = create({ window: 10 }, undefined);
    jsFirst.process(input.slice(0, 43));
    expect(Object.keys(state as object)).toEqual(Object.keys(jsFirst.snapshot()));
    expect((state as { samples: unknown[] }).samples.length).toBe(jsFirst.snapshot().samples.length);
    first.send({ op: 'stop' });
    expect(await within(first.exited, 'python exit')).toBe(0);

    const second = python();
    expect(await second.start({ window: 10 }, state)).toEqual({ op: 'started' });
    const after = await feed(second, input.slice(43), 25);
    expect(after).toHaveLength(57);
    expectClose(
      [...before, ...after].map((o) => o.data),
      js.map((o) => o.data),
    );

    // And the other way: the Python state restores the JS engine.
    const moved = create({ window: 10 }, state).process(input.slice(43));
    expectClose(
      moved.map((o) => o.data),
      js.slice(43).map((o) => o.data),
    );
  });

  it('answers a bad message with an error op, applies none of that batch, and keeps going', async () => {
    const input = messages(readings(12));
    const p = python();
    await p.start({ window: 10 });
    await p.outputs(input.slice(0, 4));
    const bad = await p.batch([input[4]!, { stream: 'ctd', offset: 5, time: 5, data: { temperature: 3 } }]);
    expect(bad).toMatchObject({ op: 'error' });
    expect(bad['error']).toMatch(/no numeric time field "time"/);
    const rest = await p.outputs(input.slice(4));
    expectClose(
      rest.map((o) => o.data),
      jsOutputs(input)
        .slice(4)
        .map((o) => o.data),
    );
  });

  it('reports a bad config as an error, and exits 0 at end of input', async () => {
    const p = python();
    const reply = await p.start({ window: 0 });
    expect(reply).toMatchObject({ op: 'error' });
    expect(reply['error']).toMatch(/"window" must be a finite number of seconds > 0/);
    expect(await p.start({ window: 2 })).toEqual({ op: 'started' });
    p.child.stdin.end();
    expect(await within(p.exited, 'python exit')).toBe(0);
  });
});
