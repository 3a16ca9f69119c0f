import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import { request } from 'undici'
import { useLifecycle, type Lifecycle, type Phase } from '../lib/lifecycle.js'
import { kAbandon, kMarkForced, kRecord, kServing } from '../lib/symbols.js'
import suite, { drain, graceful, preStop, teardown } from '../plugins/index.js'

function appWithLifecycle () {
  const app = Fastify()
  const lifecycle = useLifecycle(app)
  const phases: Phase[] = []
  lifecycle.on('phase', (phase) => phases.push(phase))
  return { app, lifecycle, phases }
}

test('moves starting → ready on ready(), then draining → closing → closed on shutdown()', async (t) => {
  const { app, lifecycle, phases } = appWithLifecycle()
  t.equal(lifecycle.phase, 'starting')
  t.equal(lifecycle.isReady(), false)
  await app.ready()
  t.equal(lifecycle.phase, 'ready')
  t.equal(lifecycle.isReady(), true)
  t.equal(lifecycle.everReady, true)
  t.equal(lifecycle.shuttingDown, false)
  t.equal(lifecycle.signal.aborted, false)

  const draining = once(lifecycle, 'draining')
  const closed = once(lifecycle, 'closed')
  const first = lifecycle.shutdown('SIGTERM')
  t.equal(lifecycle.shutdown('SIGINT'), first, 'a second call returns the same shutdown')
  await draining
  t.equal(lifecycle.isReady(), false, 'not ready once draining')
  t.equal(lifecycle.shuttingDown, true)
  t.equal(lifecycle.signal.aborted, true, 'the signal is aborted when draining starts')
  t.match(lifecycle.signal.reason, { message: 'shutting down (SIGTERM)' })

  const report = await first
  t.same(phases, ['ready', 'draining', 'closing', 'closed'])
  t.equal((await closed)[0], report, 'the closed event carries the report')
  t.equal(lifecycle.report, report)
  t.match(report, { cause: 'SIGTERM', clean: true, exitCode: 0, forced: [] })
  t.same(report.phases.map((p) => p.phase), ['draining', 'closing', 'closed'])
  t.equal(report.phases[0].atMs, 0)
  t.equal(report.phases[2].durationMs, 0)
  t.equal(report.error, undefined)
})

test('useLifecycle returns the one lifecycle of an instance', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  t.equal(useLifecycle(app), useLifecycle(app))
  t.equal(app.lifecycle, useLifecycle(app))
})

test('fastify.close() alone walks the phases too, with cause "close"', async (t) => {
  const { app, lifecycle, phases } = appWithLifecycle()
  await app.ready()
  await app.close()
  t.same(phases, ['ready', 'draining', 'closing', 'closed'])
  t.equal(lifecycle.report?.cause, 'close')
  t.equal(lifecycle.signal.reason.message, 'shutting down (close)')
})

test('a shutdown requested before ready waits for the boot, then closes without becoming ready', async (t) => {
  const { app, lifecycle, phases } = appWithLifecycle()
  const report = lifecycle.shutdown()
  t.equal(lifecycle.phase, 'draining')
  await app.ready()
  const done = await report
  t.same(phases, ['draining', 'closing', 'closed'])
  t.equal(lifecycle.everReady, false)
  t.equal(done.cause, 'manual')
})

test('the pre-stop delay is skipped for an instance that was never ready', async (t) => {
  const app = Fastify()
  await app.register(preStop, { delay: 60_000 })
  const report = app.lifecycle.shutdown()
  await app.ready()
  t.same((await report).stages.preStop, { mode: 'fixed', delay: 60_000, waitedMs: 0, skipped: true })
})

test('the pre-stop delay runs between draining and closing', async (t) => {
  const app = Fastify()
  await app.register(preStop, { delay: 50 })
  await app.ready()
  const report = await app.lifecycle.shutdown()
  t.equal(report.stages.preStop!.skipped, false)
  t.ok((report.stages.preStop!.waitedMs as number) >= 49)
  t.ok(report.phases[0].durationMs >= 49, 'draining lasted the delay')
})

