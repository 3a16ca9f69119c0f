import { once } from 'node:events'
import type { Server } from 'node:http'
import { Server as NetServer, type Socket } from 'node:net'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { useLifecycle, type InFlightResponse, type TrackedLongLived } from '../lib/lifecycle.js'
import { resolveDrainOptions, type DrainOptions } from '../lib/options.js'
import { requestGate, type RawRequest } from '../lib/server.js'
import { deadline } from '../lib/timers.js'

export type { DrainOptions }

/** What the drain needs of a WebSocket of the `ws` package, as @fastify/websocket hands it out. */
interface WebSocketLike {
  close: (code: number, reason: string) => void
  terminate: () => void
  once: (event: 'close', listener: () => void) => unknown
}

/** An HTTP/1 socket, with the response Node is writing on it (null between requests). */
type HttpSocket = Socket & { _httpMessage?: InFlightResponse | null }

/**
 * While the service is ready the drain does no work per request: it keeps a set of the
 * server's connections (HTTP/2: sessions) and nothing else. When the shutdown starts, it
 * collects the responses in flight on them and from then on tracks every new request. It
 * tells each HTTP/1 client to close its connection after the response, sends HTTP/2 sessions
 * a GOAWAY, and tells long-lived connections to go (WebSockets a 1001 close frame, SSE streams
 * a final event). At `closing`, closes the listener and the idle sockets, sweeps again as each
 * response ends, and waits for requests, held work and long-lived connections until the
 * deadline, when it cuts what is left. The lifecycle runs this before `fastify.close()` (or
 * from preClose when close() is called directly, which is why the deadline must fit in
 * pluginTimeout).
 */
