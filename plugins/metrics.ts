import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import type { NotReadyReason } from '../lib/channels.js'
import { FST_LIFECYCLE_INVALID_OPTION } from '../lib/errors.js'
import type { CheckResult } from '../lib/health.js'
import { useLifecycle, type Lifecycle } from '../lib/lifecycle.js'
import { alreadyResolved, keysOf, optionsObject, plainObject, resolved } from '../lib/options.js'
import type { Phase, ShutdownReport } from '../lib/report.js'
import { kBeforeExit, kChecks, kClaim, kConnections, kProbeRoutes, kReadinessReason } from '../lib/symbols.js'

/**
 * prom-client (or a successor sharing its API): its `Gauge`, `Counter` and `Histogram` classes
 * and its default `register`. Typed loosely so any of its versions fits.
 */
export interface PromClientLike {
  Gauge: new (config: never) => unknown
  Counter: new (config: never) => unknown
  Histogram: new (config: never) => unknown
  register: PromRegistryLike
}

/** How the adapter calls prom-client's classes. */
interface PromClasses {
  Gauge: new (config: { name: string, help: string, labelNames: readonly string[], registers: readonly unknown[], collect: (this: { set: (labels: Record<string, string>, value: number) => void, reset: () => void }) => void }) => unknown
  Counter: new (config: { name: string, help: string, labelNames: readonly string[], registers: readonly unknown[] }) => { inc: (labels: Record<string, string>, value: number) => void }
  Histogram: new (config: { name: string, help: string, labelNames: readonly string[], buckets: readonly number[], registers: readonly unknown[] }) => { observe: (labels: Record<string, string>, value: number) => void }
}

/** The parts of a prom-client Registry the adapter uses. */
export interface PromRegistryLike {
  getSingleMetric: (name: string) => unknown
  removeSingleMetric: (name: string) => void
  /** The text exposition format, for `path`. */
  metrics: () => Promise<string>
  contentType: string
}

/** The parts of an OpenTelemetry `Meter` (@opentelemetry/api) the adapter uses. */
export interface MeterLike {
  createObservableGauge: (name: string, options?: { description?: string, unit?: string }) => { addCallback: (callback: (result: { observe: (value: number, attributes?: Record<string, string>) => void }) => void) => void }
  createCounter: (name: string, options?: { description?: string, unit?: string }) => { add: (value: number, attributes?: Record<string, string>) => void }
  createHistogram: (name: string, options?: { description?: string, unit?: string }) => { record: (value: number, attributes?: Record<string, string>) => void }
}

export interface MetricsOptions {
  /**
   * Prometheus, through your own client: `{ client: promClient, registry }` (the registry
   * defaults to the client's global one). The lifecycle's metrics join your registry; no
   * registry of their own. With `path` ('/metrics'), the registry is served there: on the
   * probe port when the health plugin has one (it stays open until the process exits, so a
   * scrape sees the shutdown), else as a route of the service.
   */
  prometheus?: { client: PromClientLike, registry?: PromRegistryLike | undefined, path?: string | undefined } | undefined
  /**
   * OpenTelemetry, through your meter: `{ meter, flush }`. `flush` (your MeterProvider's
   * `forceFlush`) is called once the shutdown report is built and awaited (for a second at
   * most) before the exit, so push exporters send the shutdown's figures.
   */
  opentelemetry?: { meter: MeterLike, flush?: (() => Promise<unknown>) | undefined } | undefined
}

export interface ResolvedMetricsOptions {
  readonly prometheus: { readonly client: PromClientLike, readonly registry: PromRegistryLike, readonly path: string | undefined } | undefined
  readonly opentelemetry: { readonly meter: MeterLike, readonly flush: (() => Promise<unknown>) | undefined } | undefined
}

