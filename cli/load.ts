// The load generator of the `verify` command to come, shared today by the integration tests,
// `npm run demo` and the benchmarks: keep-alive clients (one undici Client each, so one
// connection each) and clients that open a fresh connection per request, each tagging every
// request with a unique x-test-id so the caller can match client outcomes against the server's
// own log. Every loop is bounded in count and time. Process-level code: no Fastify plugin.
import { Client } from 'undici'

/** What happened to one request, as the client saw it. */
export interface Outcome {
  /** The x-test-id sent. */
  id: string
  path: string
  /** Sent on a connection opened for it alone. */
  fresh: boolean
  /** Sent on a keep-alive connection an earlier request of the client had used (a reused socket). */
  reused: boolean
  /** performance.now() when sent. */
  startedAt: number
  /** performance.now() when answered or failed. */
  endedAt: number
  /** HTTP status, when an answer came. */
  status?: number
  /** The Connection response header. */
  connection?: string
  /** Error code, when no answer came. */
  error?: string
}

export interface LoadOptions {
  /** e.g. http://127.0.0.1:3000 */
  origin: string
  /** @default 50 */
  keepAliveClients?: number
  /** @default 10 */
  freshClients?: number
  /** Path of the n-th request of a client. @default mixedPath */
  path?: (n: number) => string
  /** @default 2000 */
  maxRequestsPerClient?: number
  /** @default 30000 */
  maxDurationMs?: number
  /** @default 'r' */
  idPrefix?: string
  /** Headers sent with every request (a token for a service that asks for one). @default {} */
  headers?: Record<string, string>
  /**
   * A request with no answer after this many ms fails as hung (`UND_ERR_HEADERS_TIMEOUT`,
   * `UND_ERR_BODY_TIMEOUT`) instead of holding its client until the end. @default 30000
   */
  timeoutMs?: number
}

export interface Load {
  /** Every request so far, the pending ones included. */
  outcomes: Outcome[]
  /** Resolves when every client has ended. */
  done: Promise<Outcome[]>
  /** Lets each client finish its current request, then end. */
  stop: () => void
}

/** Every 5th request is slow: a share of requests is always in flight. */
export function mixedPath (n: number): string {
  return n % 5 === 4 ? '/slow?ms=200' : '/'
}

/** Starts the clients. */
export function startLoad (options: LoadOptions): Load {
  const {
    origin,
    keepAliveClients = 50,
    freshClients = 10,
    path = mixedPath,
    maxRequestsPerClient = 2000,
    maxDurationMs = 30_000,
    idPrefix = 'r',
    headers = {},
    timeoutMs = 30_000
  } = options
  const timeouts = { headersTimeout: timeoutMs, bodyTimeout: timeoutMs }
  const outcomes: Outcome[] = []
  let stopped = false
  const endAt = performance.now() + maxDurationMs
  const running = (): boolean => !stopped && performance.now() < endAt

  async function send (client: Client, id: string, reqPath: string, fresh: boolean, reused = false): Promise<Outcome> {
    const outcome: Outcome = { id, path: reqPath, fresh, reused, startedAt: performance.now(), endedAt: 0 }
    outcomes.push(outcome)
    try {
      const res = await client.request({ method: 'GET', path: reqPath, headers: { ...headers, 'x-test-id': id } })
      await res.body.dump()
      outcome.status = res.statusCode
      outcome.connection = res.headers.connection as string | undefined
    } catch (err) {
      // undici's errors all carry a code (UND_ERR_SOCKET, ECONNREFUSED, …).
      outcome.error = String((err as { code?: string }).code)
    }
    outcome.endedAt = performance.now()
    return outcome
  }

  async function keepAliveWorker (w: number): Promise<void> {
    const client = new Client(origin, { keepAliveTimeout: 60_000, pipelining: 1, ...timeouts })
    try {
      // The socket is reused after an answer that did not ask the client to close it.
      let reused = false
      for (let n = 0; n < maxRequestsPerClient && running(); n++) {
        const outcome = await send(client, `${idPrefix}-k${w}-${n}`, path(n), false, reused)
        reused = outcome.status !== undefined && outcome.connection !== 'close'
      }
    } finally {
      await client.destroy()
    }
  }

  async function freshWorker (w: number): Promise<void> {
    for (let n = 0; n < maxRequestsPerClient && running(); n++) {
      const client = new Client(origin, { pipelining: 1, ...timeouts })
      await send(client, `${idPrefix}-f${w}-${n}`, path(n), true)
      await client.destroy()
    }
  }

  const workers: Array<Promise<void>> = []
  for (let w = 0; w < keepAliveClients; w++) workers.push(keepAliveWorker(w))
  for (let w = 0; w < freshClients; w++) workers.push(freshWorker(w))

  return {
    outcomes,
    done: Promise.all(workers).then(() => outcomes),
    stop () { stopped = true }
  }
}

export interface LoadSummary {
  sent: number
  answered2xx: number
  non2xx: number
  /** No answer came (reset, refused, hang-up). */
  failed: number
  /** Failed although the server had logged the request as received. */
  failedAfterAccept: number
  /** Failures by error code. */
  errors: Record<string, number>
}

/** Sorts outcomes into what a reader wants to know; `accepted` are the ids the server logged. */
export function summarize (outcomes: readonly Outcome[], accepted?: ReadonlySet<string>): LoadSummary {
  const summary: LoadSummary = { sent: outcomes.length, answered2xx: 0, non2xx: 0, failed: 0, failedAfterAccept: 0, errors: {} }
  for (const o of outcomes) {
    if (o.status !== undefined && o.status >= 200 && o.status < 300) summary.answered2xx++
    else if (o.status !== undefined) summary.non2xx++
    else {
      summary.failed++
      const code = o.error as string
      summary.errors[code] = (summary.errors[code] ?? 0) + 1
      if (accepted?.has(o.id) === true) summary.failedAfterAccept++
    }
  }
  return summary
}
