// One server of the overhead benchmark: Fastify hello world, bare (MODE=bare) or with the whole
// fastify-lifecycle suite registered (MODE=suite), or the suite with its Prometheus metrics
// (MODE=metrics). Prints its port on stdout.
import Fastify from 'fastify'
import promClient from 'prom-client'
import lifecycle, { drain, health } from 'fastify-lifecycle'

const app = Fastify()
if (process.env.MODE === 'suite' || process.env.MODE === 'metrics') {
  await app.register(lifecycle, { preStop: { delay: 0 }, ...(process.env.MODE === 'metrics' ? { metrics: { prometheus: { client: promClient, registry: new promClient.Registry() } } } : {}) })
  app.lifecycle.teardown('noop', () => {})
  app.lifecycle.check('noop', () => true)
}
// Single pieces, for finding where a cost comes from (not part of the reported comparison).
if (process.env.MODE === 'drain') await app.register(drain)
if (process.env.MODE === 'health') await app.register(health)
app.get('/', async () => ({ hello: 'world' }))
await app.listen({ port: 0, host: '127.0.0.1' })
console.log(JSON.stringify({ port: /** @type {import('node:net').AddressInfo} */ (app.server.address()).port }))
