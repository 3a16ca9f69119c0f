import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { useLifecycle } from '../lib/lifecycle.js'
import { alreadyResolved, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kClaim, kRecord } from '../lib/symbols.js'
import { wait } from '../lib/timers.js'

export interface PreStopOptions {
  /**
   * How long to keep serving after the shutdown starts, with readiness already failing, so
   * load balancers stop sending traffic before the listener closes, in ms. Skipped when the
   * instance never became ready. @default 5000
   */
  delay?: number | undefined
}

export interface ResolvedPreStopOptions {
  readonly delay: number
}

const KEYS = keysOf<PreStopOptions>()({ delay: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolvePreStopOptions (input?: PreStopOptions, prefix = ''): ResolvedPreStopOptions {
  const options = optionsObject<PreStopOptions>(input, prefix, KEYS)
  return resolved({ delay: duration(prefix + 'delay', options.delay, 5000) })
}

/**
 * Keeps serving for `delay` ms after the shutdown starts, while the lifecycle is `draining`
 * and readiness already fails, so load balancers stop routing here before the listener
 * closes. The wait happens before `fastify.close()`: once close() starts, Fastify answers
 * every new request with 503.
 */
const preStop: FastifyPluginAsync<PreStopOptions> = async function preStop (fastify, options) {
  const config = alreadyResolved<ResolvedPreStopOptions>(options) ?? resolvePreStopOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-pre-stop', 'pre-stop delays')
  const log = fastify.log.child({ plugin: 'pre-stop' })

  lifecycle.setBudget('preStop', config.delay)

  // A listen() that fails (EADDRINUSE, EACCES) comes after ready: the instance was `ready` but
  // never served, so no load balancer has anything to stop sending. Watched until it listens.
  const server = fastify.server
  let listenFailed = false
  function listenFailedBeforeListening (): void { listenFailed = true }
  server.once('error', listenFailedBeforeListening)
  server.once('listening', function listening () { server.removeListener('error', listenFailedBeforeListening) })

  lifecycle.during('draining', async function preStopDelay () {
    if (!lifecycle.everReady || listenFailed) {
      // No load balancer was ever told to send traffic here: nothing to wait for.
      log.info({ delay: config.delay }, listenFailed ? 'pre-stop: the service failed to listen, skipping the delay' : 'pre-stop: instance was never ready, skipping the delay')
      lifecycle[kRecord]('preStop', { delay: config.delay, waitedMs: 0, skipped: true })
      return
    }
    log.info({ delay: config.delay, inFlight: lifecycle.inFlight }, 'pre-stop: still serving while load balancers stop routing here')
    const started = performance.now()
    await wait(config.delay)
    const waitedMs = Math.round(performance.now() - started)
    lifecycle[kRecord]('preStop', { delay: config.delay, waitedMs, skipped: false })
    log.info({ waitedMs, inFlight: lifecycle.inFlight }, 'pre-stop: delay over, closing the listener')
  })
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(preStop, { name: 'fastify-lifecycle-pre-stop', fastify: '5.x' })
export { preStop as fastifyLifecyclePreStop }
