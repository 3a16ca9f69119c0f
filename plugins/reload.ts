import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_INVALID_OPTION, FST_LIFECYCLE_RELOAD_HANDOFF } from '../lib/errors.js'
import { handedOffSockets, HANDOFF_FDS_ENV, IPC_ENV, ipcRole, KEY, protocolMessage, sendMessage, type ChildMessage, type ParentMessage } from '../lib/ipc.js'
import { useLifecycle, type ShutdownReport } from '../lib/lifecycle.js'
import { listenerFd } from '../lib/node-internals.js'
import { alreadyResolved, bool, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kBeforeExit, kClaim, kExit, kHandedOver, kOnHandoff, kProbeServer, kReadyCheck, kServing, kSharedListener, kSuccessorEnv } from '../lib/symbols.js'
import { deadline, messageOf, settleWithin } from '../lib/timers.js'

/** Signals a listener handoff can be asked for with. */
export const HANDOFF_SIGNALS = Object.freeze(['SIGUSR2', 'SIGHUP'] as const)
export type HandoffSignal = typeof HANDOFF_SIGNALS[number]

export interface ReloadOptions {
  /**
   * Reload by listener handoff: on `signal`, start a new copy of this process (the code on
   * disk now), pass it the listening sockets, and once it is ready, drain and exit while it
   * serves. Off by default; under the cluster primary (`fastify-lifecycle/cluster`) it is not
   * needed. @default false
   */
  handoff?: boolean | undefined
  /** The signal that starts a handoff. @default 'SIGUSR2' */
  signal?: HandoffSignal | undefined
  /**
   * How long the new process has to become ready (start-up tasks done, listening) before the
   * handoff is abandoned and this process keeps serving, in ms. @default 30000
   */
  readyTimeout?: number | undefined
  /** How long a new process that failed is given to exit after SIGTERM, before SIGKILL, in ms. @default 10000 */
  stopTimeout?: number | undefined
}

export interface ResolvedReloadOptions {
  readonly handoff: boolean
  readonly signal: HandoffSignal
  readonly readyTimeout: number
  readonly stopTimeout: number
}

const KEYS = keysOf<ReloadOptions>()({ handoff: true, signal: true, readyTimeout: true, stopTimeout: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolveReloadOptions (input?: ReloadOptions, prefix = ''): ResolvedReloadOptions {
  const options = optionsObject<ReloadOptions>(input, prefix, KEYS)
  const handoff = bool(prefix + 'handoff', options.handoff, false)
  const signal = options.signal ?? 'SIGUSR2'
  if (!HANDOFF_SIGNALS.includes(signal)) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'signal', `one of ${HANDOFF_SIGNALS.join(', ')}`, signal)
  if (!handoff) {
    for (const key of ['signal', 'readyTimeout', 'stopTimeout'] as const) {
      if (options[key] !== undefined) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + key, 'left out unless handoff is true', options[key])
    }
  }
  return resolved({
    handoff,
    signal,
    readyTimeout: duration(prefix + 'readyTimeout', options.readyTimeout, 30_000, true),
    stopTimeout: duration(prefix + 'stopTimeout', options.stopTimeout, 10_000, true)
  })
}

/** What `fastify.listen()` takes to listen on the socket a handoff passed in. */
export interface HandoffListenOptions {
  fd: number
  /** Not used to bind (the socket is bound): set so Fastify does not add a `localhost` binding. */
  host: string
}

/**
 * Listen options for the socket the previous process passed in (a listener handoff), or
 * `undefined` when this process was started otherwise:
 * `await app.listen(handoffListen() ?? { port: 3000, host: '0.0.0.0' })`.
 */
export function handoffListen (): HandoffListenOptions | undefined {
  const fd = handedOffSockets().fds.get('service')
  return fd === undefined ? undefined : { fd, host: '0.0.0.0' }
}

/** How a new process of a handoff did, from its start to `ready` (or not). */
type Outcome = { ready: true } | { ready: false, reason: string }

/**
 * Reloads without an orchestrator. Two sides, each inert unless used:
 * - in a process started by the cluster primary or by a handoff (`FST_LIFECYCLE_IPC`), it says
 *   `ready` over IPC once the lifecycle is ready and the server listens, shuts down gracefully
 *   when asked, and sends its shutdown report before it exits;
 * - with `handoff: true`, the signal (SIGUSR2) starts a new copy of this process with the
 *   listening sockets, waits for it to be ready, then drains and exits while the new one
 *   serves; a new process that exits or is not ready in time is stopped, and this one keeps
 *   serving (rollback).
 */
