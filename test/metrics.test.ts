import diagnosticsChannel from 'node:diagnostics_channel'
import { once } from 'node:events'
import { test } from 'tap'
import Fastify from 'fastify'
import promClient from 'prom-client'
import { MeterProvider, MetricReader, type ResourceMetrics } from '@opentelemetry/sdk-metrics'
import lifecycle, { metrics } from '../plugins/index.js'
import { resolveMetricsOptions } from '../plugins/metrics.js'
import { kBeforeExit } from '../lib/symbols.js'
import { gate, originOf } from './helpers/app.js'
import { freePort } from './helpers/services.js'

/** The value of one series in Prometheus' text format, or undefined. */
function series (text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

test('Prometheus: gauges read at scrape time, counters on lifecycle events, through the service\'s own registry', async (t) => {
  const registry = new promClient.Registry()
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, metrics: { prometheus: { client: promClient, registry } } })
  app.lifecycle.check('db', () => true)
  const slow = gate()
  app.get('/slow', async () => { await slow.opened; return 'done' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await (await fetch(`${originOf(app)}/readyz`)).text()

  let text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="ready"'), 1)
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="draining"'), 0)
  t.equal(series(text, 'fastify_lifecycle_ready'), 1)
  t.equal(series(text, 'fastify_lifecycle_not_ready', 'reason="shutdown"'), 0)
  t.equal(series(text, 'fastify_lifecycle_requests_in_flight'), 0)
  t.equal(series(text, 'fastify_lifecycle_held_work'), 0)
  t.ok(series(text, 'fastify_lifecycle_startup_seconds')! > 0, 'the start-up took some time')
  t.equal(series(text, 'fastify_lifecycle_check_up', 'check="db"'), 1)
  t.equal(series(text, 'fastify_lifecycle_check_runs_total', 'check="db",outcome="ok"'), 1)
  t.equal(series(text, 'fastify_lifecycle_check_duration_seconds_count', 'check="db"'), 1)
  t.ok(series(text, 'fastify_lifecycle_connections', 'protocol="http1"')! >= 0)

  // During the shutdown: a request in flight, readiness failing for a planned reason.
  const request = fetch(`${originOf(app)}/slow`)
  await once(app.server, 'request')
  const draining = once(app.lifecycle, 'draining')
  const held = app.lifecycle.hold('job')
  const closing = once(app.lifecycle, 'closing')
  const shutdown = app.lifecycle.shutdown()
  await draining
  text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="draining"'), 1)
  t.equal(series(text, 'fastify_lifecycle_ready'), 0)
  t.equal(series(text, 'fastify_lifecycle_not_ready', 'reason="shutdown"'), 1, 'a planned shutdown, which alerts can leave out')
  await closing
  text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="closing"'), 1)
  t.equal(series(text, 'fastify_lifecycle_requests_in_flight'), 1, 'the request in flight')
  t.equal(series(text, 'fastify_lifecycle_held_work'), 1)
  held.release()
  slow.open()
  await (await request).text()
  await shutdown
  text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="closed"'), 1)
  t.equal(series(text, 'fastify_lifecycle_shutdowns_total', 'cause="manual",outcome="clean"'), 1)
  t.equal(series(text, 'fastify_lifecycle_drain_cut_total'), 0)
  t.ok(series(text, 'fastify_lifecycle_shutdown_phase_seconds', 'phase="closing"')! > 0)

  // The registry is the service's: a new app in this process takes the closed one's place.
  const next = Fastify()
  t.teardown(() => next.close())
  await next.register(lifecycle, { graceful: false, metrics: { prometheus: { client: promClient, registry } } })
  await next.ready()
  t.equal(series(await registry.metrics(), 'fastify_lifecycle_phase', 'phase="ready"'), 1)
  // Two running servers cannot share one.
  const other = Fastify()
  await t.rejects(async () => { await other.register(lifecycle, { graceful: false, metrics: { prometheus: { client: promClient, registry } } }) }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /one running server's lifecycle metrics per registry/ })
})

test('Prometheus: a forced shutdown, failed checks, teardown resources, start-up tasks and long-lived connections are counted', async (t) => {
  const registry = new promClient.Registry()
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, drain: { timeout: 50 }, metrics: { prometheus: { client: promClient, registry } } })
  app.lifecycle.check('flaky', () => false)
  app.lifecycle.check('stuck', () => new Promise(() => {}), { timeout: 20 })
  app.lifecycle.startupTask('warm', () => {})
  app.lifecycle.teardown('cache', () => {})
  app.get('/hang', () => new Promise(() => {}))
  const ready = once(app.lifecycle, 'ready')
  await app.listen({ port: 0, host: '127.0.0.1' })
  await ready
  await (await fetch(`${originOf(app)}/readyz`)).text()
  app.lifecycle.longLived({ kind: 'queue-consumer', notify () {}, destroy () {} })
  app.lifecycle.longLived({ kind: 'queue-consumer', notify () {}, destroy () {} })
  // The stuck check again: its first run still hangs, so this one says so without running it.
  await (await fetch(`${originOf(app)}/readyz/stuck`)).text()
  let text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_check_runs_total', 'check="flaky",outcome="failed"'), 1)
  t.equal(series(text, 'fastify_lifecycle_check_runs_total', 'check="stuck",outcome="timed_out"'), 2, 'the hung run, and the answer that it still hangs')
  t.equal(series(text, 'fastify_lifecycle_not_ready', 'reason="check"'), 1, 'a failing critical check is the reason')
  t.ok(series(text, 'fastify_lifecycle_startup_task_seconds', 'task="warm"')! >= 0)
  t.equal(series(text, 'fastify_lifecycle_long_lived_connections', 'kind="queue-consumer"'), 2)
  fetch(`${originOf(app)}/hang`).catch(() => {})
  await once(app.server, 'request')
  await app.lifecycle.shutdown()
  text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_shutdowns_total', 'cause="manual",outcome="forced"'), 1, 'counted as forced')
  t.equal(series(text, 'fastify_lifecycle_drain_cut_total'), 1)
  t.ok(series(text, 'fastify_lifecycle_teardown_resource_seconds', 'resource="cache",outcome="closed"')! >= 0)
})

