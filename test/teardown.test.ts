import { once } from 'node:events'
import { test } from 'tap'
import Fastify from 'fastify'
import pg from 'pg'
import { Redis } from 'ioredis'
import { createClient } from 'redis'
import lifecycle, { drain, teardown, type TeardownResult } from '../plugins/index.js'
import { PG_URL, REDIS_URL, requirePg, requireRedis, startOwnRedis } from './helpers/services.js'

function outcomes (results: TeardownResult[]): Array<[string, string]> {
  return results.map((r) => [r.name, r.outcome])
}

async function closedApp (options = {}) {
  const app = Fastify()
  await app.register(teardown, options)
  return app
}

/**
 * The report's times are in tenths of a millisecond: compare them as such, not as floats
 * (0.1 + 0.2 is 0.30000000000000004).
 */
const tenths = (ms: number): number => Math.round(ms * 10)

test('closes real pg, ioredis and node-redis clients and a function, in reverse registration order', async (t) => {
  await requirePg()
  await requireRedis()
  const app = await closedApp()
  const pool = new pg.Pool({ connectionString: PG_URL })
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  const ioredis = new Redis(REDIS_URL)
  const nodeRedis = createClient({ url: REDIS_URL })
  await nodeRedis.connect()
  await pool.query('SELECT 1')
  await ioredis.ping()
  let fnCalls = 0
  app.lifecycle
    .teardown('pg-pool', pool)
    .teardown('pg-client', client)
    .teardown('ioredis', ioredis)
    .teardown('node-redis', nodeRedis)
    .teardown('flush-metrics', async () => { fnCalls++ })
  await app.ready()
  const report = await app.lifecycle.shutdown()
  const results = report.stages.teardown!.resources as TeardownResult[]
  t.same(outcomes(results), [['flush-metrics', 'closed'], ['node-redis', 'closed'], ['ioredis', 'closed'], ['pg-client', 'closed'], ['pg-pool', 'closed']])
  t.same(results.map((r) => r.method), ['function', 'quit', 'quit', 'end', 'end'], 'quit, not the abrupt end(), for ioredis')
  t.equal(fnCalls, 1)
  t.equal(pool.ended, true, 'the pool ended')
  await t.rejects(client.query('SELECT 1'), 'the client is closed')
  t.equal(ioredis.status, 'end', 'ioredis quit')
  t.equal(nodeRedis.isOpen, false, 'node-redis closed')
  t.equal(report.clean, true)
  for (let i = 1; i < results.length; i++) {
    t.ok(tenths(results[i].startedAtMs!) >= tenths(results[i - 1].startedAtMs! + results[i - 1].durationMs!), `${results[i].name} started after ${results[i - 1].name} ended`)
  }
})

test('`after` keeps a resource open until the ones it names are closed', async (t) => {
  const app = await closedApp()
  const order: string[] = []
  // The cache writes through to the database: the database must outlive the cache.
  app.lifecycle.teardown('cache', () => { order.push('cache') })
  app.lifecycle.teardown('db', () => { order.push('db') }, { after: ['cache'] })
  app.lifecycle.teardown('metrics', () => { order.push('metrics') })
  await app.ready()
  await app.lifecycle.shutdown()
  t.same(order, ['metrics', 'cache', 'db'], 'db, registered after cache, still waits for it')
})

/** Two resources that can only close if both are closing at the same time. */
function rendezvous () {
  let arrivedA!: () => void
  let arrivedB!: () => void
  const a = new Promise<void>((resolve) => { arrivedA = resolve })
  const b = new Promise<void>((resolve) => { arrivedB = resolve })
  return {
    a: async () => { arrivedA(); await b },
    b: async () => { arrivedB(); await a }
  }
}

test('parallel: independent resources close at the same time', async (t) => {
  const app = await closedApp({ parallel: true, resourceTimeout: 2000 })
  const pair = rendezvous()
  app.lifecycle.teardown('a', pair.a).teardown('b', pair.b)
  await app.ready()
  const report = await app.lifecycle.shutdown()
  const [first, second] = report.stages.teardown!.resources as TeardownResult[]
  t.same(outcomes([first, second]).sort(), [['a', 'closed'], ['b', 'closed']], 'each could only finish while the other was closing')
  t.ok(tenths(second.startedAtMs!) <= tenths(first.startedAtMs! + first.durationMs!), 'the report shows the overlap: the second started before the first ended')
})

