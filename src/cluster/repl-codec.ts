/**
 * The binary form of a repl.write batch (replication.ts), sent as a raw link body to peers that take
 * one. As JSON, the ops' keys (with their \x00 separators) and values (JSON texts with quotes) were
 * escaped by the owner and unescaped by the replica: stringify and parse were 6% of a node's CPU
 * under bulk tells (measured: docs/cluster.md, ninth session). Here every string travels as it is.
 *
 * Layout (unit-codec.ts: the body's encoding, count, str and flag), version 1:
 *
 *   str(from)  str(epoch as decimal)  flag(sync)  count(entries)
 *   per entry:  str(refKey)  flag(seed)  count(ops)
 *   per op:     'p' str(key) str(value)  |  't' str(key) str(value) (transient)  |  'd' str(key)
 */
import type { Op } from '../runtime/store.js';
import { UnitReader, UnitWriter } from './unit-codec.js';

const VERSION = 1;

/** Marks a batch entry whose ops are the owner's whole copy of the actor. */
export const SEED = 1;
/** One actor's ops in a batch: [refKey, ops], or [refKey, ops, SEED] for a seed. */
export type Entry = [refKey: string, ops: Op[], seed?: typeof SEED];

/** What a repl.write request carries (replication.ts). */
export interface WriteRequest {
  from: string;
  epoch: number;
  sync: boolean;
  entries: Entry[];
}

export function encodeWriteRequest(req: WriteRequest): Buffer {
  const w = new UnitWriter();
  w.str(req.from);
  w.str(String(req.epoch));
  w.flag(req.sync);
  w.count(req.entries.length);
  for (const [refKey, ops, seed] of req.entries) {
    w.str(refKey);
    w.flag(seed === SEED);
    w.count(ops.length);
    for (const op of ops) {
      if (op.type === 'del') {
        w.tag('d');
        w.str(op.key);
      } else {
        w.tag(op.transient ? 't' : 'p');
        w.str(op.key);
        w.str(op.value);
      }
    }
  }
  return w.finish(VERSION);
}

/** Throws InvalidArgumentError when `bytes` is not a batch this version encodes. */
export function decodeWriteRequest(bytes: Uint8Array): WriteRequest {
  const r = new UnitReader(bytes, 'repl.write batch', VERSION);
  const from = r.str();
  const epoch = Number(r.str());
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw r.malformed('epoch');
  const sync = r.flag();
  const entries: Entry[] = [];
  for (let e = r.count(); e > 0; e--) {
    const refKey = r.str();
    const seed = r.flag();
    const ops: Op[] = [];
    for (let o = r.count(); o > 0; o--) {
      const kind = r.unit();
      if (kind === 0x64) ops.push({ type: 'del', key: r.str() });
      else if (kind === 0x70) ops.push({ type: 'put', key: r.str(), value: r.str() });
      else if (kind === 0x74) ops.push({ type: 'put', key: r.str(), value: r.str(), transient: true });
      else throw r.malformed(`op kind ${kind}`);
    }
    entries.push(seed ? [refKey, ops, SEED] : [refKey, ops]);
  }
  r.end('entry');
  return { from, epoch, sync, entries };
}
