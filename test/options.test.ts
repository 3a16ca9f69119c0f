import { test } from 'tap'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import lifecycle, { drain, graceful, preStop } from '../plugins/index.js'

interface Case { name: string, plugin: FastifyPluginAsync<any>, options: unknown, code: string, message: RegExp, fastify?: object }

const cases: Case[] = [
  { name: 'a negative pre-stop delay', plugin: preStop, options: { delay: -1 }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'delay' must be a non-negative integer of ms, received -1/ },
  { name: 'a non-numeric pre-stop delay', plugin: preStop, options: { delay: '5s' }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'delay' .* received '5s'/ },
  { name: 'a fractional drain timeout', plugin: drain, options: { timeout: 1.5 }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'timeout' .* received 1\.5/ },
  { name: 'NaN as the graceful deadline', plugin: graceful, options: { timeout: Number.NaN }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'timeout' must be a positive integer of ms, received NaN/ },
  { name: 'a zero graceful deadline', plugin: graceful, options: { timeout: 0 }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'timeout' must be a positive integer of ms, received 0/ },
  { name: 'a drain deadline that pluginTimeout would cut', plugin: drain, options: { timeout: 5000 }, fastify: { pluginTimeout: 1000 }, code: 'FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT', message: /drain timeout 5000ms does not fit in pluginTimeout 1000ms/ },
  { name: 'an unknown signal name', plugin: graceful, options: { signals: ['SIGTERM', 'SIGKIL'] }, code: 'FST_LIFECYCLE_UNKNOWN_SIGNAL', message: /option 'signals' names 'SIGKIL'/ },
  { name: 'SIGKILL, which no process can catch', plugin: graceful, options: { signals: ['SIGKILL'] }, code: 'FST_LIFECYCLE_UNKNOWN_SIGNAL', message: /names 'SIGKILL'.*SIGTERM, SIGINT/ },
  { name: 'an empty signal list', plugin: graceful, options: { signals: [] }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'signals' must be a non-empty array of signal names/ },
  { name: 'a signal given as a string', plugin: graceful, options: { signals: 'SIGTERM' }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'signals' .* received 'SIGTERM'/ },
  { name: 'a non-boolean handleErrors', plugin: graceful, options: { handleErrors: 'yes' }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'handleErrors' must be a boolean/ },
  { name: 'a misspelt option', plugin: drain, options: { timout: 100 }, code: 'FST_LIFECYCLE_UNKNOWN_OPTION', message: /option 'timout' is not known; known options are timeout/ },
  { name: 'a misspelt piece of the suite', plugin: lifecycle, options: { prestop: { delay: 1 } }, code: 'FST_LIFECYCLE_UNKNOWN_OPTION', message: /option 'prestop' is not known; known options are health, graceful, preStop, drain, teardown/ },
  { name: 'a bad nested option, named by its full path', plugin: lifecycle, options: { preStop: { delay: -5 } }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'preStop\.delay' .* received -5/ },
  { name: 'a misspelt nested option, named by its full path', plugin: lifecycle, options: { graceful: { timeOut: 5 } }, code: 'FST_LIFECYCLE_UNKNOWN_OPTION', message: /option 'graceful\.timeOut' is not known/ },
  { name: 'a nested drain deadline that pluginTimeout would cut', plugin: lifecycle, options: { drain: { timeout: 20_000 } }, code: 'FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT', message: /20000ms does not fit in pluginTimeout 10000ms/ },
  { name: 'a piece given as a number', plugin: lifecycle, options: { drain: 5 }, code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'drain' must be an object, received 5/ },
  { name: 'plugin options given as an array', plugin: preStop, options: [1], code: 'FST_LIFECYCLE_INVALID_OPTION', message: /option 'options' must be an object/ },
  { name: 'a budget that cannot fit in the overall deadline', plugin: lifecycle, options: { preStop: { delay: 800 }, drain: { timeout: 300 }, graceful: { timeout: 1000 } }, code: 'FST_LIFECYCLE_BUDGET_EXCEEDED', message: /drain 300ms \+ preStop 800ms \+ teardown 10000ms = 11100ms leaves no room inside graceful\.timeout 1000ms/ }
]

for (const c of cases) {
  test(`registration fails with ${c.code} for ${c.name}`, async (t) => {
    const app = Fastify(c.fastify)
    t.teardown(() => app.close())
    app.register(c.plugin, c.options as object)
    await t.rejects(async () => { await app.ready() }, { code: c.code, message: c.message })
  })
}

test('pluginTimeout 0 (never cut) accepts any drain deadline', async (t) => {
  const app = Fastify({ pluginTimeout: 0 })
  t.teardown(() => app.close())
  await app.register(drain, { timeout: 600_000 })
  await app.ready()
  t.same(app.lifecycle.budget, { drain: 600_000 })
})

test('the caller\'s options object is left as it was', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const options = { preStop: { delay: 10 }, graceful: { signals: ['SIGTERM', 'SIGTERM'] as const }, drain: false as const }
  const before = JSON.stringify(options)
  await app.register(lifecycle, options)
  await app.ready()
  t.equal(JSON.stringify(options), before)
  t.same(app.lifecycle.budget, { preStop: 10, teardown: 10_000 })
})
