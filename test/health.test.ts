import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import underPressure from '@fastify/under-pressure'
import { Client, Pool, request } from 'undici'
import lifecycle, { health, type FastifyLifecycleOptions } from '../plugins/index.js'
import type { IncomingMessage } from 'node:http'
import { captureLogs, gate, originOf } from './helpers/app.js'
import { freePort } from './helpers/services.js'

interface Answer { status: number, body: string, headers: Record<string, string | string[] | undefined> }

async function probe (origin: string, path: string, init: { method?: 'GET' | 'HEAD' | 'POST', json?: boolean } = {}): Promise<Answer> {
  const res = await request(origin + path, { method: init.method ?? 'GET', headers: init.json === true ? { accept: 'application/json' } : {} })
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers }
}

/** An app with the whole suite except signal handling, listening on 127.0.0.1. */
async function start (t: { teardown: (fn: () => unknown) => void }, options: FastifyLifecycleOptions = {}, setup?: (app: FastifyInstance) => void) {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, ...options })
  setup?.(app)
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, origin: originOf(app) }
}

test('every phase of the lifecycle, as the probes report it over HTTP', async (t) => {
  const probePort = await freePort()
  const probes = `http://127.0.0.1:${probePort}`
  const app = Fastify()
  t.teardown(() => app.close())
  const warm = gate()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, drain: { timeout: 9000 }, health: { port: probePort, host: '127.0.0.1' } })
  app.lifecycle.startupTask('warm-cache', () => warm.opened)
  app.get('/', async () => 'hello')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const service = originOf(app)

  // starting: the service listens, a start-up task is pending.
  t.equal(app.lifecycle.phase, 'starting')
  t.match(await probe(probes, '/readyz?verbose'), { status: 503, body: /\[-\]lifecycle failed: start-up tasks pending: warm-cache/ })
  t.match(await probe(probes, '/startupz'), { status: 503 })
  t.match(await probe(probes, '/livez'), { status: 200, body: 'ok' })
  t.match(await probe(service, '/readyz'), { status: 404 }, 'with a probe port, the service port does not answer probes')

  // ready
  const ready = once(app.lifecycle, 'ready')
  warm.open()
  await ready
  t.match(await probe(probes, '/readyz'), { status: 200, body: 'ok' })
  t.match(await probe(probes, '/startupz'), { status: 200, body: 'ok' })
  t.match(await probe(probes, '/livez'), { status: 200 })

  // draining: still serving during the pre-stop step, readiness already failing.
  const preStop = gate()
  app.lifecycle.during('draining', () => preStop.opened)
  const job = app.lifecycle.hold('job')
  const shutdown = app.lifecycle.shutdown()
  t.equal(app.lifecycle.phase, 'draining')
  t.match(await probe(probes, '/readyz?verbose'), { status: 503, body: /\[-\]lifecycle failed: draining/ })
  t.match(await probe(probes, '/livez'), { status: 200 }, 'liveness passes through the shutdown')
  t.match(await probe(probes, '/startupz'), { status: 200 }, 'startup stays passed')
  t.match(await probe(service, '/'), { status: 200, body: 'hello' }, 'and the service still serves')

  // closing: the service listener is closed, held work keeps the drain going.
  const closing = once(app.lifecycle, 'closing')
  preStop.open()
  await closing
  t.match(await probe(probes, '/readyz?verbose'), { status: 503, body: /\[-\]lifecycle failed: closing/ })
  t.match(await probe(probes, '/livez'), { status: 200 }, 'liveness answers after the main listener closed')
  t.match(await probe(probes, '/startupz'), { status: 200 })
  const fresh = new Client(service)
  t.teardown(() => fresh.destroy())
  await t.rejects(fresh.request({ method: 'GET', path: '/' }), { code: 'ECONNREFUSED' }, 'the service port refuses new connections')

  // closed: the probe listener goes last.
  job.release()
  await shutdown
  const late = new Client(probes)
  t.teardown(() => late.destroy())
  await t.rejects(late.request({ method: 'GET', path: '/livez' }), { code: 'ECONNREFUSED' }, 'once closed, the probe listener is gone too')
})

