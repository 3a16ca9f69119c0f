import { test } from 'tap'
import Fastify from 'fastify'
import lifecycle, { drain, errors, fastifyLifecycle, graceful, Lifecycle, preStop, useLifecycle } from '../plugins/index.js'
import { fastifyLifecycleDrain } from '../plugins/drain.js'
import { fastifyLifecycleGraceful } from '../plugins/graceful.js'
import { fastifyLifecyclePreStop } from '../plugins/pre-stop.js'

test('the main plugin registers every piece under its fastify-plugin name', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle)
  await app.ready()
  for (const name of ['fastify-lifecycle', 'fastify-lifecycle-drain', 'fastify-lifecycle-pre-stop', 'fastify-lifecycle-teardown', 'fastify-lifecycle-graceful', 'fastify-lifecycle-systemd', 'fastify-lifecycle-pm2']) {
    t.ok(app.hasPlugin(name), name)
  }
  t.ok(app.lifecycle instanceof Lifecycle)
  t.same(app.lifecycle.budget, { drain: 5000, preStop: 5000, teardown: 10_000 }, 'production defaults, which fit the 25 s graceful deadline')
})

test('each piece can be turned off', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, preStop: false, drain: false, teardown: false, systemd: false, pm2: false, metrics: false, reload: false })
  await app.ready()
  t.notOk(app.hasPlugin('fastify-lifecycle-reload'))
  t.notOk(app.hasPlugin('fastify-lifecycle-metrics'))
  t.notOk(app.hasPlugin('fastify-lifecycle-systemd'))
  t.notOk(app.hasPlugin('fastify-lifecycle-pm2'))
  t.notOk(app.hasPlugin('fastify-lifecycle-drain'))
  t.notOk(app.hasPlugin('fastify-lifecycle-pre-stop'))
  t.notOk(app.hasPlugin('fastify-lifecycle-graceful'))
  t.notOk(app.hasPlugin('fastify-lifecycle-teardown'))
  t.equal(app.lifecycle.phase, 'ready', 'the lifecycle itself is always there')
})

test('each piece is usable alone and shares the one lifecycle', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(drain)
  await app.register(preStop, { delay: 0 })
  await app.ready()
  t.equal(app.lifecycle, useLifecycle(app))
  t.same(app.lifecycle.budget, { drain: 5000, preStop: 0 })
})

test('named exports are the plugin functions, for use without fastify-plugin', async (t) => {
  t.equal(typeof fastifyLifecycle, 'function')
  t.equal(fastifyLifecycleDrain.name, 'drain')
  t.equal(fastifyLifecyclePreStop.name, 'preStop')
  t.equal(fastifyLifecycleGraceful.name, 'graceful')
  t.equal(typeof graceful, 'function')
  t.equal(typeof errors.FST_LIFECYCLE_INVALID_OPTION, 'function')
})