const reload: FastifyPluginAsync<ReloadOptions> = async function reload (fastify, options) {
  const config = alreadyResolved<ResolvedReloadOptions>(options) ?? resolveReloadOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-reload', 'reload integrations')
  const log = fastify.log.child({ plugin: 'reload' })

  const role = ipcRole()
  if (role !== undefined) {
    delete process.env[IPC_ENV]
    const send = process.send!.bind(process)
    const sockets = handedOffSockets()
    // A handoff's sockets are the predecessor's too until it exits: its queue is not this
    // process's to shrink (see the drain).
    if (role === 'handoff' && sockets.fds.size > 0) {
      lifecycle[kSharedListener] = true
      process.once('disconnect', function predecessorGone () {
        if (!sockets.inherited && !lifecycle[kHandedOver]) lifecycle[kSharedListener] = false
      })
      // The channel to the predecessor must not keep this process alive once it is alone.
      process.channel?.unref()
    }
    lifecycle[kServing](function tellParentReady () {
      log.info({ role }, 'reload: ready, telling the ' + (role === 'cluster' ? 'primary' : 'previous process'))
      sendMessage(send, { [KEY]: 'ready', pid: process.pid })
    })
    // The graceful plugin runs this after the shutdown, so the report is there.
    let report: ShutdownReport | undefined
    lifecycle.once('closed', (closed) => { report = closed })
    lifecycle[kBeforeExit].push(function sendReport () {
      return sendMessage(send, { [KEY]: 'report', pid: process.pid, report: report as ShutdownReport })
    })
    let asked = false
    function onMessage (raw: unknown): void {
      const message = protocolMessage<ParentMessage>(raw)
      if (message?.[KEY] === 'predecessor') {
        const { report: theirs, pid } = message
        log[theirs.clean ? 'info' : 'warn']({ predecessor: pid, exitCode: theirs.exitCode, totalMs: theirs.totalMs, forced: theirs.forced, report: theirs }, 'reload: the previous process ended')
        return
      }
      if (message?.[KEY] !== 'shutdown' || asked) return
      asked = true
      if (message.handover) lifecycle[kHandedOver] = true
      log.info({ reason: message.reason, handover: message.handover }, 'reload: shutdown asked for')
      const exit = lifecycle[kExit]
      if (exit !== undefined) exit(message.reason)
      else lifecycle.shutdown(message.reason).catch((err: unknown) => { log.error({ err }, 'reload: the shutdown failed') })
    }
    process.on('message', onMessage)
    fastify.addHook('onClose', async function stopListening () { process.removeListener('message', onMessage) })
  }

  if (!config.handoff) return
  lifecycle[kReadyCheck](function checkHandoff () {
    if (lifecycle[kExit] === undefined) throw new FST_LIFECYCLE_RELOAD_HANDOFF('it needs the graceful plugin (the suite\'s graceful option), which exits the process once it has drained')
    if (process.pid === 1) throw new FST_LIFECYCLE_RELOAD_HANDOFF('this process is PID 1 (a container\'s init): the container would stop when it exits; run the cluster primary as PID 1 instead (fastify-lifecycle/cluster)')
  })

  let state: 'serving' | 'starting' | 'handed over' = 'serving'
  function tell (step: 'starting' | 'rolled back' | 'handed over', detail: string): void {
    for (const listener of lifecycle[kOnHandoff]) listener(step, detail)
  }
  function onReloadSignal (): void {
    handOff().catch((err: unknown) => {
      state = 'serving'
      log.error({ err }, 'reload: the handoff failed; this process keeps serving')
      tell('rolled back', messageOf(err))
    })
  }
  process.on(config.signal, onReloadSignal)
  fastify.addHook('onClose', async function removeReloadSignal () { process.removeListener(config.signal, onReloadSignal) })

  async function handOff (): Promise<void> {
    const server = fastify.server
    const serviceFd = listenerFd(server)
    if (state !== 'serving' || lifecycle.phase !== 'ready' || serviceFd === undefined) {
      log.warn({ signal: config.signal, state, phase: lifecycle.phase, listening: server.listening }, `reload: ${config.signal} ignored: ${state !== 'serving' ? `a handoff is already ${state}` : serviceFd === undefined ? 'the server has no listening socket to pass on' : `the lifecycle is ${lifecycle.phase}`}`)
      return
    }
    state = 'starting'
    const started = performance.now()
    // The new process gets the sockets as file descriptors 4 and on (3 is the IPC channel).
    const fds = [serviceFd]
    const names = ['service:4']
    const probes = lifecycle[kProbeServer]
    const probesFd = probes === undefined ? undefined : listenerFd(probes)
    if (probesFd !== undefined) {
      fds.push(probesFd)
      names.push('probes:5')
    }
    const env: NodeJS.ProcessEnv = { ...process.env, ...lifecycle[kSuccessorEnv], [IPC_ENV]: 'handoff', [HANDOFF_FDS_ENV]: names.join(',') + (lifecycle[kSharedListener] ? ';inherited' : '') }
    // Left out rather than passed as the string 'undefined'.
    for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key]
    tell('starting', config.signal)
    const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
      cwd: process.cwd(),
      env,
      stdio: ['inherit', 'inherit', 'inherit', 'ipc', ...fds]
    })
    log.info({ signal: config.signal, newPid: child.pid, readyTimeout: config.readyTimeout }, 'reload: new process started, waiting for it to be ready')
    // Shut down before it is ready: it must not outlive this process, orphaned, on the socket.
    function stopStarting (): void {
      log.warn({ newPid: child.pid }, 'reload: shutting down during a handoff, stopping the new process')
      child.kill('SIGTERM')
    }
    lifecycle.once('draining', stopStarting)
    const outcome = await whenReady(child, config.readyTimeout)
    lifecycle.removeListener('draining', stopStarting)
    const readyMs = Math.round(performance.now() - started)
    if (!outcome.ready) {
      log.error({ newPid: child.pid, reason: outcome.reason, afterMs: readyMs }, `reload: rolled back, this process keeps serving: the new process ${outcome.reason}`)
      await stopChild(child, config.stopTimeout, log)
      state = 'serving'
      tell('rolled back', outcome.reason)
      return
    }
    state = 'handed over'
    log.info({ newPid: child.pid, readyMs }, 'reload: the new process is ready; this one drains and exits')
    // Its queue and backlog are the successor's now; no load balancer has to stop sending.
    lifecycle[kHandedOver] = true
    lifecycle[kSharedListener] = true
    tell('handed over', String(child.pid))
    // The channel closes with this process's exit, right after.
    let report: ShutdownReport | undefined
    lifecycle.once('closed', (closed) => { report = closed })
    lifecycle[kBeforeExit].push(function tellSuccessor () {
      return sendMessage(child.send.bind(child), { [KEY]: 'predecessor', pid: process.pid, report: report as ShutdownReport })
    })
    ;(lifecycle[kExit] as (why: string) => void)(`reload: handed over to process ${child.pid}`)
  }
}

