import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { useLifecycle } from '../lib/lifecycle.js'
import {
  checkKnownKeys,
  resolveDrainOptions,
  resolveGracefulOptions,
  resolveHealthOptions,
  resolvePreStopOptions,
  resolveTeardownOptions,
  type DrainOptions,
  type TeardownOptions,
  type GracefulOptions,
  type HealthOptions,
  type PreStopOptions
} from '../lib/options.js'
import drain from './drain.js'
import graceful from './graceful.js'
import health from './health.js'
import preStop from './pre-stop.js'
import teardown from './teardown.js'

export interface FastifyLifecycleOptions {
  /** Liveness, readiness and startup probes and their checks; `false` to serve your own. */
  health?: HealthOptions | false
  /** Signal handling and the overall deadline; `false` to handle signals yourself. */
  graceful?: GracefulOptions | false
  /** The delay between the signal and closing the listener; `false` for none. */
  preStop?: PreStopOptions | false
  /** In-flight request tracking and the drain deadline; `false` to leave connections to Fastify. */
  drain?: DrainOptions | false
  /** `fastify.lifecycle.teardown()` and its deadlines; `false` to close resources yourself. */
  teardown?: TeardownOptions | false
}

const PIECES = ['health', 'graceful', 'preStop', 'drain', 'teardown']

/** Registers every piece of the suite from one options object; each is also usable alone. */
const fastifyLifecycle: FastifyPluginAsync<FastifyLifecycleOptions> = async function fastifyLifecycle (fastify, options) {
  checkKnownKeys('', options, PIECES)
  // Validate everything first, so an error names the full option path ('preStop.delay').
  if (options.health !== false) resolveHealthOptions(options.health, 'health.')
  if (options.drain !== false) resolveDrainOptions(fastify.initialConfig.pluginTimeout as number, options.drain, 'drain.')
  if (options.preStop !== false) resolvePreStopOptions(options.preStop, 'preStop.')
  if (options.teardown !== false) resolveTeardownOptions(options.teardown, 'teardown.')
  if (options.graceful !== false) resolveGracefulOptions(options.graceful, 'graceful.')

  useLifecycle(fastify)
  if (options.health !== false) await fastify.register(health, options.health ?? {})
  if (options.drain !== false) await fastify.register(drain, options.drain ?? {})
  if (options.preStop !== false) await fastify.register(preStop, options.preStop ?? {})
  if (options.teardown !== false) await fastify.register(teardown, options.teardown ?? {})
  if (options.graceful !== false) await fastify.register(graceful, options.graceful ?? {})
}

export default fp(fastifyLifecycle, { name: 'fastify-lifecycle', fastify: '5.x' })
export { fastifyLifecycle }
export { default as drain } from './drain.js'
export { default as graceful } from './graceful.js'
export { default as health } from './health.js'
export { default as preStop } from './pre-stop.js'
export { default as teardown } from './teardown.js'
export { Lifecycle, useLifecycle } from '../lib/lifecycle.js'
export type { Phase, ShutdownCause, ShutdownReport, PhaseTiming, LifecycleEvents, HeldWork, PhaseStep, LongLivedConnection, LongLivedHandle } from '../lib/lifecycle.js'
export type { DrainOptions, GracefulOptions, HealthOptions, HealthCheckOption, PreStopOptions, ProbeLogLevel, TeardownOptions, HandledSignal } from '../lib/options.js'
export type { CheckFunction, CheckOptions, CheckResult, ProbeKind } from '../lib/health.js'
export type { Closable, CloseFunction, TeardownResourceOptions, TeardownResult, TeardownOutcome } from '../lib/teardown.js'
export * as errors from '../lib/errors.js'
