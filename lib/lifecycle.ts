import { EventEmitter } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import {
  FST_LIFECYCLE_HEALTH_NOT_REGISTERED,
  FST_LIFECYCLE_INVALID_OPTION,
  FST_LIFECYCLE_STARTUP_TASK_LATE,
  FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED
} from './errors.js'
import type { CheckFunction, CheckOptions, CheckRegistry } from './health.js'
import { duration } from './options.js'
import type { Closable, CloseFunction, TeardownRegistry, TeardownResourceOptions } from './teardown.js'
import { deadline, messageOf, roundMs } from './timers.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shutdown and readiness state shared by every fastify-lifecycle plugin. */
    lifecycle: Lifecycle
  }
}

/** The phases of one Fastify instance, in the only order they can happen. */
export type Phase = 'starting' | 'ready' | 'draining' | 'closing' | 'closed'
const ORDER: Readonly<Record<Phase, number>> = { starting: 0, ready: 1, draining: 2, closing: 3, closed: 4 }

/** What started the shutdown: a signal name, `'error'`, `'manual'` (lifecycle.shutdown()) or `'close'` (fastify.close()). */
export interface ShutdownCause {
  cause: string
  /** The uncaught exception or rejection that started the shutdown, if one did. */
  error?: unknown
}

/** A response being written: HTTP/1 or HTTP/2 compatibility API. */
export type InFlightResponse = ServerResponse | Http2ServerResponse

export interface PhaseTiming {
  phase: 'draining' | 'closing' | 'closed'
  /** When the phase began, in ms after the shutdown started. */
  atMs: number
  /** How long the phase lasted, in ms (0 for `closed`). */
  durationMs: number
  /** Requests in flight when the phase began. */
  inFlight: number
}

/** Logged once at the end of every shutdown and returned by `lifecycle.shutdown()`. */
export interface ShutdownReport {
  cause: string
  /** True when no stage had to be forced and the shutdown was not caused by an error. */
  clean: boolean
  /** The code the graceful plugin exits with: 0 when clean, 1 otherwise. */
  exitCode: 0 | 1
  /** From the start of the shutdown to the `closed` phase, in ms. */
  totalMs: number
  phases: PhaseTiming[]
  /** One line per stage that had to be forced (requests cut, a deadline hit, a close that failed). */
  forced: string[]
  /** What each plugin recorded about its stage (pre-stop delay, drain counts, …). */
  stages: Record<string, Readonly<Record<string, unknown>>>
  /** Message of the error that caused the shutdown or made `close()` fail. */
  error?: string
}

export interface LifecycleEvents {
  phase: [phase: Phase, previous: Phase]
  /** `setReady()` changed the manual readiness flag. */
  readiness: [ready: boolean]
  /** A long-lived connection was registered. */
  longLived: [connection: TrackedLongLived]
  ready: []
  draining: []
  closing: []
  closed: [report: ShutdownReport]
}

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

/** Work a plugin does during a phase of the shutdown, before the next phase starts. */
export type PhaseStep = () => Promise<void> | void

/**
 * The one state machine per Fastify instance. Plugins read `phase`, listen to its events and
 * feed it (in-flight requests, stage records, time budget); none keeps a copy of the state.
 */
