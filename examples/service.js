// A Fastify service the way a user writes it, with fastify-lifecycle handling the shutdown.
// Run `npm run build` first, then `node examples/service.js`. Environment:
//   PORT (0 = any free port), HOST (127.0.0.1), PRE_STOP_DELAY_MS (5000), DRAIN_TIMEOUT_MS (5000),
//   PRE_STOP_QUIET_MS and PRE_STOP_MAX_MS (the adaptive pre-stop window: serve until no request
//   came for QUIET ms, at most MAX ms; PRE_STOP_DELAY_MS is then the least time, default 0),
//   REDIS_URL and PG_URL (optional: a real Redis client and pg pool, closed at shutdown);
//   under systemd (NOTIFY_SOCKET, LISTEN_FDS) or PM2 (pm_id) it speaks their protocols;
//   RELOAD=handoff: `kill -USR2 <pid>` starts the new code with the listening socket, and this
//   process drains and exits once it is ready (see docs/reload.md; examples/cluster.js runs it
//   under the cluster primary instead). GET /whoami answers the process id.
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import promClient from 'prom-client'
import lifecycle, { handoffListen, systemdListen } from 'fastify-lifecycle'

function msFromEnv (name, fallback) {
  const raw = process.env[name]
  return raw === undefined || raw === '' ? fallback : Number(raw)
}

const app = Fastify({ logger: true })

await app.register(lifecycle, {
  preStop: {
    delay: msFromEnv('PRE_STOP_DELAY_MS', undefined),
    quiet: msFromEnv('PRE_STOP_QUIET_MS', undefined),
    maxDelay: msFromEnv('PRE_STOP_MAX_MS', undefined),
    // Prometheus scrapes are not traffic a load balancer sends.
    ignorePaths: process.env.PRE_STOP_QUIET_MS ? ['/metrics'] : undefined
  },
  // The lifecycle as Prometheus metrics, in prom-client's default registry, at GET /metrics.
  metrics: { prometheus: { client: promClient, path: '/metrics' } },
  drain: { timeout: msFromEnv('DRAIN_TIMEOUT_MS', 5000) },
  // SIGUSR2 hands the listener over to a new copy of the process (RELOAD=handoff).
  reload: process.env.RELOAD === 'handoff' ? { handoff: true } : undefined
})

// Things to close at shutdown, after the last request: a Redis client and a pg pool when their
// URLs are given (the cache writes through to the database, so the pool outlives the client);
// otherwise an in-process worker whose jobs the drain waits for.
const closeAfter = []
if (process.env.REDIS_URL) {
  const { Redis } = await import('ioredis')
  const redis = new Redis(process.env.REDIS_URL)
  app.lifecycle.teardown('redis', redis)
  app.lifecycle.check('redis', async () => { await redis.ping() }, { timeout: 500 })
  closeAfter.push('redis')
  app.get('/visits', async function visits () {
    return { visits: await redis.incr('example:visits') }
  })
}
if (process.env.PG_URL) {
  const { default: pg } = await import('pg')
  const pool = new pg.Pool({ connectionString: process.env.PG_URL, application_name: 'fastify-lifecycle-example' })
  app.lifecycle.teardown('pg', pool, { after: closeAfter })
  app.lifecycle.check('pg', async () => { await pool.query('SELECT 1') }, { timeout: 500, cacheTtl: 1000 })
  app.get('/db', async function db () {
    const { rows } = await pool.query('SELECT now() AS now')
    return rows[0]
  })
}
if (!process.env.REDIS_URL && !process.env.PG_URL) {
  // A background worker: one job at a time, none started once the shutdown begins, and each
  // held so the drain waits for it to finish.
  let lastJobAt = Date.now()
  const worker = async () => {
    let jobs = 0
    while (!app.lifecycle.signal.aborted) {
      const job = app.lifecycle.hold('report-job')
      await new Promise((resolve) => setTimeout(resolve, 250))
      jobs++
      lastJobAt = Date.now()
      job.release()
    }
    app.log.info({ jobs }, 'worker: stopped')
  }
  // Reported, not critical: a stalled worker shows in /readyz?verbose without taking the
  // instance out of rotation.
  app.lifecycle.check('worker', () => Date.now() - lastJobAt < 2000, { critical: false })
  app.addHook('onReady', async function startWorker () {
    worker().catch((err) => app.log.error({ err }, 'worker: crashed'))
  })
}

// Long-lived connections, drained by the suite: at SIGTERM each WebSocket gets a 1001 close
// frame and each SSE stream a final event with a retry hint. The handlers only stop their
// timer when the connection ends, as any handler should.
await app.register(websocket)
app.get('/ws', { websocket: true }, function sequence (socket) {
  let seq = 0
  const timer = setInterval(() => socket.send(String(++seq)), 100)
  socket.on('close', () => clearInterval(timer))
})

app.get('/sse', function events (request, reply) {
  reply.hijack()
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  let seq = 0
  const timer = setInterval(() => reply.raw.write(`id: ${++seq}\ndata: ${seq}\n\n`), 100)
  request.signal.addEventListener('abort', () => clearInterval(timer))
})

app.get('/', async function hello () {
  return { hello: 'world' }
})

// Which process answered: watch a reload move the traffic.
app.get('/whoami', async function whoami () {
  return { pid: process.pid }
})

app.get('/slow', async function slow (request) {
  const ms = Math.min(Number(request.query.ms ?? 1000), 60_000)
  await new Promise((resolve) => setTimeout(resolve, ms))
  return { waitedMs: ms }
})

// /livez, /readyz and /startupz come from the health plugin (part of fastify-lifecycle):
// readiness fails from the moment of SIGTERM and when a critical check fails; liveness stays
// 200 through the whole shutdown. Try /readyz?verbose.

// After a handoff, on the socket the previous process passed in; under systemd with socket
// activation, on the socket it passed in (LISTEN_FDS); under Type=notify it says READY=1 once
// ready and listening; under PM2, 'ready' (the suite does both).
await app.listen(handoffListen() ?? systemdListen() ?? { port: msFromEnv('PORT', 0), host: process.env.HOST ?? '127.0.0.1' })
