import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import promClient from 'prom-client'
import { metrics as otel } from '@opentelemetry/api'
import { startPrimary, type Primary, type PrimaryOptions, type ReloadReport } from 'fastify-lifecycle/cluster'
import lifecycle, {
  drain,
  graceful,
  preStop,
  pm2,
  systemd,
  systemdListen,
  handoffListen,
  reload,
  metrics,
  channels,
  type NotReadyReason,
  type SystemdListenOptions,
  type HandoffListenOptions,
  type ReloadOptions,
  type DrainOptions,
  type FastifyLifecycleOptions,
  type GracefulOptions,
  type Lifecycle,
  type Phase,
  type PreStopOptions,
  type ShutdownReport,
  type HeldWork,
  type TeardownOptions,
  type TeardownResult,
  type HealthOptions,
  type CheckOptions,
  type ProbeKind,
  type LongLivedHandle,
  type DrainStage,
  type ReportStages,
  teardown,
  health
} from 'fastify-lifecycle'
import healthAlone from 'fastify-lifecycle/health'
import teardownAlone from 'fastify-lifecycle/teardown'
import gracefulAlone from 'fastify-lifecycle/graceful'
import { FST_LIFECYCLE_INVALID_ARGUMENT, FST_LIFECYCLE_INVALID_OPTION } from 'fastify-lifecycle/errors'

const app = Fastify()

// The decorator is typed on every instance.
expectType<Lifecycle>(app.lifecycle)
expectType<Phase>(app.lifecycle.phase)
expectType<boolean>(app.lifecycle.isReady())
expectType<boolean>(app.lifecycle.shuttingDown)
expectType<AbortSignal>(app.lifecycle.signal)
expectType<number>(app.lifecycle.inFlight)
expectType<Promise<ShutdownReport>>(app.lifecycle.shutdown())
expectType<Promise<ShutdownReport>>(app.lifecycle.shutdown('SIGTERM'))
expectType<Promise<ShutdownReport>>(app.lifecycle.shutdown({ cause: 'error', error: new Error('x') }))
expectType<ShutdownReport | undefined>(app.lifecycle.report)
app.lifecycle.on('phase', (phase, previous) => {
  expectType<Phase>(phase)
  expectType<Phase>(previous)
})
app.lifecycle.on('closed', (report) => { expectType<0 | 1>(report.exitCode) })
expectError(app.lifecycle.on('closed', (report: string) => report))
expectError(app.lifecycle.phase = 'ready')

// Teardown: clients with a close method, or functions; options typed.
const pool = { end: async () => {} }
const redis = { quit: async () => 'OK', disconnect: () => {} }
expectType<Lifecycle>(app.lifecycle.teardown('pg', pool))
app.lifecycle.teardown('redis', redis, { timeout: 1000, after: ['pg'] })
app.lifecycle.teardown('flush', async () => {})
app.lifecycle.teardown('sync', () => {})
expectError(app.lifecycle.teardown('pg', pool, { timeout: '1s' }))
expectError(app.lifecycle.teardown('pg', pool, { after: 'redis' }))
expectError(app.lifecycle.teardown(42, pool))
app.register(teardown, { timeout: 10_000, resourceTimeout: 3000, parallel: true })
app.register(teardownAlone)
app.register(lifecycle, { teardown: false })
expectError(app.register(teardown, { parallel: 'yes' }))
expectAssignable<TeardownOptions>({ parallel: false })
const resource: TeardownResult = { name: 'pg', method: 'end', outcome: 'closed' }
expectError<TeardownResult>({ name: 'pg', method: 'end', outcome: 'done' })
expectType<string>(resource.name)

// Held work.
const work = app.lifecycle.hold('job')
expectType<HeldWork>(work)
expectType<void>(work.release())
expectType<string[]>(app.lifecycle.held)
expectType<Promise<void>>(app.lifecycle.idle())
expectError(app.lifecycle.hold())