/** An OpenTelemetry reader the test collects from. */
class TestReader extends MetricReader {
  protected async onForceFlush (): Promise<void> {}
  protected async onShutdown (): Promise<void> {}
}

function otelValue (metrics: ResourceMetrics, name: string, attributes: Record<string, string> = {}): number | undefined {
  for (const scope of metrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      if (metric.descriptor.name !== name) continue
      const point = metric.dataPoints.find((p) => Object.entries(attributes).every(([k, v]) => p.attributes[k] === v))
      if (point === undefined) return undefined
      return typeof point.value === 'number' ? point.value : (point.value as { count: number }).count
    }
  }
  return undefined
}

test('OpenTelemetry: observable gauges, counters and a histogram through the service\'s meter; the flush awaited before the exit', async (t) => {
  const reader = new TestReader()
  const provider = new MeterProvider({ readers: [reader] })
  t.teardown(() => provider.shutdown())
  let flushes = 0
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, metrics: { opentelemetry: { meter: provider.getMeter('test'), flush: async () => { flushes++ } } } })
  app.lifecycle.check('db', () => true)
  await app.listen({ port: 0, host: '127.0.0.1' })
  await (await fetch(`${originOf(app)}/readyz`)).text()
  let { resourceMetrics } = await reader.collect()
  t.equal(otelValue(resourceMetrics, 'fastify.lifecycle.ready'), 1)
  t.equal(otelValue(resourceMetrics, 'fastify.lifecycle.phase', { phase: 'ready' }), 1)
  t.equal(otelValue(resourceMetrics, 'fastify.lifecycle.check.runs', { check: 'db', outcome: 'ok' }), 1)
  t.equal(otelValue(resourceMetrics, 'fastify.lifecycle.check.duration', { check: 'db' }), 1, 'one run recorded')
  await app.lifecycle.shutdown()
  await Promise.all(app.lifecycle[kBeforeExit].map((fn) => fn()))
  t.equal(flushes, 1, 'flushed once the report was built')
  ;({ resourceMetrics } = await reader.collect())
  t.equal(otelValue(resourceMetrics, 'fastify.lifecycle.shutdowns', { cause: 'manual', outcome: 'clean' }), 1)
  t.equal(otelValue(resourceMetrics, 'fastify.lifecycle.phase', { phase: 'closed' }), 1)
})

