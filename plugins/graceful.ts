import cluster from 'node:cluster'
import { once } from 'node:events'
import { realpathSync } from 'node:fs'
import closeWithGrace from 'close-with-grace'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_BUDGET_EXCEEDED, FST_LIFECYCLE_INVALID_OPTION, FST_LIFECYCLE_SHUTDOWN_FORCED, FST_LIFECYCLE_UNKNOWN_SIGNAL } from '../lib/errors.js'
import { logFatal, shows } from '../lib/fatal.js'
import { useLifecycle, type ShutdownCause, type ShutdownReport } from '../lib/lifecycle.js'
import { logsWritten } from '../lib/node-internals.js'
import { alreadyResolved, bool, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kAbandon, kBeforeExit, kClaim, kDeadline, kExit, kReadyCheck } from '../lib/symbols.js'
import { settleWithin } from '../lib/timers.js'

/** Signals the graceful plugin can own. Fault signals (SIGSEGV, SIGILL, …) are left to Node. */
export const HANDLED_SIGNALS = Object.freeze(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'] as const)
export type HandledSignal = typeof HANDLED_SIGNALS[number]

export interface GracefulOptions {
  /** Signals that start a graceful shutdown; a second one forces exit. @default ['SIGTERM', 'SIGINT'] */
  signals?: readonly HandledSignal[] | undefined
  /**
   * Overall deadline for the whole shutdown, from the first signal to exit, in ms. When it
   * passes, the process exits with code 1 whatever is still running. Keep it below
   * Kubernetes' `terminationGracePeriodSeconds`. @default 25000
   */
  timeout?: number | undefined
  /** Shut down gracefully (exit code 1) on an uncaught exception or unhandled rejection. @default true */
  handleErrors?: boolean | undefined
}

export interface ResolvedGracefulOptions {
  readonly signals: readonly HandledSignal[]
  readonly timeout: number
  readonly handleErrors: boolean
}

const KEYS = keysOf<GracefulOptions>()({ signals: true, timeout: true, handleErrors: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolveGracefulOptions (input?: GracefulOptions, prefix = ''): ResolvedGracefulOptions {
  const options = optionsObject<GracefulOptions>(input, prefix, KEYS)
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
  return resolved({
    signals: Object.freeze([...new Set(signals)]),
    timeout: duration(prefix + 'timeout', options.timeout, 25_000, true),
    handleErrors
  })
}

/**
 * Checks that the phases registered fit in the overall deadline, with room left for the
 * process to exit. Run when the app is ready, so plugin order does not matter.
 */
function checkBudget (budget: Readonly<Record<string, number>>, deadline: number): void {
  const parts = Object.entries(budget)
  if (parts.length === 0) return
  const total = parts.reduce((sum, [, ms]) => sum + ms, 0)
  if (total >= deadline) {
    const terms = parts.map(([name, ms]) => `${name} ${ms}ms`).join(' + ')
    throw new FST_LIFECYCLE_BUDGET_EXCEEDED(terms, total, deadline)
  }
}

/**
 * A cluster worker (node:cluster, PM2's cluster mode) leaves through the disconnect round trip
 * before it exits: the primary may have handed it a connection that is still in the IPC
 * channel; the worker refuses it on arrival (its server is closed) and the primary gives it to
 * another worker. Exiting without the round trip loses such a connection. Bounded: a primary
 * that does not answer is not waited for past a second.
 */
async function leaveCluster (): Promise<void> {
  const worker = cluster.worker
  if (cluster.isPrimary || worker === undefined || !worker.isConnected()) return
  await settleWithin(() => {
    worker.disconnect()
    return once(worker, 'disconnect')
  }, 1000)
}

/** What other plugins finish before the exit (a last notification), for a second at most. */
async function beforeExit (work: ReadonlyArray<() => Promise<void>>): Promise<void> {
  if (work.length > 0) await settleWithin(() => Promise.allSettled(work.map((fn) => fn())), 1000)
}

/** What the process-wide registry needs of a lifecycle (another copy of the package's included). */
interface ProcessMember {
  shutdown: (cause: ShutdownCause) => Promise<ShutdownReport>
}

/**
 * The servers of this process whose signals a graceful plugin handles (a public and an admin
 * server, say). The process exits once: the shutdown that ends first shuts the others down too
 * and waits for them, so that its exit cuts no other server's drain or teardown. Kept on
 * `process` under a global symbol, so that two copies of the package share it.
 */
interface ProcessShutdowns {
  readonly members: Set<ProcessMember>
  /** The signal and error listeners graceful plugins installed: not someone else's. */
  readonly listeners: Set<unknown>
  /** Set at the first signal or uncaught error: members then stay until the exit. */
  exiting: boolean
}

const kProcessShutdowns = Symbol.for('fastify-lifecycle.process-shutdowns')

function processShutdowns (): ProcessShutdowns {
  const holder = process as unknown as Record<symbol, ProcessShutdowns | undefined>
  holder[kProcessShutdowns] ??= { members: new Set(), listeners: new Set(), exiting: false }
  return holder[kProcessShutdowns]
}

/**
 * Owns the process signals through close-with-grace: the first signal (or an uncaught error)
 * starts `lifecycle.shutdown()`, a second one exits at once, and one overall deadline bounds
 * everything. Exits 0 after a clean shutdown, 1 when a stage was forced or an error caused it.
 */
const graceful: FastifyPluginAsync<GracefulOptions> = async function graceful (fastify, options) {
  const config = alreadyResolved<ResolvedGracefulOptions>(options) ?? resolveGracefulOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-graceful', 'signal handlers')
  const log = fastify.log.child({ plugin: 'graceful' })

  const watched: string[] = [...config.signals, ...(config.handleErrors ? ['uncaughtException', 'unhandledRejection'] : [])]
  const before = new Map(watched.map((event) => [event, new Set(process.listeners(event as 'SIGTERM'))]))
  const skip: closeWithGrace.AllEvents[] = ['beforeExit', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV']
  for (const signal of HANDLED_SIGNALS) if (!config.signals.includes(signal)) skip.push(signal)
  if (!config.handleErrors) skip.push('uncaughtException', 'unhandledRejection')

  const shared = processShutdowns()
  /** Why the shutdown was asked for without a signal (PM2's 'shutdown' message). */
  let exitRequest: string | undefined
  const handlers = closeWithGrace({
    delay: config.timeout,
    skip,
    // Every exit is explained by this plugin's own log lines.
    logger: false,
    onSecondSignal (signal) {
      lifecycle[kAbandon](`second ${signal} received`)
    },
    onSecondError (err) {
      logFatal(log, { err }, 'graceful: another uncaught error during the shutdown')
      lifecycle[kAbandon]('second uncaught error')
    },
    onTimeout (delay) {
      lifecycle[kAbandon](`overall deadline of ${delay}ms reached`)
    }
  }, async function shutdownGracefully ({ signal = exitRequest, err }) {
    shared.exiting = true
    if (err !== undefined) {
      logFatal(log, { err }, 'graceful: uncaught error, shutting down')
    } else {
      log.info({ signal, timeout: config.timeout }, 'graceful: signal received, shutting down')
    }
    const cause: ShutdownCause = err !== undefined ? { cause: 'error', error: err } : { cause: signal as string }
    const report = await lifecycle.shutdown(cause)
    // The exit ends every server of the process: the others shut down too, and are waited for.
    const others = [...shared.members].filter((member) => member !== lifecycle)
    const forced = [...report.forced]
    let exitCode = report.exitCode
    if (others.length > 0) {
      log.info({ servers: others.length }, 'graceful: waiting for the other servers of this process to shut down')
      for (const other of await Promise.all(others.map((member) => member.shutdown(cause)))) {
        forced.push(...other.forced)
        if (other.exitCode !== 0) exitCode = 1
      }
    }
    log[exitCode === 0 ? 'info' : 'warn']({ exitCode, totalMs: report.totalMs, forced }, 'graceful: shutdown complete, exiting')
    if (exitCode !== 0 && !shows(log, 'warn')) {
      // With the logger off, the one line that says why the exit code is 1.
      process.stderr.write(`fastify-lifecycle: shutdown not clean, exiting with code 1: ${[...forced, ...(report.error === undefined ? [] : [`error: ${report.error}`])].join('; ')}\n`)
    }
    // What other plugins send before the exit (a last status to systemd, a metrics flush).
    await beforeExit(lifecycle[kBeforeExit])
    // The exit comes next: let the log lines still being written land first, in order, so the
    // line above is the last one (see lib/node-internals.ts).
    await logsWritten(log, 1000)
    await leaveCluster()
    // close-with-grace exits 1 on a rejection (and on an error cause), 0 otherwise.
    if (exitCode !== 0) throw new FST_LIFECYCLE_SHUTDOWN_FORCED(forced.join('; ') || 'not clean')
  })

  // Our own listeners: those the close-with-grace call above added.
  const own = new Set(watched.flatMap((event) => process.listeners(event as 'SIGTERM').filter((listener) => !(before.get(event) as Set<unknown>).has(listener))))
  shared.members.add(lifecycle)
  for (const listener of own) shared.listeners.add(listener)

  lifecycle[kReadyCheck](function checkShutdownBudget () { checkBudget(lifecycle.budget, config.timeout) })
  lifecycle[kDeadline] = config.timeout
  // A shutdown asked for by a message rather than a signal runs exactly as a signal's would.
  lifecycle[kExit] = function exitGracefully (why) {
    exitRequest = why
    handlers.close()
  }

  // Listeners added after ours would run at the same signal, and one that calls close() (as
  // fastify-cli's does) would close the listener at once, skipping the pre-stop delay.
  fastify.addHook('onReady', async function checkOtherSignalHandlers () {
    const others = watched.flatMap((event) => process.listeners(event as 'SIGTERM')
      .filter((listener) => !shared.listeners.has(listener) && !(before.get(event) as Set<unknown>).has(listener))
      .map((listener) => ({ event, listener })))
    if (others.length === 0) return
    const events = [...new Set(others.map((other) => other.event))]
    if (startedByFastifyCli()) {
      // fastify-cli's close-with-grace: it would call fastify.close() at the signal and exit
      // 500 ms later (--close-grace-delay). This plugin does both, after the pre-stop delay.
      for (const { event, listener } of others) process.removeListener(event, listener as () => void)
      log.info({ events }, 'graceful: fastify-cli\'s signal handling set aside, the suite runs the shutdown')
      return
    }
    log.warn({ events }, 'graceful: another handler listens for these signals and may close the app before the pre-stop delay is over; remove it (close-with-grace, process.on(\'SIGTERM\')): this plugin closes the app and exits')
  })

  fastify.addHook('onClose', async function removeSignalHandlers () {
    handlers.uninstall()
    for (const listener of own) shared.listeners.delete(listener)
    // Closed on its own (app.close(), a test): nothing to wait for. Closed by the process's
    // shutdown: another server's exit may still be waiting for it.
    if (!shared.exiting) shared.members.delete(lifecycle)
  })
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
/** True when this process is `fastify start …`: its main script is fastify-cli's. */
function startedByFastifyCli (): boolean {
  const main = process.argv[1]
  if (main === undefined) return false
  try {
    return /[\\/]fastify-cli[^\\/]*[\\/]cli\.js$/.test(realpathSync(main))
  } catch {
    return false
  }
}

export default fp(graceful, { name: 'fastify-lifecycle-graceful', fastify: '5.x' })
export { graceful as fastifyLifecycleGraceful }