const KEYS = keysOf<MetricsOptions>()({ prometheus: true, opentelemetry: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolveMetricsOptions (input?: MetricsOptions, prefix = ''): ResolvedMetricsOptions {
  const options = optionsObject<MetricsOptions>(input, prefix, KEYS)
  let prometheus: ResolvedMetricsOptions['prometheus']
  if (options.prometheus !== undefined) {
    const { client, registry, path } = plainObject(prefix + 'prometheus', options.prometheus) as { client?: PromClientLike, registry?: PromRegistryLike, path?: unknown }
    if (client === undefined || typeof client.Gauge !== 'function' || typeof client.Counter !== 'function' || typeof client.Histogram !== 'function') {
      throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'prometheus.client', 'prom-client (import promClient from \'prom-client\')', client)
    }
    if (path !== undefined && (typeof path !== 'string' || !/^\/[^?#]*$/.test(path))) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'prometheus.path', "a path like '/metrics'", path)
    prometheus = { client, registry: registry ?? client.register, path }
  }
  let opentelemetry: ResolvedMetricsOptions['opentelemetry']
  if (options.opentelemetry !== undefined) {
    const { meter, flush } = plainObject(prefix + 'opentelemetry', options.opentelemetry) as { meter?: MeterLike, flush?: () => Promise<unknown> }
    if (meter === undefined || typeof meter.createObservableGauge !== 'function') {
      throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'opentelemetry.meter', "an OpenTelemetry Meter (metrics.getMeter('my-service'))", meter)
    }
    if (flush !== undefined && typeof flush !== 'function') throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'opentelemetry.flush', 'a function (meterProvider.forceFlush)', flush)
    opentelemetry = { meter, flush }
  }
  return resolved({ prometheus, opentelemetry })
}

type Labels = Record<string, string>
interface Sample { labels: Labels, value: number }

/** One metric, with its Prometheus and OpenTelemetry names. */
interface Definition {
  prom: string
  otel: string
  help: string
  labelNames: readonly string[]
  unit?: 's'
}

const PHASES: readonly Phase[] = ['starting', 'ready', 'draining', 'closing', 'closed']
const REASONS: readonly NotReadyReason[] = ['starting', 'startup-task', 'shutdown', 'manual', 'listen-failed', 'check', 'pressure']
/** Seconds: a check is quick or it is a problem. */
const CHECK_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]

/** Gauges, read when the metrics are collected: nothing runs per request. */
const GAUGES: ReadonlyArray<Definition & { read: (lc: Lifecycle) => Sample[] }> = [
  { prom: 'fastify_lifecycle_phase', otel: 'fastify.lifecycle.phase', help: 'The lifecycle phase: 1 for the current one, 0 for the others.', labelNames: ['phase'], read: (lc) => PHASES.map((phase) => ({ labels: { phase }, value: lc.phase === phase ? 1 : 0 })) },
  { prom: 'fastify_lifecycle_ready', otel: 'fastify.lifecycle.ready', help: 'Whether readiness passes: 1 ready, 0 not.', labelNames: [], read: (lc) => [{ labels: {}, value: lc[kReadinessReason]() === undefined ? 1 : 0 }] },
  { prom: 'fastify_lifecycle_not_ready', otel: 'fastify.lifecycle.not_ready', help: 'Why readiness fails: 1 for the current reason (shutdown is a planned one).', labelNames: ['reason'], read: (lc) => { const now = lc[kReadinessReason](); return REASONS.map((reason) => ({ labels: { reason }, value: now === reason ? 1 : 0 })) } },
  { prom: 'fastify_lifecycle_requests_in_flight', otel: 'fastify.lifecycle.requests.in_flight', help: 'HTTP requests being handled.', labelNames: [], read: (lc) => [{ labels: {}, value: lc.inFlight }] },
  { prom: 'fastify_lifecycle_connections', otel: 'fastify.lifecycle.connections', help: 'Open connections (HTTP/1 sockets, HTTP/2 sessions).', labelNames: ['protocol'], read: (lc) => Object.entries(lc[kConnections]()).map(([protocol, value]) => ({ labels: { protocol }, value })) },
  { prom: 'fastify_lifecycle_long_lived_connections', otel: 'fastify.lifecycle.long_lived_connections', help: 'Long-lived connections (WebSockets, SSE streams, your own).', labelNames: ['kind'], read: (lc) => { const counts = new Map<string, number>(); for (const c of lc.longLivedConnections) counts.set(c.kind, (counts.get(c.kind) ?? 0) + 1); return [...counts].map(([kind, value]) => ({ labels: { kind }, value })) } },
  { prom: 'fastify_lifecycle_held_work', otel: 'fastify.lifecycle.held_work', help: 'Work held with lifecycle.hold() and not released yet.', labelNames: [], read: (lc) => [{ labels: {}, value: lc.held.length }] },
  { prom: 'fastify_lifecycle_startup_seconds', otel: 'fastify.lifecycle.startup.duration', unit: 's', help: 'From the lifecycle\'s creation to ready.', labelNames: [], read: (lc) => lc.startupMs === undefined ? [] : [{ labels: {}, value: lc.startupMs / 1000 }] },
  { prom: 'fastify_lifecycle_startup_task_seconds', otel: 'fastify.lifecycle.startup_task.duration', unit: 's', help: 'How long each start-up task took to succeed, retries included.', labelNames: ['task'], read: (lc) => [...lc.startupDurations].map(([task, ms]) => ({ labels: { task }, value: ms / 1000 })) },
  { prom: 'fastify_lifecycle_check_up', otel: 'fastify.lifecycle.check.up', help: 'The latest result of each health check: 1 passed, 0 failed.', labelNames: ['check'], read: (lc) => (lc[kChecks]()?.latest() ?? []).map((r) => ({ labels: { check: r.name }, value: r.ok ? 1 : 0 })) },
  { prom: 'fastify_lifecycle_shutdown_phase_seconds', otel: 'fastify.lifecycle.shutdown.phase.duration', unit: 's', help: 'How long each phase of the last shutdown took.', labelNames: ['phase'], read: (lc) => (lc.report?.phases ?? []).map((p) => ({ labels: { phase: p.phase }, value: p.durationMs / 1000 })) },
  { prom: 'fastify_lifecycle_teardown_resource_seconds', otel: 'fastify.lifecycle.teardown.resource.duration', unit: 's', help: 'How long each resource took to close in the last shutdown, by outcome.', labelNames: ['resource', 'outcome'], read: (lc) => (lc.report?.stages.teardown?.resources ?? []).map((r) => ({ labels: { resource: r.name, outcome: r.outcome }, value: (r.durationMs ?? 0) / 1000 })) }
]

const CHECK_RUNS: Definition = { prom: 'fastify_lifecycle_check_runs_total', otel: 'fastify.lifecycle.check.runs', help: 'Health check runs, by outcome (ok, failed, timed_out).', labelNames: ['check', 'outcome'] }
const CHECK_DURATION: Definition = { prom: 'fastify_lifecycle_check_duration_seconds', otel: 'fastify.lifecycle.check.duration', unit: 's', help: 'How long health check runs took.', labelNames: ['check'] }
const SHUTDOWNS: Definition = { prom: 'fastify_lifecycle_shutdowns_total', otel: 'fastify.lifecycle.shutdowns', help: 'Shutdowns, by cause and outcome (clean, forced).', labelNames: ['cause', 'outcome'] }
const CUT: Definition = { prom: 'fastify_lifecycle_drain_cut_total', otel: 'fastify.lifecycle.drain.cut', help: 'Requests the drain cut at its deadline.', labelNames: [] }

/** What one backend does with the definitions. */
interface Sink {
  gauge: (definition: Definition, read: () => Sample[]) => void
  counter: (definition: Definition) => (labels: Labels, value: number) => void
  histogram: (definition: Definition) => (labels: Labels, value: number) => void
}

/** Which lifecycle's metrics each registry holds: a closed one gives its place to the next. */
const owners = new WeakMap<object, { lifecycle: Lifecycle, names: string[] }>()

function prometheusSink (promClient: PromClientLike, registry: PromRegistryLike, lifecycle: Lifecycle): Sink {
  const client = promClient as unknown as PromClasses
  const registers = [registry]
  const previous = owners.get(registry)
  if (previous !== undefined && previous.lifecycle.phase === 'closed') {
    // An app closed in this process (a test, an in-process restart): its figures go.
    for (const name of previous.names) registry.removeSingleMetric(name)
    owners.delete(registry)
  }
  const names: string[] = []
  owners.set(registry, { lifecycle, names })
  const claim = (name: string): void => {
    if (registry.getSingleMetric(name) !== undefined) {
      throw new FST_LIFECYCLE_INVALID_OPTION('metrics.prometheus.registry', `a registry without ${name} (one running server's lifecycle metrics per registry: give each server its own)`, 'a registry that has it')
    }
    names.push(name)
  }
  return {
    gauge (definition, read) {
      claim(definition.prom)
      // eslint-disable-next-line no-new -- the registry keeps it
      new client.Gauge({
        name: definition.prom,
        help: definition.help,
        labelNames: definition.labelNames,
        registers,
        collect () {
          this.reset()
          for (const sample of read()) this.set(sample.labels, sample.value)
        }
      })
    },
    counter (definition) {
      claim(definition.prom)
      const counter = new client.Counter({ name: definition.prom, help: definition.help, labelNames: definition.labelNames, registers })
      return (labels, value) => counter.inc(labels, value)
    },
    histogram (definition) {
      claim(definition.prom)
      const histogram = new client.Histogram({ name: definition.prom, help: definition.help, labelNames: definition.labelNames, buckets: CHECK_BUCKETS, registers })
      return (labels, value) => histogram.observe(labels, value)
    }
  }
}

function openTelemetrySink (meter: MeterLike): Sink {
  const options = (definition: Definition): { description: string, unit?: string } => definition.unit === undefined ? { description: definition.help } : { description: definition.help, unit: definition.unit }
  return {
    gauge (definition, read) {
      meter.createObservableGauge(definition.otel, options(definition)).addCallback((result) => {
        for (const sample of read()) result.observe(sample.value, sample.labels)
      })
    },
    counter (definition) {
      const counter = meter.createCounter(definition.otel, options(definition))
      return (labels, value) => counter.add(value, labels)
    },
    histogram (definition) {
      const histogram = meter.createHistogram(definition.otel, options(definition))
      return (labels, value) => histogram.record(value, labels)
    }
  }
}

/**
 * The lifecycle as metrics, for Prometheus (your prom-client and registry) and OpenTelemetry
 * (your meter): gauges read when collected, counters and a histogram fed by lifecycle events,
 * nothing per request. See docs/observability.md for the table and alerts that do not page on
 * planned shutdowns.
 */
const metrics: FastifyPluginAsync<MetricsOptions> = async function metrics (fastify, options) {
  const config = alreadyResolved<ResolvedMetricsOptions>(options) ?? resolveMetricsOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-metrics', 'metrics')
  const sinks: Sink[] = []
  if (config.prometheus !== undefined) sinks.push(prometheusSink(config.prometheus.client, config.prometheus.registry, lifecycle))
  if (config.opentelemetry !== undefined) sinks.push(openTelemetrySink(config.opentelemetry.meter))
  if (sinks.length === 0) return

  for (const gauge of GAUGES) for (const sink of sinks) sink.gauge(gauge, () => gauge.read(lifecycle))
  const prometheus = config.prometheus
  if (prometheus?.path !== undefined) {
    const scrape = async (): Promise<string> => await prometheus.registry.metrics()
    const probeRoutes = lifecycle[kProbeRoutes]
    if (probeRoutes !== undefined) {
      probeRoutes.set(prometheus.path, function serveMetrics (_request, response) {
        scrape().then((text) => {
          response.writeHead(200, { 'content-type': prometheus.registry.contentType, 'content-length': Buffer.byteLength(text) })
          response.end(text)
        }, (err: unknown) => {
          fastify.log.error({ err }, 'metrics: collecting failed')
          response.writeHead(500, { 'content-length': 0 })
          response.end()
        })
      })
    } else {
      fastify.get(prometheus.path, async function serveMetrics (_request, reply) {
        return reply.type(prometheus.registry.contentType).send(await scrape())
      })
    }
  }
  const fanOut = (make: (sink: Sink) => (labels: Labels, value: number) => void): (labels: Labels, value: number) => void => {
    const all = sinks.map(make)
    return (labels, value) => { for (const record of all) record(labels, value) }
  }
  const checkRuns = fanOut((sink) => sink.counter(CHECK_RUNS))
  const checkDuration = fanOut((sink) => sink.histogram(CHECK_DURATION))
  const shutdowns = fanOut((sink) => sink.counter(SHUTDOWNS))
  const cut = fanOut((sink) => sink.counter(CUT))

  // Health checks exist only with the health plugin; it hands its registry over when
  // registered, before or after this plugin: looked up once the app is ready.
  fastify.addHook('onReady', async function countCheckRuns () {
    lifecycle[kChecks]()?.runListeners.push(function countRun (result: CheckResult) {
      checkRuns({ check: result.name, outcome: result.ok ? 'ok' : result.timedOut ? 'timed_out' : 'failed' }, 1)
      checkDuration({ check: result.name }, result.durationMs / 1000)
    })
  })

  let flushed: Promise<unknown> | undefined
  lifecycle.on('closed', function countShutdown (report: ShutdownReport) {
    shutdowns({ cause: report.cause, outcome: report.clean ? 'clean' : 'forced' }, 1)
    cut({}, report.stages.drain?.cut ?? 0)
    // Push exporters send the shutdown's figures now: the process exits next.
    flushed = config.opentelemetry?.flush?.()
  })
  lifecycle[kBeforeExit].push(async function flushMetrics () { await flushed })
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(metrics, { name: 'fastify-lifecycle-metrics', fastify: '5.x' })
export { metrics as fastifyLifecycleMetrics }
