import type { IncomingMessage, ServerResponse } from 'node:http'
import { EventEmitter } from 'node:events'
import type { Server as NetServer } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import {
  FST_LIFECYCLE_ALREADY_REGISTERED,
  FST_LIFECYCLE_HEALTH_NOT_REGISTERED,
  FST_LIFECYCLE_INVALID_ARGUMENT,
  FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED
} from './errors.js'
import type { CheckFunction, CheckOptions, CheckRegistry } from './health.js'
import { ReportBuilder, type Phase, type ReportStages, type ShutdownCause, type ShutdownReport } from './report.js'
import { channels, type NotReadyReason } from './channels.js'
import { StartupTasks, type StartupTaskOptions } from './startup.js'
import {
  kAbandon,
  kAbortDeadline,
  kBeforeExit,
  kBootFailed,
  kChecks,
  kConnections,
  kClaim,
  kCountInFlight,
  kDeadline,
  kExit,
  kLifecycle,
  kListenFailed,
  kLiveness,
  kMarkForced,
  kProbe,
  kProbeRoutes,
  kReadinessReason,
  kReadyCheck,
  kRecord,
  kServing,
  kHandedOver,
  kProbeServer,
  kSuccessorEnv,
  kOnHandoff,
  kSharedListener,
  kTeardown,
  kWork
} from './symbols.js'
import type { Closable, CloseFunction, TeardownRegistry, TeardownResourceOptions } from './teardown.js'
import { logFatal } from './fatal.js'
import { messageOf } from './timers.js'
import { WorkRegistry, type HeldWork, type LongLivedConnection, type LongLivedHandle, type TrackedLongLived } from './work.js'

export type { Phase, ShutdownCause, ShutdownReport, PhaseTiming, ReportStages, PreStopStage, PreStopEnd, DrainStage, TeardownStage, LongLivedCounts } from './report.js'
export type { HeldWork, LongLivedConnection, LongLivedHandle, TrackedLongLived } from './work.js'
export type { StartupTaskOptions } from './startup.js'
export type { NotReadyReason, PhaseMessage, ReadinessMessage, CheckMessage, ReportMessage } from './channels.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Shutdown and readiness state shared by every fastify-lifecycle plugin: one per server. */
    lifecycle: Lifecycle
  }
}

const ORDER: Readonly<Record<Phase, number>> = { starting: 0, ready: 1, draining: 2, closing: 3, closed: 4 }

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

/** @internal What a watchdog needs of the liveness probe. */
export interface LivenessProbe {
  /** True when liveness passes now. */
  passes: () => Promise<boolean>
  /** The event-loop delay over which liveness fails, in ms, when it watches it. */
  eventLoopThreshold: () => number | undefined
}

/** Work a plugin does during a phase of the shutdown, before the next phase starts. */
export type PhaseStep = () => Promise<void> | void

/** @internal a handoff's steps: `starting` (with the signal), `rolled back` (why), `handed over` (the new pid). */
export type HandoffListener = (step: 'starting' | 'rolled back' | 'handed over', detail: string) => void

/**
 * The one state machine per Fastify server. Plugins read `phase`, listen to its events and
 * feed it through the members keyed by the symbols of lib/symbols.ts; users see the rest.
 * Held work and long-lived connections live in lib/work.ts, start-up tasks in lib/startup.ts,
 * the report in lib/report.ts.
 */
