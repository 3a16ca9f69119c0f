// A Fastify service the way a user writes it, with fastify-lifecycle handling the shutdown.
// Run `npm run build` first, then `node examples/service.js`. Environment:
//   PORT (0 = any free port), HOST (127.0.0.1), PRE_STOP_DELAY_MS (5000), DRAIN_TIMEOUT_MS (5000)
import Fastify from 'fastify'
import lifecycle from 'fastify-lifecycle'

function msFromEnv (name, fallback) {
  const raw = process.env[name]
  return raw === undefined || raw === '' ? fallback : Number(raw)
}

const app = Fastify({ logger: true })

await app.register(lifecycle, {
  preStop: { delay: msFromEnv('PRE_STOP_DELAY_MS', 5000) },
  drain: { timeout: msFromEnv('DRAIN_TIMEOUT_MS', 5000) }
})

app.get('/', async function hello () {
  return { hello: 'world' }
})

app.get('/slow', async function slow (request) {
  const ms = Math.min(Number(request.query.ms ?? 1000), 60_000)
  await new Promise((resolve) => setTimeout(resolve, ms))
  return { waitedMs: ms }
})

// Liveness: the process answers. It never depends on a database, and stays 200 while draining.
app.get('/livez', { logLevel: 'warn' }, async function livez () {
  return 'ok'
})

// Readiness: 503 from the moment the shutdown starts, so load balancers stop routing here.
app.get('/readyz', { logLevel: 'warn' }, async function readyz (request, reply) {
  if (app.lifecycle.isReady()) return 'ok'
  return reply.code(503).send(`not ready: ${app.lifecycle.phase}`)
})

await app.listen({ port: msFromEnv('PORT', 0), host: process.env.HOST ?? '127.0.0.1' })
