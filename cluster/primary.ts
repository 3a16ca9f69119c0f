import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { FST_LIFECYCLE_CLUSTER, FST_LIFECYCLE_INVALID_OPTION } from '../lib/errors.js'
import { IPC_ENV, KEY, protocolMessage, type ChildMessage, type ShutdownMessage } from '../lib/ipc.js'
import type { ShutdownReport } from '../lib/report.js'
import { checkKnownKeys, duration, keysOf } from '../lib/options.js'
import { deadline, roundMs, settleWithin, wait } from '../lib/timers.js'

/** Signals that can ask the primary for a reload. */
export const RELOAD_SIGNALS = Object.freeze(['SIGHUP', 'SIGUSR2'] as const)
export type ReloadSignal = typeof RELOAD_SIGNALS[number]

/** What the primary logs with: pino's `info(object, message)` shape. */
export interface PrimaryLogger {
  info: (object: object, message: string) => void
  warn: (object: object, message: string) => void
  error: (object: object, message: string) => void
}

export interface PrimaryOptions {
  /** The script the workers run. @default the primary's own script (`process.argv[1]`): branch on `cluster.isPrimary` */
  exec?: string | undefined
  /** Arguments for the workers' script. @default the primary's own */
  args?: readonly string[] | undefined
  /** Node options for the workers (`--enable-source-maps`). @default the primary's own */
  execArgv?: readonly string[] | undefined
  /** Extra environment for the workers, added to the primary's. */
  env?: Readonly<Record<string, string>> | undefined
  /** How many workers serve. @default os.availableParallelism() */
  workers?: number | undefined
  /** How long a new worker has to be ready (start-up tasks done, listening) before it counts as failed, in ms. @default 30000 */
  readyTimeout?: number | undefined
  /**
   * How long a worker asked to shut down has before SIGKILL, in ms: above its own
   * `graceful.timeout` (25000 by default), so that it is never cut by the primary. @default 30000
   */
  stopTimeout?: number | undefined
  /** The signal that replaces the workers one at a time; `false` for none (call `reload()`). @default 'SIGHUP' */
  reloadSignal?: ReloadSignal | false | undefined
  /** Where the primary's lines go; the default writes JSON lines (pino's format) to stdout. */
  logger?: PrimaryLogger | undefined
}

/** One worker's part in a reload. */
export interface ReloadStep {
  /** The worker replaced; undefined when the reload stopped at its new worker. */
  oldPid: number | undefined
  newPid: number | undefined
  /** From the fork to the new worker's `ready`, in ms; undefined when it never was. */
  readyMs: number | undefined
  /** From asking the old worker to shut down to its exit, in ms. */
  drainMs: number | undefined
  /** How the old worker (or, on a rollback, the new one) exited. */
  exitCode: number | null | undefined
  signal: NodeJS.Signals | null | undefined
}

/** What one reload did: `replaced` every worker, or stopped at one whose new worker failed (`rolled back`). */
export interface ReloadReport {
  outcome: 'replaced' | 'rolled back' | 'skipped'
  /** Why the reload stopped or was skipped. */
  reason: string | undefined
  durationMs: number
  steps: ReloadStep[]
}

export interface Primary {
  /** The pids of the workers serving now. */
  readonly pids: readonly number[]
  /** Replaces the workers one at a time, start-first, as the reload signal does. */
  reload: () => Promise<ReloadReport>
  /** Shuts every worker down gracefully and exits with their combined outcome, as SIGTERM does. */
  shutdown: (reason?: string) => Promise<never>
}

const KEYS = keysOf<PrimaryOptions>()({ exec: true, args: true, execArgv: true, env: true, workers: true, readyTimeout: true, stopTimeout: true, reloadSignal: true, logger: true })

interface Resolved {
  exec: string | undefined
  args: readonly string[] | undefined
  execArgv: readonly string[] | undefined
  env: Readonly<Record<string, string>>
  workers: number
  readyTimeout: number
  stopTimeout: number
  reloadSignal: ReloadSignal | false
  logger: PrimaryLogger
}

function strings (name: string, value: unknown): readonly string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.some((item) => typeof item !== 'string')) throw new FST_LIFECYCLE_INVALID_OPTION(name, 'an array of strings', value)
  return Object.freeze([...value as string[]])
}

