import { describe, expect, it } from 'vitest';
import { AgentHeartbeatSchema, DispatcherMessageSchema, isWellFormedHeartbeat, parseDispatcherMessage } from '../../../src/actors/dispatcher/protocol.js';

const good = () => ({
  agentId: 'a1',
  nodeId: 'n1',
  engineType: 'default',
  slots: 8,
  processes: [
    { upid: 'p1', round: 0, state: 'RUNNING' },
    { upid: 'p2', round: 3, state: 'FAILED', lastError: 'exit 1' },
  ],
  properties: { hostname: 'h', zone: 'a', cpus: 4, tags: ['x'] },
  at: 1_700_000_000_000.5,
});

/** Values to put in a field: some the schema takes, some it does not. */
const VALUES: unknown[] = [
  undefined,
  null,
  0,
  -0,
  -1,
  1.5,
  2 ** 53,
  2 ** 53 - 1,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  '',
  'x',
  'y'.repeat(256),
  'y'.repeat(257),
  'RUNNING',
  'ASSIGNED',
  true,
  [],
  [1],
  {},
  Object.create(null),
  new Date(0),
  new Map(),
  { upid: 'p', round: 0, state: 'PENDING' },
];

describe('the heartbeat check', () => {
  it('takes a usual heartbeat without the schema', () => {
    expect(isWellFormedHeartbeat(good())).toBe(true);
    expect(isWellFormedHeartbeat({ ...good(), properties: undefined, processes: [] })).toBe(true);
  });

  it('says yes only to what the schema accepts, whatever a field holds', () => {
    const paths: Array<(b: ReturnType<typeof good>, v: unknown) => void> = [
      (b, v) => ((b as Record<string, unknown>).agentId = v),
      (b, v) => ((b as Record<string, unknown>).nodeId = v),
      (b, v) => ((b as Record<string, unknown>).engineType = v),
      (b, v) => ((b as Record<string, unknown>).slots = v),
      (b, v) => ((b as Record<string, unknown>).at = v),
      (b, v) => ((b as Record<string, unknown>).properties = v),
      (b, v) => ((b as Record<string, unknown>).processes = v),
      (b, v) => ((b.processes as unknown[])[0] = v),
      (b, v) => ((b.processes[0] as Record<string, unknown>).upid = v),
      (b, v) => ((b.processes[0] as Record<string, unknown>).round = v),
      (b, v) => ((b.processes[0] as Record<string, unknown>).state = v),
      (b, v) => ((b.processes[0] as Record<string, unknown>).lastError = v),
      (b, v) => ((b.properties as Record<string, unknown>).hostname = v),
    ];
    let taken = 0;
    for (const set of paths) {
      for (const v of VALUES) {
        const b = good();
        set(b, v);
        if (!isWellFormedHeartbeat(b)) continue;
        taken++;
        expect(AgentHeartbeatSchema.safeParse(b).success, JSON.stringify(b)).toBe(true);
      }
    }
    for (const v of VALUES) {
      if (isWellFormedHeartbeat(v)) expect(AgentHeartbeatSchema.safeParse(v).success).toBe(true);
    }
    expect(taken).toBeGreaterThan(20);
  });

  it('leaves a malformed heartbeat to the schema', () => {
    expect(isWellFormedHeartbeat({ ...good(), slots: -1 })).toBe(false);
    expect(isWellFormedHeartbeat({ ...good(), processes: [{ upid: 'p1', round: 0, state: 'ASSIGNED' }] })).toBe(false);
    expect(isWellFormedHeartbeat({ ...good(), at: Number.NaN })).toBe(false);
    expect(isWellFormedHeartbeat([good()])).toBe(false);
  });
});

describe('parseDispatcherMessage on heartbeats', () => {
  it('takes and refuses what the message schema does', () => {
    const inherited = Object.assign(Object.create({ extra: 1 }) as object, { heartbeat: good() });
    const messages: unknown[] = [
      { heartbeat: good() },
      { heartbeat: 'not even an object' },
      { heartbeat: undefined },
      { heartbeat: good(), extra: 1 },
      inherited,
      Object.create({ heartbeat: good() }),
    ];
    for (const m of messages) {
      const accepted = DispatcherMessageSchema.safeParse(m).success;
      let parsed = true;
      try {
        parseDispatcherMessage(m);
      } catch {
        parsed = false;
      }
      expect(parsed, String(Object.keys(m as object))).toBe(accepted);
    }
    expect(parseDispatcherMessage({ heartbeat: good() })).toEqual({ heartbeat: good() });
  });
});
