import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_PM2_KILL_TIMEOUT } from '../lib/errors.js'
import { useLifecycle } from '../lib/lifecycle.js'
import { alreadyResolved, bool, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kClaim, kDeadline, kExit, kReadyCheck, kServing } from '../lib/symbols.js'

export interface Pm2Options {
  /** Send `process.send('ready')` once the lifecycle is ready and the server listens, for `wait_ready`. @default true */
  ready?: boolean | undefined
  /** Shut down gracefully on PM2's `'shutdown'` message (`shutdown_with_message`, Windows), as on a signal. @default true */
  shutdownMessage?: boolean | undefined
  /**
   * PM2's `kill_timeout` in ms, when the environment does not say it: PM2 passes the app's
   * own setting; its default is 1600. @default the `kill_timeout` PM2 passes, else 1600
   */
  killTimeout?: number | undefined
}

export interface ResolvedPm2Options {
  readonly ready: boolean
  readonly shutdownMessage: boolean
  readonly killTimeout: number | undefined
}

const KEYS = keysOf<Pm2Options>()({ ready: true, shutdownMessage: true, killTimeout: true })

/** PM2's default `kill_timeout` (its constants.js, KILL_TIMEOUT). */
const PM2_KILL_TIMEOUT = 1600

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolvePm2Options (input?: Pm2Options, prefix = ''): ResolvedPm2Options {
  const options = optionsObject<Pm2Options>(input, prefix, KEYS)
  return resolved({
    ready: bool(prefix + 'ready', options.ready, true),
    shutdownMessage: bool(prefix + 'shutdownMessage', options.shutdownMessage, true),
    killTimeout: options.killTimeout === undefined ? undefined : duration(prefix + 'killTimeout', options.killTimeout, 0, true)
  })
}

/** True when PM2 runs this process: it sets `pm_id` (fork mode directly, cluster mode through its container) and an IPC channel. */
export function runByPm2 (env: NodeJS.ProcessEnv = process.env): boolean {
  return env.pm_id !== undefined && typeof process.send === 'function'
}

/**
 * PM2 integration, inert unless PM2 runs the process:
 * - `process.send('ready')` once the lifecycle is ready and the server listens, which is what
 *   `wait_ready: true` waits for (instead of the first `listen()`, before start-up tasks);
 * - PM2's `'shutdown'` message starts the same graceful shutdown as a signal;
 * - the shutdown's deadline is checked against PM2's `kill_timeout` when the app becomes
 *   ready: PM2 sends SIGKILL once it passes, so a shutdown that may take longer is refused
 *   with `FST_LIFECYCLE_PM2_KILL_TIMEOUT` rather than cut without a word.
 * In cluster mode (`exec_mode: 'cluster'`), the graceful plugin leaves through the cluster's
 * disconnect round trip before it exits.
 */
const pm2: FastifyPluginAsync<Pm2Options> = async function pm2 (fastify, options) {
  const config = alreadyResolved<ResolvedPm2Options>(options) ?? resolvePm2Options(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-pm2', 'PM2 integrations')
  if (!runByPm2()) return
  const log = fastify.log.child({ plugin: 'pm2' })
  const send = process.send!.bind(process)

  const envTimeout = Number(process.env.kill_timeout)
  const killTimeout = config.killTimeout ?? (Number.isSafeInteger(envTimeout) && envTimeout > 0 ? envTimeout : PM2_KILL_TIMEOUT)
  lifecycle[kReadyCheck](function checkKillTimeout () {
    const deadline = lifecycle[kDeadline]
    const parts = Object.entries(lifecycle.budget)
    const longest = deadline ?? parts.reduce((sum, [, ms]) => sum + ms, 0)
    const what = deadline !== undefined ? 'graceful.timeout' : parts.map(([name, ms]) => `${name} ${ms}ms`).join(' + ')
    if (longest >= killTimeout) throw new FST_LIFECYCLE_PM2_KILL_TIMEOUT(killTimeout, longest, what)
  })

  if (config.ready) {
    lifecycle[kServing](function tellPm2Ready () {
      log.info('pm2: ready')
      send('ready')
    })
  }

  if (config.shutdownMessage) {
    function onMessage (message: unknown): void {
      if (message !== 'shutdown') return
      log.info('pm2: shutdown message received')
      const exit = lifecycle[kExit]
      // Without the graceful plugin, nothing exits the process: shut down, and leave the exit
      // to the app, as with a direct close().
      if (exit !== undefined) exit('pm2 shutdown message')
      else lifecycle.shutdown('pm2 shutdown message').catch((err: unknown) => { log.error({ err }, 'pm2: the shutdown failed') })
    }
    process.on('message', onMessage)
    fastify.addHook('onClose', async function stopListening () { process.removeListener('message', onMessage) })
  }
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(pm2, { name: 'fastify-lifecycle-pm2', fastify: '5.x' })
export { pm2 as fastifyLifecyclePm2 }
