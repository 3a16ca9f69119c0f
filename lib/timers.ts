import { setTimeout as sleep } from 'node:timers/promises'

export interface Deadline {
  /** Resolves with `expired` after `ms`, unless cleared first. */
  readonly promise: Promise<symbol>
  readonly expired: symbol
  clear: () => void
}

/**
 * A cancellable timer for races against work in progress. It does not keep the process
 * alive: what it bounds (sockets, requests) does, and `clear()` frees it at once.
 */
export function deadline (ms: number): Deadline {
  const expired = Symbol('expired')
  const controller = new AbortController()
  const promise = sleep(ms, expired, { ref: false, signal: controller.signal }).catch(() => expired)
  return { promise, expired, clear: () => controller.abort() }
}

/** Waits `ms` with the process kept alive: a phase of the shutdown that must run to its end. */
export function wait (ms: number): Promise<void> {
  return sleep(ms)
}