test('on the service port: starting, ready and draining', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const warm = gate()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  app.lifecycle.startupTask('migrations-checked', () => warm.opened)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = originOf(app)
  t.match(await probe(origin, '/readyz'), { status: 503, body: /start-up tasks pending: migrations-checked/ })
  t.match(await probe(origin, '/startupz'), { status: 503 })
  t.match(await probe(origin, '/livez'), { status: 200 })
  const ready = once(app.lifecycle, 'ready')
  warm.open()
  await ready
  t.match(await probe(origin, '/readyz'), { status: 200 })
  const preStop = gate()
  app.lifecycle.during('draining', () => preStop.opened)
  const shutdown = app.lifecycle.shutdown()
  const draining = await probe(origin, '/readyz')
  t.equal(draining.status, 503)
  t.equal(draining.headers.connection, 'close', 'probes carry Connection: close while draining, like every response')
  t.match(await probe(origin, '/livez'), { status: 200 })
  preStop.open()
  await shutdown
})

test('a check that never settles: the probe answers 503 at the check timeout, naming it timed out', async (t) => {
  const { origin } = await start(t, {}, (app) => {
    app.lifecycle.check('hangs', () => new Promise(() => {}), { timeout: 100 })
  })
  const answer = await probe(origin, '/readyz?verbose')
  t.equal(answer.status, 503)
  t.match(answer.body, /\[-\]hangs failed: timed out after 100ms \(\d+(\.\d+)?ms\)/)
  t.match(answer.body, /readiness check failed\n$/)
})

test('a check that hangs is called once, whatever the probes do: it stays timed out, saying so, until it settles', async (t) => {
  let calls = 0
  const hung = gate()
  const { origin } = await start(t, {}, (app) => {
    app.lifecycle.check('hangs', async () => { calls++; await hung.opened }, { timeout: 50 })
  })
  for (let wave = 1; wave <= 3; wave++) {
    const answers = await Promise.all(Array.from({ length: 5 }, () => probe(origin, '/readyz?verbose')))
    t.same(new Set(answers.map((answer) => answer.status)), new Set([503]), `wave ${wave}: every probe fails`)
    if (wave > 1) t.match(answers[0].body, /\[-\]hangs failed: timed out after 50ms, still running after \d+ms/, `wave ${wave}: the answer says the check is still running`)
  }
  t.equal(calls, 1, 'three waves of five probes, one call: nothing piles up against the hung dependency')
  hung.open()
  await hung.opened
  // The hung call has settled: the next probe calls the check again, and it passes.
  t.equal((await probe(origin, '/readyz')).status, 200, 'once it settled, a new call runs and passes')
  t.equal(calls, 2)
})

test('100 concurrent probes run a slow check once, and all get its result', async (t) => {
  let runs = 0
  const slow = gate()
  const { app, origin } = await start(t, {}, (app) => {
    app.lifecycle.check('db', async () => { runs++; await slow.opened })
  })
  let arrived = 0
  // Ahead of the probes' own dispatcher, so it sees each probe request arrive.
  app.server.prependListener('request', (req: IncomingMessage) => { if (req.url === '/readyz' && ++arrived === 100) setImmediate(slow.open) })
  const pool = new Pool(origin, { connections: 100 })
  t.teardown(() => pool.destroy())
  const answers = await Promise.all(Array.from({ length: 100 }, async () => {
    const res = await pool.request({ method: 'GET', path: '/readyz' })
    return `${res.statusCode} ${await res.body.text()}`
  }))
  t.equal(arrived, 100)
  t.equal(runs, 1, 'one run for the whole storm')
  t.same(new Set(answers), new Set(['200 ok']))
})