test('a failing shutdown step is reported and the close still happens', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  lifecycle.during('draining', () => { throw new Error('step exploded') })
  await app.ready()
  const report = await lifecycle.shutdown()
  t.equal(lifecycle.phase, 'closed')
  t.same(report.forced, ['draining: a step failed: step exploded'])
  t.equal(report.exitCode, 1)
})

test('a close() that fails is reported with its error and exit code 1', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  app.addHook('onClose', async function endPool () { throw new Error('pool end failed') })
  await app.ready()
  const report = await lifecycle.shutdown()
  t.same(report.forced, ['close: fastify.close() failed: pool end failed'])
  t.equal(report.error, 'pool end failed')
  t.equal(report.clean, false)
})

test('an error that caused the shutdown makes it unclean, whatever its type', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  await app.ready()
  const report = await lifecycle.shutdown({ cause: 'error', error: 'a thrown string' })
  t.match(report, { cause: 'error', error: 'a thrown string', clean: false, exitCode: 1, forced: [] })
})

test('plugins record stages, mark forced ones and register budgets', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  lifecycle.setBudget('custom', 100)
  const budget = lifecycle.budget as Record<string, number>
  budget.custom = 5
  t.same(lifecycle.budget, { custom: 100 }, 'budget is a copy')
  await app.ready()
  lifecycle[kRecord]('preStop', { mode: 'fixed', delay: 3, waitedMs: 3, skipped: false })
  lifecycle[kMarkForced]('custom', 'gave up on 1 item')
  const report = await lifecycle.shutdown()
  t.same(report.stages.preStop, { mode: 'fixed', delay: 3, waitedMs: 3, skipped: false })
  t.same(report.forced, ['custom: gave up on 1 item'])
})

test('the plugin API stays off the user API: symbol keys, stripped from the published types', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  t.teardown(() => app.close())
  for (const name of ['record', 'markForced', 'abandon', 'useChecks', 'useTeardown', 'countInFlightWith', 'abortDeadline', 'requests']) {
    t.notOk(name in lifecycle, `no ${name} on fastify.lifecycle`)
  }
  const published = readFileSync(new URL('../dist/lib/lifecycle.d.ts', import.meta.url), 'utf8')
  t.notMatch(published, /kRecord|kMarkForced|kAbandon|kWork|kClaim|install\(/, 'the built types name none of them')
  t.match(published, /Shutdown and readiness state shared by every fastify-lifecycle plugin/, 'and keep their JSDoc')
})

test('abandon returns the report as it stands, forced', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  t.teardown(() => app.close())
  await app.ready()
  const report = lifecycle[kAbandon]('test says stop')
  t.match(report, { cause: 'close', clean: false, exitCode: 1, forced: ['lifecycle: test says stop'], phases: [] })
})

test('pieces registered in sibling contexts share one lifecycle, one budget and one report', async (t) => {
  const app = Fastify()
  let inDrain: Lifecycle | undefined
  let inTeardown: Lifecycle | undefined
  app.register(async function routes (instance) {
    await instance.register(drain, { timeout: 1000 })
    inDrain = instance.lifecycle
  })
  app.register(async function clients (instance) {
    await instance.register(teardown, { timeout: 2000 })
    inTeardown = instance.lifecycle
    instance.lifecycle.teardown('noop', () => {})
  })
  await app.ready()
  t.ok(inDrain !== undefined && inDrain === inTeardown, 'one lifecycle in both contexts')
  t.same(inDrain!.budget, { drain: 1000, teardown: 2000 }, 'one budget')
  t.equal(useLifecycle(app), inDrain, 'the root gets the same one, even after ready')
  const report = await inDrain!.shutdown()
  t.ok(report.stages.drain !== undefined && report.stages.teardown !== undefined, 'one report with both stages')
  t.same(report.stages.teardown!.resources.map((r) => r.name), ['noop'])
})