test('parallel still honours `after`', async (t) => {
  const app = await closedApp({ parallel: true })
  const order: string[] = []
  app.lifecycle.teardown('pool', async () => { order.push('pool') }, { after: ['queue', 'cache'] })
  app.lifecycle.teardown('queue', async () => { order.push('queue') })
  app.lifecycle.teardown('cache', async () => { order.push('cache') })
  await app.ready()
  await app.lifecycle.shutdown()
  t.equal(order.at(-1), 'pool')
})

test('sequential (the default): the same two resources cannot overlap, so the first one times out', async (t) => {
  const app = await closedApp({ resourceTimeout: 100 })
  const pair = rendezvous()
  app.lifecycle.teardown('a', pair.a).teardown('b', pair.b)
  await app.ready()
  const report = await app.lifecycle.shutdown()
  t.same(outcomes(report.stages.teardown!.resources as TeardownResult[]), [['b', 'timed out'], ['a', 'closed']])
})

test('a close that never settles is cut at its timeout, forced, named; the others still close', async (t) => {
  const app = await closedApp({ timeout: 5000 })
  let forced = 0
  const stuck = { quit: () => new Promise(() => {}), disconnect: () => { forced++ } }
  let closedAfter = false
  app.lifecycle.teardown('db', () => { closedAfter = true })
  app.lifecycle.teardown('stuck-redis', stuck, { timeout: 150 })
  await app.ready()
  const report = await app.lifecycle.shutdown()
  const results = report.stages.teardown!.resources as TeardownResult[]
  t.same(outcomes(results), [['stuck-redis', 'timed out'], ['db', 'closed']])
  t.ok(results[0].durationMs! >= 149 && results[0].durationMs! < 5000, 'cut at its own timeout, not the overall one')
  t.equal(forced, 1, 'disconnect() was called to stop what quit() left running')
  t.equal(closedAfter, true)
  t.same(report.forced, ["teardown: 'stuck-redis' timed out"])
  t.equal(report.exitCode, 1)
})

test('a close that throws or rejects is reported with its message; the others still close', async (t) => {
  const app = await closedApp()
  let closed = 0
  app.lifecycle.teardown('ok-1', () => { closed++ })
  app.lifecycle.teardown('sync-throw', () => { throw new Error('socket already gone') })
  app.lifecycle.teardown('rejects', { close: async () => { throw new Error('pool end failed') } })
  app.lifecycle.teardown('throws-a-string', async () => { throw 'not an Error' }) // eslint-disable-line no-throw-literal
  app.lifecycle.teardown('ok-2', () => { closed++ })
  await app.ready()
  const report = await app.lifecycle.shutdown()
  const results = report.stages.teardown!.resources as TeardownResult[]
  t.same(results.map((r) => [r.name, r.outcome, r.error]), [
    ['ok-2', 'closed', undefined],
    ['throws-a-string', 'failed', 'not an Error'],
    ['rejects', 'failed', 'pool end failed'],
    ['sync-throw', 'failed', 'socket already gone'],
    ['ok-1', 'closed', undefined]
  ])
  t.equal(closed, 2)
  t.same(report.forced, [
    "teardown: 'throws-a-string' failed: not an Error",
    "teardown: 'rejects' failed: pool end failed",
    "teardown: 'sync-throw' failed: socket already gone"
  ])
})

test('the overall deadline cuts the teardown: what runs is timed out, what waits is skipped', async (t) => {
  // hangs-2 hits its own 100ms timeout; hangs-1 (300ms of its own) is still running when the
  // overall 250ms deadline passes; never-reached never starts.
  const app = await closedApp({ timeout: 250, resourceTimeout: 250 })
  let forced = 0
  app.lifecycle.teardown('never-reached', () => {})
  app.lifecycle.teardown('hangs-1', { end: () => new Promise(() => {}), destroy: () => { forced++ } }, { timeout: 300 })
  app.lifecycle.teardown('hangs-2', () => new Promise(() => {}), { timeout: 100 })
  await app.ready()
  const report = await app.lifecycle.shutdown()
  t.same(outcomes(report.stages.teardown!.resources as TeardownResult[]), [['hangs-2', 'timed out'], ['hangs-1', 'timed out'], ['never-reached', 'skipped']])
  t.equal(forced, 1, 'the resource cut by the overall deadline was forced too')
  t.ok((report.stages.teardown!.durationMs as number) < 1000, 'bounded by the overall deadline')
  t.same(report.forced, ["teardown: 'hangs-2' timed out", "teardown: 'hangs-1' timed out", "teardown: 'never-reached' skipped at the 250ms deadline"])
})

