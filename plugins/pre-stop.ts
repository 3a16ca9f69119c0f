import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_INVALID_OPTION } from '../lib/errors.js'
import { useLifecycle } from '../lib/lifecycle.js'
import { alreadyResolved, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import type { PreStopEnd } from '../lib/report.js'
import { kClaim, kHandedOver, kListenFailed, kProbe, kRecord } from '../lib/symbols.js'
import { roundMs, wait } from '../lib/timers.js'

export interface PreStopOptions {
  /**
   * How long to keep serving after the shutdown starts, with readiness already failing, so
   * load balancers stop sending traffic before the listener closes, in ms. With `quiet`, the
   * least time to keep serving. Skipped when the instance never became ready.
   * @default 5000, or 0 with `quiet`
   */
  delay?: number | undefined
  /**
   * Turns on the adaptive window: after `delay`, keep serving until no request has arrived for
   * this many ms (the health plugin's probes and `ignorePaths` do not count), and close the
   * listener then, or at `maxDelay` at the latest. Unset: a fixed `delay`.
   */
  quiet?: number | undefined
  /**
   * With `quiet`: the latest the listener closes, in ms after the shutdown starts, however
   * much traffic still arrives. Counts in the shutdown budget. @default 5000, or `delay` when larger
   */
  maxDelay?: number | undefined
  /**
   * With `quiet`: paths (compared without the query string) whose requests are not traffic,
   * such as health routes of your own that load balancers call. @default []
   */
  ignorePaths?: readonly string[] | undefined
}

export interface ResolvedPreStopOptions {
  readonly delay: number
  /** Undefined: a fixed delay. */
  readonly quiet: number | undefined
  /** The longest the window lasts: `delay` when fixed. */
  readonly maxDelay: number
  readonly ignorePaths: readonly string[]
}

const KEYS = keysOf<PreStopOptions>()({ delay: true, quiet: true, maxDelay: true, ignorePaths: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolvePreStopOptions (input?: PreStopOptions, prefix = ''): ResolvedPreStopOptions {
  const options = optionsObject<PreStopOptions>(input, prefix, KEYS)
  const quiet = options.quiet === undefined ? undefined : duration(prefix + 'quiet', options.quiet, 0, true)
  if (quiet === undefined) {
    // Options that only the adaptive window reads would be ignored without a word.
    for (const key of ['maxDelay', 'ignorePaths'] as const) {
      if (options[key] !== undefined) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + key, `left out unless ${prefix}quiet is set (it only bounds the adaptive window)`, options[key])
    }
    const delay = duration(prefix + 'delay', options.delay, 5000)
    return resolved({ delay, quiet, maxDelay: delay, ignorePaths: [] })
  }
  const delay = duration(prefix + 'delay', options.delay, 0)
  const maxDelay = duration(prefix + 'maxDelay', options.maxDelay, Math.max(5000, delay))
  if (maxDelay < delay) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'maxDelay', `at least ${prefix}delay (${delay}ms)`, maxDelay)
  // A quiet period longer than the window could never end it.
  if (quiet > maxDelay) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'quiet', `at most ${prefix}maxDelay (${maxDelay}ms)`, quiet)
  const ignorePaths = options.ignorePaths ?? []
  if (!Array.isArray(ignorePaths) || !ignorePaths.every((path) => typeof path === 'string' && path.startsWith('/') && !path.includes('?'))) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'ignorePaths', "an array of paths like '/healthz' (starting with /, no query)", ignorePaths)
  }
  return resolved({ delay, quiet, maxDelay, ignorePaths: [...ignorePaths] })
}

/** What the listener of `server` event gives: only the URL is read. */
interface Arrival { url?: string }

/**
 * Keeps serving after the shutdown starts, while the lifecycle is `draining` and readiness
 * already fails, so load balancers stop routing here before the listener closes: for `delay`
 * ms, or, with `quiet`, until traffic stops arriving (bounded by `maxDelay`). The wait happens
 * before `fastify.close()`: once close() starts, Fastify answers every new request with 503.
 */
