/**
 * A transform's pump: the loop that feeds a transform process from its input streams and publishes
 * what it produces, exactly once in effect (docs/processes.md, "A transform's exactly-once loop").
 *
 * Per batch, on one input: read from the cursor -> engine.process -> publish the outputs as producer
 * P with seq = the batch's last input offset -> ack that offset with the engine's snapshot. A crash
 * anywhere leaves either nothing done (the batch is read again), or the outputs published and the ack
 * missing; the latter shows at the next start as the producer's high-water mark at or past the
 * cursor, and the pump rebuilds the engine's state over those inputs without publishing them again.
 *
 * Several inputs: each is read in turn through its own subscription (named by the upid) and
 * published as its own producer (`<upid>` for a single input, `<upid>.<input>` for more, since one
 * producer's seq must rise and offsets of different streams do not). The engine's state is one, so
 * each checkpoint carries a counter `n` of the acks so far: at a start the checkpoint with the
 * highest `n` is the state after the last completed ack, which covers every input's acked batches
 * (with several inputs a batch is acked before the next one is processed), and at most one input has a batch to rebuild.
 *
 * A batch the engine fails (the module throws, the program answers an error) is fed again one message
 * at a time, so that one bad message costs only itself: the good ones are published as usual, and each
 * one the engine fails again goes to the stream `dead-letters` as {upid, stream, offset, error, data}
 * (published as producer `<producer>.dead`, so a replay does not repeat them). A transform that
 * throws must not stall its stream, and must leave its state as it was before the message it threw on
 * (engine.ts). The failure also goes to the process log and to `onBatchError`. A stream call that fails (the stream's
 * node is failing over, a deadline) is tried again with backoff: every call is idempotent (publish
 * through the producer's seq, ack because the cursor never moves back).
 *
 * A file sink (`sink: {file}`) gets every output too, one JSON line `{producer, seq, time?, data}`,
 * written after the publish and before the ack, a batch in one append. At a start the pump reads
 * the file's highest seq per producer (dropping a torn last line) and appends only batches past it,
 * also when rebuilding: the file, like the output stream, holds each output once.
 *
 * Pipelining: each step's stream calls are round trips through durable, replicated mailboxes, so the
 * pump keeps the next batch's read in flight while it processes and publishes the current one (a
 * read has no effect; it names `from`, the offset past what the pump has read, since the cursor only
 * moves by acks), and while reads come back full (a backlog) a few more reads after it. With a
 * single input, publishes, sink appends and acks run in the background while the next batches are
 * read and processed: the engine's work and the publish's round trip overlap instead of adding up.
 * At most one publish is in flight; the batches processed meanwhile (at most
 * MAX_UNPUBLISHED_BATCHES, then the loop waits) go out together as the next publish, with the newest
 * one's last offset as its seq, exactly as if they had been read as one batch. So the producer's
 * seq only rises and no publish is dropped as a duplicate of a later one. A publish's ack is asked
 * for after the publish and its sink append; at most one ack is in flight, and the acks asked for
 * meanwhile coalesce into the newest (acking offset e with the snapshot after e covers every batch
 * before it). So publish-then-ack holds for every batch, and a crash before an ack is the case
 * above, the high-water mark then a few batches past the cursor. With
 * several inputs each batch's publish and ack are awaited before the next step, so the checkpoint
 * with the highest `n` stays the state after every published batch but at most one (the rebuild
 * above does not know the order the inputs were read in).
 *
 * Waits run on the injected clock. stop() ends the loop after the call in progress (and the publish
 * and ack in flight); it does not stop the engine (the runner does, after the pump ended).
 */
import { appendFile, readFile, truncate } from 'node:fs/promises';
import { errorMessage } from '../../errors.js';
import { EngineProcessError, type Engine, type EngineInput, type EngineOutput } from '../../engines/engine.js';
import type { ActorService } from '../../runtime/actor-service.js';
import type { Clock, TimerHandle } from '../../runtime/clock.js';
import { askRole } from '../role-reply.js';
import { streamRef } from '../stream.js';
import type { PumpOptions } from './options.js';
import type { TransformConfig } from './protocol.js';

/** The stream messages of docs/processes.md the pump uses, and their replies. */
interface StreamMessage {
  offset: number;
  time: number;
  data: unknown;
}
interface SubscribeReply {
  cursor: number;
  checkpoint?: unknown;
}
interface ReadReply {
  messages: StreamMessage[];
  cursor: number;
  head: number;
}
interface ProducerReply {
  seq: number;
}