test('a cached result is reused within its TTL and refreshed after it', async (t) => {
  let runs = 0
  const { origin } = await start(t, {}, (app) => {
    app.lifecycle.check('long-ttl', () => { runs++ }, { cacheTtl: 60_000 })
  })
  await probe(origin, '/readyz')
  const second = await probe(origin, '/readyz?verbose')
  t.equal(runs, 1, 'the second probe reused the result')
  t.match(second.body, /\[\+\]long-ttl ok \([\d.]+ms, cached\)/)

  let shortRuns = 0
  const short = await start(t, {}, (app) => {
    app.lifecycle.check('short-ttl', () => { shortRuns++ }, { cacheTtl: 30 })
  })
  await probe(short.origin, '/readyz')
  await sleep(60) // the TTL has to pass: time is the input here, not a stand-in for an event
  await probe(short.origin, '/readyz')
  t.equal(shortRuns, 2, 'refreshed once the TTL passed')
})

test('background refresh: probes read the latest result, the check runs on its own schedule', async (t) => {
  let runs = 0
  const thirdRun = gate()
  const hold = gate()
  t.teardown(() => hold.open())
  const { origin } = await start(t, {}, (app) => {
    app.lifecycle.check('refreshed', async () => {
      // Runs 1 and 2 pass at once; run 3 holds, so that no run of the schedule can start (runs
      // are never doubled) and any further call would be the probe's.
      if (++runs === 3) {
        thirdRun.open()
        await hold.opened
      }
    }, { refreshInterval: 20, timeout: 60_000 })
  })
  await thirdRun.opened
  t.equal(runs, 3, 'three runs on the 20ms schedule, with no probe')
  const answer = await probe(origin, '/readyz?verbose')
  t.match(answer.body, /\[\+\]refreshed ok \([\d.]+ms, cached\)/, 'the probe read the latest result')
  t.equal(runs, 3, 'the probe did not run the check')
})

test('a failing non-critical check is reported but does not fail readiness', async (t) => {
  const { origin } = await start(t, {}, (app) => {
    app.lifecycle.check('search-index', async () => { throw new Error('connect ECONNREFUSED 10.1.2.3:9200') }, { critical: false })
  })
  t.match(await probe(origin, '/readyz'), { status: 200, body: 'ok' })
  const verbose = await probe(origin, '/readyz?verbose')
  t.equal(verbose.status, 200)
  t.match(verbose.body, /\[-\]search-index failed \(non-critical\): reason withheld/)
  t.notMatch(verbose.body, /10\.1\.2\.3/, 'the reason, which names a host, is withheld')
})

test('failure reasons: withheld by default, shown when allowed, always logged', async (t) => {
  const { stream, lines } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, health: { exposeFailureDetails: true } })
  app.lifecycle.check('db', async () => { throw new Error('password authentication failed for user "app"') })
  app.lifecycle.check('flag', () => false)
  app.lifecycle.check('odd', async () => { throw 'a string' }) // eslint-disable-line no-throw-literal
  await app.listen({ port: 0, host: '127.0.0.1' })
  const answer = await probe(originOf(app), '/readyz')
  t.equal(answer.status, 503)
  t.match(answer.body, /\[-\]db failed: password authentication failed for user "app"/)
  t.match(answer.body, /\[-\]flag failed: returned false/)
  t.match(answer.body, /\[-\]odd failed: a string/)
  const logged = lines.filter((l) => l.msg === 'health: check failed').map((l) => [l.check, l.error]).sort()
  t.same(logged, [['db', 'password authentication failed for user "app"'], ['flag', 'returned false'], ['odd', 'a string']], 'logged once per check when it starts failing')
  const db = lines.find((l) => l.msg === 'health: check failed' && l.check === 'db')
  t.match(db?.err, { type: 'Error', message: 'password authentication failed for user "app"', stack: /Error: password authentication failed[^]*health\.test\.ts/ }, 'with the error itself, stack included')
  t.equal(lines.find((l) => l.msg === 'health: check failed' && l.check === 'flag')?.err, undefined, 'a check that returned false threw nothing')
  await probe(originOf(app), '/readyz')
  t.equal(lines.filter((l) => l.msg === 'health: check failed').length, 3, 'not again while it keeps failing')
  t.equal(lines.filter((l) => l.msg === 'incoming request' || l.msg === 'health: probe answered').length, 0, 'probes are not logged at info')
})

