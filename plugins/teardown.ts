import { performance } from 'node:perf_hooks'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { useLifecycle } from '../lib/lifecycle.js'
import { resolveTeardownOptions, type TeardownOptions } from '../lib/options.js'
import { TeardownRegistry } from '../lib/teardown.js'

export type { TeardownOptions }
export type { Closable, CloseFunction, TeardownResourceOptions, TeardownResult, TeardownOutcome } from '../lib/teardown.js'

/**
 * `fastify.lifecycle.teardown(name, resource, options)`: everything registered is closed from
 * one onClose hook, which Fastify runs after the drain, so no request in flight ever meets a
 * closed pool. Reverse registration order unless `after` says otherwise; each resource bounded
 * by its own timeout and all of them by one deadline; failures reported, never blocking.
 */
const teardown: FastifyPluginAsync<TeardownOptions> = async function teardown (fastify, options) {
  const config = resolveTeardownOptions(options)
  const lifecycle = useLifecycle(fastify)
  const log = fastify.log.child({ plugin: 'teardown' })
  const registry = new TeardownRegistry(config.resourceTimeout)
  lifecycle.useTeardown(registry)
  lifecycle.setBudget('teardown', config.timeout)

  fastify.addHook('onReady', async function checkTeardownOrder () {
    registry.check()
  })

  fastify.addHook('onClose', async function teardownResources () {
    const started = performance.now()
    log.info({ resources: registry.names, parallel: config.parallel, timeout: config.timeout }, 'teardown: closing resources')
    const resources = await registry.run(config, log)
    for (const result of resources) {
      if (result.outcome === 'failed') lifecycle.markForced('teardown', `'${result.name}' failed: ${result.error}`)
      else if (result.outcome === 'timed out') lifecycle.markForced('teardown', `'${result.name}' timed out`)
      else if (result.outcome === 'skipped') lifecycle.markForced('teardown', `'${result.name}' skipped at the ${config.timeout}ms deadline`)
    }
    const durationMs = Math.round(performance.now() - started)
    lifecycle.record('teardown', { durationMs, resources })
    log.info({ durationMs, closed: resources.filter((r) => r.outcome === 'closed').length, total: resources.length }, 'teardown: done')
  })
}

export default fp(teardown, { name: 'fastify-lifecycle-teardown', fastify: '5.x' })
export { teardown as fastifyLifecycleTeardown }
