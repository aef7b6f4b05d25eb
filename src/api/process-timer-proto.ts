/**
 * A process timer in its proto form and back: shared by the dispatcher's service (server side) and
 * its client, so neither depends on the other. JSON fields travel as JSON text; absent ones as 0 or ''.
 */
import type { ProcessTimer, ProcessTimer__Output } from '../generated/cei/v1/ProcessTimer.js';
import type { TimerRecord } from '../actors/dispatcher/protocol.js';

export function timerOut(t: TimerRecord): ProcessTimer {
  return {
    name: t.name,
    definition_id: t.definitionId,
    configuration_json: t.configuration === undefined ? '' : JSON.stringify(t.configuration),
    at_ms: t.at ?? 0,
    every_ms: t.every ?? 0,
    count: t.count ?? 0,
    constraints_json: t.constraints === undefined ? '' : JSON.stringify(t.constraints),
    execution_engine: t.executionEngine ?? '',
    next_ms: t.next,
    runs: t.runs,
    last_error: t.lastError ?? '',
  };
}

export function timerIn(t: ProcessTimer__Output): TimerRecord {
  const out: TimerRecord = { name: t.name, definitionId: t.definition_id, next: t.next_ms, runs: t.runs };
  if (t.configuration_json) out.configuration = JSON.parse(t.configuration_json) as Record<string, unknown>;
  if (t.at_ms > 0) out.at = t.at_ms;
  if (Number(t.every_ms) > 0) out.every = Number(t.every_ms);
  if (t.count > 0) out.count = t.count;
  if (t.constraints_json) out.constraints = JSON.parse(t.constraints_json) as unknown;
  if (t.execution_engine) out.executionEngine = t.execution_engine;
  if (t.last_error) out.lastError = t.last_error;
  return out;
}