test('a check that recovers is logged once', async (t) => {
  const { stream, lines } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  let healthy = false
  await app.register(lifecycle, { graceful: false, health: { logLevel: 'info' } })
  app.lifecycle.check('db', () => healthy)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal((await probe(originOf(app), '/readyz')).status, 503)
  healthy = true
  t.equal((await probe(originOf(app), '/readyz')).status, 200)
  t.same(lines.filter((l) => String(l.msg).startsWith('health: check')).map((l) => l.msg), ['health: check failed', 'health: check recovered'])
  t.same(lines.filter((l) => l.msg === 'health: probe answered').map((l) => l.statusCode), [503, 200], 'with logLevel info, each probe is logged')
})

test('an auth hook at the root that rejects everything does not block the probes', async (t) => {
  const { origin } = await start(t, {}, (app) => {
    app.addHook('onRequest', async (_request, reply) => reply.code(401).send({ error: 'unauthorized' }))
    app.get('/orders', async () => [])
  })
  t.equal((await probe(origin, '/orders')).status, 401, 'the service is protected')
  for (const path of ['/livez', '/readyz', '/startupz', '/readyz?verbose']) {
    t.equal((await probe(origin, path)).status, 200, `${path} still answers`)
  }
})

test('under-pressure: pressure fails readiness, its shedding never blocks the probes', async (t) => {
  const { origin } = await start(t, {}, (app) => {
    app.register(underPressure, { healthCheck: async () => false, healthCheckInterval: 60_000 })
    app.get('/orders', async () => [])
  })
  t.equal((await probe(origin, '/orders')).status, 503, 'under-pressure sheds the service routes')
  t.match(await probe(origin, '/readyz?verbose'), { status: 503, body: /\[-\]under-pressure failed: under pressure/ })
  t.match(await probe(origin, '/livez'), { status: 200 }, 'pressure is no reason to restart')
  t.match(await probe(origin, '/startupz'), { status: 200 })
  t.match(await probe(origin, '/readyz?exclude=under-pressure'), { status: 200 }, 'and it can be excluded like any check')
})

test('a measured event loop delay over the threshold fails liveness; an unknown one does not', async (t) => {
  // Stands in for @fastify/under-pressure's decorators with chosen measurements: which of its
  // two timers runs first after a block is not deterministic, the contract read here is.
  let eventLoopDelay = 20
  const { origin } = await start(t, { health: { underPressure: { maxEventLoopDelay: 100 } } }, (app) => {
    app.decorate('isUnderPressure', () => false)
    app.decorate('memoryUsage', () => ({ eventLoopDelay, rssBytes: 0, heapUsed: 0, eventLoopUtilized: 0 }))
  })
  t.match(await probe(origin, '/livez?verbose'), { status: 200, body: /\[\+\]event-loop ok/ })
  eventLoopDelay = 480
  t.match(await probe(origin, '/livez?verbose'), { status: 503, body: /\[-\]event-loop failed: event loop delay 480ms over 100ms/ })
  eventLoopDelay = Number.POSITIVE_INFINITY
  t.match(await probe(origin, '/livez'), { status: 200 }, 'no measurement in the window: no restart')
})

test('with the real under-pressure registered, liveness reads its event loop delay', async (t) => {
  const { origin } = await start(t, {}, (app) => {
    app.register(underPressure, { maxEventLoopDelay: 60_000 })
  })
  t.match(await probe(origin, '/livez?verbose'), { status: 200, body: /\[\+\]event-loop ok/ })
})

test('under-pressure can be ignored', async (t) => {
  const { origin } = await start(t, { health: { underPressure: false } }, (app) => {
    app.register(underPressure, { healthCheck: async () => false, healthCheckInterval: 60_000 })
  })
  t.match(await probe(origin, '/readyz'), { status: 200 })
  t.match(await probe(origin, '/livez?verbose'), { status: 200, body: /^liveness check passed\n$/ })
})

