import {
  FST_LIFECYCLE_BUDGET_EXCEEDED,
  FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT,
  FST_LIFECYCLE_INVALID_OPTION,
  FST_LIFECYCLE_UNKNOWN_OPTION,
  FST_LIFECYCLE_UNKNOWN_SIGNAL
} from './errors.js'

/** Signals the graceful plugin can own. Fault signals (SIGSEGV, SIGILL, …) are left to Node. */
export const HANDLED_SIGNALS = Object.freeze(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'] as const)
export type HandledSignal = typeof HANDLED_SIGNALS[number]

export interface GracefulOptions {
  /** Signals that start a graceful shutdown; a second one forces exit. @default ['SIGTERM', 'SIGINT'] */
  signals?: readonly HandledSignal[]
  /**
   * Overall deadline for the whole shutdown, from the first signal to exit, in ms. When it
   * passes, the process exits with code 1 whatever is still running. Keep it below
   * Kubernetes' `terminationGracePeriodSeconds`. @default 25000
   */
  timeout?: number
  /** Shut down gracefully (exit code 1) on an uncaught exception or unhandled rejection. @default true */
  handleErrors?: boolean
}

export interface PreStopOptions {
  /**
   * How long to keep serving after the shutdown starts, with readiness already failing, so
   * load balancers stop sending traffic before the listener closes, in ms. Skipped when the
   * instance never became ready. @default 5000
   */
  delay?: number
}

export interface DrainOptions {
  /**
   * Longest wait for in-flight requests once the listener closes, in ms. Requests still
   * running then are cut, and the shutdown counts as forced. @default 5000
   */
  timeout?: number
}

export interface TeardownOptions {
  /**
   * Overall deadline for closing every registered resource, in ms. Resources not closed by then
   * are reported and the shutdown counts as forced. @default 10000
   */
  timeout?: number
  /** Default longest wait for one resource, in ms; `teardown(name, r, { timeout })` overrides it. @default 3000 */
  resourceTimeout?: number
  /**
   * Close resources at the same time when no `after` relation orders them. Off, they close one
   * at a time in reverse registration order. @default false
   */
  parallel?: boolean
}

export interface ResolvedGracefulOptions {
  readonly signals: readonly HandledSignal[]
  readonly timeout: number
  readonly handleErrors: boolean
}
export interface ResolvedPreStopOptions { readonly delay: number }
export interface ResolvedDrainOptions { readonly timeout: number }
export interface ResolvedTeardownOptions {
  readonly timeout: number
  readonly resourceTimeout: number
  readonly parallel: boolean
}

const GRACEFUL_KEYS = ['signals', 'timeout', 'handleErrors']
const PRE_STOP_KEYS = ['delay']
const DRAIN_KEYS = ['timeout']
const TEARDOWN_KEYS = ['timeout', 'resourceTimeout', 'parallel']

/** Rejects keys that no plugin reads, so a typo fails loudly instead of being ignored. */
export function checkKnownKeys (prefix: string, input: object, known: readonly string[]): void {
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) {
      throw new FST_LIFECYCLE_UNKNOWN_OPTION(prefix + key, known.join(', '))
    }
  }
}

/** A duration in ms: a non-negative safe integer (or positive when `positive`). */
export function duration (name: string, value: unknown, fallback: number, positive = false): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (positive ? 1 : 0)) {
    throw new FST_LIFECYCLE_INVALID_OPTION(name, positive ? 'a positive integer of ms' : 'a non-negative integer of ms', value)
  }
  return value
}

function plainObject (name: string, value: unknown): object {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FST_LIFECYCLE_INVALID_OPTION(name, 'an object', value)
  }
  return value
}

export function resolveGracefulOptions (input?: GracefulOptions, prefix = ''): ResolvedGracefulOptions {
  const options: GracefulOptions = plainObject(prefix.slice(0, -1) || 'options', input)
  checkKnownKeys(prefix, options, GRACEFUL_KEYS)
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  if (!Array.isArray(signals) || signals.length === 0) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'signals', 'a non-empty array of signal names', signals)
  }
  for (const signal of signals) {
    if (!HANDLED_SIGNALS.includes(signal)) {
      throw new FST_LIFECYCLE_UNKNOWN_SIGNAL(prefix + 'signals', signal, HANDLED_SIGNALS.join(', '))
    }
  }
  const handleErrors = options.handleErrors ?? true
  if (typeof handleErrors !== 'boolean') {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'handleErrors', 'a boolean', handleErrors)
  }
  return Object.freeze({
    signals: Object.freeze([...new Set(signals)]),
    timeout: duration(prefix + 'timeout', options.timeout, 25_000, true),
    handleErrors
  })
}

export function resolvePreStopOptions (input?: PreStopOptions, prefix = ''): ResolvedPreStopOptions {
  const options: PreStopOptions = plainObject(prefix.slice(0, -1) || 'options', input)
  checkKnownKeys(prefix, options, PRE_STOP_KEYS)
  return Object.freeze({ delay: duration(prefix + 'delay', options.delay, 5000) })
}

/** `pluginTimeout` is Fastify's (from `fastify.initialConfig`); 0 means preClose is never cut. */
export function resolveDrainOptions (pluginTimeout: number, input?: DrainOptions, prefix = ''): ResolvedDrainOptions {
  const options: DrainOptions = plainObject(prefix.slice(0, -1) || 'options', input)
  checkKnownKeys(prefix, options, DRAIN_KEYS)
  const timeout = duration(prefix + 'timeout', options.timeout, 5000)
  if (pluginTimeout > 0 && timeout >= pluginTimeout) {
    throw new FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT(timeout, pluginTimeout)
  }
  return Object.freeze({ timeout })
}

export function resolveTeardownOptions (input?: TeardownOptions, prefix = ''): ResolvedTeardownOptions {
  const options: TeardownOptions = plainObject(prefix.slice(0, -1) || 'options', input)
  checkKnownKeys(prefix, options, TEARDOWN_KEYS)
  const timeout = duration(prefix + 'timeout', options.timeout, 10_000, true)
  const resourceTimeout = duration(prefix + 'resourceTimeout', options.resourceTimeout, Math.min(3000, timeout), true)
  if (resourceTimeout > timeout) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'resourceTimeout', `at most ${prefix}timeout (${timeout}ms)`, resourceTimeout)
  }
  const parallel = options.parallel ?? false
  if (typeof parallel !== 'boolean') throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'parallel', 'a boolean', parallel)
  return Object.freeze({ timeout, resourceTimeout, parallel })
}

/** The shutdown phases, each a share of the overall deadline. */
export type Budget = Readonly<Record<string, number>>

/**
 * Checks that the phases registered so far fit in the overall deadline, with room left for
 * the process to exit. Called when the app is ready, so plugin order does not matter.
 */
export function checkBudget (budget: Budget, deadline: number): void {
  const parts = Object.entries(budget)
  if (parts.length === 0) return
  const total = parts.reduce((sum, [, ms]) => sum + ms, 0)
  if (total >= deadline) {
    const terms = parts.map(([name, ms]) => `${name} ${ms}ms`).join(' + ')
    throw new FST_LIFECYCLE_BUDGET_EXCEEDED(terms, total, deadline)
  }
}
