import cluster from 'node:cluster'
import { once } from 'node:events'
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import type { Http2ServerRequest, Http2Session } from 'node:http2'
import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT, FST_LIFECYCLE_INVALID_OPTION } from '../lib/errors.js'
import { useLifecycle, type TrackedLongLived } from '../lib/lifecycle.js'
import { closeAcceptQueue, closeIdleSockets, closeListener, isEventStream, observeRequests, responseOn, type RawRequest, type RawResponse } from '../lib/node-internals.js'
import { alreadyResolved, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kAbortDeadline, kClaim, kConnections, kCountInFlight, kMarkForced, kRecord, kSharedListener, kWork } from '../lib/symbols.js'
import { deadline } from '../lib/timers.js'

export interface DrainOptions {
  /**
   * Longest wait for in-flight requests once the listener closes, in ms. Requests still
   * running then are cut, and the shutdown counts as forced. @default 5000
   */
  timeout?: number | undefined
  /**
   * When long-lived connections (WebSockets, SSE streams) are told to go: `'draining'`, at the
   * signal, or `'closing'`, at the end of the pre-stop delay. @default 'draining'
   */
  notifyAt?: 'draining' | 'closing' | undefined
  /** The `retry:` hint, in ms, sent with the final event of an SSE stream. @default 1000 */
  sseRetry?: number | undefined
  /**
   * How long before the deadline `lifecycle.deadlineSignal` is aborted, in ms, so handlers
   * doing long work can answer before they are cut. @default a tenth of timeout, at most 1000
   */
  abortBefore?: number | undefined
  /**
   * How long idle keep-alive sockets stay open once the listener closes when the service has
   * not been serving since the signal at least that long (no pre-stop delay, or a direct
   * `close()`), in ms: a request a client sends on one meanwhile is answered with
   * `Connection: close` instead of meeting a socket closed under it. Then they are closed. Capped
   * at half of `timeout`. @default 300
   */
  idleGrace?: number | undefined
}

export interface ResolvedDrainOptions {
  readonly timeout: number
  readonly notifyAt: 'draining' | 'closing'
  readonly sseRetry: number
  readonly abortBefore: number
  readonly idleGrace: number
}

const KEYS = keysOf<DrainOptions>()({ timeout: true, notifyAt: true, sseRetry: true, abortBefore: true, idleGrace: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options. `pluginTimeout` is Fastify's (from `fastify.initialConfig`); 0 means preClose is never cut.
 */
export function resolveDrainOptions (pluginTimeout: number, input?: DrainOptions, prefix = ''): ResolvedDrainOptions {
  const options = optionsObject<DrainOptions>(input, prefix, KEYS)
  const timeout = duration(prefix + 'timeout', options.timeout, 5000)
  if (pluginTimeout > 0 && timeout >= pluginTimeout) {
    throw new FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT(timeout, pluginTimeout)
  }
  const notifyAt = options.notifyAt ?? 'draining'
  if (notifyAt !== 'draining' && notifyAt !== 'closing') {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'notifyAt', "'draining' or 'closing'", notifyAt)
  }
  const abortBefore = duration(prefix + 'abortBefore', options.abortBefore, Math.min(1000, Math.floor(timeout / 10)))
  if (abortBefore > timeout) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'abortBefore', `at most ${prefix}timeout (${timeout}ms)`, abortBefore)
  }
  const idleGrace = Math.min(duration(prefix + 'idleGrace', options.idleGrace, 300), Math.floor(timeout / 2))
  return resolved({ timeout, notifyAt, sseRetry: duration(prefix + 'sseRetry', options.sseRetry, 1000), abortBefore, idleGrace })
}

/** What the drain needs of a WebSocket of the `ws` package, as @fastify/websocket hands it out. */
interface WebSocketLike {
  close: (code: number, reason: string) => void
  terminate: () => void
  once: (event: 'close', listener: () => void) => unknown
}

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
 * pluginTimeout). What it needs of Node beyond its public API is in lib/node-internals.ts.
 */