/** Where messages a transform fails on go, for every transform. */
export const DEAD_LETTERS = 'dead-letters';

interface DeadLetter {
  upid: string;
  stream: string;
  offset: number;
  error: string;
  data: unknown;
}

/** What the pump keeps in a subscription's checkpoint. */
interface PumpCheckpoint {
  cei_pump: 1;
  /** Acks made with a checkpoint so far, over all inputs and rounds. */
  n: number;
  state: unknown;
}

function isPumpCheckpoint(v: unknown): v is PumpCheckpoint {
  return typeof v === 'object' && v !== null && (v as PumpCheckpoint).cei_pump === 1 && typeof (v as PumpCheckpoint).n === 'number';
}


/** Thrown inside the loop when stop() was called; never leaves the pump. */
class Stopped extends Error {
  override name = 'Stopped';
}

export interface PumpDeps {
  service(): ActorService;
  clock: Clock;
  options: PumpOptions;
  /** A batch failed in the engine: the error and how many have failed in this run. */
  onBatchError(error: string, failures: number): void;
  /**
   * The loop ended by itself on an error it cannot get past (the engine died or stopped answering):
   * the process cannot go on and should be stopped and reported failed.
   */
  onFatal(error: string): void;
}

interface Input {
  stream: string;
  producer: string;
  /** The subscription's cursor as last seen (moved by the pump's acks). */
  cursor: number;
  /** The next offset to read: past every batch read, acked or not. */
  next: number;
  /**
   * Reads issued while the previous batch is handled, in offset order; the first is from `next`, and
   * while the reads come back full the others are from where a full batch would end (see step).
   */
  ahead: Array<{ at: number; reply: Promise<ReadReply> }>;
}

/** Reads one input keeps in flight while its reads come back full (the pump is behind). */
const READS_AHEAD = 3;

/**
 * Processed batches that may wait for the publish in flight before the loop waits for it: enough to
 * keep the engine busy for a publish's round trip, few enough to bound memory and what a restart
 * rebuilds.
 */
const MAX_UNPUBLISHED_BATCHES = 4;

export class Pump {
  private stopping = false;
  /** Waits in progress (the loop's idle wait, retries of calls): stop() ends them all. */
  private readonly sleepers = new Set<() => void>();
  /** The ack loop (flushAcks) while it runs; settles when it is done and never rejects. */
  private acking: Promise<void> = Promise.resolve();
  private ackRunning = false;
  /** The newest published batch whose ack has not been issued yet: acks coalesce to the newest. */
  private ackWanted: { input: Input; last: number; snapshot: unknown } | undefined;
  /** An ack that failed other than by stop(): the loop rethrows it. */
  private ackFailure: unknown;
  /** The publish loop (flushOutputs) while it runs; settles when it is done and never rejects. */
  private publishing: Promise<void> = Promise.resolve();
  private publishRunning = false;
  /** Processed batches of one input, oldest first, whose outputs wait for the publish in flight. */
  private unpublished: Array<{ input: Input; last: number; outputs: EngineOutput[]; snapshot: unknown }> = [];
  /** A publish (or sink append) that failed other than by stop(): the loop rethrows it. */
  private publishFailure: unknown;
  private inputs: Input[] = [];
  private n = 0;
  private failures = 0;
  private loop: Promise<void> | undefined;
  /** The sink file's highest seq per producer (see openSink); undefined without a sink. */
  private sinkSeqs: Map<string, number> | undefined;

  constructor(
    readonly upid: string,
    readonly config: TransformConfig,
    private readonly engine: Engine,
    private readonly engineConfig: unknown,
    private readonly deps: PumpDeps,
  ) {}

  private get batch(): number {
    return this.config.batch ?? this.deps.options.batch;
  }