// Health: checks, start-up tasks, manual readiness, options.
expectType<Lifecycle>(app.lifecycle.check('pg', async () => {}, { timeout: 500, critical: false, probe: ['readiness', 'startup'], cacheTtl: 1000, refreshInterval: 5000 }))
app.lifecycle.check('flag', () => true)
expectError(app.lifecycle.check('pg', async () => {}, { probe: 'ready' }))
expectError(app.lifecycle.check('pg', async () => {}, { critical: 'yes' }))
expectType<Lifecycle>(app.lifecycle.startupTask('warm', async () => {}, { retryDelay: 500 }))
expectType<string[]>(app.lifecycle.startupPending)
expectType<void>(app.lifecycle.setReady(false))
expectError(app.lifecycle.setReady('no'))
expectType<boolean>(app.lifecycle.manualReady)
app.lifecycle.on('readiness', (ready) => { expectType<boolean>(ready) })
app.register(health, { readinessPath: '/health/ready', livenessPath: false, port: 9000, host: '127.0.0.1', logLevel: 'info', exposeFailureDetails: true, underPressure: { readiness: false, maxEventLoopDelay: 500 } })
app.register(health, { checks: [{ name: 'pg', check: async () => {}, timeout: 300 }] })
app.register(healthAlone, { underPressure: false })
app.register(lifecycle, { health: false })
expectError(app.register(health, { logLevel: 'verbose' }))
expectError(app.register(health, { port: '9000' }))
expectError(app.register(health, { checks: [{ name: 'pg' }] }))
expectAssignable<HealthOptions>({ startupPath: '/startup' })
expectAssignable<CheckOptions>({ probe: 'liveness' })
expectAssignable<ProbeKind>('startup')
expectError<ProbeKind>('alive')

// Long-lived connections and the deadline signal.
const tunnel = app.lifecycle.longLived({ kind: 'tunnel', notify: () => {}, destroy: () => {} })
expectType<LongLivedHandle>(tunnel)
expectType<void>(tunnel.done())
expectError(app.lifecycle.longLived({ kind: 'tunnel', notify: () => {} }))
expectType<AbortSignal>(app.lifecycle.deadlineSignal)
app.register(drain, { notifyAt: 'closing', sseRetry: 3000, abortBefore: 500 })
expectError(app.register(drain, { notifyAt: 'signal' }))

// Phases are a closed union.
expectAssignable<Phase>('draining')
expectError<Phase>('stopping')

// Options: all optional, durations are numbers, signals are a union, pieces can be turned off.
app.register(lifecycle)
app.register(lifecycle, { preStop: { delay: 5000 }, drain: { timeout: 5000 }, graceful: { timeout: 25_000, signals: ['SIGTERM'] } })
app.register(lifecycle, { preStop: false, drain: false, graceful: false })
expectError(app.register(lifecycle, { preStop: { delay: '5s' } }))
expectError(app.register(lifecycle, { graceful: { signals: ['SIGKILL'] } }))
expectError(app.register(lifecycle, { prestop: {} }))
app.register(drain, { timeout: 100 })
app.register(preStop, { delay: 0 })
app.register(preStop, { quiet: 500, maxDelay: 10_000, ignorePaths: ['/healthz'] })
expectError(app.register(preStop, { quiet: '500ms' }))
expectError(app.register(preStop, { ignorePaths: '/healthz' }))
app.register(graceful, { handleErrors: false })
app.register(gracefulAlone, { signals: ['SIGINT'] })
expectError(app.register(drain, { timeout: true }))

expectAssignable<FastifyLifecycleOptions>({ drain: { timeout: 1 } })
expectAssignable<DrainOptions>({})
expectAssignable<PreStopOptions>({ delay: 1 })
expectAssignable<GracefulOptions>({ signals: ['SIGHUP', 'SIGUSR2'] })

// Errors are constructible with a code.
expectType<'FST_LIFECYCLE_INVALID_OPTION'>(new FST_LIFECYCLE_INVALID_OPTION('a', 'b', 'c').code)

