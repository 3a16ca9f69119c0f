import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_INVALID_OPTION, FST_LIFECYCLE_SYSTEMD_WATCHDOG } from '../lib/errors.js'
import { useLifecycle } from '../lib/lifecycle.js'
import { alreadyResolved, bool, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kBeforeExit, kBootFailed, kClaim, kDeadline, kLiveness, kOnHandoff, kReadyCheck, kServing, kSharedListener, kSuccessorEnv } from '../lib/symbols.js'
import { inheritedSockets, Notifier, type NotifyTransport } from '../lib/systemd.js'

export { systemdListen, type SystemdListenOptions, type NotifyTransport } from '../lib/systemd.js'

export interface SystemdOptions {
  /**
   * Tell the service manager about the lifecycle (`READY=1`, `STOPPING=1`, `STATUS=`,
   * `EXTEND_TIMEOUT_USEC=`) when it gave a `NOTIFY_SOCKET` (`Type=notify`). @default true
   */
  notify?: boolean | undefined
  /**
   * Sends one notification, for a native sd_notify binding: `(message) => sdNotify.sendState(message)`.
   * By default the `systemd-notify` binary is run for each message. @default the systemd-notify binary
   */
  transport?: NotifyTransport | undefined
  /** How often `STATUS=` shows the shutdown's progress, in ms. @default 1000 */
  statusInterval?: number | undefined
  /**
   * Feed systemd's watchdog (`WATCHDOG=1`, every half of `WatchdogSec=`) while liveness passes,
   * when the unit sets `WatchdogSec=`. @default true
   */
  watchdog?: boolean | undefined
}

export interface ResolvedSystemdOptions {
  readonly notify: boolean
  readonly transport: NotifyTransport | undefined
  readonly statusInterval: number
  readonly watchdog: boolean
}

