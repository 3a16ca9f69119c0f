/**
 * Everything in the suite that leans on Node (and Fastify) behaviour beyond their documented
 * APIs, in one place. Each workaround says what it works around, the upstream issue, the Node
 * versions it was tested on (20.20 and 24.22, the two CI runs), and which canary test in
 * test/node-internals.test.ts fails the day Node no longer behaves that way, so the
 * workaround can go. Public APIs are used wherever they exist: `socket.writableLength` for a
 * socket still flushing, the `http.server.request.start` diagnostics channel for requests
 * that arrive during a shutdown, the request's `Accept` header for an event stream.
 */
import diagnosticsChannel from 'node:diagnostics_channel'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { Server as NetServer, type Socket } from 'node:net'
import { deadline } from './timers.js'

export type RawRequest = IncomingMessage | Http2ServerRequest
export type RawResponse = ServerResponse | Http2ServerResponse
type Listener = (request: RawRequest, response: RawResponse) => void
type Interceptor = (request: RawRequest, response: RawResponse) => boolean

/** An HTTP/1 socket, with the response Node is writing on it (null between requests). */
type HttpSocket = Socket & { _httpMessage?: ServerResponse | null }

// ---------------------------------------------------------------------------------------------
// 1. The response in flight on a socket: `socket._httpMessage`.
//
// Node attaches each ServerResponse to its socket (`assignSocket`) and detaches it once the
// response has been written out (`detachSocket`, on 'finish'). No public API lists a
// connection's current response, and the drain needs exactly that, for the requests already in
// flight when the shutdown starts, without tracking every request while the service is ready
// (which would cost every request something). Canary: "socket._httpMessage is the response in
// flight, and null once written out".
// ---------------------------------------------------------------------------------------------

/**
 * The response in flight on an HTTP/1 socket, if any. @fastify/websocket attaches a response
 * of its own to an upgraded socket: that connection is long-lived, tracked as such, not a
 * request in flight.
 */
export function responseOn (socket: Socket): ServerResponse | undefined {
  const response = (socket as HttpSocket)._httpMessage
  return response != null && (response.req as { upgrade?: boolean }).upgrade !== true ? response : undefined
}

// ---------------------------------------------------------------------------------------------
// 2. Closing idle keep-alive sockets without truncating a response still flushing.
//
// `server.closeIdleConnections()` destroys every socket whose parser is between requests,
// which includes a socket whose response has ended but is still being flushed to a slow client:
// the client gets a truncated body (nodejs/node#43890 added the "response not finished" guard,
// which does not cover an ended response still in the socket's buffer). `http.Server#close()`
// calls closeIdleConnections() since Node 19, so it truncates too. The parser's view of "between
// requests" has no public API, so closeIdleConnections() stays the way to ask it; sockets still
// flushing (`writableLength > 0`, public) get a no-op `destroy` for the length of the call, and
// are swept again when their response closes. The listener is closed with net.Server's close,
// which closes no connection. Canary: "closeIdleConnections() truncates an ended response still
// flushing".
// ---------------------------------------------------------------------------------------------

/** Stops accepting connections, closing none of the open ones. */
export function closeListener (server: Server): void {
  NetServer.prototype.close.call(server)
}

/** Closes the sockets that are between requests, except those still flushing a response. */
export function closeIdleSockets (server: Server, sockets: Iterable<Socket>): void {
  const flushing: Socket[] = []
  for (const socket of sockets) {
    if (socket.writableLength > 0) {
      socket.destroy = keepOpen
      flushing.push(socket)
    }
  }
  try {
    server.closeIdleConnections()
  } finally {
    for (const socket of flushing) delete (socket as Partial<Socket>).destroy
  }
}

/** Stands in for destroy() on a socket that must survive closeIdleConnections(). */
function keepOpen (this: Socket): Socket {
  return this
}

// ---------------------------------------------------------------------------------------------
// 2b. Closing the accept queue before the listener.
//
// Closing a listening socket resets every connection still in its accept queue: the kernel
// completed their handshake, their client may have sent its request. The drain accepts what is
// queued before it closes, but under a steady stream of new connections (clients that have not
// learned the instance is leaving, with the event loop just blocked) the queue refills as fast
// as it is emptied, and whatever is queued at the close is reset. Calling listen(2) again on a
// listening socket sets its backlog (POSIX; Linux applies it at once): with a backlog of 0 the
// kernel completes no new handshake once one connection waits, so the queue empties in a turn
// or two, and a client whose SYN is dropped meanwhile retries it and is then refused, before
// sending anything. Node's TCP handle has the `listen(backlog)` that net.Server calls once;
// calling it again reaches uv_listen, which calls listen(2) again. Cluster workers' handles
// (round-robin) have a no-op listen. Canary: "listen(0) on a listening handle leaves it
// listening, and accepting".
// ---------------------------------------------------------------------------------------------

interface ListenHandle { listen?: (backlog: number) => number }

/** Lowers the listener's backlog to 0: the kernel queues no new connection behind one waiting. */
export function closeAcceptQueue (server: Server): void {
  const handle = (server as unknown as { _handle?: ListenHandle | null })._handle
  if (typeof handle?.listen === 'function') handle.listen(0)
}

// ---------------------------------------------------------------------------------------------
// 3. Whether a response is an event stream.
//
// An EventSource sends `Accept: text/event-stream` (public, checked first). For other clients,
// the response's content type: Fastify writes headers with writeHead(status, object), which
// getHeader() does not see afterwards (Node stores only setHeader() headers), so the header
// block Node sent (`response._header`) is the last resort. Canary: "getHeader() does not see
// headers passed to writeHead()".
// ---------------------------------------------------------------------------------------------

const EVENT_STREAM = /content-type:\s*text\/event-stream|^text\/event-stream/im