export class Lifecycle extends EventEmitter<LifecycleEvents> {
  readonly #fastify: FastifyInstance
  readonly #log: FastifyBaseLogger
  readonly #abort = new AbortController()
  readonly #deadline = new AbortController()
  readonly #steps: Record<'draining' | 'closing', PhaseStep[]> = { draining: [], closing: [] }
  readonly #readyChecks: Array<() => void> = []
  readonly #onBootFailed: Array<(err: unknown) => void> = []
  readonly #claimed = new Set<string>()
  readonly #work = new WorkRegistry((connection) => { this.emit('longLived', connection) })
  readonly #startup = new StartupTasks()
  readonly #report = new ReportBuilder()
  readonly #budget: Record<string, number> = {}
  #closingSteps: Promise<void> | undefined
  #teardown: TeardownRegistry | undefined
  #checks: CheckRegistry | undefined
  #countInFlight: () => number = () => 0
  #listenFailed = false
  #lastReason: NotReadyReason | undefined = 'starting'
  readonly #createdAt = performance.now()
  #readyAt: number | undefined
  /** @internal extra routes of the health plugin's probe listener, by path; undefined without one. */
  [kProbeRoutes]: Map<string, (request: IncomingMessage, response: ServerResponse) => void> | undefined
  /**
   * @internal which requests to the service's server are the health plugin's probes (set by it
   * when it serves them there): they are not traffic to the pre-stop window.
   */
  [kProbe]: (url: string) => boolean
  /** @internal why readiness fails now: the lifecycle's reason, or the health plugin's, which adds checks and pressure. */
  [kReadinessReason]: () => NotReadyReason | undefined
  /** @internal open connections by protocol, counted by the drain. */
  [kConnections]: () => Record<string, number>
  /** @internal the graceful plugin's overall deadline, in ms. */
  [kDeadline]: number | undefined
  /** @internal the graceful plugin's shutdown-then-exit, for a shutdown asked for by a message (PM2). */
  [kExit]: ((why: string) => void) | undefined
  /** @internal the health plugin's liveness, for a watchdog. */
  [kLiveness]: LivenessProbe | undefined
  /** @internal set by the systemd plugin: the listening socket outlives this process. */
  /** @internal set by the reload piece: another process serves this listener now (a reload), so no load balancer is to be waited for. */
  [kHandedOver]: boolean
  /** @internal the health plugin's probe listener, when it has a port of its own (a handoff passes it on). */
  [kProbeServer]: NetServer | undefined
  /** @internal variables a handoff's new process gets, set by the plugins that took them from the environment. */
  readonly [kSuccessorEnv]: Record<string, string | undefined>
  /** @internal told when a handoff starts, rolls back (why), or is done (the new pid). */
  readonly [kOnHandoff]: HandoffListener[]
  /** @internal set by the systemd and reload plugins: the listening socket outlives this process, or another one shares it. */
  [kSharedListener] = false
  /**
   * @internal work to finish between the report and the process exit (the last notification
   * to a service manager); the graceful plugin awaits it, bounded.
   */
  readonly [kBeforeExit]: Array<() => Promise<void>> = []
  #manualReady = true
  #phase: Phase = 'starting'
  #everReady = false
  #cause: ShutdownCause | undefined
  #closeError: unknown
  #driving = false
  #booted = false
  #onBooted: (() => void) | undefined
  #shutdown: Promise<ShutdownReport> | undefined
  #final: ShutdownReport | undefined

