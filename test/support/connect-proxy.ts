/**
 * A tiny HTTP CONNECT proxy that a test controls, for cutting real TCP connections between node
 * processes. grpc-js dials every outbound channel through the proxy named by the `grpc_proxy`
 * environment variable (node_modules/@grpc/grpc-js/build/src/http_proxy.js), so a node started with
 * `grpc_proxy=<proxy.url>` makes all its node-to-node connections through it, and the test decides
 * which targets it may reach:
 *
 *   block(target)   new CONNECTs to target are refused (503) and every open tunnel to it is destroyed
 *   unblock(target) target is reachable again (the nodes redial by themselves)
 *
 * No dependency: node:http parses the CONNECT request, node:net carries the tunnel.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';

interface Tunnel {
  target: string;
  client: Socket;
  upstream: Socket;
}

export interface ProxyCounts {
  /** Tunnels established since start. */
  opened: number;
  /** CONNECTs answered 503 because their target was blocked. */
  refused: number;
  /** Open tunnels destroyed by block(). */
  cut: number;
  /** CONNECTs whose target could not be reached (502). */
  failed: number;
}

/** `host:port` as the proxy compares it (lowercase host). */
function normalize(target: string): string {
  return target.trim().toLowerCase();
}

export class ConnectProxy {
  private readonly blocked = new Set<string>();
  private allBlocked = false;
  private readonly tunnels = new Set<Tunnel>();
  /** Sockets between their CONNECT and the end of the tunnel's setup. */
  private readonly pending = new Set<Socket>();
  readonly counts: ProxyCounts = { opened: 0, refused: 0, cut: 0, failed: 0 };

  private constructor(
    private readonly server: Server,
    readonly port: number,
  ) {}

  /** Starts a proxy on 127.0.0.1 and a free port. */
  static async start(): Promise<ConnectProxy> {
    const server = createServer((_req, res) => {
      res.writeHead(405, { 'content-type': 'text/plain' });
      res.end('CONNECT only\n');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const proxy = new ConnectProxy(server, (server.address() as { port: number }).port);
    server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => proxy.onConnect(req, socket, head));
    server.on('clientError', (_err, socket) => socket.destroy());
    return proxy;
  }

  /** The value for `grpc_proxy`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  isBlocked(target: string): boolean {
    return this.allBlocked || this.blocked.has(normalize(target));
  }

  /** Refuses new tunnels to `target` and destroys the open ones. */
  block(target: string): void {
    this.blocked.add(normalize(target));
    this.cutMatching((t) => t.target === normalize(target));
  }

  unblock(target: string): void {
    this.blocked.delete(normalize(target));
  }

  /** Refuses every new tunnel and destroys every open one. */
  blockAll(): void {
    this.allBlocked = true;
    this.cutMatching(() => true);
  }

  /** Lifts blockAll() and every block(). */
  unblockAll(): void {
    this.allBlocked = false;
    this.blocked.clear();
  }

  /** Targets of the tunnels open now (one entry per tunnel). */
  openTunnels(): string[] {
    return [...this.tunnels].map((t) => t.target);
  }

  async close(): Promise<void> {
    this.cutMatching(() => true);
    for (const s of this.pending) s.destroy();
    this.pending.clear();
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private cutMatching(match: (t: Tunnel) => boolean): void {
    for (const t of [...this.tunnels]) {
      if (!match(t)) continue;
      this.tunnels.delete(t);
      this.counts.cut++;
      t.client.destroy();
      t.upstream.destroy();
    }
  }

  private onConnect(req: IncomingMessage, client: Socket, head: Buffer): void {
    const target = normalize(req.url ?? '');
    const m = /^(\[[0-9a-f:]+\]|[^:[\]]+):(\d{1,5})$/.exec(target);
    client.on('error', () => client.destroy());
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      return;
    }
    if (this.isBlocked(target)) {
      this.counts.refused++;
      client.end('HTTP/1.1 503 Service Unavailable\r\n\r\n');
      return;
    }
    this.pending.add(client);
    const host = m[1]!.replace(/^\[|\]$/g, '');
    const upstream = connect({ host, port: Number(m[2]) });
    let established = false;
    upstream.on('error', () => {
      if (!established) {
        this.pending.delete(client);
        this.counts.failed++;
        if (!client.destroyed) client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
      }
      upstream.destroy();
      client.destroy();
    });
    client.on('close', () => {
      this.pending.delete(client);
      upstream.destroy();
    });
    upstream.once('connect', () => {
      this.pending.delete(client);
      // Blocked (or the client gone) while the upstream connection was being made.
      if (client.destroyed || this.isBlocked(target)) {
        if (!client.destroyed) {
          this.counts.refused++;
          client.end('HTTP/1.1 503 Service Unavailable\r\n\r\n');
        }
        upstream.destroy();
        return;
      }
      established = true;
      const tunnel: Tunnel = { target, client, upstream };
      this.tunnels.add(tunnel);
      this.counts.opened++;
      const done = (): void => {
        this.tunnels.delete(tunnel);
        client.destroy();
        upstream.destroy();
      };
      client.on('close', done);
      upstream.on('close', done);
      client.setNoDelay(true);
      upstream.setNoDelay(true);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
  }
}
