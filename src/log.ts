import { pino } from 'pino';
import pretty from 'pino-pretty';
import type { Logger } from './runtime/logger.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

/**
 * The process logger: structured JSON lines on stderr, or human-readable lines when stderr is a TTY.
 * stdout stays free for what commands print (the `ready` line, listings).
 */
export function createLogger(level: LogLevel = 'info', bindings: object = {}): Logger {
  const stream = process.stderr.isTTY ? pretty({ destination: 2, sync: true, colorize: true }) : pino.destination({ dest: 2, sync: true });
  return pino({ level, base: { pid: process.pid, ...bindings } }, stream) as unknown as Logger;
}
