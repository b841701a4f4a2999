import { setImmediate as nextTurn } from 'node:timers/promises';
import net from 'node:net';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

/** Requests a connection has brought so far: set when it is accepted, so its shape never changes. */
const REQUESTS = Symbol('gateway.requests');
type Counted = Socket & { [REQUESTS]: number; _httpMessage?: unknown };

/** How long a connection accepted before the stop may take to send its first request. */
export const FIRST_REQUEST_WAIT_MS = 1_000;

/**
 * The connections of the gateway's HTTP server, for a stop that answers every request it has accepted
 * a connection for. Closing a listener resets the connections still in its backlog, and Node's
 * server.close() destroys every connection without a request in progress, including one whose request
 * has arrived but not been read yet: both end as a reset without an answer.
 */
export class Connections {
  private readonly sockets = new Set<Counted>();
  private changed: (() => void) | undefined;
  /** Connections accepted so far. */
  private accepted = 0;

  constructor(private readonly server: Server) {
    server.on('connection', (socket: Socket) => {
      this.accepted++;
      const counted = socket as Counted;
      counted[REQUESTS] = 0;
      this.sockets.add(counted);
      socket.once('close', () => {
        this.sockets.delete(counted);
        this.changed?.();
      });
    });
  }

  /** A request arrived on `socket` (called for every request: one property increment). */
  onRequest(socket: Socket): void {
    const counted = socket as Counted;
    if (counted[REQUESTS] !== undefined) counted[REQUESTS]++;
    this.changed?.();
  }

  /**
   * Stops taking connections without losing one: the connections the kernel has already accepted are
   * taken first (Node takes one per turn of the event loop, so the listener closes after two turns
   * that took none, within `waitMs`), then the listener closes; idle keep-alive connections are
   * closed, and connections that have not sent their first request yet get up to `waitMs` to send it.
   * Every request that comes is answered (with `connection: close`).
   */
  async stopListening(waitMs: number): Promise<void> {
    const until = performance.now() + waitMs;
    for (let quiet = 0, seen = this.accepted; quiet < 2 && performance.now() < until;) {
      await nextTurn();
      quiet = this.accepted === seen ? quiet + 1 : 0;
      seen = this.accepted;
    }
    // net's close: http's would also destroy the connections that have sent nothing yet.
    net.Server.prototype.close.call(this.server);
    this.closeIdleKeepAlive();
    const leftMs = until - performance.now();
    if (this.waitingForFirstRequest() && leftMs > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, leftMs);
        this.changed = () => {
          if (!this.waitingForFirstRequest()) resolve();
        };
      });
      clearTimeout(timer);
      this.changed = undefined;
    }
    // What is idle now has had its chance: gone.
    this.server.closeIdleConnections();
  }

  private closeIdleKeepAlive(): void {
    for (const socket of this.sockets) {
      if (socket[REQUESTS] > 0 && !socket._httpMessage) socket.destroy();
    }
  }

  private waitingForFirstRequest(): boolean {
    for (const socket of this.sockets) if (socket[REQUESTS] === 0 && !socket.destroyed) return true;
    return false;
  }
}
