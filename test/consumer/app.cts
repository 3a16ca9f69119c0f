// The same program for a CommonJS TypeScript project: no top-level await.
import Fastify = require('fastify')
import lifecycleModule = require('fastify-lifecycle')
import errors = require('fastify-lifecycle/errors')
import clusterModule = require('fastify-lifecycle/cluster')

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
  // The cluster primary's subpath resolves and types (not started: it would fork).
  const primaryOptions: clusterModule.PrimaryOptions = { workers: 2, reloadSignal: 'SIGHUP' }
  const primary = typeof clusterModule.startPrimary === 'function' && primaryOptions.workers === 2
  console.log(JSON.stringify({ readyz: res.status, clean: report.clean, deadlineReached: report.stages.drain?.deadlineReached, code, primary }))
}
main().catch((err) => { console.error(err); process.exit(1) })