function resolvePrimaryOptions (input: unknown): Resolved {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new FST_LIFECYCLE_INVALID_OPTION('options', 'an object', input)
  checkKnownKeys('', input, KEYS)
  const options = input as PrimaryOptions
  if (options.exec !== undefined && (typeof options.exec !== 'string' || options.exec === '')) throw new FST_LIFECYCLE_INVALID_OPTION('exec', 'the path of a script', options.exec)
  const workers = options.workers ?? availableParallelism()
  if (!Number.isSafeInteger(workers) || workers < 1) throw new FST_LIFECYCLE_INVALID_OPTION('workers', 'a positive integer', workers)
  const env = options.env ?? {}
  if (typeof env !== 'object' || Object.values(env).some((value) => typeof value !== 'string')) throw new FST_LIFECYCLE_INVALID_OPTION('env', 'an object of strings', env)
  const reloadSignal = options.reloadSignal ?? 'SIGHUP'
  if (reloadSignal !== false && !RELOAD_SIGNALS.includes(reloadSignal)) throw new FST_LIFECYCLE_INVALID_OPTION('reloadSignal', `one of ${RELOAD_SIGNALS.join(', ')}, or false`, reloadSignal)
  const logger = options.logger ?? jsonLogger
  if (typeof logger !== 'object' || ['info', 'warn', 'error'].some((level) => typeof (logger as unknown as Record<string, unknown>)[level] !== 'function')) {
    throw new FST_LIFECYCLE_INVALID_OPTION('logger', 'an object with info, warn and error methods (a pino logger)', logger)
  }
  return {
    exec: options.exec,
    args: strings('args', options.args),
    execArgv: strings('execArgv', options.execArgv),
    env: Object.freeze({ ...env }),
    workers,
    readyTimeout: duration('readyTimeout', options.readyTimeout, 30_000, true),
    stopTimeout: duration('stopTimeout', options.stopTimeout, 30_000, true),
    reloadSignal,
    logger
  }
}

const LEVELS = { info: 30, warn: 40, error: 50 } as const

function line (level: keyof typeof LEVELS, object: object, msg: string): void {
  const text = JSON.stringify({ level: LEVELS[level], time: Date.now(), pid: process.pid, name: 'primary', ...object, msg }) + '\n'
  process.stdout.write(text)
}

/** The default logger: JSON lines on stdout, as pino writes them (one stream for every level). */
const jsonLogger: PrimaryLogger = {
  info: (object, msg) => { line('info', object, msg) },
  warn: (object, msg) => { line('warn', object, msg) },
  error: (object, msg) => { line('error', object, msg) }
}

type Outcome = { ready: true } | { ready: false, reason: string }

/** A worker as the primary follows it. */
class Tracked {
  readonly worker: Worker
  readonly pid: number
  readonly forkedAt = performance.now()
  readyMs: number | undefined
  /** Asked to shut down (a reload, the primary's shutdown, a rollback): its exit is expected. */
  stopping = false
  readonly ready: Promise<Outcome>
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>

  constructor (worker: Worker, readyTimeout: number, onReport: (pid: number, report: ShutdownReport) => void) {
    this.worker = worker
    this.pid = worker.process.pid as number
    this.exited = once(worker, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }))
    const timer = deadline(readyTimeout)
    this.ready = new Promise<Outcome>((resolve) => {
      worker.on('message', (raw: unknown) => {
        const message = protocolMessage<ChildMessage>(raw)
        if (message?.[KEY] === 'ready') {
          this.readyMs = roundMs(performance.now() - this.forkedAt)
          resolve({ ready: true })
        } else if (message?.[KEY] === 'report') {
          onReport(this.pid, message.report)
        }
      })
      this.exited.then(({ code, signal }) => { resolve({ ready: false, reason: `exited (${signal ?? `code ${code}`}) before it was ready` }) })
      timer.promise.then(() => { resolve({ ready: false, reason: `was not ready within readyTimeout (${readyTimeout}ms)` }) })
    }).finally(() => { timer.clear() })
  }
}

let started = false

