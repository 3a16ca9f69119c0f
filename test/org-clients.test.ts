// @fastify/postgres and @fastify/redis close their own clients in onClose hooks of their own.
// A user who also registers those clients with lifecycle.teardown() (as docs/teardown.md shows
// for clients of their own) gets a clean shutdown: each is reported as already closed, never
// closed twice, never a failure. Real PostgreSQL and Redis.
import { test } from 'tap'
import Fastify from 'fastify'
import fastifyPostgres from '@fastify/postgres'
import fastifyRedis from '@fastify/redis'
import lifecycle from '../plugins/index.js'
import { captureLogs } from './helpers/app.js'
import { PG_URL, REDIS_URL, pgConnections, redisClients, requirePg, requireRedis } from './helpers/services.js'

test('clients closed by @fastify/postgres and @fastify/redis are reported as already closed, and the shutdown is clean', async (t) => {
  await requirePg()
  await requireRedis()
  const name = `org-clients-${process.pid}`
  const { stream, lines } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  await app.register(fastifyPostgres, { connectionString: PG_URL, application_name: name })
  await app.register(fastifyRedis, { url: REDIS_URL, connectionName: name })
  app.lifecycle.teardown('pg', app.pg.pool)
  app.lifecycle.teardown('redis', app.redis)
  app.get('/', async () => (await app.pg.query('SELECT 1 AS one')).rows[0])
  await app.ready()
  t.same((await app.inject('/')).json(), { one: 1 })
  await app.redis.ping()
  t.equal(await pgConnections(name), 1, 'the pool has its connection open')

  const report = await app.lifecycle.shutdown()
  t.same(report.stages.teardown!.resources.map((r) => [r.name, r.outcome]), [['redis', 'already closed'], ['pg', 'already closed']], 'each reported as closed by its owner')
  t.match(report, { clean: true, exitCode: 0, forced: [] })
  t.equal(lines.filter((l) => l.msg === 'teardown: resource already closed by its owner').length, 2)
  t.equal(lines.filter((l) => Number(l.level) >= 50).length, 0, 'no error logged: nothing was closed twice')
  t.equal(await pgConnections(name), 0, 'PostgreSQL has no connection left from the app')
  t.equal(await redisClients(name), 0, 'Redis has no client left from the app')
})

test('a client of the user\'s own that its owner already closed is reported so too: pg, ioredis, node-redis flags', async (t) => {
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  const closes: string[] = []
  app.lifecycle.teardown('pg-pool', { ending: true, end: () => { closes.push('pg-pool') } } as object)
  app.lifecycle.teardown('pg-pool-ended', { ended: true, end: () => { closes.push('pg-pool-ended') } } as object)
  app.lifecycle.teardown('pg-client', { _ending: true, end: () => { closes.push('pg-client') } } as object)
  app.lifecycle.teardown('ioredis', { status: 'end', quit: () => { closes.push('ioredis') }, disconnect: () => {} } as object)
  app.lifecycle.teardown('ioredis-quitting', { status: 'ready', manuallyClosing: true, quit: () => { closes.push('ioredis-quitting') } } as object)
  app.lifecycle.teardown('node-redis', { isOpen: false, isReady: false, quit: () => { closes.push('node-redis') } } as object)
  app.lifecycle.teardown('not-yet-connected', { isOpen: false, isReady: true, quit: () => { closes.push('not-yet-connected') } } as object)
  app.lifecycle.teardown('open', { status: 'ready', quit: () => { closes.push('open') } } as object)
  await app.ready()
  const report = await app.lifecycle.shutdown()
  t.same(closes.sort(), ['not-yet-connected', 'open'], 'only the open ones were closed')
  t.same(Object.fromEntries(report.stages.teardown!.resources.map((r) => [r.name, r.outcome])), {
    open: 'closed',
    'not-yet-connected': 'closed',
    'node-redis': 'already closed',
    'ioredis-quitting': 'already closed',
    ioredis: 'already closed',
    'pg-client': 'already closed',
    'pg-pool-ended': 'already closed',
    'pg-pool': 'already closed'
  })
  t.equal(report.clean, true)
})