export class Lifecycle extends EventEmitter<LifecycleEvents> {
  /** Long-lived connections registered and not ended yet. Read it; register with `longLived()`. */
  readonly longLivedConnections = new Set<TrackedLongLived>()
  readonly #deadline = new AbortController()
  readonly #fastify: FastifyInstance
  readonly #log: FastifyBaseLogger
  readonly #abort = new AbortController()
  readonly #steps: Record<'draining' | 'closing', PhaseStep[]> = { draining: [], closing: [] }
  #closingSteps: Promise<void> | undefined
  readonly #held = new Set<HeldWork>()
  #whenIdle: Array<() => void> = []
  #teardown: TeardownRegistry | undefined
  #checks: CheckRegistry | undefined
  #manualReady = true
  readonly #startupTasks = new Map<string, { task: () => unknown, retryDelay: number }>()
  readonly #startupPending = new Set<string>()
  readonly #budget: Record<string, number> = {}
  #countInFlight: () => number = () => 0
  readonly #timings: Array<Omit<PhaseTiming, 'durationMs'>> = []
  readonly #forced: string[] = []
  readonly #stages: Record<string, Readonly<Record<string, unknown>>> = {}
  #phase: Phase = 'starting'
  #everReady = false
  #startedAt = 0
  #cause: ShutdownCause | undefined
  #closeError: unknown
  #driving = false
  #booted = false
  #onBooted: (() => void) | undefined
  #shutdown: Promise<ShutdownReport> | undefined
  #report: ShutdownReport | undefined

  constructor (fastify: FastifyInstance) {
    super()
    this.#fastify = fastify
    this.#log = fastify.log.child({ plugin: 'lifecycle' })
  }