  /**
   * Subscribes to every input, starts the engine from the latest checkpoint and rebuilds what was
   * published but not acked. Resolves when the process is running (the loop goes on by itself);
   * rejects if the engine cannot start (EngineStartError) or stop() came first.
   */
  async start(): Promise<void> {
    const multi = this.config.inputs.length > 1;
    let best: PumpCheckpoint | undefined;
    let raw: unknown;
    for (const stream of this.config.inputs) {
      const sub = await this.call<SubscribeReply>(stream, { subscribe: { subscription: this.upid, from: this.config.from ?? 'earliest' } });
      this.inputs.push({ stream, producer: multi ? `${this.upid}.${stream}` : this.upid, cursor: sub.cursor, next: sub.cursor, ahead: [] });
      if (isPumpCheckpoint(sub.checkpoint)) {
        if (!best || sub.checkpoint.n > best.n) best = sub.checkpoint;
      } else if (sub.checkpoint !== undefined && sub.checkpoint !== null) {
        // A checkpoint the pump did not write (set by hand, or by an older agent): the state itself.
        raw ??= sub.checkpoint;
      }
    }
    this.n = best?.n ?? 0;
    const state = best ? best.state : raw;
    this.throwIfStopped();
    await this.engine.start(this.engineConfig, state ?? undefined);
    this.engine.log.append(`pump: ${this.config.inputs.join(', ')} -> ${this.config.output} from ${this.describeCursors()} (checkpoint ${this.n})`, 'engine');
    if (this.config.sink) await this.openSink(this.config.sink.file);
    for (const input of this.inputs) await this.rebuild(input);
    this.loop = this.run().catch((err: unknown) => {
      if (err instanceof Stopped) return;
      this.engine.log.append(`pump: stopped on an error: ${errorMessage(err)}`, 'engine');
      this.deps.onFatal(errorMessage(err));
    });
  }

  /** Ends the loop after the call in progress; resolves when it has ended. Idempotent. */
  async stop(): Promise<void> {
    this.stopping = true;
    for (const wake of [...this.sleepers]) wake();
    await this.loop;
  }

  private describeCursors(): string {
    return this.inputs.map((i) => `${i.stream}@${i.cursor}`).join(', ');
  }

  /**
   * The outputs for this input's inputs up to the producer's high-water mark went out, but their ack
   * did not: run them through the engine again without publishing, acking as it goes.
   */
  private async rebuild(input: Input): Promise<void> {
    const { seq: high } = await this.call<ProducerReply>(this.config.output, { producer: { name: input.producer } });
    if (high < input.cursor) return;
    this.engine.log.append(`pump: rebuilding ${input.stream} ${input.cursor}..${high} (published before the last stop, not acked)`, 'engine');
    while (input.cursor <= high) {
      const read = await this.call<ReadReply>(input.stream, { read: { subscription: this.upid, max: Math.min(this.batch, high - input.cursor + 1) } });
      const batch = read.messages.filter((m) => m.offset <= high);
      if (batch.length === 0) break; // dropped by retention: nothing left to rebuild from
      const last = batch[batch.length - 1]!.offset;
      let outputs: EngineOutput[];
      try {
        outputs = await this.engine.process(this.inputsOf(input, batch));
      } catch (err) {
        if (!(err instanceof EngineProcessError)) throw err;
        // Its outputs and dead letters went out before the stop: only the state is rebuilt here.
        outputs = (await this.oneByOne(input, batch, err)).outputs;
      }
      // The file may have missed what the stream got (a stop between the publish and the append).
      await this.sink(input, last, outputs);
      await this.ack(input, last, await this.engine.snapshot());
    }
  }

  private async run(): Promise<void> {
    try {
      await this.pump();
    } finally {
      // The last publish and ack go on (or end on stop()) before the loop counts as ended.
      await this.publishing;
      await this.acking;
      for (const input of this.inputs) input.ahead = [];
    }
  }

  private async pump(): Promise<void> {
    for (const input of this.inputs) input.next = input.cursor;
    let idle = this.deps.options.idleMinMs;
    let next = 0;
    while (!this.stopping) {
      let moved = false;
      // One batch per input in turn, so a busy input does not starve the others.
      for (let k = 0; k < this.inputs.length && !this.stopping; k++) {
        const input = this.inputs[(next + k) % this.inputs.length]!;
        if (await this.step(input)) moved = true;
      }
      next = (next + 1) % this.inputs.length;
      if (moved) idle = this.deps.options.idleMinMs;
      else {
        await this.sleep(idle);
        idle = Math.min(idle * 2, this.deps.options.idleMaxMs);
      }
    }
  }

  /**
   * Reads the batch from `at`; the promise is marked handled so that a stop mid-read, or a read
   * dropped unused, is no unhandled rejection.
   */
  private readFrom(input: Input, at: number): { at: number; reply: Promise<ReadReply> } {
    const reply = this.call<ReadReply>(input.stream, { read: { subscription: this.upid, max: this.batch, from: at } });
    reply.catch(() => undefined);
    return { at, reply };
  }

