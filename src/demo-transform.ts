/**
 * The second half of the embedded default's demo: data through a transform that survives the death
 * of its worker. A synthetic instrument publishes 100 time steps of three variables to a stream; a
 * `window-average` process, which the dispatcher placed on one of the demo's worker processes,
 * averages each variable over the last 10 s of message time into a second stream; the demo prints
 * input and output side by side, kills the worker hosting the transform halfway (SIGKILL, as a crash
 * would), shows the dispatcher placing it again on the other worker, and checks at the end that every
 * step came out exactly once with the right averages.
 *
 * It talks to the node through the public API only. Killing a worker is the caller's: the sleeper
 * demo knows which process is which node.
 */
import * as grpc from '@grpc/grpc-js';
import { DispatcherClient } from './client-dispatcher.js';
import { StreamsClient } from './client-streams.js';
import type { ProcessRecord } from './actors/dispatcher/core.js';
import type { StreamEntry } from './actors/stream.js';

const STEPS = 100;
const WINDOW_S = 10;
/** Steps published per second: slow enough to watch, fast enough to finish in a few seconds. */
const STEPS_PER_S = 25;
const VARIABLES = ['temperature', 'salinity', 'pressure'] as const;
const DEFINITION = 'window-average';
const POLL_MS = 100;
const PHASE_TIMEOUT_MS = 60_000;

type Reading = Record<string, number>;

