/**
 * Where a process goes: a pure choice over a slot table the core builds from its agents for one
 * matching pass. The table is a scratch value (not state): `occupy` updates it as the pass places
 * processes, so later processes of the same pass see the slots taken.
 *
 * The policy is the original's: fill the busiest nodes first, and within a node balance across its
 * agents. Concretely, nodes that already run something come before empty ones (so empty workers stay
 * empty and can be retired), and among each group the node with the fewest free slots comes first;
 * within the chosen node the matching agent with the most free slots wins. Ties go to the smaller id,
 * so a pass is deterministic.
 */
import { matchConstraints, type Constraints } from './constraints.js';

/** One agent that may take work now (healthy, not retiring). */
export interface SlotAgent {
  agentId: string;
  nodeId: string;
  engineType: string;
  free: number;
  properties: Readonly<Record<string, unknown>>;
}

export interface SlotNode {
  nodeId: string;
  /** Agents on the node that may take work (others are left out of the table). */
  agents: SlotAgent[];
  /** Something runs on the node (on any of its agents, healthy or not). */
  occupied: boolean;
  /** node_exclusive tags of the processes on the node. */
  exclusive: string[];
}

export interface SlotTable {
  nodes: SlotNode[];
}

export interface PlacementRequest {
  constraints: Constraints;
  /** Only agents of this engine type; any engine type when undefined. */
  engineType?: string;
  /** At most one process with this tag per node. */
  nodeExclusive?: string;
}

export interface Placement {
  agentId: string;
  nodeId: string;
}

export function agentFits(agent: SlotAgent, req: PlacementRequest): boolean {
  if (agent.free <= 0) return false;
  if (req.engineType !== undefined && agent.engineType !== req.engineType) return false;
  return matchConstraints(req.constraints, agent.properties);
}

/**
 * The agent a process should go to, or undefined when none fits now. One scan over the nodes keeping
 * the best so far (the order is total, node ids being unique), so a pick costs O(nodes), no sort; it
 * allocates nothing per node, as a pass makes a pick per process placed.
 */
export function pickPlacement(table: SlotTable, req: PlacementRequest): Placement | undefined {
  // Without an engine type or constraints an agent fits by its free slots alone.
  const open = req.engineType === undefined && isEmpty(req.constraints);
  let best: SlotNode | undefined;
  let bestFree = 0;
  for (const node of table.nodes) {
    if (node.agents.length === 0) continue;
    if (req.nodeExclusive !== undefined && node.exclusive.includes(req.nodeExclusive)) continue;
    let free = 0;
    let fits = false;
    for (const a of node.agents) {
      if (a.free <= 0 || (!open && !agentFits(a, req))) continue;
      fits = true;
      free += a.free;
    }
    if (!fits) continue;
    if (!best || better(node, free, best, bestFree)) {
      best = node;
      bestFree = free;
    }
  }
  if (!best) return undefined;
  let agent: SlotAgent | undefined;
  for (const a of best.agents) if (agentFits(a, req) && (!agent || roomier(a, agent))) agent = a;
  return { agentId: agent!.agentId, nodeId: agent!.nodeId };
}

function isEmpty(constraints: Constraints): boolean {
  for (const key in constraints) if (Object.hasOwn(constraints, key)) return false;
  return true;
}

/** Busy nodes before empty ones, then the fewest free slots (of the fitting agents), then the smaller node id. */
function better(x: SlotNode, xFree: number, y: SlotNode, yFree: number): boolean {
  const order = Number(x.occupied === false) - Number(y.occupied === false) || xFree - yFree || cmp(x.nodeId, y.nodeId);
  return order < 0;
}

/** Within a node: the most free slots, then the smaller agent id. */
function roomier(a: SlotAgent, b: SlotAgent): boolean {
  return (b.free - a.free || cmp(a.agentId, b.agentId)) < 0;
}

/**
 * Marks a slot of the placement taken (and the node's tag held) in the scratch table. A node left
 * with no free slot can take nothing more and leaves the table, so later picks do not scan it (the
 * order of the nodes does not matter to a pick).
 */
export function occupy(table: SlotTable, placement: Placement, nodeExclusive?: string): void {
  const i = table.nodes.findIndex((n) => n.nodeId === placement.nodeId);
  if (i < 0) return;
  const node = table.nodes[i]!;
  const agent = node.agents.find((a) => a.agentId === placement.agentId);
  if (agent) agent.free -= 1;
  node.occupied = true;
  if (nodeExclusive !== undefined && !node.exclusive.includes(nodeExclusive)) node.exclusive.push(nodeExclusive);
  if (node.agents.every((a) => a.free <= 0)) {
    table.nodes[i] = table.nodes[table.nodes.length - 1]!;
    table.nodes.pop();
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
