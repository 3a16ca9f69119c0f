import type { CheckFunction, CheckOptions } from './health.js'
import {
  FST_LIFECYCLE_BUDGET_EXCEEDED,
  FST_LIFECYCLE_HEALTH_PATH_CONFLICT,
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
  /**
   * When long-lived connections (WebSockets, SSE streams) are told to go: `'draining'`, at the
   * signal, or `'closing'`, at the end of the pre-stop delay. @default 'draining'
   */
  notifyAt?: 'draining' | 'closing'
  /** The `retry:` hint, in ms, sent with the final event of an SSE stream. @default 1000 */
  sseRetry?: number
  /**
   * How long before the deadline `lifecycle.deadlineSignal` is aborted, in ms, so handlers
   * doing long work can answer before they are cut. @default a tenth of timeout, at most 1000
   */
  abortBefore?: number
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

/** A check given through the health plugin's options. */
export interface HealthCheckOption extends CheckOptions {
  name: string
  check: CheckFunction
}

export type ProbeLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'

export interface HealthOptions {
  /** Path of the liveness probe; `false` for none. @default '/livez' */
  livenessPath?: string | false
  /** Path of the readiness probe; `false` for none. @default '/readyz' */
  readinessPath?: string | false
  /** Path of the startup probe; `false` for none. @default '/startupz' */
  startupPath?: string | false
  /** Checks to register, as with `fastify.lifecycle.check(name, check, options)`. @default [] */
  checks?: readonly HealthCheckOption[]
  /** Show why a check failed (error messages may name hosts) in probe answers; it is always logged. @default false */
  exposeFailureDetails?: boolean
  /** Level of the line logged for each probe answered. @default 'debug' */
  logLevel?: ProbeLogLevel
  /** Serve the probes on a listener of their own, on this port (0: any free port), instead of the service's. */
  port?: number
  /** Address of the probe listener, with `port`. @default '0.0.0.0' */
  host?: string
  /**
   * With @fastify/under-pressure registered: `readiness` fails readiness while it reports
   * pressure; liveness fails while its measured event loop delay is over `maxEventLoopDelay` ms.
   * `false` ignores it. @default { readiness: true, maxEventLoopDelay: 1000 }
   */
  underPressure?: { readiness?: boolean, maxEventLoopDelay?: number } | false
}

export interface ResolvedHealthOptions {
  readonly paths: Readonly<Record<'liveness' | 'readiness' | 'startup', string | false>>
  readonly checks: readonly HealthCheckOption[]
  readonly exposeFailureDetails: boolean
  readonly logLevel: ProbeLogLevel
  readonly port: number | undefined
  readonly host: string
  readonly underPressure: { readonly enabled: boolean, readonly readiness: boolean, readonly maxEventLoopDelay: number }
}

export interface ResolvedGracefulOptions {
  readonly signals: readonly HandledSignal[]
  readonly timeout: number
  readonly handleErrors: boolean
}
export interface ResolvedPreStopOptions { readonly delay: number }
export interface ResolvedDrainOptions {
  readonly timeout: number
  readonly notifyAt: 'draining' | 'closing'
  readonly sseRetry: number
  readonly abortBefore: number
}
export interface ResolvedTeardownOptions {
  readonly timeout: number
  readonly resourceTimeout: number
  readonly parallel: boolean
}

const GRACEFUL_KEYS = ['signals', 'timeout', 'handleErrors']
const PRE_STOP_KEYS = ['delay']
const DRAIN_KEYS = ['timeout', 'notifyAt', 'sseRetry', 'abortBefore']
const TEARDOWN_KEYS = ['timeout', 'resourceTimeout', 'parallel']
const HEALTH_KEYS = ['livenessPath', 'readinessPath', 'startupPath', 'checks', 'exposeFailureDetails', 'logLevel', 'port', 'host', 'underPressure']
const LOG_LEVELS: readonly ProbeLogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

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

/** An options object: undefined gives `{}`; null, arrays and other values are rejected. */
export function plainObject (name: string, value: unknown): object {
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
  const handleErrors = bool(prefix + 'handleErrors', options.handleErrors, true)
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
  const notifyAt = options.notifyAt ?? 'draining'
  if (notifyAt !== 'draining' && notifyAt !== 'closing') {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'notifyAt', "'draining' or 'closing'", notifyAt)
  }
  const abortBefore = duration(prefix + 'abortBefore', options.abortBefore, Math.min(1000, Math.floor(timeout / 10)))
  if (abortBefore > timeout) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'abortBefore', `at most ${prefix}timeout (${timeout}ms)`, abortBefore)
  }
  return Object.freeze({ timeout, notifyAt, sseRetry: duration(prefix + 'sseRetry', options.sseRetry, 1000), abortBefore })
}

