import { FST_LIFECYCLE_INVALID_ARGUMENT } from './errors.js'

/** Work that is not an HTTP request (a queue message, a job) which the drain waits for. */
export interface HeldWork {
  readonly name: string
  /** The work is done; the drain stops waiting for it. Calling it again does nothing. */
  release: () => void
}

/** A connection that never finishes on its own: a WebSocket, an SSE stream, a tunnel. */
export interface LongLivedConnection {
  /** What it is, for the log and the report: `'websocket'`, `'sse'`, or your own. */
  kind: string
  /** Tells the peer to reconnect elsewhere, and ends the connection gracefully. */
  notify: () => void
  /** Ends it at once (the drain deadline). */
  destroy: () => void
}

/** Returned by `longLived()`: call `done()` once the connection has ended, however it ended. */
export interface LongLivedHandle {
  done: () => void
}

/** A registered long-lived connection, as the drain sees it. */
export interface TrackedLongLived extends LongLivedConnection {
  notified: boolean
}

/**
 * Held work and long-lived connections of one server: what the drain waits for besides
 * requests. The lifecycle exposes it read-only to users; the drain writes to it.
 */
export class WorkRegistry {
  readonly #held = new Set<HeldWork>()
  readonly connections = new Set<TrackedLongLived>()
  #whenIdle: Array<() => void> = []
  readonly #onLongLived: (connection: TrackedLongLived) => void

  constructor (onLongLived: (connection: TrackedLongLived) => void) {
    this.#onLongLived = onLongLived
  }

  get held (): string[] {
    return [...this.#held].map((work) => work.name)
  }

  hold (name: string): HeldWork {
    if (typeof name !== 'string' || name === '') throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.hold(): name', 'a non-empty string', name)
    const held = this.#held
    const work: HeldWork = Object.freeze({
      name,
      release: () => {
        if (held.delete(work)) this.#checkIdle()
      }
    })
    held.add(work)
    return work
  }

  longLived (connection: LongLivedConnection): LongLivedHandle {
    if (connection === null || typeof connection !== 'object' || typeof connection.kind !== 'string' ||
        typeof connection.notify !== 'function' || typeof connection.destroy !== 'function') {
      throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.longLived(): connection', '{ kind: string, notify(): void, destroy(): void }', connection)
    }
    const tracked: TrackedLongLived = { kind: connection.kind, notify: connection.notify, destroy: connection.destroy, notified: false }
    const connections = this.connections
    connections.add(tracked)
    this.#onLongLived(tracked)
    return {
      done: () => {
        if (connections.delete(tracked)) this.#checkIdle()
      }
    }
  }

  /** Resolves once no work is held and no long-lived connection remains (at once if so). */
  idle (): Promise<void> {
    if (this.#isIdle()) return Promise.resolve()
    return new Promise((resolve) => { this.#whenIdle.push(resolve) })
  }

  /** The drain deadline cut every long-lived connection: none is tracked any more. */
  forgetConnections (): void {
    this.connections.clear()
  }

  #isIdle (): boolean {
    return this.#held.size === 0 && this.connections.size === 0
  }

  #checkIdle (): void {
    if (this.#isIdle()) for (const resolve of this.#whenIdle.splice(0)) resolve()
  }
}