test('Redis unreachable at shutdown: teardown still finishes within its timeout, with no reconnect loop left', async (t) => {
  const own = await startOwnRedis(t)
  const app = await closedApp({ timeout: 2000 })
  const client = new Redis(own.url, { retryStrategy: () => 50 })
  client.on('error', () => {})
  await client.ping()
  app.lifecycle.teardown('redis', client, { timeout: 300 })
  await app.ready()
  const closed = once(client, 'close')
  await own.stop()
  await closed
  t.equal(client.status, 'reconnecting', 'the client is trying to reach the stopped server')
  const report = await app.lifecycle.shutdown()
  const [result] = report.stages.teardown!.resources as TeardownResult[]
  t.equal(result.outcome, 'closed', 'ioredis ends a client it cannot reach when asked to quit')
  t.ok(result.durationMs! < 300, 'within its own timeout')
  t.ok((report.stages.teardown!.durationMs as number) < 2000, 'within the overall deadline')
})

test('teardown runs after the drain: a request in flight never sees its pool closed', async (t) => {
  await requirePg()
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  const pool = new pg.Pool({ connectionString: PG_URL })
  app.lifecycle.teardown('pg', pool)
  let entered!: () => void
  const inRoute = new Promise<void>((resolve) => { entered = resolve })
  app.get('/', async () => {
    entered()
    await once(app.lifecycle, 'closing')
    const { rows } = await pool.query('SELECT pg_sleep(0.2), 1 AS one')
    return rows[0].one
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const { request } = await import('undici')
  const pending = request(`http://127.0.0.1:${port}/`)
  await inRoute
  const report = app.lifecycle.shutdown()
  const res = await pending
  t.equal(res.statusCode, 200)
  t.equal(await res.body.text(), '1')
  t.same(outcomes((await report).stages.teardown!.resources as TeardownResult[]), [['pg', 'closed']])
})

test('registration errors are coded and name the resource', async (t) => {
  const app = await closedApp()
  t.teardown(() => app.close())
  const lc = app.lifecycle
  lc.teardown('db', () => {})
  t.throws(() => lc.teardown('db', () => {}), { code: 'FST_LIFECYCLE_TEARDOWN_DUPLICATE_NAME', message: /'db' is already registered/ })
  t.throws(() => lc.teardown('x', {} as never), { code: 'FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD', message: /'x' is an object \(Object\), with no end\(\)/ })
  t.throws(() => lc.teardown('x', Object.create(null)), { code: 'FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD', message: /an object \(no prototype\)/ })
  t.throws(() => lc.teardown('x', 42 as never), { code: 'FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD', message: /'x' is number/ })
  t.throws(() => lc.teardown('x', null as never), { code: 'FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD', message: /'x' is null/ })
  t.throws(() => lc.teardown('', () => {}), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: "lifecycle.teardown(): name must be a non-empty string, received ''" })
  t.throws(() => lc.teardown('x', () => {}, { timeout: 0 }), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /'teardown 'x' timeout' must be a positive integer of ms, received 0/ })
  t.throws(() => lc.teardown('x', () => {}, { timeout: -1 }), { code: 'FST_LIFECYCLE_INVALID_OPTION' })
  t.throws(() => lc.teardown('x', () => {}, { after: 'db' as never }), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /after' must be an array of resource names/ })
  t.throws(() => lc.teardown('x', () => {}, { befor: ['db'] } as never), { code: 'FST_LIFECYCLE_UNKNOWN_OPTION', message: /'teardown 'x' befor' is not known/ })
  t.throws(() => lc.teardown('x', () => {}, null as never), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /options' must be an object/ })
})

test('an `after` naming an unknown resource fails the boot, naming both', async (t) => {
  const app = await closedApp()
  t.teardown(() => app.close())
  app.lifecycle.teardown('db', () => {}, { after: ['cahce'] })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY', message: /'db' is to close after 'cahce', which is not registered/ })
})

test('close() after a boot that failed on the teardown order skips what can never start, at once', async (t) => {
  for (const after of [{ db: ['cahce'] }, { db: ['queue'], queue: ['db'] }] as Array<Record<string, string[]>>) {
    const app = await closedApp({ timeout: 10_000 })
    app.lifecycle.teardown('cache', () => {})
    for (const [name, deps] of Object.entries(after)) app.lifecycle.teardown(name, () => {}, { after: deps })
    await t.rejects(async () => { await app.ready() })
    const started = performance.now()
    await app.close()
    const took = performance.now() - started
    t.ok(took < 1000, `close() took ${Math.round(took)}ms, far below the 10000ms teardown deadline`)
    const report = app.lifecycle.report!
    t.same(outcomes(report.stages.teardown!.resources), [['cache', 'closed'], ...Object.keys(after).reverse().map((name) => [name, 'skipped'])], 'the others still close; the unreachable ones are skipped')
    t.match(report.forced.at(-1), /skipped: its after \(.+\) can never be met$/)
    t.equal(report.phases.find((p) => p.phase === 'draining')?.phase, 'draining', 'the report is complete')
  }
})

test('a cycle in `after` fails the boot and shows the cycle', async (t) => {
  const app = await closedApp()
  t.teardown(() => app.close())
  app.lifecycle.teardown('a', () => {}, { after: ['b'] })
  app.lifecycle.teardown('b', () => {}, { after: ['c'] })
  app.lifecycle.teardown('c', () => {}, { after: ['a'] })
  app.lifecycle.teardown('d', () => {}, { after: ['a'] })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_TEARDOWN_CYCLE', message: /cycle: a → b → c → a/ })
})

test('a resource registered after ready is checked at once, and rejected without a trace', async (t) => {
  const app = await closedApp()
  t.teardown(() => app.close())
  app.lifecycle.teardown('db', () => {})
  await app.ready()
  t.throws(() => app.lifecycle.teardown('cache', () => {}, { after: ['nope'] }), { code: 'FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY' })
  t.doesNotThrow(() => app.lifecycle.teardown('cache', () => {}, { after: ['db'] }), 'the rejected registration left no entry behind: the name is free again')
  const report = await app.lifecycle.shutdown()
  t.same(report.stages.teardown!.resources.map((r) => [r.name, r.outcome]), [['db', 'closed'], ['cache', 'closed']], 'and only the accepted one is closed, after db as it asked')
})

test('a resource registered once the teardown runs is refused: it would never be closed', async (t) => {
  const app = await closedApp()
  let error: unknown
  app.lifecycle.teardown('late-registrar', () => {
    try { app.lifecycle.teardown('too-late', () => {}) } catch (err) { error = err }
  })
  await app.ready()
  await app.lifecycle.shutdown()
  t.match(error, { code: 'FST_LIFECYCLE_TEARDOWN_STARTED', message: /'too-late' was registered after the teardown started/ })
})

test('lifecycle.teardown() without the teardown plugin says what to register', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(drain)
  t.throws(() => app.lifecycle.teardown('db', () => {}), { code: 'FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED', message: /lifecycle\.teardown\('db'\) needs the teardown plugin/ })
})

test('teardown plugin options are validated at registration', async (t) => {
  for (const [options, message] of [
    [{ timeout: 0 }, /'timeout' must be a positive integer/],
    [{ resourceTimeout: 5000, timeout: 1000 }, /'resourceTimeout' must be at most timeout \(1000ms\), received 5000/],
    [{ parallel: 'yes' }, /'parallel' must be a boolean/]
  ] as const) {
    const app = Fastify()
    app.register(teardown, options as object)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message })
  }
  const app = Fastify()
  app.register(lifecycle, { teardown: { paralel: true } as object })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_UNKNOWN_OPTION', message: /'teardown\.paralel' is not known/ })
})

test('a short overall timeout lowers the default per-resource timeout with it', async (t) => {
  const app = await closedApp({ timeout: 1000 })
  app.lifecycle.teardown('x', () => {})
  await app.ready()
  t.same(app.lifecycle.budget, { teardown: 1000 })
  await app.close()
})
