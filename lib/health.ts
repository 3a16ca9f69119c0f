import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import { channels } from './channels.js'
import { FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK, FST_LIFECYCLE_INVALID_ARGUMENT, FST_LIFECYCLE_INVALID_OPTION } from './errors.js'
import { bool, duration, keysOf, optionsObject } from './options.js'
import { messageOf, roundMs, settleWithin } from './timers.js'

export type ProbeKind = 'liveness' | 'readiness' | 'startup'
export const PROBE_KINDS: readonly ProbeKind[] = Object.freeze(['liveness', 'readiness', 'startup'])

/**
 * A health check: it passes when it resolves (to anything but `false`), fails when it
 * resolves to `false`, throws or rejects, or runs past its timeout.
 */
export type CheckFunction = () => unknown

export interface CheckOptions {
  /** Longest a run may take, in ms; a run still going then fails as timed out. Keep it below the probe's timeoutSeconds. @default 800 */
  timeout?: number | undefined
  /** A failing critical check fails its probe; a non-critical one is only reported. @default true */
  critical?: boolean | undefined
  /** The probes the check belongs to. Liveness checks are for the process itself, never for a dependency. @default 'readiness' */
  probe?: ProbeKind | readonly ProbeKind[] | undefined
  /** Reuse a result for this long, in ms. With 0, every probe runs the check (concurrent probes still share one run). @default 0 */
  cacheTtl?: number | undefined
  /** Run the check in the background every this many ms; probes read its latest result. 0 is off. @default 0 */
  refreshInterval?: number | undefined
}

export interface CheckResult {
  name: string
  ok: boolean
  critical: boolean
  durationMs: number
  /** The result came from the cache or a background run, not a run for this probe. */
  cached: boolean
  timedOut: boolean
  /** Why it failed: the error's message (shown only when the health plugin allows it). */
  error?: string
}

interface Check {
  readonly name: string
  readonly fn: CheckFunction
  readonly timeout: number
  readonly critical: boolean
  readonly probes: readonly ProbeKind[]
  readonly cacheTtl: number
  readonly refreshInterval: number
  last: (CheckResult & { at: number }) | undefined
  running: Promise<CheckResult> | undefined
  /** The check function's call still going, even past its timeout: at most one at a time. */
  call: { readonly settled: Promise<unknown>, readonly startedAt: number } | undefined
  timer: NodeJS.Timeout | undefined
}

const CHECK_OPTIONS = keysOf<CheckOptions>()({ timeout: true, critical: true, probe: true, cacheTtl: true, refreshInterval: true })

/** Every health check of one instance: runs them, caches, coalesces, and logs state changes. */
export class CheckRegistry {
  readonly #checks = new Map<string, Check>()
  readonly #log: FastifyBaseLogger

  /** Called with the result of every run (not with cached answers): the metrics count them. */
  readonly runListeners: Array<(result: CheckResult) => void> = []
  readonly #server: object | undefined

  constructor (log: FastifyBaseLogger, server?: object) {
    this.#log = log
    this.#server = server
  }

