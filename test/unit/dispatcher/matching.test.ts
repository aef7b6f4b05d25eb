import { describe, expect, it } from 'vitest';
import { occupy, pickPlacement, type SlotAgent, type SlotNode, type SlotTable } from '../../../src/actors/dispatcher/matching.js';

function agent(agentId: string, nodeId: string, free: number, properties: Record<string, unknown> = {}, engineType = 'default'): SlotAgent {
  return { agentId, nodeId, engineType, free, properties };
}

function node(nodeId: string, agents: SlotAgent[], over: Partial<SlotNode> = {}): SlotNode {
  return { nodeId, agents, occupied: false, exclusive: [], ...over };
}

describe('matching', () => {
  it('fills the busiest node first: occupied before empty, then fewest free slots', () => {
    const table: SlotTable = {
      nodes: [node('empty', [agent('e1', 'empty', 1)]), node('roomy', [agent('r1', 'roomy', 3)], { occupied: true }), node('tight', [agent('t1', 'tight', 1)], { occupied: true })],
    };
    expect(pickPlacement(table, { constraints: {} })).toEqual({ agentId: 't1', nodeId: 'tight' });
    occupy(table, { agentId: 't1', nodeId: 'tight' });
    expect(pickPlacement(table, { constraints: {} })).toEqual({ agentId: 'r1', nodeId: 'roomy' });
  });

  it('balances across the agents of a node (most free slots first)', () => {
    const table: SlotTable = { nodes: [node('n', [agent('a', 'n', 2), agent('b', 'n', 3)])] };
    const picks: string[] = [];
    for (let i = 0; i < 4; i++) {
      const p = pickPlacement(table, { constraints: {} })!;
      picks.push(p.agentId);
      occupy(table, p);
    }
    expect(picks).toEqual(['b', 'a', 'b', 'a']);
  });

  it('an agent with no free slot takes nothing', () => {
    const table: SlotTable = { nodes: [node('n', [agent('a', 'n', 1)])] };
    occupy(table, { agentId: 'a', nodeId: 'n' });
    expect(pickPlacement(table, { constraints: {} })).toBeUndefined();
  });

  it('honours constraints and engine type', () => {
    const table: SlotTable = {
      nodes: [node('n1', [agent('a', 'n1', 1, { role: 'web' }, 'small')]), node('n2', [agent('b', 'n2', 1, { role: 'db' }, 'big')])],
    };
    expect(pickPlacement(table, { constraints: { role: 'db' } })?.agentId).toBe('b');
    expect(pickPlacement(table, { constraints: {}, engineType: 'small' })?.agentId).toBe('a');
    expect(pickPlacement(table, { constraints: { role: 'db' }, engineType: 'small' })).toBeUndefined();
  });

  it('node_exclusive: at most one process with a tag per node', () => {
    const table: SlotTable = { nodes: [node('n1', [agent('a', 'n1', 4)]), node('n2', [agent('b', 'n2', 4)])] };
    const first = pickPlacement(table, { constraints: {}, nodeExclusive: 'x' })!;
    occupy(table, first, 'x');
    const second = pickPlacement(table, { constraints: {}, nodeExclusive: 'x' })!;
    expect(second.nodeId).not.toBe(first.nodeId);
    occupy(table, second, 'x');
    expect(pickPlacement(table, { constraints: {}, nodeExclusive: 'x' })).toBeUndefined();
    expect(pickPlacement(table, { constraints: {}, nodeExclusive: 'y' })).toBeDefined();
  });
});