const drain: FastifyPluginAsync<DrainOptions> = async function drain (fastify, options) {
  const config = resolveDrainOptions(fastify.initialConfig.pluginTimeout as number, options)
  const lifecycle = useLifecycle(fastify)
  const log = fastify.log.child({ plugin: 'drain' })
  const server = fastify.server as Server
  // HTTP/2 servers have sessions, not keep-alive sockets: nothing to sweep or force there.
  const http1 = typeof server.closeIdleConnections === 'function'
  /** Responses in flight, tracked from the start of the shutdown on (HTTP/2: always). */
  const requests = new Set<InFlightResponse>()
  const sockets = new Set<HttpSocket>()
  const sessions = new Set<Http2Session>()
  const sseResponses = new WeakSet<InFlightResponse>()
  const counts = { notified: 0, closed: 0, cut: 0 }
  let tracking = false
  let noticeGiven = false
  let sweeping = false
  let sweepScheduled = false

  lifecycle.setBudget('drain', config.timeout)
  lifecycle.countInFlightWith(function countInFlight () {
    if (tracking || !http1) return requests.size
    // Before the shutdown, the sockets say it: Node attaches each response to its socket
    // until the response has been written out.
    let count = 0
    for (const socket of sockets) if (responseOn(socket) !== undefined) count++
    return count
  })

  function untrack (this: InFlightResponse): void {
    requests.delete(this)
    // Its socket may now be an idle keep-alive socket that nothing else would close.
    if (sweeping && http1) scheduleSweep()
  }

  function track (response: InFlightResponse): void {
    requests.add(response)
    // 'close' comes once: no once() wrapper to allocate.
    response.on('close', untrack)
  }

  /** Observed before Fastify's handler runs, so even a sync route's headers are not out yet. */
  function trackRequest (request: RawRequest, response: InFlightResponse): void {
    track(response)
    if (tracking) closeAfterResponse(request, response)
  }

  if (http1) {
    // TLS servers hand requests the TLS socket, announced by 'secureConnection'.
    const event = typeof (server as { addContext?: unknown }).addContext === 'function' ? 'secureConnection' : 'connection'
    server.on(event, function trackSocket (socket: HttpSocket) {
      sockets.add(socket)
      socket.on('close', forgetSocket)
    })
  } else {
    // Streams have no socket of their own: HTTP/2 requests are tracked one by one, always.
    requestGate(server).observe(trackRequest)
    fastify.server.on('session', function trackSession (session: Http2Session) {
      sessions.add(session)
      session.once('close', () => sessions.delete(session))
    })
  }

  function forgetSocket (this: HttpSocket): void {
    sockets.delete(this)
  }

  function scheduleSweep (): void {
    if (sweepScheduled) return
    sweepScheduled = true
    setImmediate(sweepIdle)
  }

  /**
   * Closes the sockets that are between requests. Node's parser knows which those are (no
   * byte of a new request has arrived), and server.closeIdleConnections() asks it; but that
   * also destroys a socket whose response has ended and is still flushing to a slow client,
   * truncating the response. Those sockets are held back for the call: they are swept again
   * when their response closes.
   */
  function sweepIdle (): void {
    sweepScheduled = false
    const flushing: HttpSocket[] = []
    for (const socket of sockets) {
      if (socket._httpMessage != null) {
        socket.destroy = keepOpen
        flushing.push(socket)
      }
    }
    try {
      server.closeIdleConnections()
    } finally {
      for (const socket of flushing) delete (socket as Partial<HttpSocket>).destroy
    }
  }

  function notify (connection: TrackedLongLived): void {
    if (connection.notified) return
    connection.notified = true
    counts.notified++
    try {
      connection.notify()
    } catch (err) {
      log.error({ err, kind: connection.kind }, 'drain: a long-lived connection failed to take the notice')
    }
  }

  /** Tells every long-lived connection to go, SSE streams found among the responses included. */
  function notifyLongLived (): void {
    noticeGiven = true
    for (const response of requests) {
      if (!sseResponses.has(response) && isEventStream(response)) trackEventStream(response)
    }
    for (const connection of lifecycle.longLivedConnections) notify(connection)
  }

  function trackEventStream (response: InFlightResponse): void {
    sseResponses.add(response)
    const handle = lifecycle.longLived({
      kind: 'sse',
      notify () {
        // The handler's own timer may still write once: that write, and only that one, is
        // expected to fail now that the stream is ended here.
        response.on('error', ignoreWriteAfterEnd)
        response.end(`event: shutdown\ndata: server shutting down\nretry: ${config.sseRetry}\n\n`)
      },
      destroy: () => { response.destroy() }
    })
    response.once('close', handle.done)
  }

  lifecycle.on('longLived', function notifyLateComer (connection) {
    if (noticeGiven) notify(connection)
  })

  // Once per shutdown, also when it comes through a direct fastify.close() (preClose enters
  // `draining` first).
  lifecycle.on('draining', function startDraining () {
    // From here on: what is in flight now, and every request after.
    tracking = true
    for (const socket of sockets) {
      const response = responseOn(socket)
      if (response !== undefined) {
        track(response)
        closeAfterResponse(response.req, response)
      }
    }
    if (http1) requestGate(server).observe(trackRequest)
    // GOAWAY, to every session, those with streams in flight included: open streams finish,
    // new ones go to another connection.
    for (const session of sessions) session.close()
    if (config.notifyAt === 'draining') notifyLongLived()
  })

  fastify.addHook('onReady', async function trackWebSockets () {
    if (!fastify.hasDecorator('websocketServer')) return
    const wss = (fastify as unknown as { websocketServer: { on: (event: 'connection', listener: (socket: WebSocketLike) => void) => void } }).websocketServer
    wss.on('connection', function trackWebSocket (socket) {
      const handle = lifecycle.longLived({
        kind: 'websocket',
        notify: () => { socket.close(1001, 'server shutting down') },
        destroy: () => { socket.terminate() }
      })
      socket.once('close', handle.done)
    })
  })

  lifecycle.during('closing', async function drainInFlight () {
    const started = performance.now()
    const inFlightAtClose = requests.size
    sweeping = true
    // Streams opened during the pre-stop delay, or a notice set for now.
    notifyLongLived()
    const closed = once(server, 'close')
    // No new connections from here. net's close, not http's: the latter would also close
    // connections still flushing a response (see sweepIdle).
    NetServer.prototype.close.call(server)
    if (http1) sweepIdle()
    const heldAtClose = lifecycle.held
    const longLivedAtClose = lifecycle.longLivedConnections.size
    log.info({ inFlight: inFlightAtClose, held: heldAtClose, longLived: longLivedAtClose, timeout: config.timeout }, 'drain: listener closed, waiting for in-flight requests')
    const abortTimer = setTimeout(() => { lifecycle.abortDeadline() }, config.timeout - config.abortBefore)
    const timer = deadline(config.timeout)
    const outcome = await Promise.race([Promise.all([closed, lifecycle.idle()]), timer.promise])
    clearTimeout(abortTimer)
    timer.clear()
    let cut = 0
    let heldCut: string[] = []
    if (outcome === timer.expired) {
      const longLived = [...lifecycle.longLivedConnections]
      counts.cut = longLived.length
      cut = [...requests].filter((response) => !sseResponses.has(response)).length
      heldCut = lifecycle.held
      log.warn({ cut, longLivedCut: counts.cut, heldCut, timeout: config.timeout }, 'drain: deadline reached, cut in-flight requests')
      lifecycle.abortDeadline()
      for (const connection of longLived) connection.destroy()
      lifecycle.longLivedConnections.clear()
      for (const socket of sockets) socket.destroy()
      for (const session of sessions) session.destroy()
      // What was cut is no longer in flight, whenever its close event comes.
      requests.clear()
      if (cut > 0) lifecycle.markForced('drain', `${cut} request(s) cut at the ${config.timeout}ms deadline`)
      if (counts.cut > 0) lifecycle.markForced('drain', `${counts.cut} long-lived connection(s) cut at the ${config.timeout}ms deadline`)
      if (heldCut.length > 0) lifecycle.markForced('drain', `held work still running at the ${config.timeout}ms deadline: ${heldCut.join(', ')}`)
    }
    counts.closed = counts.notified - counts.cut
    const durationMs = Math.round(performance.now() - started)
    lifecycle.record('drain', { inFlightAtClose, heldAtClose, cut, heldCut, longLived: { ...counts }, timeout: config.timeout, durationMs })
    log.info({ cut, heldCut, longLived: counts, durationMs }, 'drain: done')
  })
}

