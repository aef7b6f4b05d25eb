/**
 * Types for the parts of the `hashring` package (3.x, CommonJS, ships no types) that hash-ring.ts
 * uses. Only hash-ring.ts should import `hashring`; everything else uses its immutable HashRing.
 */
declare module 'hashring' {
  interface HashRingOptions {
    /** Default virtual nodes per server; each virtual node puts `replicas` points on the ring. */
    'vnode count'?: number;
    /** Points per virtual node (ketama: 4). */
    replicas?: number;
    'max cache size'?: number;
    'default port'?: number;
    compatibility?: 'hash_ring' | 'ketama';
  }

  /** Per-server settings in the object form of the constructor's `servers`. */
  interface ServerSettings {
    vnodes?: number;
    weight?: number;
  }

  class HashRing {
    constructor(
      servers?: string | readonly string[] | Record<string, ServerSettings | number>,
      algorithm?: string | ((key: string) => Buffer | string),
      options?: HashRingOptions,
    );
    /** The server owning `key`, through an LRU cache keyed by a plain object. */
    get(key: string): string | undefined;
    /** Up to `size` servers clockwise from `key`'s position; distinct when `unique` (default true). */
    range(key: string, size?: number, unique?: boolean): string[];
    has(server: string): boolean;
    /** Number of points on the ring. */
    readonly size: number;
  }

  export = HashRing;
}