test('diagnostics channels: phases, readiness with its reason, check runs and the report, without a logger', async (t) => {
  const seen: Array<[string, Record<string, unknown>]> = []
  const subscriptions = ['phase', 'readiness', 'check', 'report'].map((name) => {
    const channel = `fastify-lifecycle:${name}`
    const listener = (message: unknown): void => { seen.push([name, message as Record<string, unknown>]) }
    diagnosticsChannel.subscribe(channel, listener)
    return () => diagnosticsChannel.unsubscribe(channel, listener)
  })
  t.teardown(() => { for (const unsubscribe of subscriptions) unsubscribe() })
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  app.lifecycle.check('db', () => true)
  app.lifecycle.check('stuck', () => new Promise(() => {}), { timeout: 10, critical: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await (await fetch(`${originOf(app)}/readyz`)).text()
  await (await fetch(`${originOf(app)}/readyz`)).text()
  app.lifecycle.setReady(false)
  app.lifecycle.setReady(true)
  await app.lifecycle.shutdown()
  const mine = seen.filter(([, m]) => m.server === app.server)
  t.same(mine.filter(([name]) => name === 'phase').map(([, m]) => m.phase), ['ready', 'draining', 'closing', 'closed'])
  t.same(mine.filter(([name]) => name === 'readiness').map(([, m]) => [m.ready, m.reason]), [[true, undefined], [false, 'manual'], [true, undefined], [false, 'shutdown']])
  t.match(mine.find(([name]) => name === 'check')?.[1], { result: { name: 'db', ok: true } })
  t.match(mine.filter(([name, m]) => name === 'check' && (m.result as { name: string }).name === 'stuck').map(([, m]) => m.result), [{ timedOut: true }, { timedOut: true, error: /still running/ }])
  t.match(mine.find(([name]) => name === 'report')?.[1], { report: { cause: 'manual', clean: true } })
})

test('readiness says why it fails, in ?verbose and in JSON: start-up task, manual, check, shutdown', async (t) => {
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  let warm!: () => void
  app.lifecycle.startupTask('warm', () => new Promise<void>((resolve) => { warm = resolve }))
  let dbUp = true
  app.lifecycle.check('db', () => dbUp)
  const ready = once(app.lifecycle, 'ready')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const verbose = async (): Promise<string> => await (await fetch(`${originOf(app)}/readyz?verbose`)).text()
  const json = async (): Promise<unknown> => await (await fetch(`${originOf(app)}/readyz`, { headers: { accept: 'application/json' } })).json()
  t.match(await verbose(), /reason: startup-task\nreadiness check failed\n$/)
  warm()
  await ready
  t.notMatch(await verbose(), /reason:/, 'no reason while ready')
  app.lifecycle.setReady(false)
  t.match(await json(), { status: 'failed', reason: 'manual' })
  app.lifecycle.setReady(true)
  dbUp = false
  t.match(await json(), { status: 'failed', reason: 'check' })
  dbUp = true
  const draining = once(app.lifecycle, 'draining')
  const shutdown = app.lifecycle.shutdown()
  await draining
  await shutdown
  t.equal(app.lifecycle.notReadyReason, 'shutdown')
})

test('metrics at a path: on the probe port when the health plugin has one, else a route of the service', async (t) => {
  const port = await freePort()
  const registry = new promClient.Registry()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, health: { port, host: '127.0.0.1' }, metrics: { prometheus: { client: promClient, registry, path: '/metrics' } } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const probe = await fetch(`http://127.0.0.1:${port}/metrics`)
  t.equal(probe.status, 200)
  t.match(probe.headers.get('content-type'), /text\/plain/)
  t.match(await probe.text(), /fastify_lifecycle_phase\{phase="ready"\} 1/)
  t.equal((await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'POST' })).status, 404, 'GET only')
  t.equal((await fetch(`http://127.0.0.1:${port}/other`)).status, 404)
  t.equal((await fetch(`${originOf(app)}/metrics`)).status, 404, 'not on the service port')

  const service = Fastify()
  t.teardown(() => service.close())
  await service.register(lifecycle, { graceful: false, metrics: { prometheus: { client: promClient, registry: new promClient.Registry(), path: '/metrics' } } })
  await service.listen({ port: 0, host: '127.0.0.1' })
  const route = await fetch(`${originOf(service)}/metrics`)
  t.equal(route.status, 200)
  t.match(await route.text(), /fastify_lifecycle_ready 1/)

  // A registry that fails to collect answers 500 and logs why.
  const broken = Fastify()
  t.teardown(() => broken.close())
  const failing = new promClient.Registry()
  failing.metrics = async () => { throw new Error('collect failed') }
  const brokenPort = await freePort()
  await broken.register(lifecycle, { graceful: false, health: { port: brokenPort, host: '127.0.0.1' }, metrics: { prometheus: { client: promClient, registry: failing, path: '/metrics' } } })
  await broken.ready()
  t.equal((await fetch(`http://127.0.0.1:${brokenPort}/metrics`)).status, 500)
})