const KEYS = keysOf<SystemdOptions>()({ notify: true, transport: true, statusInterval: true, watchdog: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolveSystemdOptions (input?: SystemdOptions, prefix = ''): ResolvedSystemdOptions {
  const options = optionsObject<SystemdOptions>(input, prefix, KEYS)
  if (options.transport !== undefined && typeof options.transport !== 'function') {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'transport', 'a function (message: string) => unknown', options.transport)
  }
  return resolved({
    notify: bool(prefix + 'notify', options.notify, true),
    transport: options.transport,
    statusInterval: duration(prefix + 'statusInterval', options.statusInterval, 1000, true),
    watchdog: bool(prefix + 'watchdog', options.watchdog, true)
  })
}

/** `WATCHDOG_USEC` in ms, when the watchdog is meant for this process. */
function watchdogMs (env: NodeJS.ProcessEnv): number | undefined {
  const usec = Number(env.WATCHDOG_USEC)
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined
  if (env.WATCHDOG_PID !== undefined && Number(env.WATCHDOG_PID) !== process.pid) return undefined
  return Math.floor(usec / 1000)
}

/**
 * systemd integration, inert unless systemd started the process with `NOTIFY_SOCKET` (a
 * `Type=notify` unit) or passed it sockets (`LISTEN_FDS`, socket activation):
 * - `READY=1` once the lifecycle is ready (start-up tasks done) and the server listens;
 * - `STOPPING=1` at the signal, with `EXTEND_TIMEOUT_USEC=` of the overall deadline so that a
 *   long drain is not killed by `TimeoutStopSec=`, and `STATUS=` lines with the phase and what
 *   is in flight, for `systemctl status`;
 * - `WATCHDOG=1` every half of `WatchdogSec=` while liveness passes: a blocked event loop, or
 *   a failing liveness check, stops the pings and systemd restarts the service.
 * Listening on an inherited socket is the app's own `listen()`: see `systemdListen()`.
 */
const systemd: FastifyPluginAsync<SystemdOptions> = async function systemd (fastify, options) {
  const config = alreadyResolved<ResolvedSystemdOptions>(options) ?? resolveSystemdOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-systemd', 'systemd notifications')
  // The socket outlives this process: systemd keeps it open, queued connections wait for the
  // next instance, so the drain leaves the queue alone.
  if (inheritedSockets().length > 0) lifecycle[kSharedListener] = true
  const env = process.env
  if (!config.notify || env.NOTIFY_SOCKET === undefined || env.NOTIFY_SOCKET === '') return
  const socket = env.NOTIFY_SOCKET
  // Children (a worker process, a shell-out) must not notify in this unit's name.
  delete env.NOTIFY_SOCKET
  const log = fastify.log.child({ plugin: 'systemd' })
  const notifier = new Notifier(log, config.transport, socket)
  // A handoff's new process notifies in the unit's name too, and feeds the watchdog itself.
  lifecycle[kSuccessorEnv].NOTIFY_SOCKET = socket
  lifecycle[kSuccessorEnv].WATCHDOG_PID = undefined
  let stopped: Promise<void> | undefined
  /** Handed over: the new process is the unit's main process, and this one says nothing more (each message would name it main again). */
  let handedOver = false
  lifecycle[kOnHandoff].push(function notifyHandoff (step, detail) {
    if (step === 'starting') {
      notifier.send({ RELOADING: 1, MONOTONIC_USEC: String(process.hrtime.bigint() / 1000n), STATUS: `reloading: ${detail}` })
    } else if (step === 'rolled back') {
      notifier.send({ READY: 1, STATUS: `ready: serving (reload rolled back: ${detail})` })
    } else {
      notifier.send({ MAINPID: detail, READY: 1, STATUS: `ready: serving (handed over by ${process.pid})` })
      handedOver = true
      stopped = notifier.flushed
    }
  })
  lifecycle[kServing](function notifyReady () {
    log.info('systemd: ready')
    notifier.send({ READY: 1, STATUS: 'ready: serving' })
  })

  lifecycle[kBootFailed](function notifyBootFailed (err) {
    notifier.send({ STATUS: `start-up failed: ${err instanceof Error ? err.message : String(err)}` })
  })

  let statusTimer: NodeJS.Timeout | undefined
  const status = (phase: string): string => `${phase}: ${lifecycle.inFlight} request(s) in flight${lifecycle.held.length > 0 ? `, held: ${lifecycle.held.join(', ')}` : ''}`
  lifecycle.on('draining', function notifyStopping () {
    if (handedOver) return
    const fields: Record<string, string | number> = { STOPPING: 1, STATUS: status('shutting down, still serving') }
    const deadline = lifecycle[kDeadline]
    // The stop job's timeout, extended to the shutdown's own deadline (plus a second to exit).
    if (deadline !== undefined) fields.EXTEND_TIMEOUT_USEC = (deadline + 1000) * 1000
    notifier.send(fields)
    statusTimer = setInterval(() => notifier.send({ STATUS: status(lifecycle.phase === 'closing' ? 'draining' : 'shutting down, still serving') }), config.statusInterval)
    statusTimer.unref()
  })
  lifecycle.on('closing', function notifyClosing () {
    if (!handedOver) notifier.send({ STATUS: status('draining') })
  })
  lifecycle.on('closed', function notifyClosed (report) {
    clearInterval(statusTimer)
    if (handedOver) return
    notifier.send({ STATUS: report.clean ? 'stopped: clean shutdown' : `stopped: ${report.forced.join('; ') || 'not clean'}` })
    stopped = notifier.flushed
  })
  // The graceful plugin exits right after the report: the last status must be out first.
  lifecycle[kBeforeExit].push(async function lastStatus () { await stopped })

  const watchdog = config.watchdog ? watchdogMs(env) : undefined
  if (watchdog !== undefined) {
    lifecycle[kReadyCheck](function checkWatchdog () {
      const threshold = lifecycle[kLiveness]?.eventLoopThreshold()
      if (threshold !== undefined && watchdog <= threshold) throw new FST_LIFECYCLE_SYSTEMD_WATCHDOG(watchdog, threshold)
    })
    // Fed only while liveness passes; a loop too blocked to run this timer feeds nothing either.
    const feed = setInterval(async function feedWatchdog () {
      const probe = lifecycle[kLiveness]
      if ((probe === undefined || await probe.passes()) && !handedOver) notifier.send({ WATCHDOG: 1 })
    }, Math.max(1, Math.floor(watchdog / 2)))
    feed.unref()
    fastify.addHook('onClose', async function stopWatchdog () { clearInterval(feed) })
  }
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(systemd, { name: 'fastify-lifecycle-systemd', fastify: '5.x' })
export { systemd as fastifyLifecycleSystemd }