// The report is typed per stage: no casts.
declare const report: ShutdownReport
expectType<boolean | undefined>(report.stages.drain?.deadlineReached)
expectType<number | undefined>(report.stages.drain?.cut)
expectType<boolean | undefined>(report.stages.preStop?.skipped)
expectType<'fixed' | 'adaptive' | undefined>(report.stages.preStop?.mode)
expectType<'delay' | 'quiet' | 'maxDelay' | undefined>(report.stages.preStop?.endedBy)
expectType<TeardownResult[] | undefined>(report.stages.teardown?.resources)
expectAssignable<DrainStage>({ inFlightAtClose: 0, heldAtClose: [], cut: 0, cutPartial: 0, heldCut: [], longLived: { notified: 0, closed: 0, cut: 0 }, timeout: 5000, idleGraceMs: 0, durationMs: 1, deadlineReached: false })
expectAssignable<ReportStages>({})
expectError(report.stages.custom)

// The plugin plumbing is not on the user's type.
expectError(app.lifecycle.record('drain', {}))
expectError(app.lifecycle.markForced('drain', 'x'))
expectError(app.lifecycle.abandon('x'))
expectError(app.lifecycle.useChecks)
expectError(app.lifecycle.countInFlightWith(() => 0))
expectError(app.lifecycle.install(app))
// Long-lived connections are read-only to users.
expectError(app.lifecycle.longLivedConnections.add({ kind: 'x', notify: () => {}, destroy: () => {}, notified: false }))
expectType<number>(app.lifecycle.longLivedConnections.size)

// Plugin authors: phase steps and budgets.
expectType<void>(app.lifecycle.during('draining', async () => {}))
expectError(app.lifecycle.during('closed', () => {}))
expectType<void>(app.lifecycle.setBudget('queue', 1000))
expectType<'FST_LIFECYCLE_INVALID_ARGUMENT'>(new FST_LIFECYCLE_INVALID_ARGUMENT('a', 'b', 'c').code)

// systemd and PM2
expectType<SystemdListenOptions | undefined>(systemdListen())
expectType<SystemdListenOptions | undefined>(systemdListen({ name: 'web', backlog: 1024 }))
expectError(systemdListen({ name: 3 }))
app.register(lifecycle, { systemd: { transport: (message: string) => { expectType<string>(message) }, statusInterval: 500, watchdog: false }, pm2: { killTimeout: 30_000, ready: true } })
app.register(lifecycle, { systemd: false, pm2: false })
expectError(app.register(lifecycle, { systemd: { transport: 'systemd-notify' } }))
expectError(app.register(lifecycle, { pm2: { killTimeout: '30s' } }))
app.register(systemd, { notify: false })
app.register(pm2, { shutdownMessage: false })

// metrics, channels, readiness reasons
app.register(lifecycle, { metrics: { prometheus: { client: promClient, registry: new promClient.Registry(), path: '/metrics' } } })
app.register(lifecycle, { metrics: { opentelemetry: { meter: otel.getMeter('svc'), flush: async () => {} } } })
expectError(app.register(lifecycle, { metrics: { prometheus: { client: 'prom-client' } } }))
app.register(metrics, {})
expectType<NotReadyReason | undefined>(app.lifecycle.notReadyReason)
expectType<ReadonlyMap<string, number>>(app.lifecycle.startupDurations)
expectType<string>(channels.phase.name as string)

// reloads: the listener handoff and the cluster primary
expectType<HandoffListenOptions | undefined>(handoffListen())
app.register(lifecycle, { reload: { handoff: true, signal: 'SIGHUP', readyTimeout: 10_000, stopTimeout: 5000 } })
app.register(lifecycle, { reload: false })
app.register(reload, { handoff: true })
expectError(app.register(lifecycle, { reload: { handoff: true, signal: 'SIGTERM' } }))
expectAssignable<ReloadOptions>({ handoff: false })
expectType<Promise<Primary>>(startPrimary({ exec: 'server.js', workers: 2, reloadSignal: 'SIGHUP', readyTimeout: 30_000, stopTimeout: 30_000, env: { A: '1' } }))
expectType<Promise<Primary>>(startPrimary())
expectError(startPrimary({ workers: '2' }))
expectError(startPrimary({ reloadSignal: 'SIGTERM' }))
expectAssignable<PrimaryOptions>({ reloadSignal: false, logger: { info () {}, warn () {}, error () {} } })
declare const primary: Primary
expectType<Promise<ReloadReport>>(primary.reload())
expectType<readonly number[]>(primary.pids)
expectType<'replaced' | 'rolled back' | 'skipped'>((await primary.reload()).outcome)
