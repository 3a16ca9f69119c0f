import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'

export type RawRequest = IncomingMessage | Http2ServerRequest
export type RawResponse = ServerResponse | Http2ServerResponse
type Listener = (request: RawRequest, response: RawResponse) => void
type Interceptor = (request: RawRequest, response: RawResponse) => boolean

/** What the plugins may do with the requests of one server, before Fastify's router. */
export interface RequestGate {
  /** Sees every request first; cannot stop it (the drain, once the shutdown starts). */
  observe: (listener: Listener) => void
  /** Answers the request itself, instead of Fastify, when it returns true (the probes). */
  intercept: (interceptor: Interceptor) => void
}

const kGate = Symbol('fastify-lifecycle.requestGate')
interface GatedServer {
  [kGate]?: RequestGate
  listeners: (event: 'request') => Function[]
  removeAllListeners: (event: 'request') => unknown
  on: (event: 'request', listener: Listener) => unknown
}

/**
 * Puts one dispatcher in place of the server's `request` listeners (Fastify's handler), once
 * per server. Observers run first, then interceptors; a request no interceptor takes goes on
 * to Fastify exactly as before. Fastify's hooks never see what an interceptor answered: this
 * is how the probes stay reachable whatever onRequest hooks (auth, load shedding) the service
 * adds at its root. The gate lives on the server object, not in this module.
 */
export function requestGate (server: object): RequestGate {
  const gated = server as GatedServer
  if (gated[kGate] !== undefined) return gated[kGate]
  const observers: Listener[] = []
  const interceptors: Interceptor[] = []
  const downstream = gated.listeners('request') as Listener[]
  gated.removeAllListeners('request')
  // Indexed loops: this runs for every request, and for..of would allocate an iterator each time.
  gated.on('request', function lifecycleRequestGate (this: unknown, request, response) {
    for (let i = 0; i < observers.length; i++) observers[i](request, response)
    for (let i = 0; i < interceptors.length; i++) if (interceptors[i](request, response)) return
    for (let i = 0; i < downstream.length; i++) downstream[i].call(this, request, response)
  })
  const gate: RequestGate = {
    observe: (listener) => { observers.push(listener) },
    intercept: (interceptor) => { interceptors.push(interceptor) }
  }
  gated[kGate] = gate
  return gate
}
