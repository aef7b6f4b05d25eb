/**
 * The layout the binary link bodies share (repl-codec.ts, tells-codec.ts): one string of code
 * units, sent as Latin-1 bytes when every unit is below 0x100 (ASCII keys and JSON, the usual
 * case), else as UTF-16LE, so any JS string survives as it was, lone surrogates included, and the
 * reader slices the received string instead of copying:
 *
 *   magic ('L' Latin-1 | 'U' UTF-16LE)  version  ...the codec's fields
 *
 * count(x) is a varint of code units below 0x100 (7 bits each, low first; 0x80 set on all but
 * the last), str(s) is count(s.length) then s's code units, and flag(b) is '1' or '0'.
 */
import { InvalidArgumentError } from '../errors.js';

const LATIN1 = 0x4c; // 'L'
const UTF16 = 0x55; // 'U'
/** Any code unit above 0xff: the body must go as UTF-16. */
const WIDE = /[^\u0000-\u00ff]/;

export class UnitWriter {
  private readonly parts: string[] = [];

  count(x: number): void {
    while (x >= 0x80) {
      this.parts.push(String.fromCharCode(0x80 | (x & 0x7f)));
      x = Math.floor(x / 0x80);
    }
    this.parts.push(String.fromCharCode(x));
  }

  str(s: string): void {
    this.count(s.length);
    this.parts.push(s);
  }

  flag(b: boolean): void {
    this.parts.push(b ? '1' : '0');
  }

  /** One code unit below 0x80 as it is: a field's kind. */
  tag(c: string): void {
    this.parts.push(c);
  }

  finish(version: number): Buffer {
    const body = this.parts.join('');
    return WIDE.test(body) ? Buffer.from(String.fromCharCode(UTF16, version) + body, 'utf16le') : Buffer.from(String.fromCharCode(LATIN1, version) + body, 'latin1');
  }
}

/** Reads what a UnitWriter wrote; every fault is an InvalidArgumentError saying `malformed <what>: why`. */
export class UnitReader {
  private readonly s: string;
  private at = 1;

  constructor(
    bytes: Uint8Array,
    private readonly what: string,
    version: number,
  ) {
    const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
    if (buf[0] === LATIN1) this.s = buf.toString('latin1');
    else if (buf[0] === UTF16 && buf.length % 2 === 0) this.s = buf.toString('utf16le');
    else throw this.malformed(buf[0] === UTF16 ? `odd length ${buf.length}` : `first byte ${buf[0]} names no encoding`);
    const got = this.unit();
    if (got !== version) throw this.malformed(`version ${got}, this node reads ${version}`);
  }

  unit(): number {
    if (this.at >= this.s.length) throw this.malformed('truncated');
    return this.s.charCodeAt(this.at++);
  }

  count(): number {
    let x = 0;
    for (let scale = 1; ; scale *= 0x80) {
      const u = this.unit();
      if (u > 0xff || scale > 2 ** 35) throw this.malformed('count');
      x += (u & 0x7f) * scale;
      if (u < 0x80) return x;
    }
  }

  str(): string {
    const len = this.count();
    if (this.at + len > this.s.length) throw this.malformed('truncated string');
    const out = this.s.slice(this.at, this.at + len);
    this.at += len;
    return out;
  }

  flag(): boolean {
    const c = this.unit();
    if (c !== 0x30 && c !== 0x31) throw this.malformed(`flag ${c}`);
    return c === 0x31;
  }

  /** Throws unless every unit was read; `after` names what the last one was. */
  end(after: string): void {
    if (this.at !== this.s.length) throw this.malformed(`${this.s.length - this.at} units after the last ${after}`);
  }

  malformed(why: string): InvalidArgumentError {
    return new InvalidArgumentError(`malformed ${this.what}: ${why}`);
  }
}