test('a second registration of a piece on the same server fails with a coded error, in any context', async (t) => {
  for (const [name, register] of [
    ['the suite twice', (app: FastifyInstance) => { app.register(suite, { preStop: false }); app.register(async (child) => { await child.register(suite) }) }],
    ['graceful twice, in sibling contexts', (app: FastifyInstance) => { app.register(async (a) => { await a.register(graceful) }); app.register(async (b) => { await b.register(graceful) }) }],
    ['graceful alone next to the suite', (app: FastifyInstance) => { app.register(suite); app.register(graceful) }]
  ] as const) {
    const app = Fastify()
    t.teardown(() => app.close())
    const before = process.listenerCount('SIGTERM')
    register(app)
    await t.rejects(async () => app.ready(), { code: 'FST_LIFECYCLE_ALREADY_REGISTERED', message: /is already registered on this server/ }, name)
    t.ok(process.listenerCount('SIGTERM') <= before + 1, `${name}: at most one set of signal handlers`)
  }
})

test('without the drain plugin nothing is counted in flight', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  t.teardown(() => app.close())
  app.get('/', async () => 'ok')
  await app.inject('/')
  t.equal(lifecycle.inFlight, 0)
})

test('with the drain plugin, requests count in flight until their response closes', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(drain)
  let seen = -1
  app.get('/', async () => { seen = app.lifecycle.inFlight; return 'ok' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await request(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/`)
  await res.body.dump()
  t.equal(seen, 1)
  await app.close()
  t.equal(app.lifecycle.inFlight, 0)
})

test('hold(): held work is named until released; idle() resolves once nothing is held', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  t.teardown(() => app.close())
  let settled = false
  const atOnce = lifecycle.idle().then(() => { settled = true })
  await Promise.resolve()
  t.equal(settled, true, 'idle at once when nothing is held: settled within one microtask turn')
  await atOnce
  const a = lifecycle.hold('import')
  const b = lifecycle.hold('email')
  t.same(lifecycle.held, ['import', 'email'])
  let idle = false
  const waiting = lifecycle.idle().then(() => { idle = true })
  a.release()
  a.release()
  t.same(lifecycle.held, ['email'], 'releasing twice changes nothing')
  await Promise.resolve()
  t.equal(idle, false, 'still holding email')
  b.release()
  await waiting
  t.same(lifecycle.held, [])
  t.throws(() => lifecycle.hold(''), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: "lifecycle.hold(): name must be a non-empty string, received ''" })
})

test('arguments of the plugin-author API are checked, with the method and the value named', async (t) => {
  const { app, lifecycle } = appWithLifecycle()
  t.teardown(() => app.close())
  t.throws(() => lifecycle.during('closed' as never, () => {}), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: "lifecycle.during(): phase must be 'draining' or 'closing', received 'closed'" })
  t.throws(() => lifecycle.during('draining', 'later' as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: "lifecycle.during(): step must be a function, received 'later'" })
  t.throws(() => lifecycle.setBudget('', 5), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: /^lifecycle\.setBudget\(\): name must be a non-empty string/ })
  t.throws(() => lifecycle.setBudget('queue', -1), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: 'lifecycle.setBudget(): ms must be a non-negative integer of ms, received -1' })
  t.throws(() => lifecycle.shutdown(42 as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: /^lifecycle\.shutdown\(\): cause must be a string or \{ cause: string, error\?: unknown \}, received 42$/ })
  t.throws(() => lifecycle.shutdown({ reason: 'x' } as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT' })
  t.equal(lifecycle.phase, 'starting', 'a refused shutdown() started nothing')
})

test('kServing: once ready and listening, whichever comes last, also when asked after either', async (t) => {
  const seen: string[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  const lifecycle = useLifecycle(app)
  lifecycle[kServing](() => seen.push('registered before ready'))
  await app.ready()
  lifecycle[kServing](() => seen.push('registered when ready, before listen'))
  t.same(seen, [], 'ready, not listening: nobody called yet')
  await app.listen({ port: 0, host: '127.0.0.1' })
  lifecycle[kServing](() => seen.push('registered when serving'))
  t.same(seen, ['registered before ready', 'registered when ready, before listen', 'registered when serving'])
})
