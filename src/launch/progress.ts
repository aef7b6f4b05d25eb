/**
 * How a launch shows its progress: per level, services started / verified and the elapsed time.
 * Plain lines when the output is not a terminal (one line per change worth keeping in a log); on a
 * terminal, the current level's line is rewritten in place as it changes.
 */
export interface LevelProgress {
  level: string;
  index: number;
  total: number;
  started: number;
  verified: number;
  failed: number;
  kept: number;
  elapsedMs: number;
}

export interface Progress {
  /** A line of its own (a step, a problem, the summary). */
  line(text: string): void;
  /** The level's counts changed. */
  level(p: LevelProgress): void;
  /** The level is done (every service verified, or it failed). */
  levelDone(p: LevelProgress): void;
}

const counts = (p: LevelProgress) =>
  `level ${p.index + 1} ${p.level}: ${p.started}/${p.total} started, ${p.verified}/${p.total} verified` +
  (p.kept > 0 ? ` (${p.kept} kept)` : '') +
  (p.failed > 0 ? `, ${p.failed} failed` : '') +
  ` ${(p.elapsedMs / 1000).toFixed(1)}s`;

export function plainProgress(write: (s: string) => void): Progress {
  let last = '';
  return {
    line: (text) => write(`${text}\n`),
    level: (p) => {
      // Only when a service got further: plain output is read later, not watched.
      const key = `${p.index}/${p.started}/${p.verified}/${p.failed}`;
      if (key !== last) write(`${counts(p)}\n`);
      last = key;
    },
    levelDone: (p) => write(`${counts(p)}${p.failed > 0 ? ' FAILED' : ' done'}\n`),
  };
}

export function ttyProgress(write: (s: string) => void): Progress {
  let live = false;
  const clear = () => {
    if (live) write('\r\x1b[K');
    live = false;
  };
  return {
    line: (text) => {
      clear();
      write(`${text}\n`);
    },
    level: (p) => {
      clear();
      write(counts(p));
      live = true;
    },
    levelDone: (p) => {
      clear();
      write(`${counts(p)}${p.failed > 0 ? ' FAILED' : ' done'}\n`);
    },
  };
}

