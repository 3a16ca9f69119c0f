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

const kSocketState = Symbol('fastify-lifecycle.drain.socket')

/** What the drain knows of one HTTP/1 connection. */
interface SocketState {
  /** Responses in flight on it (pipelining aside, 0 or 1). */
  inFlight: number
  /** `bytesRead` when its last response ended: more means a new request is arriving. */
  idleMark: number
}
type TrackedSocket = Socket & { [kSocketState]?: SocketState }

/**
 * Tracks every request from the moment Node hands it over. From `draining` on, tells each
 * HTTP/1 client to close its connection after the response, sends HTTP/2 sessions a GOAWAY,
 * and tells long-lived connections to go (WebSockets a 1001 close frame, SSE streams a final
 * event). At `closing`, closes the listener and the idle sockets, sweeps each socket as its
 * last response ends, and waits for requests, held work and long-lived connections until the
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
  const requests = lifecycle.requests
  const sockets = new Set<TrackedSocket>()
  const sessions = new Set<Http2Session>()
  const sseResponses = new WeakSet<InFlightResponse>()
  const counts = { notified: 0, closed: 0, cut: 0 }
  let noticeGiven = false
  let sweeping = false

  lifecycle.setBudget('drain', config.timeout)

  function untrack (this: InFlightResponse): void {
    requests.delete(this)
    // HTTP/2 streams have no socket of their own (their session's is a proxy).
    if (!http1) return
    const socket = this.req.socket as TrackedSocket
    const state = socket[kSocketState] as SocketState
    state.inFlight--
    state.idleMark = socket.bytesRead
    // It may now be an idle keep-alive socket that nothing else would close.
    if (sweeping) closeIfIdle(socket)
  }

  // Observed before Fastify's handler runs, so even a sync route's headers are not out yet.
  // The per-request path: one Set entry, one listener ('close' comes once, so no once()
  // wrapper to allocate), one counter. Nothing else until the shutdown starts.
  requestGate(server).observe(function trackRequest (request, response) {
    requests.add(response)
    response.on('close', untrack)
    if (http1) ((request.socket as TrackedSocket)[kSocketState] as SocketState).inFlight++
    if (lifecycle.shuttingDown) closeAfterResponse(request, response)
  })

  if (http1) {
    // TLS servers hand requests the TLS socket, announced by 'secureConnection'.
    const event = typeof (server as { addContext?: unknown }).addContext === 'function' ? 'secureConnection' : 'connection'
    server.on(event, function trackSocket (socket: TrackedSocket) {
      socket[kSocketState] = { inFlight: 0, idleMark: 0 }
      sockets.add(socket)
      socket.once('close', () => sockets.delete(socket))
    })
  } else {
    fastify.server.on('session', function trackSession (session: Http2Session) {
      sessions.add(session)
      session.once('close', () => sessions.delete(session))
    })
  }

  /**
   * Node's closeIdleConnections() (which server.close() calls) also destroys sockets whose
   * response has ended but is still flushing to a slow client, truncating it. A socket is
   * idle here only when no response is in flight on it, nothing is left to write, and no byte
   * of a new request has arrived since its last response.
   */
  function closeIfIdle (socket: TrackedSocket): void {
    const state = socket[kSocketState] as SocketState
    if (state.inFlight === 0 && socket.writableLength === 0 && socket.bytesRead === state.idleMark) socket.destroy()
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

  lifecycle.on('draining', function startDraining () {
    for (const response of requests) closeAfterResponse(response.req, response)
    // GOAWAY: open streams finish, new ones go to another connection.
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
    // connections still flushing a response (see closeIfIdle).
    NetServer.prototype.close.call(server)
    for (const socket of sockets) closeIfIdle(socket)
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

function ignoreWriteAfterEnd (err: NodeJS.ErrnoException): void {
  if (err.code !== 'ERR_STREAM_WRITE_AFTER_END') throw err
}

export default fp(drain, { name: 'fastify-lifecycle-drain', fastify: '5.x' })
export { drain as fastifyLifecycleDrain }