/** HTTP/1: asks the client to close after this response. HTTP/2: GOAWAY after this stream. */
function closeAfterResponse (request: RawRequest, response: InFlightResponse): void {
  if (request.httpVersionMajor === 2) {
    // A stream still in flight always belongs to its session.
    (request as Http2ServerRequest).stream.session!.close()
  } else if (!response.headersSent) {
    response.setHeader('connection', 'close')
  }
}

/**
 * Whether a response is an event stream. Fastify writes headers with writeHead(status, obj),
 * which getHeader() does not see afterwards: the header block Node sent is the reliable source.
 */
function isEventStream (response: InFlightResponse): boolean {
  if (!response.headersSent) return false
  const sent = (response as { _header?: unknown })._header
  const type = typeof sent === 'string' ? sent : String(response.getHeader('content-type'))
  return /content-type:\s*text\/event-stream|^text\/event-stream/im.test(type)
}

/**
 * The response in flight on an HTTP/1 socket, if any. @fastify/websocket attaches a response
 * of its own to an upgraded socket: that connection is long-lived, tracked as such, not a
 * request in flight.
 */
function responseOn (socket: HttpSocket): InFlightResponse | undefined {
  const response = socket._httpMessage
  return response != null && (response.req as { upgrade?: boolean }).upgrade !== true ? response : undefined
}

/** Stands in for destroy() on a socket that must survive closeIdleConnections(). */
function keepOpen (this: Socket): Socket {
  return this
}

function ignoreWriteAfterEnd (err: NodeJS.ErrnoException): void {
  if (err.code !== 'ERR_STREAM_WRITE_AFTER_END') throw err
}

export default fp(drain, { name: 'fastify-lifecycle-drain', fastify: '5.x' })
export { drain as fastifyLifecycleDrain }
