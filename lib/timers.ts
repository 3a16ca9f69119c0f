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

/** How a bounded call ended. */
export type Settled =
  | { status: 'resolved', value: unknown }
  | { status: 'rejected', reason: unknown }
  | { status: 'timed out' }

/**
 * Calls `fn` (sync or async) and waits for it at most `ms`: never throws, and tells a
 * rejection apart from whatever the call may resolve with.
 */
export async function settleWithin (fn: () => unknown, ms: number): Promise<Settled> {
  const timer = deadline(ms)
  const settled = await Promise.race([
    Promise.resolve().then(fn).then(
      (value): Settled => ({ status: 'resolved', value }),
      (reason: unknown): Settled => ({ status: 'rejected', reason })
    ),
    timer.promise.then((): Settled => ({ status: 'timed out' }))
  ])
  timer.clear()
  return settled
}

/** The message of whatever was thrown. */
export function messageOf (reason: unknown): string {
  return reason instanceof Error ? reason.message : String(reason)
}

/** Milliseconds rounded to a tenth, as the report and the logs give them. */
export function roundMs (ms: number): number {
  return Math.round(ms * 10) / 10
}