export interface TransformDemoOptions {
  address: string;
  print(line: string): void;
  /** Kills the worker process of node `nodeId` as a crash would; false when it cannot. */
  killNode(nodeId: string): boolean;
  /** True once the demo is being shut down: every wait ends early. */
  stopping(): boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The instrument: step k at k seconds. */
export function instrumentReadings(): Reading[] {
  return Array.from({ length: STEPS }, (_, k) => ({
    time: k,
    temperature: round(12 + 4 * Math.sin(k / 8), 3),
    salinity: round(35 + ((k * 37) % 11) / 20, 3),
    pressure: round(1000 + k * 0.25, 3),
  }));
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** What the transform must give: the plain definition of a sliding-window average. */
function expectedAverage(data: Reading[], i: number): Reading {
  const t = data[i]!.time!;
  const inWindow = data.filter((d) => d.time! > t - WINDOW_S && d.time! <= t);
  const out: Reading = { time: t, count: inWindow.length };
  for (const v of VARIABLES) out[v] = inWindow.reduce((s, d) => s + d[v]!, 0) / inWindow.length;
  return out;
}

export class TransformDemo {
  private readonly dispatcher: DispatcherClient;
  private readonly streams: StreamsClient;
  private readonly run = Date.now().toString(36);
  readonly upid = `average-${this.run}`;
  private readonly input = `instrument-${this.run}`;
  private readonly output = `instrument-${this.run}-avg`;

  constructor(private readonly o: TransformDemoOptions) {
    this.dispatcher = new DispatcherClient(o.address);
    this.streams = new StreamsClient(o.address);
  }

  private say(line: string): void {
    this.o.print(`demo: ${line}`);
  }

  async runDemo(): Promise<void> {
    const data = instrumentReadings();
    this.say(`transform: ${STEPS} steps of ${VARIABLES.join(', ')} from a synthetic instrument into stream ${this.input}; a ${DEFINITION} process averages the last ${WINDOW_S} s into ${this.output}`);
    if (!(await this.until('two execution engine agents', async () => ((await this.dispatcher.status()).agents.length >= 2 ? true : undefined)))) return;
    try {
      await this.dispatcher.createDefinition({ id: DEFINITION, type: 'window-average', executable: {}, description: 'the built-in sliding-window average' });
    } catch (err) {
      if ((err as grpc.ServiceError).code !== grpc.status.ALREADY_EXISTS) throw err;
    }
    await this.dispatcher.schedule({ upid: this.upid, definitionId: DEFINITION, configuration: { inputs: [this.input], output: this.output, window: WINDOW_S } });
    const first = await this.until(`${this.upid} RUNNING`, async () => {
      const p = await this.dispatcher.describe(this.upid);
      return p.state === 'RUNNING' ? p : undefined;
    });
    if (!first) return;
    this.say(`transform ${this.upid} RUNNING on node ${first.assigned!.nodeId}, placed by the dispatcher`);

    const outputs = new Map<number, Reading>();
    const sub = this.streams.subscribe(this.output, 'demo', { from: 'earliest' });
    const reading = (async () => {
      for await (const m of sub.messages) this.show(data, m, outputs);
    })().catch(() => {});
    let moved: Promise<ProcessRecord | undefined> | undefined;
    const started = Date.now();
    for (let k = 0; k < STEPS && !this.o.stopping(); k++) {
      // Paced by the wall clock, so a slow moment does not bunch the steps up.
      const due = started + (k * 1000) / STEPS_PER_S;
      if (due > Date.now()) await sleep(due - Date.now());
      await this.streams.publish(this.input, [data[k]], { times: [data[k]!.time! * 1000] });
      if (k === STEPS / 2) moved = this.killHost(first);
    }
    const after = await moved;
    const all = await this.until(`all ${STEPS} averages`, async () => (outputs.size >= STEPS ? true : undefined));
    sub.close();
    await reading;
    if (!all) return;
    const head = (await this.streams.describe(this.output)).head;
    const wrong = data.filter((_, i) => {
      const got = outputs.get(i);
      const want = expectedAverage(data, i);
      return !got || got.count !== want.count || VARIABLES.some((v) => Math.abs(got[v]! - want[v]!) > 1e-9);
    }).length;
    this.say(
      `transform: ${outputs.size} of ${STEPS} steps averaged, ${head - STEPS} doubled, ${wrong} wrong` +
        (after ? `; it moved from node ${first.assigned!.nodeId} to ${after.assigned!.nodeId} (round ${after.round}) without losing a step` : ''),
    );
  }

  /** Kills the transform's worker and resolves with the process placed again elsewhere. */
  private async killHost(p: ProcessRecord): Promise<ProcessRecord | undefined> {
    const nodeId = p.assigned!.nodeId;
    if (!this.o.killNode(nodeId)) {
      this.say(`cannot find the worker process of node ${nodeId}; not killing it`);
      return undefined;
    }
    const killedAt = Date.now();
    this.say(`killed the worker hosting the transform (node ${nodeId}) with SIGKILL, mid-stream`);
    const again = await this.until(`${this.upid} RUNNING again`, async () => {
      const q = await this.dispatcher.describe(this.upid);
      return q.round > p.round && q.state === 'RUNNING' ? q : undefined;
    });
    if (again) this.say(`transform ${this.upid} RUNNING again on node ${again.assigned!.nodeId} (round ${again.round}) ${Date.now() - killedAt} ms after the kill; it resumes from its last checkpoint`);
    return again;
  }

  private show(data: Reading[], m: StreamEntry, outputs: Map<number, Reading>): void {
    const out = m.data as Reading;
    const i = data.findIndex((d) => d.time === out.time);
    // A doubled or unknown output is counted from the stream's head at the end.
    if (i < 0 || outputs.has(i)) return;
    outputs.set(i, out);
    const cells = VARIABLES.map((v) => `${v} ${data[i]![v]!.toFixed(3).padStart(8)} -> ${out[v]!.toFixed(3).padStart(8)}`);
    this.say(`t=${String(out.time).padStart(2)}s  ${cells.join('  ')}  (avg of ${out.count})`);
  }

  /** Polls `check` until it gives a value; undefined when the demo stops. Throws after PHASE_TIMEOUT_MS. */
  private async until<T>(what: string, check: () => Promise<T | undefined>): Promise<T | undefined> {
    const deadline = Date.now() + PHASE_TIMEOUT_MS;
    while (!this.o.stopping()) {
      const v = await check().catch(() => undefined);
      if (v !== undefined) return v;
      if (Date.now() > deadline) throw new Error(`no ${what} within ${PHASE_TIMEOUT_MS / 1000} s`);
      await sleep(POLL_MS);
    }
    return undefined;
  }

  /** Ends the transform (its worker may be gone already); never throws. */
  async shutdown(): Promise<void> {
    await this.dispatcher.terminate(this.upid, 5_000).catch(() => {});
    this.dispatcher.close();
    this.streams.close();
  }
}