const preStop: FastifyPluginAsync<PreStopOptions> = async function preStop (fastify, options) {
  const config = alreadyResolved<ResolvedPreStopOptions>(options) ?? resolvePreStopOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-pre-stop', 'pre-stop delays')
  const log = fastify.log.child({ plugin: 'pre-stop' })
  const mode = config.quiet === undefined ? 'fixed' : 'adaptive'

  lifecycle.setBudget('preStop', config.maxDelay)

  const server = fastify.server

  lifecycle.during('draining', async function preStopDelay () {
    // A listen() that failed after ready: the instance never served, so no load balancer has
    // anything to stop sending.
    const listenFailed = lifecycle[kListenFailed]
    const handedOver = lifecycle[kHandedOver]
    if (!lifecycle.everReady || listenFailed || handedOver) {
      // No load balancer was ever told to send traffic here, or the process that took over
      // the listener serves what they send: nothing to wait for.
      log.info({ delay: config.delay }, handedOver
        ? 'pre-stop: the listener is handed over to the new process, skipping the delay'
        : listenFailed ? 'pre-stop: the service failed to listen, skipping the delay' : 'pre-stop: instance was never ready, skipping the delay')
      lifecycle[kRecord]('preStop', { mode, delay: config.delay, waitedMs: 0, skipped: true })
      return
    }
    const started = performance.now()
    if (config.quiet === undefined) {
      log.info({ delay: config.delay, inFlight: lifecycle.inFlight }, 'pre-stop: still serving while load balancers stop routing here')
      await wait(config.delay)
      const waitedMs = Math.round(performance.now() - started)
      lifecycle[kRecord]('preStop', { mode, delay: config.delay, waitedMs, skipped: false, endedBy: 'delay' })
      log.info({ waitedMs, inFlight: lifecycle.inFlight }, 'pre-stop: delay over, closing the listener')
      return
    }
    log.info({ delay: config.delay, quiet: config.quiet, maxDelay: config.maxDelay, inFlight: lifecycle.inFlight }, 'pre-stop: still serving until traffic stops arriving')
    const window = await adaptiveWindow(started, config.quiet)
    const waitedMs = Math.round(performance.now() - started)
    lifecycle[kRecord]('preStop', { mode, delay: config.delay, waitedMs, skipped: false, endedBy: window.endedBy, quiet: config.quiet, maxDelay: config.maxDelay, requests: window.requests, lastRequestMs: window.lastRequestMs })
    log.info({ waitedMs, endedBy: window.endedBy, requests: window.requests, lastRequestMs: window.lastRequestMs, inFlight: lifecycle.inFlight }, window.endedBy === 'quiet'
      ? 'pre-stop: no traffic for the quiet period, closing the listener'
      : 'pre-stop: traffic still arriving at maxDelay, closing the listener')
  })

  /**
   * Serves at least `delay`, then until `quiet` ms pass with no request, or `maxDelay`. Requests
   * are watched only during the window: nothing is added to a request before the shutdown.
   */
  async function adaptiveWindow (started: number, quiet: number): Promise<{ endedBy: PreStopEnd, requests: number, lastRequestMs: number | undefined }> {
    const isProbe = lifecycle[kProbe]
    const ignored = new Set(config.ignorePaths)
    let lastTraffic = started
    let requests = 0
    function arrived (request: Arrival): void {
      // Always set on a server's requests (and upgrades); typed optional for client messages.
      const url = request.url as string
      if (isProbe(url)) return
      if (ignored.size > 0) {
        const queryAt = url.indexOf('?')
        if (ignored.has(queryAt === -1 ? url : url.slice(0, queryAt))) return
      }
      requests++
      lastTraffic = performance.now()
    }
    // 'request' for HTTP/1 and HTTP/2 alike; 'upgrade' for a WebSocket handshake, which is
    // traffic too and never a 'request'. Only where upgrades are already taken: a first
    // 'upgrade' listener would make Node hand every Upgrade request to it, unanswered.
    const upgrades = server.listenerCount('upgrade') > 0
    server.prependListener('request', arrived)
    if (upgrades) server.prependListener('upgrade', arrived)
    try {
      await wait(config.delay)
      for (;;) {
        const now = performance.now()
        const sinceTraffic = now - lastTraffic
        const elapsed = now - started
        const endedBy: PreStopEnd | undefined = sinceTraffic >= quiet ? 'quiet' : elapsed >= config.maxDelay ? 'maxDelay' : undefined
        if (endedBy !== undefined) return { endedBy, requests, lastRequestMs: requests === 0 ? undefined : roundMs(lastTraffic - started) }
        // Wake when the quiet period would be over, or at the maximum; a request meanwhile
        // moves the end of the quiet period, seen at the next wake.
        await wait(Math.max(1, Math.ceil(Math.min(quiet - sinceTraffic, config.maxDelay - elapsed))))
      }
    } finally {
      server.removeListener('request', arrived)
      server.removeListener('upgrade', arrived)
    }
  }
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(preStop, { name: 'fastify-lifecycle-pre-stop', fastify: '5.x' })
export { preStop as fastifyLifecyclePreStop }