test('paths: query strings, trailing slashes, HEAD, exclude, one check, JSON, wrong methods', async (t) => {
  const { origin } = await start(t, {}, (app) => {
    app.lifecycle.check('db', () => true)
    app.lifecycle.check('cache', () => false, { critical: true })
    app.lifecycle.check('self', () => true, { probe: ['liveness', 'startup'] })
    app.get('/readyzzz', async () => 'a route of the service')
  })
  t.match(await probe(origin, '/readyz'), { status: 503 })
  t.match(await probe(origin, '/readyz/'), { status: 503 }, 'trailing slash')
  t.match(await probe(origin, '/readyz?exclude=cache'), { status: 200, body: 'ok' }, 'exclude')
  t.match(await probe(origin, '/readyz/?exclude=cache&exclude=db&verbose'), { status: 200, body: '[+]lifecycle ok\nreadiness check passed\n' }, 'trailing slash, repeated exclude and verbose')
  t.match(await probe(origin, '/readyz?exclude=cache,db'), { status: 200 }, 'comma-separated exclude')
  t.match(await probe(origin, '/readyz?exclude=lifecycle&exclude=cache'), { status: 200 }, 'the lifecycle line cannot be excluded, and it passes')
  t.match(await probe(origin, '/readyz/db'), { status: 200, body: 'ok' }, 'one check')
  t.match(await probe(origin, '/readyz/db/?verbose'), { status: 200, body: /^\[\+\]db ok \([\d.]+ms\)\nreadiness check passed\n$/ })
  t.match(await probe(origin, '/readyz/cache'), { status: 503, body: /\[-\]cache failed: reason withheld/ })
  t.match(await probe(origin, '/readyz/lifecycle'), { status: 200 })
  t.match(await probe(origin, '/readyz/self'), { status: 404, body: 'unknown check: self\n' }, 'a liveness check is not a readiness one')
  t.match(await probe(origin, '/livez/self'), { status: 200 })
  t.match(await probe(origin, '/startupz?verbose'), { status: 200, body: /\[\+\]self ok/ })
  t.match(await probe(origin, '/readyzzz'), { status: 200, body: 'a route of the service' }, 'a longer path is not the probe')

  const head = await probe(origin, '/livez', { method: 'HEAD' })
  t.match(head, { status: 200, body: '' })
  t.equal(head.headers['content-length'], '2')
  t.equal(head.headers['cache-control'], 'no-store')
  t.match(await probe(origin, '/readyz', { method: 'HEAD' }), { status: 503, body: '' })
  const post = await probe(origin, '/livez', { method: 'POST' })
  t.match(post, { status: 405 })
  t.equal(post.headers.allow, 'GET, HEAD')

  const json = await probe(origin, '/readyz', { json: true })
  t.equal(json.status, 503)
  t.equal(json.headers['content-type'], 'application/json; charset=utf-8')
  const parsed = JSON.parse(json.body)
  t.match(parsed, { probe: 'readiness', status: 'failed' })
  t.same(parsed.checks.map((c: { name: string, status: string }) => [c.name, c.status]), [['lifecycle', 'ok'], ['db', 'ok'], ['cache', 'failed']])
  t.match(parsed.checks[2], { critical: true, reason: 'reason withheld', cached: false })
  t.same(JSON.parse((await probe(origin, '/readyz/nope', { json: true })).body), { probe: 'readiness', status: 'unknown check', check: 'nope' })
  t.match(JSON.parse((await probe(origin, '/livez', { json: true })).body), { probe: 'liveness', status: 'ok', checks: [{ name: 'self', status: 'ok', critical: true, durationMs: Number, cached: false }] })
})

test('custom paths, and a probe turned off', async (t) => {
  const { origin } = await start(t, { health: { livenessPath: '/health/live', readinessPath: '/health/ready', startupPath: false } })
  t.match(await probe(origin, '/health/live'), { status: 200 })
  t.match(await probe(origin, '/health/ready'), { status: 200 })
  t.match(await probe(origin, '/startupz'), { status: 404 }, 'left to Fastify')
  t.match(await probe(origin, '/livez'), { status: 404 })
})

test('checks given through the plugin options', async (t) => {
  const { origin } = await start(t, { health: { checks: [{ name: 'db', check: () => false, timeout: 50 }] } })
  t.match(await probe(origin, '/readyz/db'), { status: 503 })
})