  /** The current phase. */
  get phase (): Phase { return this.#phase }

  /** True from `draining` on: stop taking new long work, finish what you have. */
  get shuttingDown (): boolean { return ORDER[this.#phase] >= ORDER.draining }

  /** True once the instance has been `ready` (the pre-stop delay is skipped otherwise). */
  get everReady (): boolean { return this.#everReady }

  /** Aborted when the shutdown starts (`draining`): hand it to background work. */
  get signal (): AbortSignal { return this.#abort.signal }

  /**
   * Aborted just before the drain deadline cuts what is left (see the drain's `abortBefore`):
   * a handler doing long work can stop and answer cleanly instead of being cut mid-write.
   */
  get deadlineSignal (): AbortSignal { return this.#deadline.signal }

  /** @internal the drain aborts it ahead of its deadline. */
  abortDeadline (): void {
    this.#deadline.abort(new Error('drain deadline'))
  }

  /**
   * Registers a connection that never finishes on its own, so the drain can tell it to move
   * (`notify`) when the shutdown starts and end it (`destroy`) at the deadline.
   * WebSockets of @fastify/websocket and SSE responses are registered automatically.
   */
  longLived (connection: LongLivedConnection): LongLivedHandle {
    if (connection === null || typeof connection !== 'object' || typeof connection.kind !== 'string' ||
        typeof connection.notify !== 'function' || typeof connection.destroy !== 'function') {
      throw new FST_LIFECYCLE_INVALID_OPTION('longLived connection', '{ kind: string, notify(): void, destroy(): void }', connection)
    }
    const tracked: TrackedLongLived = { kind: connection.kind, notify: connection.notify, destroy: connection.destroy, notified: false }
    const connections = this.longLivedConnections
    connections.add(tracked)
    this.emit('longLived', tracked)
    return {
      done: () => {
        if (connections.delete(tracked)) this.#checkIdle()
      }
    }
  }

  /** Requests in flight right now (0 unless the drain plugin is registered). */
  get inFlight (): number { return this.#countInFlight() }

  /** @internal the drain plugin says how to count requests in flight. */
  countInFlightWith (counter: () => number): void {
    this.#countInFlight = counter
  }

  /** The shutdown report, once the instance is `closed`. */
  get report (): ShutdownReport | undefined { return this.#report }

  /** Each phase's share of the shutdown deadline, in ms, as registered by the plugins. */
  get budget (): Readonly<Record<string, number>> { return { ...this.#budget } }

  /** Names of the work held with `hold()` and not yet released. */
  get held (): string[] { return [...this.#held].map((work) => work.name) }

  /**
   * Marks work that is not an HTTP request as in progress (a queue message being handled, a
   * scheduled job, a file being written). The drain waits for every held work to be released,
   * up to its deadline, as it waits for requests. Check `signal` before taking new work.
   */
  hold (name: string): HeldWork {
    if (typeof name !== 'string' || name === '') throw new FST_LIFECYCLE_INVALID_OPTION('hold name', 'a non-empty string', name)
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

  /** Resolves once no work is held and no long-lived connection remains (at once if so). */
  idle (): Promise<void> {
    if (this.#isIdle()) return Promise.resolve()
    return new Promise((resolve) => { this.#whenIdle.push(resolve) })
  }

  #isIdle (): boolean {
    return this.#held.size === 0 && this.longLivedConnections.size === 0
  }

  #checkIdle (): void {
    if (this.#isIdle()) for (const resolve of this.#whenIdle.splice(0)) resolve()
  }

  /**
   * Registers something to close at shutdown, after the drain: a pg pool, a Redis client,
   * anything with `end()`, `quit()`, `close()`, `disconnect()` or `destroy()`, or a function.
   * Needs the teardown plugin; see docs/teardown.md for order, timeouts and `after`.
   */
  teardown (name: string, resource: Closable | CloseFunction, options?: TeardownResourceOptions): this {
    if (this.#teardown === undefined) throw new FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED(name)
    this.#teardown.add(name, resource, options)
    return this
  }

  /** @internal the teardown plugin hands its registry over once. */
  useTeardown (registry: TeardownRegistry): void {
    this.#teardown = registry
  }

  /** Start-up tasks not finished yet. */
  get startupPending (): string[] { return [...this.#startupPending] }

  /**
   * A task that must succeed before the instance is `ready` (warm a cache, check migrations,
   * wait for a dependency): tasks run in the background once Fastify is ready, so the server
   * listens while readiness and startup probes still fail. A task that throws is logged and run
   * again after `retryDelay` ms, until it succeeds or the shutdown starts.
   */
  startupTask (name: string, task: () => unknown, options: { retryDelay?: number } = {}): this {
    if (typeof name !== 'string' || name === '' || this.#startupTasks.has(name)) {
      throw new FST_LIFECYCLE_INVALID_OPTION('startupTask name', 'a non-empty string not used by another start-up task', name)
    }
    if (typeof task !== 'function') throw new FST_LIFECYCLE_INVALID_OPTION(`startupTask '${name}'`, 'a function', task)
    if (this.#booted) throw new FST_LIFECYCLE_STARTUP_TASK_LATE(name)
    const retryDelay = duration(`startupTask '${name}' retryDelay`, options.retryDelay, 1000, true)
    this.#startupTasks.set(name, { task, retryDelay })
    this.#startupPending.add(name)
    return this
  }

  /**
   * Takes the instance out of rotation (`false`) or brings it back (`true`) without shutting
   * down: readiness fails while it is false. For blue-green switches and maintenance.
   */
  setReady (ready: boolean): void {
    if (typeof ready !== 'boolean') throw new FST_LIFECYCLE_INVALID_OPTION('setReady', 'a boolean', ready)
    if (ready === this.#manualReady) return
    this.#manualReady = ready
    this.#log.info({ ready }, 'lifecycle: readiness set by hand')
    this.emit('readiness', ready)
  }

  /** False after `setReady(false)`, until `setReady(true)`. */
  get manualReady (): boolean { return this.#manualReady }

  /**
   * Registers a health check, run by the probes of the health plugin (readiness by default).
   * See docs/health.md for timeouts, caching and critical checks.
   */
  check (name: string, fn: CheckFunction, options?: CheckOptions): this {
    if (this.#checks === undefined) throw new FST_LIFECYCLE_HEALTH_NOT_REGISTERED(name)
    this.#checks.add(name, fn, options)
    return this
  }

  /** @internal the health plugin hands its registry over once. */
  useChecks (registry: CheckRegistry): void {
    this.#checks = registry
  }

  /** Should this instance receive traffic now? The phase is `ready` and no one called setReady(false). */
  isReady (): boolean { return this.#phase === 'ready' && this.#manualReady }

  /**
   * Starts the shutdown (`draining`, the before-close steps such as the pre-stop delay, then
   * `fastify.close()`) and resolves with the report once `closed`. Calling it again returns the
   * same promise: one shutdown per instance.
   */
  shutdown (cause: string | ShutdownCause = 'manual'): Promise<ShutdownReport> {
    this.#shutdown ??= this.#runShutdown(typeof cause === 'string' ? { cause } : cause)
    return this.#shutdown
  }

  /**
   * For plugins: work to finish during a phase, in registration order. `draining` steps run
   * after the signal, while still serving (the pre-stop delay), only when the shutdown comes
   * through shutdown(). `closing` steps (the drain) run once the listener is to close and
   * before `fastify.close()`, so Fastify's own 503-while-closing never meets a request on a
   * connection that was already accepted; a direct `fastify.close()` runs them from preClose.
   */
  during (phase: 'draining' | 'closing', step: PhaseStep): void {
    this.#steps[phase].push(step)
  }

  /** For plugins: the time a phase may take at most, checked against the overall deadline. */
  setBudget (name: string, ms: number): void {
    this.#budget[name] = ms
  }

  /** For plugins: what a stage did, shown under `stages` in the report. */
  record (stage: string, data: Record<string, unknown>): void {
    this.#stages[stage] = Object.freeze({ ...data })
  }

  /** For plugins: a stage had to be forced; the shutdown is no longer clean. */
  markForced (stage: string, detail: string): void {
    this.#forced.push(`${stage}: ${detail}`)
  }

  /**
   * The process is about to exit before `closed` (a second signal, the overall deadline): logs
   * the report as it stands, synchronously, and returns it.
   */
  abandon (why: string): ShutdownReport {
    this.markForced('lifecycle', why)
    const report = this.#buildReport(performance.now())
    this.#log.error({ report, phase: this.#phase }, 'lifecycle: shutdown abandoned, exiting now')
    return report
  }

  async #runShutdown (cause: ShutdownCause): Promise<ShutdownReport> {
    this.#cause ??= cause
    this.#driving = true
    this.#enter('draining')
    if (!this.#booted) {
      // close() during Fastify's boot waits for a boot that only the app's own listen() or
      // ready() completes: wait for it here, then close what the boot opened.
      this.#log.info('lifecycle: waiting for start-up to finish before closing')
      await new Promise<void>((resolve) => { this.#onBooted = resolve })
    }
    await this.#runSteps('draining')
    this.#enter('closing')
    await this.#runClosingSteps()
    try {
      await this.#fastify.close()
    } catch (err) {
      this.#closeError = err
      this.markForced('close', `fastify.close() failed: ${messageOf(err)}`)
    }
    this.#enter('closed')
    return this.#report as ShutdownReport
  }

  async #runStartupTasks (): Promise<void> {
    const log = this.#log
    const signal = this.#abort.signal
    log.info({ tasks: this.startupPending }, 'lifecycle: running start-up tasks')
    await Promise.all([...this.#startupTasks].map(async ([name, { task, retryDelay }]) => {
      for (let attempt = 1; !signal.aborted; attempt++) {
        try {
          await task()
          this.#startupPending.delete(name)
          log.info({ task: name, attempt }, 'lifecycle: start-up task done')
          return
        } catch (err) {
          log.error({ err, task: name, attempt, retryDelay }, 'lifecycle: start-up task failed, retrying')
          const pause = deadline(retryDelay)
          const abort = (): void => pause.clear()
          signal.addEventListener('abort', abort, { once: true })
          await pause.promise
          signal.removeEventListener('abort', abort)
        }
      }
    }))
    if (this.#startupPending.size === 0 && this.#phase === 'starting') this.#enter('ready')
  }

  async #runSteps (phase: 'draining' | 'closing'): Promise<void> {
    for (const step of this.#steps[phase]) {
      try {
        await step()
      } catch (err) {
        this.#log.error({ err, phase }, 'lifecycle: a shutdown step failed, moving on')
        this.markForced(phase, `a step failed: ${messageOf(err)}`)
      }
    }
  }

  /** Once per shutdown, whichever path gets here first. */
  #runClosingSteps (): Promise<void> {
    this.#closingSteps ??= this.#runSteps('closing')
    return this.#closingSteps
  }

  /**
   * Adds the hooks that move the phases when the shutdown does not come through shutdown():
   * `ready` when Fastify is ready, `draining` then `closing` when `close()` starts, `closed`
   * when its onClose hooks are done.
   */
  /** @internal called once by useLifecycle(). */
  install (fastify: FastifyInstance): void {
    const lifecycle = this
    fastify.addHook('onReady', async function lifecycleReady () {
      lifecycle.#booted = true
      if (lifecycle.#phase !== 'starting') {
        (lifecycle.#onBooted as () => void)()
      } else if (lifecycle.#startupTasks.size === 0) {
        lifecycle.#enter('ready')
      } else {
        // In the background: the server listens meanwhile, and its probes say `starting`.
        // Never rejects: each task's failure is caught, logged and retried.
        lifecycle.#runStartupTasks()
      }
    })
    fastify.addHook('preClose', async function lifecycleClosing () {
      lifecycle.#enter('draining')
      lifecycle.#enter('closing')
      await lifecycle.#runClosingSteps()
    })
    // Registered when the lifecycle is created, so it runs after the onClose hooks of every
    // plugin registered later. shutdown() enters `closed` itself, once close() has resolved.
    fastify.addHook('onClose', async function lifecycleClosed () {
      if (!lifecycle.#driving) lifecycle.#enter('closed')
    })
  }

  /** Moves forward to `phase`, never backwards and never twice; `ready` only from `starting`. */
  #enter (phase: Phase): void {
    const previous = this.#phase
    if (ORDER[phase] <= ORDER[previous]) return
    const now = performance.now()
    if (phase === 'draining') {
      this.#startedAt = now
    } else if (phase === 'ready') {
      this.#everReady = true
    }
    this.#phase = phase
    if (ORDER[phase] >= ORDER.draining) {
      this.#timings.push({ phase: phase as PhaseTiming['phase'], atMs: roundMs(now - this.#startedAt), inFlight: this.inFlight })
    }
    this.#log.info({ phase, previous, inFlight: this.inFlight }, 'lifecycle: phase changed')
    if (phase === 'draining') this.#abort.abort(new Error(`shutting down (${this.#cause?.cause ?? 'close'})`))
    this.emit('phase', phase, previous)
    if (phase === 'closed') {
      const report = this.#buildReport(now)
      this.#report = report
      this.#log[report.clean ? 'info' : 'warn']({ report }, 'lifecycle: shutdown report')
      this.emit('closed', report)
    } else {
      this.emit(phase as 'ready' | 'draining' | 'closing')
    }
  }

  #buildReport (now: number): ShutdownReport {
    const cause = this.#cause ?? { cause: 'close' }
    const error = cause.error ?? this.#closeError
    const clean = this.#forced.length === 0 && error === undefined
    const phases = this.#timings.map((timing, i, all) => ({
      ...timing,
      durationMs: roundMs((all[i + 1]?.atMs ?? roundMs(now - this.#startedAt)) - timing.atMs)
    }))
    const report: ShutdownReport = {
      cause: cause.cause,
      clean,
      exitCode: clean ? 0 : 1,
      totalMs: roundMs(now - this.#startedAt),
      phases,
      forced: [...this.#forced],
      stages: { ...this.#stages }
    }
    if (error !== undefined) report.error = messageOf(error)
    return report
  }
}

/** The instance's lifecycle, created and hooked in on first use by any fastify-lifecycle plugin. */
export function useLifecycle (fastify: FastifyInstance): Lifecycle {
  if (fastify.hasDecorator('lifecycle')) return fastify.lifecycle
  const lifecycle = new Lifecycle(fastify)
  fastify.decorate('lifecycle', lifecycle)
  lifecycle.install(fastify)
  return lifecycle
}
