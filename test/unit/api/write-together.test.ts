/**
 * writeInBursts/writeAll on a real Writable whose writes complete a turn later, as grpc-js's
 * server stream's do.
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { writeAll, writeInBursts } from '../../../src/api/write-together.js';

/** A stream that records which messages were in flight together, each write done on setImmediate. */
function slowStream(fail?: string): { stream: Writable; inFlight: string[][] } {
  const inFlight: string[][] = [];
  let current: string[] = [];
  const stream = new Writable({
    objectMode: true,
    write(chunk: string, _encoding, callback) {
      if (current.length === 0) inFlight.push(current);
      current.push(chunk);
      setImmediate(() => {
        current = [];
        callback(chunk === fail ? new Error(`cannot write ${chunk}`) : null);
      });
    },
  });
  return { stream, inFlight };
}

const finished = (stream: Writable): Promise<void> =>
  new Promise((resolve, reject) => {
    stream.on('finish', resolve);
    stream.on('error', reject);
    stream.end();
  });

describe('writeInBursts', () => {
  it('without it, a Writable passes one message on per completed write', async () => {
    const { stream, inFlight } = slowStream();
    writeAll(stream, ['a', 'b', 'c', 'd']);
    await finished(stream);
    expect(inFlight).toEqual([['a'], ['b'], ['c'], ['d']]);
  });

  it('passes a corked burst on at once, and what queued behind a write in one go after it', async () => {
    const { stream, inFlight } = slowStream();
    writeInBursts(stream);
    writeAll(stream, ['a', 'b', 'c']);
    writeAll(stream, ['d', 'e']);
    stream.write('f');
    await finished(stream);
    expect(inFlight).toEqual([['a', 'b', 'c'], ['d', 'e', 'f']]);
  });

  it('fails the stream with the first failed write of a burst', async () => {
    const { stream } = slowStream('b');
    writeInBursts(stream);
    writeAll(stream, ['a', 'b', 'c']);
    await expect(finished(stream)).rejects.toThrow('cannot write b');
  });
});