test('liveness and startup checks fail their own probes only', async (t) => {
  const { origin } = await start(t, {}, (app) => {
    app.lifecycle.check('heap', () => false, { probe: 'liveness' })
    app.lifecycle.check('config-loaded', () => false, { probe: 'startup' })
  })
  t.match(await probe(origin, '/livez?verbose'), { status: 503, body: /\[-\]heap failed/ })
  t.match(await probe(origin, '/startupz?verbose'), { status: 503, body: /\[-\]config-loaded failed/ })
  t.match(await probe(origin, '/readyz'), { status: 200 }, 'neither touches readiness')
})

test('a startup check holds the startup probe until it passes once, then it stays passed', async (t) => {
  let configured = false
  const warm = gate()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false })
  app.lifecycle.startupTask('warm', () => warm.opened)
  app.lifecycle.check('configured', () => configured, { probe: 'startup' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = originOf(app)
  t.match(await probe(origin, '/startupz'), { status: 503 })
  configured = true
  const ready = once(app.lifecycle, 'ready')
  warm.open()
  await ready
  t.match(await probe(origin, '/startupz'), { status: 200 })
  configured = false
  t.match(await probe(origin, '/startupz?verbose'), { status: 200, body: /\[-\]configured failed: reason withheld \([\d.]+ms\)\nstartup check passed\n$/ }, 'a later failure shows, but start-up happened once')
})

test('setReady(false) takes the instance out of rotation without shutting down, setReady(true) brings it back', async (t) => {
  const { app, origin } = await start(t)
  const changes: boolean[] = []
  app.lifecycle.on('readiness', (ready) => changes.push(ready))
  app.lifecycle.setReady(false)
  app.lifecycle.setReady(false)
  t.match(await probe(origin, '/readyz?verbose'), { status: 503, body: /\[-\]lifecycle failed: taken out of rotation by setReady\(false\)/ })
  t.match(await probe(origin, '/livez'), { status: 200 })
  t.equal(app.lifecycle.phase, 'ready', 'still ready as a phase: nothing shuts down')
  app.lifecycle.setReady(true)
  t.match(await probe(origin, '/readyz'), { status: 200 })
  t.same(changes, [false, true], 'one event per change')
  t.throws(() => app.lifecycle.setReady('no' as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: "lifecycle.setReady(): ready must be a boolean, received 'no'" })
})

test('a start-up task that fails is retried until it succeeds', async (t) => {
  let attempts = 0
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false })
  app.lifecycle.startupTask('dependency', async () => { if (++attempts < 3) throw new Error('not yet') }, { retryDelay: 10 })
  const ready = once(app.lifecycle, 'ready')
  await app.ready()
  await ready
  t.equal(attempts, 3)
  t.same(app.lifecycle.startupPending, [])
})

test('a shutdown during start-up tasks stops their retries and never becomes ready', async (t) => {
  let attempts = 0
  const failed = gate()
  const app = Fastify()
  await app.register(lifecycle, { graceful: false })
  app.lifecycle.startupTask('never', async () => { attempts++; failed.open(); throw new Error('down') }, { retryDelay: 60_000 })
  await app.ready()
  await failed.opened
  const report = await app.lifecycle.shutdown()
  t.equal(attempts, 1, 'the retry wait was cut by the shutdown')
  t.equal(app.lifecycle.everReady, false)
  t.same(report.phases.map((p) => p.phase), ['draining', 'closing', 'closed'])
})

test('start-up task registration errors', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false })
  app.lifecycle.startupTask('a', () => {})
  t.throws(() => app.lifecycle.startupTask('a', () => {}), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: /^lifecycle\.startupTask\(\): name must be a non-empty string not used by another start-up task, received 'a'$/ })
  t.throws(() => app.lifecycle.startupTask('', () => {}), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT' })
  t.throws(() => app.lifecycle.startupTask('b', 42 as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: 'lifecycle.startupTask(): task must be a function, received 42' })
  t.throws(() => app.lifecycle.startupTask('b', () => {}, null as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: /options must be an object/ })
  t.throws(() => app.lifecycle.startupTask('c', () => {}, { retryDelay: 0 }), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /retryDelay/ })
  await app.ready()
  t.throws(() => app.lifecycle.startupTask('late', () => {}), { code: 'FST_LIFECYCLE_STARTUP_TASK_LATE', message: /'late' was registered after the app became ready/ })
})

