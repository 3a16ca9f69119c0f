// A consumer's program, as users write it: type-checked under each TypeScript set-up of the
// matrix, then run. It prints the status of /readyz and exits.
import Fastify from 'fastify'
import lifecycle, { type ShutdownReport } from 'fastify-lifecycle'
import { FST_LIFECYCLE_INVALID_OPTION } from 'fastify-lifecycle/errors'
import { startPrimary, type PrimaryOptions } from 'fastify-lifecycle/cluster'

// The cluster primary's subpath resolves and types (not started: it would fork).
const primaryOptions: PrimaryOptions = { workers: 2, reloadSignal: 'SIGHUP' }
const primaryEntry: typeof startPrimary = startPrimary
const app = Fastify()
await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, health: { port: undefined } })
app.lifecycle.teardown('noop', () => {})
app.lifecycle.check('noop', () => true, { timeout: 100 })
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as { port: number }
const res = await fetch(`http://127.0.0.1:${port}/readyz`)
const report: ShutdownReport = await app.lifecycle.shutdown()
const deadlineReached: boolean | undefined = report.stages.drain?.deadlineReached
const err: unknown = new FST_LIFECYCLE_INVALID_OPTION('a', 'b', 'c')
if (err instanceof FST_LIFECYCLE_INVALID_OPTION) {
  const code: 'FST_LIFECYCLE_INVALID_OPTION' = err.code
  console.log(JSON.stringify({ readyz: res.status, clean: report.clean, deadlineReached, code, primary: typeof primaryEntry === 'function' && primaryOptions.workers === 2 }))
}