/**
 * Runs a cluster primary: it holds the listening socket (node:cluster), starts `workers`
 * workers running the app with the suite, and resolves once every one of them is ready.
 * - The reload signal (SIGHUP) replaces the workers one at a time, start-first: a new worker,
 *   its `ready` over IPC, then a graceful shutdown of one old worker (no pre-stop wait: the
 *   other workers serve). A new worker that exits or is not ready within `readyTimeout` stops
 *   the reload: it is shut down and the old workers keep serving (rollback).
 * - SIGTERM or SIGINT shuts every worker down gracefully (pre-stop, drain, teardown) and exits
 *   0 when every one exited 0, else 1. A second one kills them and exits 1.
 * - A worker that exits on its own is replaced (after 1 s, doubling up to 30 s while its
 *   replacements fail).
 * Each worker's shutdown report is logged by the primary too, with its pid. If the workers
 * cannot start, the primary stops them and exits 1.
 */
export async function startPrimary (options: PrimaryOptions = {}): Promise<Primary> {
  if (!cluster.isPrimary) throw new FST_LIFECYCLE_CLUSTER('startPrimary() was called in a worker; call it when cluster.isPrimary, and start the app otherwise')
  if (started) throw new FST_LIFECYCLE_CLUSTER('startPrimary() was called twice in this process')
  const config = resolvePrimaryOptions(options)
  started = true
  const log = config.logger
  cluster.setupPrimary({
    ...(config.exec === undefined ? {} : { exec: config.exec }),
    ...(config.args === undefined ? {} : { args: [...config.args] }),
    ...(config.execArgv === undefined ? {} : { execArgv: [...config.execArgv] })
  })

  const live = new Set<Tracked>()
  let reloading: Promise<ReloadReport> | undefined
  let stopping: Promise<never> | undefined
  let respawnDelay = 1000

  function fork (): Tracked {
    const tracked = new Tracked(cluster.fork({ ...config.env, [IPC_ENV]: 'cluster' }), config.readyTimeout, function forwardReport (pid, report) {
      log[report.clean ? 'info' : 'warn']({ worker: pid, exitCode: report.exitCode, totalMs: report.totalMs, forced: report.forced, report }, 'primary: worker shutdown report')
    })
    live.add(tracked)
    tracked.exited.then(({ code, signal }) => {
      live.delete(tracked)
      if (tracked.stopping || stopping !== undefined || tracked.readyMs === undefined) return
      log.error({ worker: tracked.pid, code, signal }, 'primary: a worker exited on its own; starting another')
      respawn()
    })
    return tracked
  }

  function respawn (): void {
    const next = fork()
    next.ready.then(async (outcome) => {
      if (outcome.ready) {
        respawnDelay = 1000
        log.info({ worker: next.pid, readyMs: next.readyMs }, 'primary: replacement worker ready')
        return
      }
      log.error({ worker: next.pid, reason: outcome.reason, retryInMs: respawnDelay }, `primary: the replacement worker ${outcome.reason}`)
      await stop(next, 'failed to start', false)
      await wait(respawnDelay)
      respawnDelay = Math.min(respawnDelay * 2, 30_000)
      if (stopping === undefined) respawn()
    })
  }

  /** Asks a worker to shut down (over IPC, as a signal would), SIGKILL after stopTimeout. */
  async function stop (tracked: Tracked, reason: string, handover: boolean): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    tracked.stopping = true
    if (tracked.readyMs !== undefined && tracked.worker.isConnected()) {
      const message: ShutdownMessage = { [KEY]: 'shutdown', reason, handover }
      tracked.worker.send(message)
    } else {
      // Still booting, its message listener may not be there yet (a message would be lost):
      // SIGTERM, which the graceful plugin handles once registered, and which ends a worker
      // that serves nothing yet otherwise. Or it exited, or is leaving already.
      tracked.worker.process.kill('SIGTERM')
    }
    if ((await settleWithin(() => tracked.exited, config.stopTimeout)).status !== 'timed out') return tracked.exited
    log.error({ worker: tracked.pid, stopTimeout: config.stopTimeout }, 'primary: a worker did not exit within stopTimeout, killing it')
    tracked.worker.process.kill('SIGKILL')
    return tracked.exited
  }

  async function replaceAll (): Promise<ReloadReport> {
    const began = performance.now()
    const steps: ReloadStep[] = []
    const old = [...live].filter((tracked) => !tracked.stopping)
    log.info({ workers: old.map((tracked) => tracked.pid) }, 'primary: reload started, replacing workers one at a time')
    const interrupted = (): ReloadReport => ({ outcome: 'rolled back', reason: 'the primary is shutting down', durationMs: roundMs(performance.now() - began), steps })
    for (const previous of old) {
      // The shutdown stops every worker there is: no new one is started past it.
      if (stopping !== undefined) return interrupted()
      const next = fork()
      const outcome = await next.ready
      if (stopping !== undefined) return interrupted()
      if (!outcome.ready) {
        const exit = await stop(next, 'reload rolled back', false)
        steps.push({ oldPid: undefined, newPid: next.pid, readyMs: undefined, drainMs: undefined, exitCode: exit.code, signal: exit.signal })
        return { outcome: 'rolled back', reason: `new worker ${next.pid} ${outcome.reason}`, durationMs: roundMs(performance.now() - began), steps }
      }
      const drainStart = performance.now()
      const exit = await stop(previous, 'reload', true)
      steps.push({ oldPid: previous.pid, newPid: next.pid, readyMs: next.readyMs, drainMs: roundMs(performance.now() - drainStart), exitCode: exit.code, signal: exit.signal })
    }
    return { outcome: 'replaced', reason: undefined, durationMs: roundMs(performance.now() - began), steps }
  }

  function reload (): Promise<ReloadReport> {
    if (stopping !== undefined || reloading !== undefined) {
      const reason = stopping !== undefined ? 'the primary is shutting down' : 'a reload is already under way'
      log.warn({ reason }, 'primary: reload skipped')
      return Promise.resolve({ outcome: 'skipped', reason, durationMs: 0, steps: [] })
    }
    reloading = replaceAll().then((report) => {
      if (report.outcome === 'replaced') log.info({ ...report }, 'primary: reload complete, every worker replaced')
      else log.error({ ...report }, `primary: reload rolled back, the old workers keep serving: ${report.reason}`)
      reloading = undefined
      return report
    })
    return reloading
  }

  function shutdown (reason = 'shutdown'): Promise<never> {
    stopping ??= (async () => {
      log.info({ reason, workers: [...live].map((tracked) => tracked.pid) }, 'primary: shutting every worker down')
      const exits = await Promise.all([...live].map((tracked) => stop(tracked, reason, false).then((exit) => ({ pid: tracked.pid, ready: tracked.readyMs !== undefined, ...exit }))))
      // A reload under way ends with the workers: its report comes before the exit.
      await reloading
      // A worker stopped while it booted served nothing: how it ended loses nothing.
      const failed = exits.filter((exit) => exit.ready && exit.code !== 0)
      const exitCode = failed.length === 0 ? 0 : 1
      log[exitCode === 0 ? 'info' : 'warn']({ exitCode, workers: exits }, 'primary: every worker stopped, exiting')
      process.exit(exitCode)
    })()
    return stopping
  }

  const signals = ['SIGTERM', 'SIGINT'] as const
  for (const signal of signals) {
    process.on(signal, function onStopSignal () {
      if (stopping === undefined) {
        shutdown(signal)
        return
      }
      log.error({ signal }, `primary: second ${signal}, killing the workers`)
      for (const tracked of live) tracked.worker.process.kill('SIGKILL')
      process.exit(1)
    })
  }
  if (config.reloadSignal !== false) process.on(config.reloadSignal, function onReloadSignal () { reload() })

  log.info({ workers: config.workers, reloadSignal: config.reloadSignal }, 'primary: starting workers')
  const first = Array.from({ length: config.workers }, fork)
  const outcomes = await Promise.all(first.map((tracked) => tracked.ready))
  const failure = outcomes.findIndex((outcome) => !outcome.ready)
  if (failure !== -1) {
    const outcome = outcomes[failure] as { reason: string }
    log.error({ worker: first[failure]?.pid, reason: outcome.reason }, `primary: a worker ${outcome.reason}; stopping the others and exiting`)
    await Promise.all([...live].map((tracked) => stop(tracked, 'start-up failed', false)))
    process.exit(1)
  }
  log.info({ workers: first.map((tracked) => ({ pid: tracked.pid, readyMs: tracked.readyMs })) }, 'primary: every worker ready')
  return {
    get pids () { return [...live].filter((tracked) => !tracked.stopping).map((tracked) => tracked.pid) },
    reload,
    shutdown
  }
}