test('check registration errors are coded', async (t) => {
  const { app } = await start(t)
  const lc = app.lifecycle
  lc.check('db', () => true)
  t.throws(() => lc.check('db', () => true), { code: 'FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK', message: /'db' is already registered/ })
  t.throws(() => lc.check('has space', () => true), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: /^lifecycle\.check\(\): name must be/ })
  t.throws(() => lc.check('x', 'nope' as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: "lifecycle.check(): check must be a function, received 'nope'" })
  t.throws(() => lc.check('x', () => true, null as never), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /options' must be an object/ })
  t.throws(() => lc.check('x', () => true, { timeout: 0 }), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /'check 'x' timeout' must be a positive integer of ms, received 0/ })
  t.throws(() => lc.check('x', () => true, { cacheTtl: -1 }), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /cacheTtl/ })
  t.throws(() => lc.check('x', () => true, { critical: 'yes' as never }), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /critical' must be a boolean/ })
  t.throws(() => lc.check('x', () => true, { probe: 'ready' as never }), { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /probe' must be one of liveness, readiness, startup/ })
  t.throws(() => lc.check('x', () => true, { probe: [] }), { code: 'FST_LIFECYCLE_INVALID_OPTION' })
  t.throws(() => lc.check('x', () => true, { ttl: 5 } as never), { code: 'FST_LIFECYCLE_UNKNOWN_OPTION', message: /'check 'x' ttl' is not known/ })
})

test('health options are validated at registration', async (t) => {
  const cases: Array<[object, string, RegExp]> = [
    [{ readinessPath: '/livez' }, 'FST_LIFECYCLE_HEALTH_PATH_CONFLICT', /probes 'liveness' and 'readiness' are both configured on path '\/livez'/],
    [{ startupPath: '/readyz/startup' }, 'FST_LIFECYCLE_HEALTH_PATH_CONFLICT', /'readiness' and 'startup' .* path '\/readyz'/],
    [{ livenessPath: '/health/ready/live', readinessPath: '/health/ready' }, 'FST_LIFECYCLE_HEALTH_PATH_CONFLICT', /path '\/health\/ready'/],
    [{ readinessPath: 'readyz' }, 'FST_LIFECYCLE_INVALID_OPTION', /'readinessPath' must be a path like '\/readyz'/],
    [{ readinessPath: '/readyz/' }, 'FST_LIFECYCLE_INVALID_OPTION', /no trailing slash/],
    [{ livenessPath: true }, 'FST_LIFECYCLE_INVALID_OPTION', /'livenessPath'/],
    [{ checks: [{ name: 'a', check: () => true }, { name: 'a', check: () => true }] }, 'FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK', /'a' is already registered/],
    [{ checks: [{ name: 'a', check: () => true, timeout: -1 }] }, 'FST_LIFECYCLE_INVALID_OPTION', /'check 'a' timeout'/],
    [{ checks: 'db' }, 'FST_LIFECYCLE_INVALID_OPTION', /'checks' must be an array/],
    [{ checks: [null] }, 'FST_LIFECYCLE_INVALID_OPTION', /'checks'/],
    [{ logLevel: 'verbose' }, 'FST_LIFECYCLE_INVALID_OPTION', /'logLevel' must be one of trace, debug/],
    [{ port: 70_000 }, 'FST_LIFECYCLE_INVALID_OPTION', /'port' must be an integer port from 0 to 65535, received 70000/],
    [{ port: '8080' }, 'FST_LIFECYCLE_INVALID_OPTION', /'port'/],
    [{ host: '' }, 'FST_LIFECYCLE_INVALID_OPTION', /'host'/],
    [{ exposeFailureDetails: 1 }, 'FST_LIFECYCLE_INVALID_OPTION', /'exposeFailureDetails' must be a boolean/],
    [{ underPressure: true }, 'FST_LIFECYCLE_INVALID_OPTION', /'underPressure' must be an object or false/],
    [{ underPressure: { maxEventLoopDelay: 0 } }, 'FST_LIFECYCLE_INVALID_OPTION', /'underPressure\.maxEventLoopDelay'/],
    [{ underPressure: { readines: true } }, 'FST_LIFECYCLE_UNKNOWN_OPTION', /'underPressure\.readines' is not known/],
    [{ readynessPath: '/r' }, 'FST_LIFECYCLE_UNKNOWN_OPTION', /'readynessPath' is not known/]
  ]
  for (const [options, code, message] of cases) {
    const app = Fastify()
    app.register(health, options)
    await t.rejects(async () => { await app.ready() }, { code, message }, JSON.stringify(options))
  }
  const app = Fastify()
  app.register(lifecycle, { graceful: false, health: { readinessPath: '/livez' } })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_HEALTH_PATH_CONFLICT' }, 'through the main plugin too')
})

test('a probe path that is also a service route fails the boot, naming both', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false })
  app.get('/readyz', async () => 'mine')
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT', message: /the readiness probe path '\/readyz' is also a GET route of the service/ })
})