  /** One batch of one input; false when there was nothing to read. */
  private async step(input: Input): Promise<boolean> {
    this.throwIfFailed();
    const head = input.ahead.shift() ?? this.readFrom(input, input.next);
    const read = await head.reply;
    if (head.at !== input.next || read.messages.length === 0) {
      input.ahead = [];
      if (head.at !== input.next) return true;
      // Retention may have moved the cursor past what was read.
      input.cursor = Math.max(input.cursor, read.cursor);
      input.next = Math.max(input.next, read.cursor);
      return false;
    }
    const batch = read.messages;
    const last = batch[batch.length - 1]!.offset;
    input.next = last + 1;
    // A full batch means more is waiting: keep READS_AHEAD reads in flight, each from where the one
    // before it ends if full. A read that does not start at `next` after all is dropped unused.
    const full = batch.length === this.batch && last - batch[0]!.offset + 1 === this.batch;
    if (input.ahead[0]?.at !== input.next) input.ahead = [this.readFrom(input, input.next)];
    if (full) while (input.ahead.length < READS_AHEAD) input.ahead.push(this.readFrom(input, input.ahead.at(-1)!.at + this.batch));
    else input.ahead.length = 1;
    let outputs: EngineOutput[];
    try {
      outputs = await this.engine.process(this.inputsOf(input, batch));
    } catch (err) {
      if (!(err instanceof EngineProcessError)) throw err;
      const { outputs: good, dead } = await this.oneByOne(input, batch, err);
      outputs = good;
      if (dead.length > 0) {
        await this.call(DEAD_LETTERS, { publish: { messages: dead.map((data) => ({ data })), producer: `${input.producer}.dead`, seq: last } });
      }
    }
    const snapshot = await this.engine.snapshot();
    this.throwIfFailed();
    this.unpublished.push({ input, last, outputs, snapshot });
    if (!this.publishRunning) {
      this.publishRunning = true;
      this.publishing = this.flushOutputs().catch((err: unknown) => {
        if (!(err instanceof Stopped)) this.publishFailure = err;
      });
    }
    if (this.inputs.length > 1) {
      await this.publishing;
      await this.acking;
      this.throwIfFailed();
    } else if (this.unpublished.length >= MAX_UNPUBLISHED_BATCHES) {
      await this.publishing;
      this.throwIfFailed();
    }
    return true;
  }

  /**
   * Publishes what waits in `unpublished` until nothing does: each round takes every batch waiting
   * (one input's, oldest first) as one publish with the newest batch's last offset as its seq (the
   * same as if they had been read as one batch), then the sink append, then asks for their ack.
   */
  private async flushOutputs(): Promise<void> {
    try {
      while (this.unpublished.length > 0) {
        const group = this.unpublished.splice(0);
        const { input, last, snapshot } = group[group.length - 1]!;
        const outputs = group.length === 1 ? group[0]!.outputs : group.flatMap((g) => g.outputs);
        if (outputs.length > 0) {
          const messages = outputs.map((o) => (o.time === undefined ? { data: o.data } : { data: o.data, time: o.time }));
          await this.call(this.config.output, { publish: { messages, producer: input.producer, seq: last } });
        }
        await this.sink(input, last, outputs);
        this.requestAck(input, last, snapshot);
      }
    } finally {
      // Set in the same turn as the loop's last check, so a batch pushed after it starts a new loop.
      this.publishRunning = false;
    }
  }

  /** Asks for the ack of a published batch: issued at once, or after the ack in flight (then only the newest). */
  private requestAck(input: Input, last: number, snapshot: unknown): void {
    this.ackWanted = { input, last, snapshot };
    if (this.ackRunning) return;
    this.ackRunning = true;
    this.acking = this.flushAcks().catch((err: unknown) => {
      if (!(err instanceof Stopped)) this.ackFailure = err;
    });
  }

  private async flushAcks(): Promise<void> {
    try {
      while (this.ackWanted !== undefined && this.ackFailure === undefined) {
        const { input, last, snapshot } = this.ackWanted;
        this.ackWanted = undefined;
        await this.ack(input, last, snapshot);
      }
    } finally {
      this.ackRunning = false;
    }
  }

  /** Rethrows, in the loop, what failed in the background (a publish, a sink append, an ack). */
  private throwIfFailed(): void {
    if (this.publishFailure !== undefined) throw this.publishFailure;
    if (this.ackFailure !== undefined) throw this.ackFailure;
  }

