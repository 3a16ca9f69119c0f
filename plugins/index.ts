import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { useLifecycle } from '../lib/lifecycle.js'
import { keysOf, optionsObject } from '../lib/options.js'
import { kClaim } from '../lib/symbols.js'
import drain, { resolveDrainOptions, type DrainOptions } from './drain.js'
import graceful, { resolveGracefulOptions, type GracefulOptions } from './graceful.js'
import health, { resolveHealthOptions, type HealthOptions } from './health.js'
import preStop, { resolvePreStopOptions, type PreStopOptions } from './pre-stop.js'
import teardown, { resolveTeardownOptions, type TeardownOptions } from './teardown.js'
import systemd, { resolveSystemdOptions, type SystemdOptions } from './systemd.js'
import pm2, { resolvePm2Options, type Pm2Options } from './pm2.js'
import metrics, { resolveMetricsOptions, type MetricsOptions } from './metrics.js'
import reload, { resolveReloadOptions, type ReloadOptions } from './reload.js'
import { FST_LIFECYCLE_INVALID_OPTION } from '../lib/errors.js'

export interface FastifyLifecycleOptions {
  /** Liveness, readiness and startup probes and their checks; `false` to serve your own. */
  health?: HealthOptions | false | undefined
  /** Signal handling and the overall deadline; `false` to handle signals yourself. */
  graceful?: GracefulOptions | false | undefined
  /** The delay between the signal and closing the listener; `false` for none. */
  preStop?: PreStopOptions | false | undefined
  /** In-flight request tracking and the drain deadline; `false` to leave connections to Fastify. */
  drain?: DrainOptions | false | undefined
  /** `fastify.lifecycle.teardown()` and its deadlines; `false` to close resources yourself. */
  teardown?: TeardownOptions | false | undefined
  /** Notifications and watchdog for systemd (`Type=notify`), inert unless systemd set `NOTIFY_SOCKET` or passed sockets; `false` for none. */
  systemd?: SystemdOptions | false | undefined
  /** `wait_ready`, the `'shutdown'` message and the `kill_timeout` check, inert unless PM2 runs the process; `false` for none. */
  pm2?: Pm2Options | false | undefined
  /** The lifecycle as Prometheus or OpenTelemetry metrics, through your client or meter; inert without one. */
  metrics?: MetricsOptions | false | undefined
  /**
   * Reloads without an orchestrator: the listener handoff (`handoff: true`, off by default), and
   * the IPC a cluster primary's workers speak (inert unless the primary started the process).
   */
  reload?: ReloadOptions | false | undefined
}

const PIECES = keysOf<FastifyLifecycleOptions>()({ health: true, graceful: true, preStop: true, drain: true, teardown: true, systemd: true, pm2: true, metrics: true, reload: true })

/**
 * Registers every piece of the suite from one options object; each is also usable alone.
 * Every piece's options are resolved here, once, before any is registered, so an error names
 * the full option path ('preStop.delay'); each piece is then registered with its resolved config.
 */
