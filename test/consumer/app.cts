// The same program for a CommonJS TypeScript project: no top-level await.
import Fastify = require('fastify')
import lifecycleModule = require('fastify-lifecycle')
import errors = require('fastify-lifecycle/errors')

async function main (): Promise<void> {
  const app = Fastify.fastify()
  await app.register(lifecycleModule.default, { graceful: false, preStop: { delay: 0 } })
  app.lifecycle.teardown('noop', () => {})
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const res = await fetch(`http://127.0.0.1:${port}/readyz`)
  const report: lifecycleModule.ShutdownReport = await app.lifecycle.shutdown()
  const err: unknown = new errors.FST_LIFECYCLE_INVALID_OPTION('a', 'b', 'c')
  const code = err instanceof errors.FST_LIFECYCLE_INVALID_OPTION ? err.code : 'none'
  console.log(JSON.stringify({ readyz: res.status, clean: report.clean, deadlineReached: report.stages.drain?.deadlineReached, code }))
}
main().catch((err) => { console.error(err); process.exit(1) })