/** Resolves when the new process says it is ready, or with why it will not be. */
async function whenReady (child: ChildProcess, timeout: number): Promise<Outcome> {
  const timer = deadline(timeout)
  let onMessage: ((raw: unknown) => void) | undefined
  try {
    const said = new Promise<Outcome>((resolve) => {
      onMessage = (raw) => {
        const message = protocolMessage<ChildMessage>(raw)
        if (message?.[KEY] === 'ready') resolve({ ready: true })
      }
      child.on('message', onMessage)
    })
    const exited = once(child, 'exit').then(([code, signal]): Outcome => ({ ready: false, reason: `exited (${signal ?? `code ${code}`}) before it was ready` }))
    const failed = once(child, 'error').then(([err]): Outcome => ({ ready: false, reason: `could not be started: ${messageOf(err)}` }))
    const late = timer.promise.then((): Outcome => ({ ready: false, reason: `was not ready within readyTimeout (${timeout}ms)` }))
    return await Promise.race([said, exited, failed, late])
  } finally {
    timer.clear()
    child.removeListener('message', onMessage as (raw: unknown) => void)
  }
}

/** Stops a new process that failed: SIGTERM (its own graceful shutdown), SIGKILL after `timeout`. */
async function stopChild (child: ChildProcess, timeout: number, log: FastifyBaseLogger): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = once(child, 'exit')
  child.kill('SIGTERM')
  if ((await settleWithin(() => exited, timeout)).status !== 'timed out') return
  log.error({ newPid: child.pid, timeout }, 'reload: the failed new process did not exit after SIGTERM, killing it')
  child.kill('SIGKILL')
  await exited
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(reload, { name: 'fastify-lifecycle-reload', fastify: '5.x' })
export { reload as fastifyLifecycleReload }
