import type { Command } from 'commander';
import * as grpc from '@grpc/grpc-js';
import { CeiClient } from './client.js';
import { parseRefKey } from './runtime/ref.js';
import type { ActorInfo__Output } from './generated/cei/v1/ActorInfo.js';
import { InvalidArgumentError } from './errors.js';

function parseJson(text: string, what: string): Buffer {
  try {
    JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`${what} is not valid JSON: ${(err as Error).message}`);
  }
  return Buffer.from(text);
}

function print(value: unknown): void {
  process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
}

function infoJson(a: ActorInfo__Output): object {
  return {
    ref: `${a.ref?.type}/${a.ref?.id}`,
    node: a.node,
    status: a.status,
    mailbox_depth: Number(a.mailbox_depth),
    restarts: a.restarts,
    dead_letters: Number(a.dead_letters),
    replicas: a.replicas,
    epoch: Number(a.epoch),
  };
}

/** Runs a client command and turns a gRPC error into `error: <details> (<CODE>)` and exit status 1. */
function withClient(program: Command, fn: (client: CeiClient, ...args: any[]) => Promise<void>) {
  return async (...args: any[]): Promise<void> => {
    const node: string = program.opts().node ?? '127.0.0.1:7000';
    const client = new CeiClient(node);
    try {
      await fn(client, ...args);
    } catch (err) {
      const e = err as grpc.ServiceError;
      if (typeof e.code === 'number') {
        process.stderr.write(`error: ${e.details || e.message} (${grpc.status[e.code]})\n`);
        process.exitCode = 1;
      } else throw err;
    } finally {
      client.close();
    }
  };
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** `cei actor ...`: client commands against any node's public API. */
export function registerActorCommands(program: Command): void {
  const actor = program
    .command('actor')
    .description('spawn, tell, ask, stop, describe and list actors through a node')
    .option('--node <host:port>', 'node to talk to', '127.0.0.1:7000');
  const run = (fn: (client: CeiClient, ...args: any[]) => Promise<void>) => withClient(actor, fn);

  actor
    .command('spawn <ref> [init]')
    .description('create type/id with an optional JSON init (idempotent)')
    .action(
      run(async (client, ref: string, init: string | undefined) => {
        const r = parseRefKey(ref);
        const reply = await client.spawn(r, init === undefined ? undefined : JSON.parse(parseJson(init, 'init').toString()));
        print(`${reply.created ? 'created' : 'exists'} ${ref} on ${reply.node}`);
      }),
    );

  actor
    .command('tell <ref> <json>')
    .description('send a message; prints its mailbox seq once it is durable')
    .option('--id <message-id>', 'idempotency key: a repeat within the dedup window is not enqueued again')
    .action(
      run(async (client, ref: string, json: string, opts: { id?: string }) => {
        const reply = await client.tellRaw({ to: parseRefKey(ref), payload: parseJson(json, 'message'), message_id: opts.id ?? '' });
        print(`seq ${reply.seq}${reply.message_id ? ` id ${reply.message_id}` : ''}`);
      }),
    );

  actor
    .command('ask <ref> <json>')
    .description("send a message and print the actor's JSON reply")
    .option('--timeout <ms>', 'give up after this long', '10000')
    .action(
      run(async (client, ref: string, json: string, opts: { timeout: string }) => {
        const ms = Number(opts.timeout);
        if (!Number.isSafeInteger(ms) || ms <= 0) throw new InvalidArgumentError('--timeout must be a positive whole number of ms');
        const reply = await client.askRaw({ to: parseRefKey(ref), payload: parseJson(json, 'message'), timeout_ms: ms }, ms + 1000);
        print(reply.payload.toString('utf8'));
      }),
    );

  actor
    .command('stop <ref>')
    .description('stop an actor: pending mail goes to its dead letters, its state is deleted')
    .action(
      run(async (client, ref: string) => {
        await client.stop(parseRefKey(ref));
        print(`stopped ${ref}`);
      }),
    );

  actor
    .command('describe <ref>')
    .description("show an actor's node, status, mailbox depth, restarts and dead letters")
    .option('--json', 'print JSON')
    .action(
      run(async (client, ref: string, opts: { json?: boolean }) => {
        const info = infoJson(await client.describe(parseRefKey(ref)));
        if (opts.json) print(info);
        else print(Object.entries(info).map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(',') : v}`).join('\n'));
      }),
    );

  actor
    .command('list')
    .description('list known actors (all pages unless --page-size is given)')
    .option('--type <type>', 'only this type')
    .option('--page-size <n>', 'one page of this size')
    .option('--page-token <token>', 'continue after a previous page')
    .option('--json', 'print JSON')
    .action(
      run(async (client, opts: { type?: string; pageSize?: string; pageToken?: string; json?: boolean }) => {
        const all: ActorInfo__Output[] = [];
        let token = opts.pageToken ?? '';
        let next = '';
        for (;;) {
          const reply = await client.list({ type: opts.type ?? '', page_size: Number(opts.pageSize ?? 500), page_token: token });
          all.push(...reply.actors);
          next = reply.next_page_token;
          if (!next || opts.pageSize) break;
          token = next;
        }
        const infos = all.map(infoJson) as Array<Record<string, unknown>>;
        if (opts.json) {
          print(opts.pageSize ? { actors: infos, next_page_token: next } : infos);
          return;
        }
        const rows = [['REF', 'STATUS', 'NODE', 'MAILBOX', 'RESTARTS', 'DEAD']];
        for (const i of infos) rows.push([String(i.ref), String(i.status), String(i.node), String(i.mailbox_depth), String(i.restarts), String(i.dead_letters)]);
        print(table(rows));
        if (opts.pageSize && next) print(`next page: --page-token ${next}`);
      }),
    );

  actor
    .command('dead-letters <ref>')
    .description('list messages whose handler kept failing')
    .option('--json', 'print JSON')
    .action(
      run(async (client, ref: string, opts: { json?: boolean }) => {
        const reply = await client.deadLetters(parseRefKey(ref));
        const letters = reply.letters.map((l) => ({
          seq: Number(l.seq),
          payload: JSON.parse(l.payload.toString('utf8')),
          message_id: l.message_id,
          error: l.error,
          attempts: l.attempts,
          at: new Date(Number(l.at_ms)).toISOString(),
        }));
        if (opts.json) print(letters);
        else if (letters.length === 0) print('no dead letters');
        else for (const l of letters) print(`seq ${l.seq} attempts ${l.attempts} at ${l.at}: ${l.error}\n  ${JSON.stringify(l.payload)}`);
      }),
    );

  actor
    .command('redrive <ref>')
    .description('move dead letters back into the mailbox (all, or those named with --seq)')
    .option('--seq <n...>', 'only these seqs')
    .action(
      run(async (client, ref: string, opts: { seq?: string[] }) => {
        const seqs = (opts.seq ?? []).map((s) => {
          const n = Number(s);
          if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`--seq ${s} is not a sequence number`);
          return n;
        });
        const reply = await client.redrive(parseRefKey(ref), seqs);
        print(`redriven ${reply.redriven}`);
      }),
    );
}

/** `cei nodes`: the cluster's members as the node asked sees them. */
export function registerNodesCommand(program: Command): void {
  const nodes = program
    .command('nodes')
    .description("list the cluster's members (id, address, role, status) as a node sees them")
    .option('--node <host:port>', 'node to ask', '127.0.0.1:7000')
    .option('--json', 'print JSON');
  nodes.action(
    withClient(nodes, async (client, opts: { json?: boolean }) => {
      const reply = await client.members();
      const members = reply.members.map((m) => ({ id: m.id, address: m.address, role: m.role, status: m.status, incarnation: Number(m.incarnation) }));
      if (opts.json) {
        print({ node: reply.node, version: Number(reply.version), fenced: reply.fenced, members });
        return;
      }
      const rows = [['ID', 'ADDRESS', 'ROLE', 'STATUS']];
      for (const m of members) rows.push([m.id + (m.id === reply.node ? ' *' : ''), m.address, m.role, m.status]);
      print(table(rows));
      print(`view version ${reply.version} at ${reply.node}${reply.fenced ? ' (FENCED: no majority of voters)' : ''}`);
    }),
  );
}
