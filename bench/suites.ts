import type { Suite } from './suite.js';
import { runtimeSuite } from './runtime/runtime-suite.js';
import { clusterSuite } from './cluster/cluster-suite.js';
import { epuSuite } from './epu/epu-suite.js';
import { processesSuite } from './processes/processes-suite.js';
import { launchSuite } from './launch/launch-suite.js';

/**
 * Every suite, by name, in the order `npm run bench` (no argument) runs them. A new suite (cluster,
 * epu, processes, launch) is one more entry here and a folder of its own beside bench/runtime/.
 */
export const SUITES: ReadonlyMap<string, Suite> = new Map([runtimeSuite, clusterSuite, epuSuite, processesSuite, launchSuite].map((s) => [s.name, s]));
