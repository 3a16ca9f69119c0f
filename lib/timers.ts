import { setTimeout as sleep } from 'node:timers/promises'

export interface Deadline {
  /** Resolves with `expired` after `ms`, unless cleared first. */
  readonly promise: Promise<symbol>
  readonly expired: symbol
  clear: () => void
}

/**
 * A cancellable timer for races against work in progress. It keeps the process alive on
 * purpose: it bounds a phase of the shutdown that must reach its end (the next resource, the
 * report, the exit code) even when what it waits for holds nothing open itself, such as a
 * close() promise that never settles. Callers always clear it once the race is decided.
 */
export function deadline (ms: number): Deadline {
  const expired = Symbol('expired')
  const controller = new AbortController()
  const promise = sleep(ms, expired, { signal: controller.signal }).catch(() => expired)
  return { promise, expired, clear: () => controller.abort() }
}

/** Waits `ms` with the process kept alive: a phase of the shutdown that must run to its end. */
export function wait (ms: number): Promise<void> {
  return sleep(ms)
}
