/**
 * What every client command of `cei` shares: flags, printing, tables, and turning a gRPC error into
 * `error: <details> (<CODE>)` with exit status 1. Any other error propagates to src/cli.ts, which
 * prints it the same way and exits 1.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError as CommanderArgError, type Command } from 'commander';
import YAML from 'yaml';
import { InvalidArgumentError, errorMessage } from './errors.js';

/** A repeatable flag's parser: every value, in order. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** NAME=VALUE flags into a map; the value may itself contain "=". */
export function pairs(flag: string, values: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`${flag} ${JSON.stringify(v)}: expected NAME=VALUE`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

export function wholeNumber(flag: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 1) throw new CommanderArgError(`${flag} must be a whole number >= 1`);
    return n;
  };
}

/** Adds a client command group: `--node` on the group, and each action run with a client of that node, closed after. */
export function clientGroup<Client extends { close(): void }>(program: Command, name: string, description: string, connect: (node: string) => Client) {
  const cmd = program.command(name).description(description).option('--node <host:port>', 'node to talk to (any node of the cluster)', '127.0.0.1:7000');
  const run =
    (fn: (client: Client, ...args: any[]) => Promise<void>) =>
    async (...args: any[]): Promise<void> => {
      const client = connect(cmd.opts().node);
      try {
        await reportGrpcErrors(() => fn(client, ...args));
      } finally {
        client.close();
      }
    };
  return { cmd, run };
}

export function print(value: unknown): void {
  process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
}

/** Text set in by two spaces, for a block under a heading. */
export function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `  ${l}`)
    .join('\n');
}

/** Rows padded into columns; the first row is the header. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

/** Runs a command's action; a gRPC error is printed with its status name and sets exit status 1. */
export async function reportGrpcErrors(action: () => Promise<void>): Promise<void> {
  try {
    await action();
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (typeof e.code !== 'number' || grpc.status[e.code] === undefined) throw err;
    process.stderr.write(`error: ${e.details || e.message} (${grpc.status[e.code]})\n`);
    process.exitCode = 1;
  }
}

/**
 * A YAML or JSON document from a file (YAML 1.2 reads JSON as it is, so one parser serves both).
 * Duplicate keys are an error rather than last-one-wins, so a typo cannot silently drop a setting.
 */
export function readDocument(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new InvalidArgumentError(`--file ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : errorMessage(err)}`);
  }
  let doc: unknown;
  try {
    doc = YAML.parse(text, { uniqueKeys: true });
  } catch (err) {
    throw new InvalidArgumentError(`--file ${path} is not valid YAML or JSON: ${errorMessage(err).split('\n')[0]!.replace(/:$/, '')}`);
  }
  if (doc === null || doc === undefined) throw new InvalidArgumentError(`--file ${path} is empty`);
  return doc;
}