test('metrics options: inert without a backend, errors at registration', async (t) => {
  t.same(resolveMetricsOptions(), { prometheus: undefined, opentelemetry: undefined })
  const app = Fastify()
  await app.register(metrics)
  await app.ready()
  t.equal(app.lifecycle.phase, 'ready')
  await app.close()
  const bad: Array<[object, RegExp]> = [
    [{ prometheus: {} }, /option 'metrics\.prometheus\.client' must be prom-client/],
    [{ prometheus: { client: promClient, path: 'metrics' } }, /option 'metrics\.prometheus\.path' must be a path like '\/metrics'/],
    [{ opentelemetry: { meter: {} } }, /option 'metrics\.opentelemetry\.meter' must be an OpenTelemetry Meter/],
    [{ opentelemetry: { meter: new MeterProvider().getMeter('x'), flush: 'now' } }, /option 'metrics\.opentelemetry\.flush' must be a function/],
    [{ prometheus: null }, /option 'metrics\.prometheus' must be an object/]
  ]
  for (const [options, message] of bad) {
    await t.rejects(async () => { await Fastify().register(lifecycle, { graceful: false, metrics: options as object }) }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message })
  }
})

test('metrics without the other pieces, before ready, and under pressure', async (t) => {
  const registry = new promClient.Registry()
  const app = Fastify()
  let pressed = false
  // A stand-in for @fastify/under-pressure's decorators.
  app.decorate('isUnderPressure', () => pressed)
  app.decorate('memoryUsage', () => ({ heapUsed: 0, rssBytes: 0, eventLoopDelay: 0, eventLoopUtilized: 0 }))
  await app.register(lifecycle, { graceful: false, drain: false, preStop: false, teardown: false, metrics: { prometheus: { client: promClient, registry } } })
  // Without the health plugin: no check results, and no reason beyond the lifecycle's own.
  const bare = Fastify()
  const bareRegistry = new promClient.Registry()
  await bare.register(lifecycle, { graceful: false, health: false, metrics: { prometheus: { client: promClient, registry: bareRegistry } } })
  await bare.ready()
  t.notOk((await bareRegistry.metrics()).includes('fastify_lifecycle_check_up{'), 'no checks without the health plugin')
  await bare.close()
  // A resource the overall teardown deadline never reached: reported as skipped, with 0 s.
  const late = Fastify()
  const lateRegistry = new promClient.Registry()
  await late.register(lifecycle, { graceful: false, preStop: false, teardown: { timeout: 30 }, metrics: { prometheus: { client: promClient, registry: lateRegistry } } })
  late.lifecycle.teardown('first', () => {})
  late.lifecycle.teardown('hang', () => new Promise(() => {}))
  await late.ready()
  await late.lifecycle.shutdown()
  t.equal(series(await lateRegistry.metrics(), 'fastify_lifecycle_teardown_resource_seconds', 'resource="first",outcome="skipped"'), 0)
  let text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_startup_seconds'), 0, 'no start-up time before ready (prom-client shows 0)')
  t.equal(series(text, 'fastify_lifecycle_not_ready', 'reason="starting"'), 1)
  await app.ready()
  pressed = true
  text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_not_ready', 'reason="pressure"'), 1, 'under pressure is the reason')
  t.notOk(text.includes('fastify_lifecycle_connections{'), 'no connections counted without the drain')
  const answer = await app.inject('/')
  t.equal(answer.statusCode, 404)
  await app.lifecycle.shutdown()
  text = await registry.metrics()
  t.equal(series(text, 'fastify_lifecycle_drain_cut_total'), 0, 'nothing cut without a drain')
})

test('connections are counted by protocol: HTTP/2 sessions', async (t) => {
  const registry = new promClient.Registry()
  const app = Fastify({ http2: true })
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, metrics: { prometheus: { client: promClient, registry } } })
  await app.ready()
  t.equal(series(await registry.metrics(), 'fastify_lifecycle_connections', 'protocol="http2"'), 0)
})
