/**
 * V8 flags a `cei node` process is started with: by cei's own launchers (the local IaaS driver's
 * worker VMs, launch plans and `cei up`, the tests and benches) and by the `cei` bin's shebang.
 * They can only be given when the process starts.
 *
 * A node keeps every tell it has not acknowledged yet alive for a few milliseconds (its envelope,
 * payload, ack, reply slot and promises), far longer than the ~100 ms between young-generation GCs
 * at V8's default 16 MiB semi-space under load, so each scavenge copied all of them. Measured under
 * the cluster tells bench (3 nodes, ~30,000 tells/s): scavenges took 190-240 ms of every second of
 * a node at the default, 110-125 ms at 32 MiB, 35-70 ms at 64 MiB, no less at 128 MiB. The young
 * generation grows to this size only under such load; an idle node stays small.
 */
export const NODE_V8_FLAGS: readonly string[] = Object.freeze(['--max-semi-space-size=64']);
