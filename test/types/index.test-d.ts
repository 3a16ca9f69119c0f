import Fastify from 'fastify'
import { expectAssignable, expectError, expectType } from 'tsd'
import lifecycle, {
  drain,
  graceful,
  preStop,
  type DrainOptions,
  type FastifyLifecycleOptions,
  type GracefulOptions,
  type Lifecycle,
  type Phase,
  type PreStopOptions,
  type ShutdownReport
} from 'fastify-lifecycle'
import gracefulAlone from 'fastify-lifecycle/graceful'
import { FST_LIFECYCLE_INVALID_OPTION } from 'fastify-lifecycle/errors'

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
app.register(graceful, { handleErrors: false })
app.register(gracefulAlone, { signals: ['SIGINT'] })
expectError(app.register(drain, { timeout: true }))

expectAssignable<FastifyLifecycleOptions>({ drain: { timeout: 1 } })
expectAssignable<DrainOptions>({})
expectAssignable<PreStopOptions>({ delay: 1 })
expectAssignable<GracefulOptions>({ signals: ['SIGHUP', 'SIGUSR2'] })

// Errors are constructible with a code.
expectType<'FST_LIFECYCLE_INVALID_OPTION'>(new FST_LIFECYCLE_INVALID_OPTION('a', 'b', 'c').code)