export function isEventStream (request: RawRequest, response: RawResponse): boolean {
  if (!response.headersSent) return false
  const accept = request.headers.accept
  if (typeof accept === 'string' && accept.includes('text/event-stream')) return true
  const type = response.getHeader('content-type')
  if (type !== undefined) return EVENT_STREAM.test(String(type))
  const sent = (response as { _header?: unknown })._header
  return typeof sent === 'string' && EVENT_STREAM.test(sent)
}

// ---------------------------------------------------------------------------------------------
// 4. Requests that arrive during a shutdown: the `http.server.request.start` channel.
//
// Public (tested on Node 20.20 and 24.22), published for every HTTP/1 request before the
// server's 'request' listeners run, so even a synchronous route has not sent its headers yet.
// The drain subscribes only from the start of a shutdown: while the service is ready, nothing
// runs per request. HTTP/2 compatibility requests are not published there; the drain listens
// to those with prependListener('request').
// ---------------------------------------------------------------------------------------------

interface RequestStart { request: IncomingMessage, response: ServerResponse, server: unknown }

/** Calls `listener` for each HTTP/1 request `server` receives from now on; returns the unsubscribe. */
export function observeRequests (server: object, listener: (request: IncomingMessage, response: ServerResponse) => void): () => void {
  const channel = diagnosticsChannel.channel('http.server.request.start')
  function onRequestStart (message: unknown): void {
    const start = message as RequestStart
    if (start.server === server) listener(start.request, start.response)
  }
  channel.subscribe(onRequestStart)
  return () => { channel.unsubscribe(onRequestStart) }
}

// ---------------------------------------------------------------------------------------------
// 5. Answering probes before Fastify: the request-listener swap.
//
// Not a Node defect: Fastify runs the service's onRequest hooks (auth, rate limits, load
// shedding) for every route, so a probe served as a Fastify route can be refused by them. The
// health plugin answers probes in front of Fastify's router by putting one dispatcher in place
// of the server's 'request' listeners (Fastify's handler). Public EventEmitter calls only;
// it relies on Fastify adding exactly its handler as the 'request' listener at construction.
// Canary: "Fastify's handler is the server's only request listener".
// ---------------------------------------------------------------------------------------------

interface GatedServer {
  listeners: (event: 'request') => Function[]
  removeAllListeners: (event: 'request') => unknown
  on: (event: 'request', listener: Listener) => unknown
}

/**
 * Puts one dispatcher in place of the server's `request` listeners: `interceptor` sees each
 * request first and answers it itself when it returns true; any other request goes on to the
 * listeners (Fastify's handler) exactly as before. Once per server: the health plugin registers
 * once per server (see kClaim).
 */
export function interceptRequests (server: object, interceptor: Interceptor): void {
  const gated = server as GatedServer
  const downstream = gated.listeners('request') as Listener[]
  gated.removeAllListeners('request')
  // Fastify's handler alone, as always: one call on every request, no loop.
  const handler: Listener = downstream.length === 1
    ? downstream[0]
    : function requestListeners (this: unknown, request, response) {
      for (let i = 0; i < downstream.length; i++) downstream[i].call(this, request, response)
    }
  gated.on('request', function lifecycleRequestGate (this: unknown, request, response) {
    if (!interceptor(request, response)) handler.call(this, request, response)
  })
}

// ---------------------------------------------------------------------------------------------
// 6. Log lines still being written when the process exits: pino's asynchronous destination.
//
// Not Node's own: pino writes to stdout through sonic-boom, asynchronously by default, one
// fs.write in flight and later lines queued. At process.exit, pino's exit handler writes the
// queued lines synchronously while the one in flight may not have landed yet, so lines come out
// of order (the "last" line of a shutdown is not last). pino's flush() does not wait for the
// write in flight (it returns at once with sonic-boom's default minLength 0). pino keeps its
// destination under a symbol described 'pino.stream' (not a global one), and sonic-boom marks
// a write in flight with `_writing` and emits 'drain' once everything is written. Canary:
// "a pino destination is found, with a write in flight after a line is logged".
// ---------------------------------------------------------------------------------------------

interface LogDestination {
  _writing?: unknown
  once: (event: 'drain', listener: () => void) => unknown
}

/** The destination of a pino logger (a child's too), or undefined for any other logger. */
export function logDestination (log: object): LogDestination | undefined {
  for (let level: object | null = log; level !== null; level = Object.getPrototypeOf(level) as object | null) {
    for (const symbol of Object.getOwnPropertySymbols(level)) {
      if (symbol.description === 'pino.stream') return (log as Record<symbol, LogDestination>)[symbol]
    }
  }
  return undefined
}

/** Resolves once the lines logged so far are written out, or after `ms`: call it before exiting. */
export async function logsWritten (log: object, ms: number): Promise<void> {
  const destination = logDestination(log)
  if (destination?._writing !== true) return
  const timer = deadline(ms)
  await Promise.race([new Promise<void>((resolve) => { destination.once('drain', resolve) }), timer.promise])
  timer.clear()
}

// ---------------------------------------------------------------------------------------------
// 7. The file descriptor of a listening socket: `server._handle.fd`.
//
// A listener handoff passes the listening sockets to the new process as extra stdio entries of
// spawn(), which takes file descriptors. net.Server has no public way to give its socket's
// descriptor; its TCP (or Pipe) handle has `fd` on Unix (-1 on Windows, and for a cluster
// worker's round-robin handle, which has no socket of its own). Canary: "a listening server's
// handle has the socket's fd".
// ---------------------------------------------------------------------------------------------

/** The listening socket's file descriptor, or undefined when it has none this process can pass. */
export function listenerFd (server: NetServer): number | undefined {
  const fd = (server as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}