  /** Reads the sink file's highest seq per producer; a torn last line (a stop mid-append) is cut off. */
  private async openSink(file: string): Promise<void> {
    let text = '';
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    const end = text.lastIndexOf('\n') + 1;
    if (end < text.length) await truncate(file, Buffer.byteLength(text.slice(0, end)));
    this.sinkSeqs = new Map();
    for (const line of text.slice(0, end).split('\n')) {
      if (line === '') continue;
      const { producer, seq } = JSON.parse(line) as { producer: string; seq: number };
      this.sinkSeqs.set(producer, Math.max(seq, this.sinkSeqs.get(producer) ?? -1));
    }
  }

  /** Appends a batch's outputs to the sink file, unless it holds them already. */
  private async sink(input: Input, seq: number, outputs: EngineOutput[]): Promise<void> {
    const file = this.config.sink?.file;
    if (!file || !this.sinkSeqs || outputs.length === 0 || seq <= (this.sinkSeqs.get(input.producer) ?? -1)) return;
    const lines = outputs.map((o) => JSON.stringify({ producer: input.producer, seq, ...(o.time !== undefined ? { time: o.time } : {}), data: o.data }));
    await appendFile(file, `${lines.join('\n')}\n`);
    this.sinkSeqs.set(input.producer, seq);
  }

  private inputsOf(input: Input, batch: StreamMessage[]): EngineInput[] {
    return batch.map((m) => ({ stream: input.stream, offset: m.offset, time: m.time, data: m.data }));
  }

  /**
   * A batch the engine failed, fed again one message at a time: the outputs of those it takes, and a
   * dead letter for each it fails again.
   */
  private async oneByOne(input: Input, batch: StreamMessage[], batchError: Error): Promise<{ outputs: EngineOutput[]; dead: DeadLetter[] }> {
    const outputs: EngineOutput[] = [];
    const dead: DeadLetter[] = [];
    for (const m of batch) {
      try {
        outputs.push(...(await this.engine.process(this.inputsOf(input, [m]))));
      } catch (err) {
        if (!(err instanceof EngineProcessError)) throw err;
        dead.push({ upid: this.upid, stream: input.stream, offset: m.offset, error: err.message, data: m.data });
      }
    }
    this.failures++;
    const offsets = dead.map((d) => d.offset).join(', ');
    const error =
      dead.length > 0
        ? `${dead.length} message(s) of ${input.stream} failed and went to stream ${DEAD_LETTERS} (offsets ${offsets}): ${dead[0]!.error}`
        : `batch ${input.stream} ${batch[0]!.offset}..${batch[batch.length - 1]!.offset} failed, then every message of it passed alone: ${batchError.message}`;
    this.engine.log.append(`pump: ${error}`, 'engine');
    this.deps.onBatchError(error, this.failures);
    return { outputs, dead };
  }

  private async ack(input: Input, offset: number, state: unknown): Promise<void> {
    const checkpoint: PumpCheckpoint = { cei_pump: 1, n: this.n + 1, state: state ?? null };
    const reply = await this.call<{ cursor: number }>(input.stream, { ack: { subscription: this.upid, offset, checkpoint } });
    this.n++;
    input.cursor = Math.max(reply.cursor, offset + 1);
  }

  /** Asks a stream until it answers; every message the pump sends is safe to repeat. */
  private async call<T = unknown>(stream: string, message: unknown): Promise<T> {
    let wait = this.deps.options.retryMinMs;
    for (let attempt = 1; ; attempt++) {
      this.throwIfStopped();
      try {
        return await askRole<T>(this.deps.service(), streamRef(stream), message, this.deps.options.askTimeoutMs);
      } catch (err) {
        this.throwIfStopped();
        // The first failure and then every tenth, so a stream that is down does not flood the log.
        if (attempt % 10 === 1) {
          const op = Object.keys(message as object)[0];
          this.engine.log.append(`pump: ${op} on stream ${stream} failed (attempt ${attempt}, trying again): ${errorMessage(err)}`, 'engine');
        }
        await this.sleep(wait);
        wait = Math.min(wait * 2, this.deps.options.retryMaxMs);
      }
    }
  }

  /** Waits `ms` on the clock, or until stop(); several waits may run at once (the loop's, an ack's retry). */
  private sleep(ms: number): Promise<void> {
    this.throwIfStopped();
    return new Promise<void>((resolve) => {
      let timer: TimerHandle | undefined;
      const done = (): void => {
        timer?.cancel();
        this.sleepers.delete(done);
        resolve();
      };
      this.sleepers.add(done);
      timer = this.deps.clock.setTimer(ms, done);
    });
  }

  private throwIfStopped(): void {
    if (this.stopping) throw new Stopped('the pump was stopped');
  }
}