  add (name: string, fn: CheckFunction, options: CheckOptions = {}): void {
    if (typeof name !== 'string' || !/^[\w.-]+$/.test(name)) {
      throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.check(): name', 'a non-empty string of letters, digits, _ . -', name)
    }
    if (this.#checks.has(name)) throw new FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK(name)
    if (typeof fn !== 'function') throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.check(): check', 'a function', fn)
    optionsObject<CheckOptions>(options, `check '${name}' `, CHECK_OPTIONS, `check '${name}' options`)
    const critical = bool(`check '${name}' critical`, options.critical, true)
    const probe = options.probe ?? 'readiness'
    const probes = Array.isArray(probe) ? probe : [probe]
    if (probes.length === 0 || probes.some((p) => !PROBE_KINDS.includes(p))) {
      throw new FST_LIFECYCLE_INVALID_OPTION(`check '${name}' probe`, `one of ${PROBE_KINDS.join(', ')}, or an array of them`, probe)
    }
    this.#checks.set(name, {
      name,
      fn,
      timeout: duration(`check '${name}' timeout`, options.timeout, 800, true),
      critical,
      probes: Object.freeze([...new Set(probes)]),
      cacheTtl: duration(`check '${name}' cacheTtl`, options.cacheTtl, 0),
      refreshInterval: duration(`check '${name}' refreshInterval`, options.refreshInterval, 0),
      last: undefined,
      running: undefined,
      call: undefined,
      timer: undefined
    })
  }

  /** Names of the checks of a probe, in registration order. */
  namesFor (probe: ProbeKind): string[] {
    return [...this.#checks.values()].filter((c) => c.probes.includes(probe)).map((c) => c.name)
  }

  /** Whether the check of that name belongs to that probe. */
  belongsTo (name: string, probe: ProbeKind): boolean {
    return this.#checks.get(name)?.probes.includes(probe) ?? false
  }

  /**
   * The check's result for a probe: the cached one while fresh (or the latest background
   * run), the run already in progress if there is one, else a new run.
   */
  result (name: string): Promise<CheckResult> {
    const check = this.#checks.get(name) as Check
    const last = check.last
    if (last !== undefined && (check.refreshInterval > 0 || performance.now() - last.at < check.cacheTtl)) {
      return Promise.resolve({ ...last, cached: true })
    }
    return this.#run(check)
  }

  /** The latest result of each check that has run, in registration order. */
  latest (): CheckResult[] {
    const results: CheckResult[] = []
    for (const check of this.#checks.values()) {
      if (check.last !== undefined) {
        const { at: _at, ...result } = check.last
        results.push(result)
      }
    }
    return results
  }

  /** Starts the background refreshes. */
  start (): void {
    for (const check of this.#checks.values()) {
      if (check.refreshInterval > 0 && check.timer === undefined) {
        check.timer = setInterval(() => { this.#run(check) }, check.refreshInterval).unref()
        this.#run(check)
      }
    }
  }

  /** Stops the background refreshes. */
  stop (): void {
    for (const check of this.#checks.values()) {
      clearInterval(check.timer)
      check.timer = undefined
    }
  }

  #run (check: Check): Promise<CheckResult> {
    check.running ??= this.#runOnce(check).then((result) => {
      check.running = undefined
      return result
    })
    return check.running
  }

  async #runOnce (check: Check): Promise<CheckResult> {
    const started = performance.now()
    if (check.call !== undefined) {
      // The last call is past its timeout and still going (a hung dependency): calling the check
      // again would pile up calls, sockets and memory. It stays timed out until that call settles.
      const runningMs = Math.round(started - check.call.startedAt)
      const result: CheckResult = { name: check.name, ok: false, critical: check.critical, durationMs: 0, cached: false, timedOut: true, error: `timed out after ${check.timeout}ms, still running after ${runningMs}ms` }
      check.last = { ...result, at: started }
      for (const listener of this.runListeners) listener(result)
      if (channels.check.hasSubscribers) channels.check.publish({ server: this.#server, result })
      return result
    }
    const call = { settled: Promise.resolve().then(check.fn), startedAt: started }
    check.call = call
    const forget = (): void => { check.call = undefined }
    call.settled.then(forget, forget)
    const settled = await settleWithin(() => call.settled, check.timeout)
    const durationMs = roundMs(performance.now() - started)
    const result: CheckResult = { name: check.name, ok: true, critical: check.critical, durationMs, cached: false, timedOut: false }
    let err: unknown
    if (settled.status === 'timed out') {
      result.ok = false
      result.timedOut = true
      result.error = `timed out after ${check.timeout}ms`
    } else if (settled.status === 'rejected') {
      result.ok = false
      result.error = messageOf(settled.reason)
      err = settled.reason
    } else if (settled.value === false) {
      result.ok = false
      result.error = 'returned false'
    }
    const previous = check.last
    check.last = { ...result, at: performance.now() }
    for (const listener of this.runListeners) listener(result)
    if (channels.check.hasSubscribers) channels.check.publish({ server: this.#server, result })
    if (!result.ok && (previous === undefined || previous.ok)) {
      // With the error itself, stack included, when the check threw one.
      this.#log.warn({ err, check: check.name, critical: check.critical, error: result.error, timedOut: result.timedOut }, 'health: check failed')
    } else if (result.ok && previous !== undefined && !previous.ok) {
      this.#log.info({ check: check.name }, 'health: check recovered')
    }
    return result
  }
}
