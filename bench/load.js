// Load generator shared by the integration tests, `npm run demo` and the benchmarks: keep-alive
// clients (one undici Client each, so one connection each) and clients that open a fresh
// connection per request, each tagging every request with a unique x-test-id so the caller can
// match client outcomes against the server's own log. Every loop is bounded in count and time.
import { Client } from 'undici'

/**
 * @typedef {object} Outcome
 * @property {string} id            the x-test-id sent
 * @property {string} path
 * @property {boolean} fresh        sent on a connection opened for it alone
 * @property {number} startedAt     performance.now() when sent
 * @property {number} endedAt       performance.now() when answered or failed
 * @property {number} [status]      HTTP status, when an answer came
 * @property {string} [connection]  the Connection response header
 * @property {string} [error]       error code, when no answer came
 */

/**
 * @typedef {object} LoadOptions
 * @property {string} origin                     e.g. http://127.0.0.1:3000
 * @property {number} [keepAliveClients]         default 50
 * @property {number} [freshClients]             default 10
 * @property {(n: number) => string} [path]      path of the n-th request of a client
 * @property {number} [maxRequestsPerClient]     default 2000
 * @property {number} [maxDurationMs]            default 30000
 * @property {string} [idPrefix]                 default 'r'
 */

/**
 * Every 5th request is slow: a share of requests is always in flight.
 * @param {number} n
 */
export function mixedPath (n) {
  return n % 5 === 4 ? '/slow?ms=200' : '/'
}

/**
 * Starts the clients; `stop()` lets each finish its current request and end.
 * @param {LoadOptions} options
 */
export function startLoad (options) {
  const {
    origin,
    keepAliveClients = 50,
    freshClients = 10,
    path = mixedPath,
    maxRequestsPerClient = 2000,
    maxDurationMs = 30_000,
    idPrefix = 'r'
  } = options
  /** @type {Outcome[]} */
  const outcomes = []
  let stopped = false
  const endAt = performance.now() + maxDurationMs
  const running = () => !stopped && performance.now() < endAt

  /**
   * @param {Client} client
   * @param {string} id
   * @param {string} reqPath
   * @param {boolean} fresh
   */
  async function send (client, id, reqPath, fresh) {
    /** @type {Outcome} */
    const outcome = { id, path: reqPath, fresh, startedAt: performance.now(), endedAt: 0 }
    outcomes.push(outcome)
    try {
      const res = await client.request({ method: 'GET', path: reqPath, headers: { 'x-test-id': id } })
      await res.body.dump()
      outcome.status = res.statusCode
      outcome.connection = /** @type {string | undefined} */ (res.headers.connection)
    } catch (err) {
      const { code, name } = /** @type {Error & { code?: string }} */ (err)
      outcome.error = code ?? name
    }
    outcome.endedAt = performance.now()
  }

  /** @param {number} w */
  async function keepAliveWorker (w) {
    const client = new Client(origin, { keepAliveTimeout: 60_000, pipelining: 1 })
    try {
      for (let n = 0; n < maxRequestsPerClient && running(); n++) {
        await send(client, `${idPrefix}-k${w}-${n}`, path(n), false)
      }
    } finally {
      await client.destroy()
    }
  }

  /** @param {number} w */
  async function freshWorker (w) {
    for (let n = 0; n < maxRequestsPerClient && running(); n++) {
      const client = new Client(origin, { pipelining: 1 })
      await send(client, `${idPrefix}-f${w}-${n}`, path(n), true)
      await client.destroy()
    }
  }

  const workers = []
  for (let w = 0; w < keepAliveClients; w++) workers.push(keepAliveWorker(w))
  for (let w = 0; w < freshClients; w++) workers.push(freshWorker(w))

  return {
    outcomes,
    /** Resolves when every client has ended. */
    done: Promise.all(workers).then(() => outcomes),
    stop () { stopped = true }
  }
}

/**
 * Sorts outcomes into what a reader wants to know.
 * @param {Outcome[]} outcomes
 * @param {Set<string>} [accepted] ids the server logged as received
 */
export function summarize (outcomes, accepted) {
  const summary = { sent: outcomes.length, answered2xx: 0, non2xx: 0, failed: 0, failedAfterAccept: 0, errors: /** @type {Record<string, number>} */ ({}) }
  for (const o of outcomes) {
    if (o.status !== undefined && o.status >= 200 && o.status < 300) summary.answered2xx++
    else if (o.status !== undefined) summary.non2xx++
    else {
      summary.failed++
      const code = /** @type {string} */ (o.error)
      summary.errors[code] = (summary.errors[code] ?? 0) + 1
      if (accepted?.has(o.id)) summary.failedAfterAccept++
    }
  }
  return summary
}
