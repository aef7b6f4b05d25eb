/**
 * The binary form of a repl.write batch (replication.ts), sent as a raw link body to peers that take
 * one. As JSON, the ops' keys (with their \x00 separators) and values (JSON texts with quotes) were
 * escaped by the owner and unescaped by the replica: stringify and parse were 6% of a node's CPU
 * under bulk tells (measured: docs/cluster.md, ninth session). Here every string travels as it is.
 *
 * Layout: one string of code units, sent as Latin-1 bytes when every unit is below 0x100 (the
 * usual batch: ASCII keys and JSON), else as UTF-16LE, so any JS string survives as it was, lone
 * surrogates included, and the decoder slices the received string instead of copying:
 *
 *   magic ('L' Latin-1 | 'U' UTF-16LE) version=1  str(from)  str(epoch as decimal)  sync(0|1)  n(entries)
 *   per entry:  str(refKey)  seed(0|1)  n(ops)
 *   per op:     'p' str(key) str(value)  |  't' str(key) str(value) (transient)  |  'd' str(key)
 *
 * n(x) is a varint of code units below 0x100 (7 bits each, low first; 0x80 set on all but the
 * last), and str(s) is n(s.length) then s's code units.
 */
import { InvalidArgumentError } from '../errors.js';
import type { Op } from '../runtime/store.js';

const LATIN1 = 0x4c; // 'L'
const UTF16 = 0x55; // 'U'
const VERSION = 1;
/** Any code unit above 0xff: the batch must go as UTF-16. */
const WIDE = /[^\u0000-\u00ff]/;

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
  const parts: string[] = [];
  const n = (x: number): void => {
    while (x >= 0x80) {
      parts.push(String.fromCharCode(0x80 | (x & 0x7f)));
      x = Math.floor(x / 0x80);
    }
    parts.push(String.fromCharCode(x));
  };
  const str = (s: string): void => {
    n(s.length);
    parts.push(s);
  };
  str(req.from);
  str(String(req.epoch));
  parts.push(req.sync ? '1' : '0');
  n(req.entries.length);
  for (const [refKey, ops, seed] of req.entries) {
    str(refKey);
    parts.push(seed === SEED ? '1' : '0');
    n(ops.length);
    for (const op of ops) {
      if (op.type === 'del') {
        parts.push('d');
        str(op.key);
      } else {
        parts.push(op.transient ? 't' : 'p');
        str(op.key);
        str(op.value);
      }
    }
  }
  const body = parts.join('');
  return WIDE.test(body) ? Buffer.from(String.fromCharCode(UTF16, VERSION) + body, 'utf16le') : Buffer.from(String.fromCharCode(LATIN1, VERSION) + body, 'latin1');
}

/** Throws InvalidArgumentError when `bytes` is not a batch this version encodes. */
export function decodeWriteRequest(bytes: Uint8Array): WriteRequest {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let s: string;
  if (buf[0] === LATIN1) s = buf.toString('latin1');
  else if (buf[0] === UTF16 && buf.length % 2 === 0) s = buf.toString('utf16le');
  else throw malformed(buf[0] === UTF16 ? `odd length ${buf.length}` : 'not a repl.write batch');
  let at = 1;
  const unit = (): number => {
    if (at >= s.length) throw malformed('truncated');
    return s.charCodeAt(at++);
  };
  const n = (): number => {
    let x = 0;
    for (let scale = 1; ; scale *= 0x80) {
      const u = unit();
      if (u > 0xff || scale > 2 ** 35) throw malformed('count');
      x += (u & 0x7f) * scale;
      if (u < 0x80) return x;
    }
  };
  const str = (): string => {
    const len = n();
    if (at + len > s.length) throw malformed('truncated string');
    const out = s.slice(at, at + len);
    at += len;
    return out;
  };
  const flag = (): boolean => {
    const c = unit();
    if (c !== 0x30 && c !== 0x31) throw malformed(`flag ${c}`);
    return c === 0x31;
  };
  const version = unit();
  if (version !== VERSION) throw malformed(`version ${version}, this node reads ${VERSION}`);
  const from = str();
  const epoch = Number(str());
  if (!Number.isSafeInteger(epoch) || epoch < 0) throw malformed('epoch');
  const sync = flag();
  const entries: Entry[] = [];
  for (let e = n(); e > 0; e--) {
    const refKey = str();
    const seed = flag();
    const ops: Op[] = [];
    for (let o = n(); o > 0; o--) {
      const kind = unit();
      if (kind === 0x64) ops.push({ type: 'del', key: str() });
      else if (kind === 0x70) ops.push({ type: 'put', key: str(), value: str() });
      else if (kind === 0x74) ops.push({ type: 'put', key: str(), value: str(), transient: true });
      else throw malformed(`op kind ${kind}`);
    }
    entries.push(seed ? [refKey, ops, SEED] : [refKey, ops]);
  }
  if (at !== s.length) throw malformed(`${s.length - at} units after the last entry`);
  return { from, epoch, sync, entries };
}

function malformed(why: string): InvalidArgumentError {
  return new InvalidArgumentError(`malformed repl.write batch: ${why}`);
}