  /** @internal created by useLifecycle(), once per server. */
  constructor (fastify: FastifyInstance) {
    super()
    this.#fastify = fastify
    this.#log = fastify.log.child({ plugin: 'lifecycle' })
    // What the plugins replace when they are registered: no probes, no health, no drain.
    this[kProbe] = () => false
    this[kReadinessReason] = () => this.notReadyReason
    this[kConnections] = () => ({})
    this[kHandedOver] = false
    this[kSuccessorEnv] = {}
    this[kOnHandoff] = []
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

  /** Should this instance receive traffic now? The phase is `ready` and no one called setReady(false). */
  isReady (): boolean { return this.#phase === 'ready' && this.#manualReady && !this.#listenFailed }

  /** Requests in flight right now (0 unless the drain plugin is registered). */
  get inFlight (): number { return this.#countInFlight() }

  /** The shutdown report, once the instance is `closed`. */
  get report (): ShutdownReport | undefined { return this.#final }

  /** Each phase's share of the shutdown deadline, in ms, as registered by the plugins. */
  get budget (): Readonly<Record<string, number>> { return { ...this.#budget } }

  /**
   * Marks work that is not an HTTP request as in progress (a queue message being handled, a
   * scheduled job, a file being written). The drain waits for every held work to be released,
   * up to its deadline, as it waits for requests. Check `signal` before taking new work.
   */
  hold (name: string): HeldWork { return this.#work.hold(name) }

  /** Names of the work held with `hold()` and not yet released. */
  get held (): string[] { return this.#work.held }

  /** Resolves once no work is held and no long-lived connection remains (at once if so). */
  idle (): Promise<void> { return this.#work.idle() }

  /**
   * Registers a connection that never finishes on its own, so the drain can tell it to move
   * (`notify`) when the shutdown starts and end it (`destroy`) at the deadline.
   * WebSockets of @fastify/websocket and SSE responses are registered automatically.
   */
  longLived (connection: LongLivedConnection): LongLivedHandle { return this.#work.longLived(connection) }

  /** Long-lived connections registered and not ended yet. Read it; register with `longLived()`. */
  get longLivedConnections (): ReadonlySet<Readonly<TrackedLongLived>> { return this.#work.connections }

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

  /**
   * Registers a health check, run by the probes of the health plugin (readiness by default).
   * See docs/health.md for timeouts, caching and critical checks.
   */
  check (name: string, fn: CheckFunction, options?: CheckOptions): this {
    if (this.#checks === undefined) throw new FST_LIFECYCLE_HEALTH_NOT_REGISTERED(name)
    this.#checks.add(name, fn, options)
    return this
  }

  /**
   * A task that must succeed before the instance is `ready` (warm a cache, check migrations,
   * wait for a dependency): tasks run in the background once Fastify is ready, so the server
   * listens while readiness and startup probes still fail. A task that throws is logged and run
   * again after `retryDelay` ms, until it succeeds or the shutdown starts.
   */
  startupTask (name: string, task: () => unknown, options?: StartupTaskOptions): this {
    this.#startup.add(name, task, options)
    return this
  }

  /** Start-up tasks not finished yet. */
  get startupPending (): string[] { return this.#startup.pending }

  /** How long each start-up task took to succeed, in ms, retries included (those done so far). */
  get startupDurations (): ReadonlyMap<string, number> { return this.#startup.durations }

  /** From the lifecycle's creation (the first fastify-lifecycle plugin registered) to `ready`, in ms; undefined before. */
  get startupMs (): number | undefined { return this.#readyAt === undefined ? undefined : this.#readyAt - this.#createdAt }

  /**
   * Takes the instance out of rotation (`false`) or brings it back (`true`) without shutting
   * down: readiness fails while it is false. For blue-green switches and maintenance.
   */
  setReady (ready: boolean): void {
    if (typeof ready !== 'boolean') throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.setReady(): ready', 'a boolean', ready)
    if (ready === this.#manualReady) return
    this.#manualReady = ready
    this.#log.info({ ready }, 'lifecycle: readiness set by hand')
    this.emit('readiness', ready)
    this.#readinessChanged()
  }

  /** False after `setReady(false)`, until `setReady(true)`. */
  get manualReady (): boolean { return this.#manualReady }

  /**
   * Why `isReady()` is false, or undefined when it is true: `starting` (the boot), `startup-task`
   * (start-up tasks still running), `shutdown` (from the signal on), `manual` (`setReady(false)`),
   * `listen-failed`. The readiness probe adds `check` and `pressure` for its own reasons.
   */
  get notReadyReason (): NotReadyReason | undefined {
    if (this.#listenFailed) return 'listen-failed'
    if (this.#phase === 'starting') return this.#startup.pending.length > 0 ? 'startup-task' : 'starting'
    if (this.#phase !== 'ready') return 'shutdown'
    return this.#manualReady ? undefined : 'manual'
  }

  /** Publishes a readiness change on `fastify-lifecycle:readiness`, once per change. */
  #readinessChanged (): void {
    const reason = this.notReadyReason
    if (reason === this.#lastReason) return
    this.#lastReason = reason
    if (channels.readiness.hasSubscribers) channels.readiness.publish({ server: this.#fastify.server, ready: reason === undefined, reason })
  }

  /**
   * Starts the shutdown (`draining`, the before-close steps such as the pre-stop delay, then
   * `fastify.close()`) and resolves with the report once `closed`. Calling it again returns the
   * same promise: one shutdown per instance.
   */
  shutdown (cause: string | ShutdownCause = 'manual'): Promise<ShutdownReport> {
    if (typeof cause !== 'string' && (cause === null || typeof cause !== 'object' || typeof cause.cause !== 'string')) {
      throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.shutdown(): cause', 'a string or { cause: string, error?: unknown }', cause)
    }
    this.#shutdown ??= this.#runShutdown(typeof cause === 'string' ? { cause } : cause)
    return this.#shutdown
  }

  /**
   * For plugin authors: work to finish during a phase, in registration order. `draining` steps
   * run after the signal, while still serving (the pre-stop delay is one), only when the
   * shutdown comes through shutdown(). `closing` steps (the drain) run once the listener is to
   * close and before `fastify.close()`, so Fastify's own 503-while-closing never meets a request
   * on a connection that was already accepted; a direct `fastify.close()` runs them from
   * preClose. A step that throws is logged, counted as forced, and the shutdown goes on.
   */
  during (phase: 'draining' | 'closing', step: PhaseStep): void {
    if (phase !== 'draining' && phase !== 'closing') {
      throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.during(): phase', "'draining' or 'closing'", phase)
    }
    if (typeof step !== 'function') throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.during(): step', 'a function', step)
    this.#steps[phase].push(step)
  }

  /** For plugin authors: the time a phase may take at most, checked against the overall deadline when ready. */
  setBudget (name: string, ms: number): void {
    if (typeof name !== 'string' || name === '') throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.setBudget(): name', 'a non-empty string', name)
    if (!Number.isSafeInteger(ms) || ms < 0) throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.setBudget(): ms', 'a non-negative integer of ms', ms)
    this.#budget[name] = ms
  }

  /** @internal what a stage did, shown under `stages` in the report. */
  [kRecord]<K extends keyof ReportStages> (stage: K, data: NonNullable<ReportStages[K]>): void {
    this.#report.record(stage, data)
  }

  /** @internal a stage had to be forced; the shutdown is no longer clean. */
  [kMarkForced] (stage: string, detail: string): void {
    this.#report.markForced(stage, detail)
  }

  /** @internal the drain says how to count requests in flight. */
  [kCountInFlight] (counter: () => number): void {
    this.#countInFlight = counter
  }

  /** @internal the drain aborts `deadlineSignal` ahead of its deadline. */
  [kAbortDeadline] (): void {
    this.#deadline.abort(new Error('drain deadline'))
  }

  /** @internal the health plugin hands its registry over; with no argument, reads it. */
  [kChecks] (registry?: CheckRegistry): CheckRegistry | undefined {
    if (registry !== undefined) this.#checks = registry
    return this.#checks
  }

  /** @internal the teardown plugin hands its registry over. */
  [kTeardown] (registry: TeardownRegistry): void { this.#teardown = registry }

  /** @internal held work and long-lived connections, writable, for the drain. */
  get [kWork] (): WorkRegistry { return this.#work }

  /**
   * @internal each piece registers once per server, whatever the context: a second suite or
   * graceful plugin would install a second set of signal handlers.
   */
  [kClaim] (piece: string, what: string): void {
    if (this.#claimed.has(piece)) throw new FST_LIFECYCLE_ALREADY_REGISTERED(piece, what)
    this.#claimed.add(piece)
  }

  /**
   * @internal a check run when Fastify is ready, before the lifecycle enters `ready`: one that
   * throws fails the boot and leaves the instance `starting` (probes fail).
   */
  [kReadyCheck] (check: () => void): void {
    this.#readyChecks.push(check)
  }

  /**
   * @internal `listener` is called when a ready check fails the boot: the instance will never
   * be ready (the health plugin closes its probe listener).
   */
  [kBootFailed] (listener: (err: unknown) => void): void {
    this.#onBootFailed.push(listener)
  }

  /**
   * @internal `listener` runs once the lifecycle is `ready` and the server listens, whichever
   * comes last: what a process manager calls ready (start-up tasks done, connections accepted).
   */
  [kServing] (listener: () => void): void {
    const server = this.#fastify.server
    const whenListening = (): void => {
      if (server.listening) listener()
      else server.once('listening', listener)
    }
    if (this.#phase === 'ready') whenListening()
    else this.once('ready', whenListening)
  }

  /** @internal true once the server's listen() failed: it was `ready` but never served. */
  get [kListenFailed] (): boolean { return this.#listenFailed }

  /**
   * @internal the process is about to exit before `closed` (a second signal, the overall
   * deadline): logs the report as it stands, synchronously, and returns it.
   */
  [kAbandon] (why: string): ShutdownReport {
    this.#report.markForced('lifecycle', why)
    const report = this.#report.build(performance.now(), this.#cause ?? { cause: 'close' }, this.#closeError)
    logFatal(this.#log, { report, phase: this.#phase }, 'lifecycle: shutdown abandoned, exiting now')
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
      this.#report.markForced('close', `fastify.close() failed: ${messageOf(err)}`)
    }
    this.#enter('closed')
    return this.#final as ShutdownReport
  }

  async #runSteps (phase: 'draining' | 'closing'): Promise<void> {
    for (const step of this.#steps[phase]) {
      try {
        await step()
      } catch (err) {
        this.#log.error({ err, phase }, 'lifecycle: a shutdown step failed, moving on')
        this.#report.markForced(phase, `a step failed: ${messageOf(err)}`)
      }
    }
  }

  /** Once per shutdown, whichever path gets here first. */
  #runClosingSteps (): Promise<void> {
    this.#closingSteps ??= this.#runSteps('closing')
    return this.#closingSteps
  }

  async #startUp (): Promise<void> {
    if (await this.#startup.run(this.#abort.signal, this.#log)) this.#enter('ready')
  }

  /**
   * @internal called once, by useLifecycle(): the hooks that move the phases when the
   * shutdown does not come through shutdown(): `ready` when Fastify is ready and every ready
   * check passed, `draining` then `closing` when `close()` starts, `closed` when its onClose
   * hooks are done.
   */
  install (fastify: FastifyInstance): void {
    const lifecycle = this
    fastify.addHook('onReady', async function lifecycleReady () {
      lifecycle.#booted = true
      if (lifecycle.#phase !== 'starting') {
        (lifecycle.#onBooted as () => void)()
        return
      }
      // A check that throws fails the boot here, before anything could call this instance ready.
      try {
        for (const check of lifecycle.#readyChecks) check()
      } catch (err) {
        lifecycle.#log.error({ err }, 'lifecycle: start-up failed, this instance will never be ready')
        for (const listener of lifecycle.#onBootFailed) listener(err)
        throw err
      }
      lifecycle.#startup.close()
      if (lifecycle.#startup.size === 0) {
        lifecycle.#enter('ready')
      } else {
        lifecycle.#readinessChanged()
        // In the background: the server listens meanwhile, and its probes say `starting`.
        // Never rejects: each task's failure is caught, logged and retried.
        lifecycle.#startUp()
      }
    })
    // listen() comes after ready: a port taken (EADDRINUSE) or forbidden (EACCES) fails a boot
    // that the ready checks had passed. The instance will never serve: it must not say ready,
    // and its probe listener closes as for any failed boot. Watched until the server listens.
    const server = fastify.server
    function listenFailed (err: Error): void {
      lifecycle.#listenFailed = true
      lifecycle.#readinessChanged()
      lifecycle.#log.error({ err }, 'lifecycle: the server failed to listen, this instance will never be ready')
      for (const listener of lifecycle.#onBootFailed) listener(err)
    }
    server.once('error', listenFailed)
    server.once('listening', function listening () { server.removeListener('error', listenFailed) })
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
      this.#report.start(now)
    } else if (phase === 'ready') {
      this.#everReady = true
      this.#readyAt = now
    }
    this.#phase = phase
    const inFlight = this.inFlight
    if (phase !== 'ready' && phase !== 'starting') this.#report.phase(phase, now, inFlight)
    this.#log.info({ phase, previous, inFlight }, 'lifecycle: phase changed')
    if (phase === 'draining') this.#abort.abort(new Error(`shutting down (${this.#cause?.cause ?? 'close'})`))
    this.emit('phase', phase, previous)
    if (channels.phase.hasSubscribers) channels.phase.publish({ server: this.#fastify.server, phase, previous })
    this.#readinessChanged()
    if (phase === 'closed') {
      const report = this.#report.build(now, this.#cause ?? { cause: 'close' }, this.#closeError)
      this.#final = report
      this.#log[report.clean ? 'info' : 'warn']({ report }, 'lifecycle: shutdown report')
      if (channels.report.hasSubscribers) channels.report.publish({ server: this.#fastify.server, report })
      this.emit('closed', report)
    } else {
      this.emit(phase as 'ready' | 'draining' | 'closing')
    }
  }
}

interface ServerWithLifecycle { [kLifecycle]?: Lifecycle }

/**
 * The server's lifecycle, created and hooked in on first use by any fastify-lifecycle plugin.
 * It is keyed on the server object, not on the plugin context: pieces registered in sibling
 * `register()` contexts share one lifecycle, one budget and one report. Each context that asks
 * for it gets the `fastify.lifecycle` decorator, pointing at that one lifecycle.
 */
export function useLifecycle (fastify: FastifyInstance): Lifecycle {
  const server = fastify.server as unknown as ServerWithLifecycle
  let lifecycle = server[kLifecycle]
  if (lifecycle === undefined) {
    lifecycle = new Lifecycle(fastify)
    server[kLifecycle] = lifecycle
    lifecycle.install(fastify)
  }
  if (!fastify.hasDecorator('lifecycle')) {
    try {
      fastify.decorate('lifecycle', lifecycle)
    } catch {
      // FST_ERR_DEC_AFTER_START, the one error decorate() can throw for a name not present:
      // asked for from a context that has already started (a route handler, after ready). The
      // lifecycle is the server's all the same; only this context's decorator cannot be added.
    }
  }
  return lifecycle
}