const drain: FastifyPluginAsync<DrainOptions> = async function drain (fastify, options) {
  const config = alreadyResolved<ResolvedDrainOptions>(options) ??
    resolveDrainOptions(fastify.initialConfig.pluginTimeout as number, options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-drain', 'drains')
  const work = lifecycle[kWork]
  const log = fastify.log.child({ plugin: 'drain' })
  const server = fastify.server as Server
  // HTTP/2 servers have sessions, not keep-alive sockets: nothing to sweep or force there.
  const http1 = typeof server.closeIdleConnections === 'function'
  /** Responses in flight, tracked from the start of the shutdown on (HTTP/2: always). */
  const requests = new Set<RawResponse>()
  const sockets = new Set<Socket>()
  const sessions = new Set<Http2Session>()
  const sseResponses = new WeakSet<RawResponse>()
  /** Sockets handed over by an upgrade (WebSockets): long-lived connections, not requests. */
  const upgraded = new WeakSet<Socket>()
  const counts = { notified: 0, closed: 0, cut: 0 }
  let tracking = false
  let noticeGiven = false
  let sweeping = false
  let sweepScheduled = false
  let stopObserving = (): void => {}
  let drainingSince = 0
  /** TCP connections accepted so far (the raw 'connection' event, TLS ones included). */
  let accepted = 0
  server.on('connection', function countAccepted () { accepted++ })

  lifecycle.setBudget('drain', config.timeout)
  lifecycle[kConnections] = (): Record<string, number> => http1 ? { http1: sockets.size } : { http2: sessions.size }
  lifecycle[kCountInFlight](function countInFlight () {
    if (tracking || !http1) return requests.size
    // Before the shutdown, the sockets say it: Node attaches each response to its socket
    // until the response has been written out.
    let count = 0
    for (const socket of sockets) if (responseOn(socket) !== undefined) count++
    return count
  })

  function untrack (this: RawResponse): void {
    requests.delete(this)
    // Its socket may now be an idle keep-alive socket that nothing else would close.
    if (sweeping && http1) scheduleSweep()
  }

  function track (request: RawRequest, response: RawResponse): void {
    requests.add(response)
    // 'close' comes once: no once() wrapper to allocate.
    response.on('close', untrack)
    if (tracking) closeAfterResponse(request, response)
  }

  if (http1) {
    // TLS servers hand requests the TLS socket, announced by 'secureConnection'.
    const event = typeof (server as { addContext?: unknown }).addContext === 'function' ? 'secureConnection' : 'connection'
    server.on(event, function trackSocket (socket: Socket) {
      sockets.add(socket)
      socket.on('close', forgetSocket)
    })
    server.on('upgrade', function trackUpgrade (_request: unknown, socket: Socket) { upgraded.add(socket) })
  } else {
    // Streams have no socket of their own and are not published on the diagnostics channel:
    // HTTP/2 requests are tracked one by one, always, ahead of Fastify's handler.
    server.prependListener('request', track)
    server.on('session', function trackSession (session: Http2Session) {
      sessions.add(session)
      session.once('close', () => sessions.delete(session))
    })
  }

  function forgetSocket (this: Socket): void {
    sockets.delete(this)
  }

  function scheduleSweep (): void {
    if (sweepScheduled) return
    sweepScheduled = true
    setImmediate(sweepIdle)
  }

  function sweepIdle (): void {
    sweepScheduled = false
    closeIdleSockets(server, sockets)
  }

  /**
   * Lets the event loop turn while connections queued in the kernel are being accepted: until
   * a whole turn accepts none, or `until`. Returns how many were accepted meanwhile.
   */
  async function acceptQueued (until: number): Promise<number> {
    const before = accepted
    let last = -1
    while (accepted !== last && performance.now() < until) {
      last = accepted
      await wholeTurn()
    }
    return accepted - before
  }

  /**
   * Requests partly received at the deadline (a client sending its headers slowly): the idle
   * sockets closed first, what is left with no response, no upgrade and bytes received is one
   * (a connection that never sent a byte is not a request).
   */
  function countPartialRequests (): number {
    closeIdleSockets(server, sockets)
    let partial = 0
    for (const socket of sockets) {
      if (!socket.destroyed && !upgraded.has(socket) && responseOn(socket) === undefined && socket.bytesRead > 0) partial++
    }
    return partial
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
    findEventStreams()
    for (const connection of work.connections) notify(connection)
  }

  /** Event streams among the responses in flight: long-lived connections (told by the 'longLived' listener once the notice is given). */
  function findEventStreams (): void {
    for (const response of requests) {
      if (!sseResponses.has(response) && isEventStream(response.req, response)) trackEventStream(response)
    }
  }

  function trackEventStream (response: RawResponse): void {
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
    drainingSince = performance.now()
    // From here on: what is in flight now, and every request after.
    tracking = true
    for (const socket of sockets) {
      const response = responseOn(socket)
      if (response !== undefined) track(response.req, response)
    }
    if (http1) stopObserving = observeRequests(server, track)
    // GOAWAY, to every session, those with streams in flight included: open streams finish,
    // new ones go to another connection.
    for (const session of sessions) session.close()
    if (config.notifyAt === 'draining') notifyLongLived()
  })

  lifecycle.once('closed', function stopDraining () { stopObserving() })

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
    // Streams opened during the pre-stop delay, or a notice set for now.
    notifyLongLived()
    // A stream that starts later (its request came on a connection accepted in the last
    // instant, or on a keep-alive one; an EventSource reconnecting at once) is told too, once
    // its headers are out: looked for every 100 ms while the drain lasts.
    const lateStreams = setInterval(findEventStreams, 100)
    const closed = once(server, 'close')
    // Idle keep-alive sockets: a client may be writing its next request on one right now. When
    // the service has been serving since the signal for idleGrace already, every active client
    // has had a Connection: close answer and what is idle is quiet: close them at once. When it
    // has not (no pre-stop delay), leave them the rest of the grace, then close them.
    const idleGraceMs = http1 ? Math.max(0, Math.ceil(config.idleGrace - (started - drainingSince))) : 0
    const startSweeping = (): void => {
      sweeping = true
      if (http1) sweepIdle()
    }
    const graceTimer = idleGraceMs > 0 ? setTimeout(startSweeping, idleGraceMs) : undefined
    if (graceTimer === undefined) startSweeping()
    // Connections the kernel has completed but Node has not accepted yet would be reset by the
    // close, after their client sent its request. Node accepts about one of them per turn of
    // the event loop: turn until a turn accepts none (bounded), then close.
    // Not listening yet (a shutdown that came during the boot): nothing can be queued, and the
    // listener must close before the boot's listen() opens it.
    let queuedAccepted = 0
    // An inherited socket (socket activation) stays open in the service manager: what is
    // queued waits for the next instance, and its backlog is the next instance's too. A cluster
    // worker's listener is the primary's (round-robin: the primary accepts; shared handle: the
    // other workers use it): neither is this process's to shrink.
    if (server.listening && !lifecycle[kSharedListener] && !cluster.isWorker) {
      // No new connection joins the queue from here: it empties, whatever the clients do.
      closeAcceptQueue(server)
      queuedAccepted = await acceptQueued(started + Math.min(1000, Math.floor(config.timeout / 4)))
    }
    // No new connections from here; open ones stay (see lib/node-internals.ts).
    closeListener(server)
    const heldAtClose = lifecycle.held
    const longLivedAtClose = work.connections.size
    log.info({ inFlight: inFlightAtClose, held: heldAtClose, longLived: longLivedAtClose, timeout: config.timeout, idleGraceMs, queuedAccepted }, 'drain: listener closed, waiting for in-flight requests')
    const abortTimer = setTimeout(() => { lifecycle[kAbortDeadline]() }, config.timeout - config.abortBefore)
    const timer = deadline(config.timeout)
    const outcome = await Promise.race([Promise.all([closed, work.idle()]), timer.promise])
    clearTimeout(abortTimer)
    clearTimeout(graceTimer)
    clearInterval(lateStreams)
    timer.clear()
    const deadlineReached = outcome === timer.expired
    let cut = 0
    let cutPartial = 0
    let heldCut: string[] = []
    if (deadlineReached) {
      const longLived = [...work.connections]
      counts.cut = longLived.length
      cutPartial = http1 ? countPartialRequests() : 0
      const unfinished = [...requests].filter((response) => !sseResponses.has(response))
      cut = unfinished.length + cutPartial
      heldCut = lifecycle.held
      // Which requests, so that the log says what held the shutdown (the first ten).
      const urls = unfinished.slice(0, 10).map((response) => `${response.req.method} ${response.req.url}`)
      log.warn({ cut, cutPartial, longLivedCut: counts.cut, heldCut, urls, timeout: config.timeout }, 'drain: deadline reached, cut in-flight requests')
      lifecycle[kAbortDeadline]()
      for (const connection of longLived) connection.destroy()
      work.forgetConnections()
      for (const socket of sockets) socket.destroy()
      for (const session of sessions) session.destroy()
      // What was cut is no longer in flight, whenever its close event comes.
      requests.clear()
      if (cut > 0) lifecycle[kMarkForced]('drain', `${cut} request(s) cut at the ${config.timeout}ms deadline`)
      if (counts.cut > 0) lifecycle[kMarkForced]('drain', `${counts.cut} long-lived connection(s) cut at the ${config.timeout}ms deadline`)
      if (heldCut.length > 0) lifecycle[kMarkForced]('drain', `held work still running at the ${config.timeout}ms deadline: ${heldCut.join(', ')}`)
    }
    counts.closed = counts.notified - counts.cut
    const durationMs = Math.round(performance.now() - started)
    lifecycle[kRecord]('drain', { inFlightAtClose, heldAtClose, cut, cutPartial, heldCut, longLived: { ...counts }, timeout: config.timeout, idleGraceMs, durationMs, deadlineReached })
    log.info({ cut, heldCut, longLived: counts, durationMs, deadlineReached }, 'drain: done')
  })
}

/** HTTP/1: asks the client to close after this response. HTTP/2: GOAWAY after this stream. */
function closeAfterResponse (request: RawRequest, response: RawResponse): void {
  if (request.httpVersionMajor === 2) {
    // A stream still in flight always belongs to its session.
    (request as Http2ServerRequest).stream.session!.close()
  } else if (!response.headersSent) {
    response.setHeader('connection', 'close')
  }
}

/**
 * Resolves after a whole turn of the event loop, its poll phase (where connections are
 * accepted) included: the first setImmediate may run in the check phase of the very turn this
 * was called from (from an I/O callback), the second runs after the next poll.
 */
function wholeTurn (): Promise<void> {
  return new Promise((resolve) => { setImmediate(() => { setImmediate(resolve) }) })
}

function ignoreWriteAfterEnd (err: NodeJS.ErrnoException): void {
  if (err.code !== 'ERR_STREAM_WRITE_AFTER_END') throw err
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(drain, { name: 'fastify-lifecycle-drain', fastify: '5.x' })
export { drain as fastifyLifecycleDrain }
