import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_INVALID_OPTION } from '../lib/errors.js'
import { useLifecycle } from '../lib/lifecycle.js'
import { alreadyResolved, bool, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kClaim, kMarkForced, kReadyCheck, kRecord, kTeardown } from '../lib/symbols.js'
import { TeardownRegistry } from '../lib/teardown.js'

export type { Closable, CloseFunction, TeardownResourceOptions, TeardownResult, TeardownOutcome } from '../lib/teardown.js'

export interface TeardownOptions {
  /**
   * Overall deadline for closing every registered resource, in ms. Resources not closed by then
   * are reported and the shutdown counts as forced. @default 10000
   */
  timeout?: number | undefined
  /** Default longest wait for one resource, in ms; `teardown(name, r, { timeout })` overrides it. @default 3000 */
  resourceTimeout?: number | undefined
  /**
   * Close resources at the same time when no `after` relation orders them. Off, they close one
   * at a time in reverse registration order. @default false
   */
  parallel?: boolean | undefined
}

export interface ResolvedTeardownOptions {
  readonly timeout: number
  readonly resourceTimeout: number
  readonly parallel: boolean
}

const KEYS = keysOf<TeardownOptions>()({ timeout: true, resourceTimeout: true, parallel: true })

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolveTeardownOptions (input?: TeardownOptions, prefix = ''): ResolvedTeardownOptions {
  const options = optionsObject<TeardownOptions>(input, prefix, KEYS)
  const timeout = duration(prefix + 'timeout', options.timeout, 10_000, true)
  const resourceTimeout = duration(prefix + 'resourceTimeout', options.resourceTimeout, Math.min(3000, timeout), true)
  if (resourceTimeout > timeout) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'resourceTimeout', `at most ${prefix}timeout (${timeout}ms)`, resourceTimeout)
  }
  return resolved({ timeout, resourceTimeout, parallel: bool(prefix + 'parallel', options.parallel, false) })
}

/**
 * `fastify.lifecycle.teardown(name, resource, options)`: everything registered is closed from
 * one onClose hook, which Fastify runs after the drain, so no request in flight ever meets a
 * closed pool. Reverse registration order unless `after` says otherwise; each resource bounded
 * by its own timeout and all of them by one deadline; failures reported, never blocking.
 */
const teardown: FastifyPluginAsync<TeardownOptions> = async function teardown (fastify, options) {
  const config = alreadyResolved<ResolvedTeardownOptions>(options) ?? resolveTeardownOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-teardown', 'teardown registries')
  const log = fastify.log.child({ plugin: 'teardown' })
  const registry = new TeardownRegistry(config.resourceTimeout)
  lifecycle[kTeardown](registry)
  lifecycle.setBudget('teardown', config.timeout)

  // Unknown `after` names and cycles fail the boot, and the order is computed once.
  lifecycle[kReadyCheck](function checkTeardownOrder () { registry.check() })

  fastify.addHook('onClose', async function teardownResources () {
    const started = performance.now()
    log.info({ resources: registry.names, parallel: config.parallel, timeout: config.timeout }, 'teardown: closing resources')
    const resources = await registry.run(config, log)
    for (const result of resources) {
      if (result.outcome === 'failed') lifecycle[kMarkForced]('teardown', `'${result.name}' failed: ${result.error}`)
      else if (result.outcome === 'timed out') lifecycle[kMarkForced]('teardown', `'${result.name}' timed out`)
      else if (result.outcome === 'skipped') lifecycle[kMarkForced]('teardown', `'${result.name}' skipped${result.error === undefined ? ` at the ${config.timeout}ms deadline` : `: ${result.error}`}`)
    }
    const durationMs = Math.round(performance.now() - started)
    lifecycle[kRecord]('teardown', { durationMs, resources })
    log.info({ durationMs, closed: resources.filter((r) => r.outcome === 'closed').length, total: resources.length }, 'teardown: done')
  })
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(teardown, { name: 'fastify-lifecycle-teardown', fastify: '5.x' })
export { teardown as fastifyLifecycleTeardown }
