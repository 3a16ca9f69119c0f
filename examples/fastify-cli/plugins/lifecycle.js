// fastify-lifecycle for the whole app: wrapped with fastify-plugin so `fastify.lifecycle` is
// seen by the routes, as autoloaded plugins are. The graceful piece takes over fastify-cli's
// own signal handling at start-up (it would close the app at once and exit 500 ms later).
import fp from 'fastify-plugin'
import lifecycle from 'fastify-lifecycle'

function ms (name, fallback) {
  const raw = process.env[name]
  return raw === undefined || raw === '' ? fallback : Number(raw)
}

export default fp(async function lifecyclePlugin (fastify) {
  await fastify.register(lifecycle, {
    preStop: { delay: ms('PRE_STOP_DELAY_MS', 5000) },
    drain: { timeout: ms('DRAIN_TIMEOUT_MS', 5000) }
  })
}, { name: 'app-lifecycle' })