export function resolveTeardownOptions (input?: TeardownOptions, prefix = ''): ResolvedTeardownOptions {
  const options: TeardownOptions = plainObject(prefix.slice(0, -1) || 'options', input)
  checkKnownKeys(prefix, options, TEARDOWN_KEYS)
  const timeout = duration(prefix + 'timeout', options.timeout, 10_000, true)
  const resourceTimeout = duration(prefix + 'resourceTimeout', options.resourceTimeout, Math.min(3000, timeout), true)
  if (resourceTimeout > timeout) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'resourceTimeout', `at most ${prefix}timeout (${timeout}ms)`, resourceTimeout)
  }
  return Object.freeze({ timeout, resourceTimeout, parallel: bool(prefix + 'parallel', options.parallel, false) })
}

function bool (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new FST_LIFECYCLE_INVALID_OPTION(name, 'a boolean', value)
  return value
}

function probePath (name: string, value: unknown, fallback: string): string | false {
  if (value === undefined) return fallback
  if (value === false) return false
  if (typeof value !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(value)) {
    throw new FST_LIFECYCLE_INVALID_OPTION(name, "a path like '/readyz' (starting with /, no query, no trailing slash) or false", value)
  }
  return value
}

export function resolveHealthOptions (input?: HealthOptions, prefix = ''): ResolvedHealthOptions {
  const options: HealthOptions = plainObject(prefix.slice(0, -1) || 'options', input)
  checkKnownKeys(prefix, options, HEALTH_KEYS)
  const paths = {
    liveness: probePath(prefix + 'livenessPath', options.livenessPath, '/livez'),
    readiness: probePath(prefix + 'readinessPath', options.readinessPath, '/readyz'),
    startup: probePath(prefix + 'startupPath', options.startupPath, '/startupz')
  }
  const kinds = Object.keys(paths) as Array<keyof typeof paths>
  for (let i = 0; i < kinds.length; i++) {
    for (let j = i + 1; j < kinds.length; j++) {
      const a = paths[kinds[i]]
      const b = paths[kinds[j]]
      // One probe's path must not be the other's, nor a prefix of it: /readyz/<check> is a check.
      if (a !== false && b !== false && (a === b || b.startsWith(a + '/') || a.startsWith(b + '/'))) {
        throw new FST_LIFECYCLE_HEALTH_PATH_CONFLICT(kinds[i], kinds[j], a.length <= b.length ? a : b)
      }
    }
  }
  const checks = options.checks ?? []
  if (!Array.isArray(checks) || checks.some((c) => c === null || typeof c !== 'object')) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'checks', 'an array of { name, check, ...options }', checks)
  }
  const logLevel = options.logLevel ?? 'debug'
  if (!LOG_LEVELS.includes(logLevel)) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'logLevel', `one of ${LOG_LEVELS.join(', ')}`, logLevel)
  let port: number | undefined
  if (options.port !== undefined) {
    if (typeof options.port !== 'number' || !Number.isInteger(options.port) || options.port < 0 || options.port > 65_535) {
      throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'port', 'an integer port from 0 to 65535', options.port)
    }
    port = options.port
  }
  const host = options.host ?? '0.0.0.0'
  if (typeof host !== 'string' || host === '') throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'host', 'a host name or address', host)
  const pressure = options.underPressure ?? {}
  if (pressure !== false && (pressure === null || typeof pressure !== 'object')) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'underPressure', 'an object or false', pressure)
  }
  const pressureOptions = pressure === false ? {} : pressure
  checkKnownKeys(prefix + 'underPressure.', pressureOptions, ['readiness', 'maxEventLoopDelay'])
  return Object.freeze({
    paths: Object.freeze(paths),
    checks: Object.freeze([...checks]),
    exposeFailureDetails: bool(prefix + 'exposeFailureDetails', options.exposeFailureDetails, false),
    logLevel,
    port,
    host,
    underPressure: Object.freeze({
      enabled: pressure !== false,
      readiness: bool(prefix + 'underPressure.readiness', pressureOptions.readiness, true),
      maxEventLoopDelay: duration(prefix + 'underPressure.maxEventLoopDelay', pressureOptions.maxEventLoopDelay, 1000, true)
    })
  })
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