test('a HEAD-only service route on a probe path is a conflict too', async (t) => {
  const app = Fastify({ exposeHeadRoutes: false })
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false })
  app.head('/livez', async () => '')
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT', message: /'\/livez' is also a HEAD route/ })
})

test('lifecycle.check() without the health plugin says what to register', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, health: false })
  t.throws(() => app.lifecycle.check('db', () => true), { code: 'FST_LIFECYCLE_HEALTH_NOT_REGISTERED', message: /lifecycle\.check\('db'\) needs the health plugin/ })
})

test('the probe listener answers 404 for anything but a probe', async (t) => {
  const port = await freePort()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, health: { port, host: '127.0.0.1' } })
  await app.ready()
  t.match(await probe(`http://127.0.0.1:${port}`, '/metrics'), { status: 404, body: '' })
})

test('a boot that fails on a ready check closes the probe port at once: no probe passes for a service that never listened', async (t) => {
  const port = await freePort()
  const { stream, lines } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, health: { port, host: '127.0.0.1' } })
  app.lifecycle.teardown('cache', () => {}, { after: ['nope'] })
  const before = await probe(`http://127.0.0.1:${port}`, '/livez')
  t.equal(before.status, 200, 'during the boot, the probe port answers')
  await t.rejects(async () => app.ready(), { code: 'FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY' })
  t.equal(app.lifecycle.phase, 'starting', 'never ready')
  await t.rejects(request(`http://127.0.0.1:${port}/livez`), { code: 'ECONNREFUSED' }, 'the probe port is closed: liveness fails too')
  t.match(lines.find((l) => l.msg === 'lifecycle: start-up failed, this instance will never be ready'), { level: 50, err: { code: 'FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY' } })
  const report = await app.lifecycle.shutdown()
  t.equal(report.stages.preStop?.skipped, true, 'the pre-stop delay is skipped for an instance that never became ready')
})

test('a listen() that fails after ready (port taken) fails the boot: never ready, the probe port closes, no pre-stop delay', async (t) => {
  const port = await freePort()
  const taken = net.createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const { stream, lines } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, preStop: { delay: 60_000 }, health: { port, host: '127.0.0.1' } })
  await t.rejects(app.listen({ port: (taken.address() as net.AddressInfo).port, host: '127.0.0.1' }), { code: 'EADDRINUSE' })
  t.equal(app.lifecycle.isReady(), false, 'not ready: it never served')
  await t.rejects(request(`http://127.0.0.1:${port}/readyz`), { code: 'ECONNREFUSED' }, 'the probe port is closed: readiness and liveness fail')
  t.match(lines.find((l) => l.msg === 'lifecycle: the server failed to listen, this instance will never be ready'), { level: 50, err: { code: 'EADDRINUSE' } })
  const report = await app.lifecycle.shutdown()
  t.equal(report.stages.preStop?.skipped, true, 'the 60 s pre-stop delay was skipped')
})
