import type { Writable } from 'node:stream';
import { joinWrites } from '../runtime/write-done.js';

type Chunk = { chunk: unknown; encoding: BufferEncoding };
/** A Writable's write callback: null or no argument when the write is done. */
type WriteCallback = (error?: Error | null) => void;

/**
 * Lets a grpc-js server stream hand several messages to HTTP/2 at once.
 *
 * grpc-js's server stream is a Writable with `_write` and no `_writev`: it passes a message on only
 * once the previous one is written, and an HTTP/2 write completes a turn of the event loop later.
 * A burst of replies therefore went out one per turn, each in an HTTP/2 frame of its own, which
 * the client reads in a callback of its own (measured with the raw TellStream bench server:
 * 220,000 frames for 220,000 replies). With `_writev`, the messages buffered behind a write go
 * down together, and HTTP/2 packs them into a few frames.
 *
 * The stream's own `_write` sends each message, so grpc-js still serializes, checks and sends
 * them; only the wait between them goes. The write is done when all of them are.
 */
export function writeInBursts(stream: Writable): void {
  stream._writev = (chunks: Chunk[], callback: WriteCallback): void => {
    const part = joinWrites(chunks.length, (err) => callback(err as Error | undefined));
    for (const { chunk, encoding } of chunks) stream._write(chunk, encoding, (error?: Error | null) => part(error ?? undefined));
  };
}

/** Writes `messages` as one burst: corked, so that `_writev` (see writeInBursts) gets them all. */
export function writeAll(stream: Writable, messages: readonly unknown[]): void {
  if (messages.length === 1) {
    stream.write(messages[0]);
    return;
  }
  stream.cork();
  for (const m of messages) stream.write(m);
  stream.uncork();
}
