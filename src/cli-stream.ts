/**
 * `cei stream ...`: streams through any node's public Streams service. Messages are JSON documents
 * given as arguments or read one per line from stdin; the stream actor checks everything else.
 */
import { createInterface } from 'node:readline';
import type { Command } from 'commander';
import { InvalidArgumentError as CommanderArgError } from 'commander';
import { StreamsClient } from './client-streams.js';
import type { StreamDescription } from './actors/stream.js';
import { InvalidArgumentError } from './errors.js';
import { clientGroup, print, table, wholeNumber } from './cli-output.js';

/** Messages sent per Publish when reading stdin. */
const STDIN_BATCH = 500;

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${where} is not valid JSON: ${(err as Error).message}`);
  }
}

function fromFlag(value: string): 'earliest' | 'latest' | number {
  if (value === 'earliest' || value === 'latest') return value;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) throw new CommanderArgError('--from must be "earliest", "latest" or an offset');
  return n;
}

function nonNegative(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new CommanderArgError(`${flag} must be a whole number >= 0`);
    return n;
  };
}

function describeText(d: StreamDescription): string {
  const retention = [d.retention.maxCount ? `last ${d.retention.maxCount}` : '', d.retention.maxAgeMs ? `${d.retention.maxAgeMs} ms` : ''].filter(Boolean).join(', ');
  const lines = [`stream ${d.name}: offsets ${d.first}..${d.head - 1} (${d.head - d.first} kept; retention ${retention || 'default'})`];
  if (d.subscriptions.length > 0) {
    lines.push(
      table([
        ['SUBSCRIPTION', 'CURSOR', 'QUEUE', 'PUSH TO', 'CHECKPOINT', 'SKIPPED'],
        ...d.subscriptions.map((s) => [s.name, String(s.cursor), String(s.queueLength), s.deliverTo ?? '-', s.hasCheckpoint ? 'yes' : 'no', String(s.skipped)]),
      ]),
    );
  }
  const producers = Object.entries(d.producers);
  if (producers.length > 0) lines.push(`producers: ${producers.map(([p, seq]) => `${p}@${seq}`).join(', ')}`);
  return lines.join('\n');
}

export function registerStreamCommands(program: Command): void {
  const { cmd, run } = clientGroup(program, 'stream', 'streams: publish, tail, describe, list', (node) => new StreamsClient(node));

  cmd
    .command('publish <stream> [json...]')
    .description('append JSON messages to a stream (created on first use); with no JSON arguments, one message per line of stdin')
    .option('--producer <name>', 'publish as this producer (with --seq): a seq not above its last one is dropped')
    .option('--seq <n>', 'the producer sequence number of this publish', nonNegative('--seq'))
    .option('--json', 'print the reply as JSON')
    .action(
      run(async (client: StreamsClient, stream: string, json: string[], opts: { producer?: string; seq?: number; json?: boolean }) => {
        if ((opts.producer === undefined) !== (opts.seq === undefined)) throw new InvalidArgumentError('--producer and --seq go together');
        const publish = async (messages: unknown[]) => {
          const r = await client.publish(stream, messages, { ...(opts.producer !== undefined ? { producer: opts.producer, seq: opts.seq! } : {}) });
          print(opts.json ? r : r.duplicate ? `${stream}: duplicate, dropped` : `${stream}: published ${r.last - r.first + 1} at offsets ${r.first}..${r.last}`);
        };
        if (json.length > 0) {
          await publish(json.map((text, i) => parseJson(text, `message ${i + 1}`)));
          return;
        }
        let batch: unknown[] = [];
        let line = 0;
        for await (const text of createInterface({ input: process.stdin })) {
          line++;
          if (text.trim() === '') continue;
          batch.push(parseJson(text, `stdin line ${line}`));
          if (batch.length >= STDIN_BATCH) {
            await publish(batch);
            batch = [];
          }
        }
        if (batch.length > 0) await publish(batch);
        else if (line === 0) throw new InvalidArgumentError('nothing to publish: give JSON arguments or lines on stdin');
      }),
    );

  cmd
    .command('tail <stream>')
    .description('print a stream\'s messages as they are published (one JSON line each with --json), until --count or Ctrl-C')
    .option('--subscription <name>', 'read through this subscription (kept afterwards); default: a temporary one, removed on exit')
    .option('--from <where>', 'where a new subscription starts: earliest, latest or an offset', fromFlag, 'latest' as const)
    .option('--count <n>', 'stop after this many messages', wholeNumber('--count'))
    .option('--ack', 'acknowledge what was printed (moves the subscription cursor)')
    .option('--json', 'print each message as {"offset", "time", "data"}')
    .action(
      run(async (client: StreamsClient, stream: string, opts: { subscription?: string; from: 'earliest' | 'latest' | number; count?: number; ack?: boolean; json?: boolean }) => {
        const subscription = opts.subscription ?? `tail-${process.pid}-${Date.now().toString(36)}`;
        const sub = client.subscribe(stream, subscription, { from: opts.from });
        const stop = () => sub.close();
        process.once('SIGINT', stop);
        let seen = 0;
        let lastOffset = -1;
        try {
          for await (const m of sub.messages) {
            print(opts.json ? m : `${m.offset}\t${new Date(m.time).toISOString()}\t${JSON.stringify(m.data)}`);
            lastOffset = m.offset;
            if (opts.ack) await client.ack(stream, subscription, m.offset);
            if (opts.count !== undefined && ++seen >= opts.count) break;
          }
        } finally {
          sub.close();
          process.off('SIGINT', stop);
          if (opts.subscription === undefined) await client.unsubscribe(stream, subscription).catch(() => {});
        }
        if (opts.ack && lastOffset >= 0 && !opts.json) process.stderr.write(`acknowledged up to offset ${lastOffset}\n`);
      }),
    );

  cmd
    .command('describe <stream>')
    .description('offsets, retention, subscriptions with their cursors and queue lengths, producers')
    .option('--json', 'print as JSON')
    .action(
      run(async (client: StreamsClient, stream: string, opts: { json?: boolean }) => {
        const d = await client.describe(stream);
        print(opts.json ? d : describeText(d));
      }),
    );

  cmd
    .command('configure <stream>')
    .description('set retention: keep the last --max-count messages and/or those younger than --max-age-ms')
    .option('--max-count <n>', 'messages kept at most', wholeNumber('--max-count'))
    .option('--max-age-ms <ms>', 'age after which a message is dropped', wholeNumber('--max-age-ms'))
    .option('--json', 'print as JSON')
    .action(
      run(async (client: StreamsClient, stream: string, opts: { maxCount?: number; maxAgeMs?: number; json?: boolean }) => {
        const d = await client.configure(stream, { ...(opts.maxCount ? { maxCount: opts.maxCount } : {}), ...(opts.maxAgeMs ? { maxAgeMs: opts.maxAgeMs } : {}) });
        print(opts.json ? d : describeText(d));
      }),
    );

  cmd
    .command('list')
    .description('every stream, with its offsets and subscriptions')
    .option('--json', 'print as JSON')
    .action(
      run(async (client: StreamsClient, opts: { json?: boolean }) => {
        const streams = await client.list();
        if (opts.json) {
          print(streams);
          return;
        }
        if (streams.length === 0) {
          print('no streams');
          return;
        }
        print(
          table([
            ['STREAM', 'FIRST', 'HEAD', 'SUBSCRIPTIONS', 'LONGEST QUEUE'],
            ...streams.map((s) => [s.name, String(s.first), String(s.head), String(s.subscriptions.length), String(Math.max(0, ...s.subscriptions.map((x) => x.queueLength)))]),
          ]),
        );
      }),
    );
}
