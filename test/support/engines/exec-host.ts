/**
 * A stand-in for a worker node in the exec engine's tests: starts `sleep 600` in an exec engine,
 * prints the program's pid and stays up until it is killed (the test SIGKILLs it).
 */
import { createEngine, TEST_ENGINE_OPTIONS } from '../../../src/engines/engine.js';

const engine = createEngine('exec', { argv: ['sleep', '600'], protocol: 'none' }, TEST_ENGINE_OPTIONS);
await engine.start(undefined, undefined);
const started = engine.log.lines().find((l) => l.source === 'engine' && l.line.startsWith('started'));
process.stdout.write(`pid ${/\(pid (\d+)\)$/.exec(started!.line)![1]}\n`);
setInterval(() => {}, 60_000);
