/**
 * What every client command of `cei` shares: printing, tables, and turning a gRPC error into
 * `error: <details> (<CODE>)` with exit status 1. Any other error propagates to src/cli.ts, which
 * prints it the same way and exits 1.
 */
import { readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import YAML from 'yaml';
import { InvalidArgumentError, errorMessage } from './errors.js';

export function print(value: unknown): void {
  process.stdout.write(`${typeof value === 'string' ? value : JSON.stringify(value)}\n`);
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
