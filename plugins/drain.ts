import { once } from 'node:events'
import type { IncomingMessage, Server } from 'node:http'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { useLifecycle, type InFlightResponse } from '../lib/lifecycle.js'
import { requestGate } from '../lib/server.js'
import { resolveDrainOptions, type DrainOptions } from '../lib/options.js'
import { deadline } from '../lib/timers.js'

export type { DrainOptions }

/**
 * Tracks every request from the moment Node hands it over; from `draining` on, tells each
 * HTTP/1 client to close its connection after the response; at `closing`, closes the listener
 * and the idle sockets, sweeps each socket as its last response ends, and waits for the
 * in-flight requests until the deadline, when it cuts what is left. The lifecycle runs this
 * before `fastify.close()` (or from preClose when close() is called directly, which is why the
 * deadline must fit in pluginTimeout).
 */
const drain: FastifyPluginAsync<DrainOptions> = async function drain (fastify, options) {
  const config = resolveDrainOptions(fastify.initialConfig.pluginTimeout as number, options)
  const lifecycle = useLifecycle(fastify)
  const log = fastify.log.child({ plugin: 'drain' })
  const server = fastify.server as Server
  // HTTP/2 servers have sessions, not keep-alive sockets: nothing to sweep or force there.
  const http1 = typeof server.closeIdleConnections === 'function'
  const requests = lifecycle.requests
  const sessions = new Set<Http2Session>()
  let sweeping = false

  if (!http1) {
    fastify.server.on('session', function trackSession (session: Http2Session) {
      sessions.add(session)
      session.once('close', () => sessions.delete(session))
    })
  }

  lifecycle.setBudget('drain', config.timeout)

  function untrack (this: InFlightResponse): void {
    requests.delete(this)
    // Its socket may now be an idle keep-alive one that nothing else would close.
    if (sweeping && http1) server.closeIdleConnections()
  }

  // Observed before Fastify's handler runs, so even a sync route's headers are not out yet.
  requestGate(server).observe(function trackRequest (request: IncomingMessage | Http2ServerRequest, response: InFlightResponse) {
    requests.add(response)
    response.once('close', untrack)
    if (lifecycle.shuttingDown) closeAfterResponse(request, response)
  })

  lifecycle.on('draining', function closeConnectionsAfterResponses () {
    for (const response of requests) closeAfterResponse(response.req, response)
  })

  lifecycle.during('closing', async function drainInFlight () {
    const started = performance.now()
    const inFlightAtClose = requests.size
    sweeping = true
    const closed = once(server, 'close')
    // No new connections from here; Node also closes the idle keep-alive sockets. HTTP/2
    // sessions get GOAWAY: their open streams finish, no new ones start.
    server.close()
    for (const session of sessions) session.close()
    const heldAtClose = lifecycle.held
    log.info({ inFlight: inFlightAtClose, held: heldAtClose, timeout: config.timeout }, 'drain: listener closed, waiting for in-flight requests')
    const timer = deadline(config.timeout)
    const outcome = await Promise.race([Promise.all([closed, lifecycle.idle()]), timer.promise])
    timer.clear()
    let cut = 0
    let heldCut: string[] = []
    if (outcome === timer.expired) {
      cut = requests.size
      heldCut = lifecycle.held
      log.warn({ cut, heldCut, timeout: config.timeout }, 'drain: deadline reached, cut in-flight requests')
      if (http1) server.closeAllConnections()
      else for (const session of sessions) session.destroy()
      // What was cut is no longer in flight, whenever its close event comes.
      requests.clear()
      if (cut > 0) lifecycle.markForced('drain', `${cut} request(s) cut at the ${config.timeout}ms deadline`)
      if (heldCut.length > 0) lifecycle.markForced('drain', `held work still running at the ${config.timeout}ms deadline: ${heldCut.join(', ')}`)
    }
    const durationMs = Math.round(performance.now() - started)
    lifecycle.record('drain', { inFlightAtClose, heldAtClose, cut, heldCut, timeout: config.timeout, durationMs })
    log.info({ cut, heldCut, durationMs }, 'drain: done')
  })
}

/** Asks the client to close the connection after this response (HTTP/1 only, before headers). */
function closeAfterResponse (request: IncomingMessage | Http2ServerRequest, response: InFlightResponse): void {
  if (!response.headersSent && request.httpVersionMajor === 1) response.setHeader('connection', 'close')
}

export default fp(drain, { name: 'fastify-lifecycle-drain', fastify: '5.x' })
export { drain as fastifyLifecycleDrain }