const fastifyLifecycle: FastifyPluginAsync<FastifyLifecycleOptions> = async function fastifyLifecycle (fastify, input) {
  const options = optionsObject<FastifyLifecycleOptions>(input, '', PIECES)
  const pluginTimeout = fastify.initialConfig.pluginTimeout as number
  const config = {
    health: options.health === false ? false : resolveHealthOptions(options.health, 'health.'),
    drain: options.drain === false ? false : resolveDrainOptions(pluginTimeout, options.drain, 'drain.'),
    preStop: options.preStop === false ? false : resolvePreStopOptions(options.preStop, 'preStop.'),
    teardown: options.teardown === false ? false : resolveTeardownOptions(options.teardown, 'teardown.'),
    graceful: options.graceful === false ? false : resolveGracefulOptions(options.graceful, 'graceful.'),
    systemd: options.systemd === false ? false : resolveSystemdOptions(options.systemd, 'systemd.'),
    pm2: options.pm2 === false ? false : resolvePm2Options(options.pm2, 'pm2.'),
    metrics: options.metrics === false ? false : resolveMetricsOptions(options.metrics, 'metrics.'),
    reload: options.reload === false ? false : resolveReloadOptions(options.reload, 'reload.')
  }
  const { reload: reloadConfig, graceful: gracefulConfig } = config
  if (typeof reloadConfig === 'object' && reloadConfig.handoff && typeof gracefulConfig === 'object' && gracefulConfig.signals.includes(reloadConfig.signal)) {
    throw new FST_LIFECYCLE_INVALID_OPTION('reload.signal', `a signal that graceful.signals does not list (${gracefulConfig.signals.join(', ')}): one signal cannot both reload and shut down`, reloadConfig.signal)
  }

  useLifecycle(fastify)[kClaim]('fastify-lifecycle', 'suites')
  if (config.health !== false) await fastify.register(health, config.health as HealthOptions)
  if (config.drain !== false) await fastify.register(drain, config.drain as DrainOptions)
  if (config.preStop !== false) await fastify.register(preStop, config.preStop as PreStopOptions)
  if (config.teardown !== false) await fastify.register(teardown, config.teardown as TeardownOptions)
  if (config.graceful !== false) await fastify.register(graceful, config.graceful as GracefulOptions)
  if (config.systemd !== false) await fastify.register(systemd, config.systemd as SystemdOptions)
  if (config.pm2 !== false) await fastify.register(pm2, config.pm2 as Pm2Options)
  if (config.metrics !== false) await fastify.register(metrics, config.metrics as MetricsOptions)
  if (config.reload !== false) await fastify.register(reload, config.reload as ReloadOptions)
}

export default fp(fastifyLifecycle, { name: 'fastify-lifecycle', fastify: '5.x' })
export { fastifyLifecycle }
export { default as drain } from './drain.js'
export { default as graceful } from './graceful.js'
export { default as health } from './health.js'
export { default as preStop } from './pre-stop.js'
export { default as teardown } from './teardown.js'
export { default as systemd, systemdListen } from './systemd.js'
export { default as pm2 } from './pm2.js'
export { default as metrics } from './metrics.js'
export { default as reload, handoffListen } from './reload.js'
export { channels } from '../lib/channels.js'
export { Lifecycle, useLifecycle } from '../lib/lifecycle.js'
export type {
  Phase,
  ShutdownCause,
  ShutdownReport,
  ReportStages,
  PreStopStage,
  PreStopEnd,
  DrainStage,
  TeardownStage,
  LongLivedCounts,
  PhaseTiming,
  LifecycleEvents,
  HeldWork,
  PhaseStep,
  LongLivedConnection,
  LongLivedHandle,
  StartupTaskOptions
} from '../lib/lifecycle.js'
export type { DrainOptions } from './drain.js'
export type { GracefulOptions, HandledSignal } from './graceful.js'
export type { HealthOptions, HealthCheckOption, ProbeLogLevel, UnderPressureOptions } from './health.js'
export type { PreStopOptions } from './pre-stop.js'
export type { TeardownOptions } from './teardown.js'
export type { SystemdOptions, SystemdListenOptions, NotifyTransport } from './systemd.js'
export type { Pm2Options } from './pm2.js'
export type { ReloadOptions, HandoffSignal, HandoffListenOptions } from './reload.js'
export type { MetricsOptions, PromClientLike, PromRegistryLike, MeterLike } from './metrics.js'
export type { NotReadyReason, PhaseMessage, ReadinessMessage, CheckMessage, ReportMessage } from '../lib/channels.js'
export type { CheckFunction, CheckOptions, CheckResult, ProbeKind } from '../lib/health.js'
export type { Closable, CloseFunction, TeardownResourceOptions, TeardownResult, TeardownOutcome } from '../lib/teardown.js'
export * as errors from '../lib/errors.js'
