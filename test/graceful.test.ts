import { test } from 'tap'
import Fastify from 'fastify'
import graceful from '../plugins/graceful.js'

const EVENTS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2', 'uncaughtException', 'unhandledRejection', 'beforeExit'] as const

function counts (): Record<string, number> {
  return Object.fromEntries(EVENTS.map((e) => [e, process.listenerCount(e)]))
}

function added (before: Record<string, number>): string[] {
  const now = counts()
  return EVENTS.filter((e) => now[e] !== before[e]).map((e) => `${e}+${now[e] - before[e]}`)
}

test('by default it listens to SIGTERM, SIGINT and uncaught errors, and removes every listener on close', async (t) => {
  const before = counts()
  const app = Fastify()
  await app.register(graceful)
  await app.ready()
  t.same(added(before), ['SIGTERM+1', 'SIGINT+1', 'uncaughtException+1', 'unhandledRejection+1'])
  await app.close()
  t.same(added(before), [], 'nothing left behind, so test runners and other instances are undisturbed')
})

test('only the configured signals are handled, and errors can be left alone', async (t) => {
  const before = counts()
  const app = Fastify()
  await app.register(graceful, { signals: ['SIGTERM', 'SIGHUP'], handleErrors: false })
  await app.ready()
  t.same(added(before), ['SIGTERM+1', 'SIGHUP+1'])
  await app.close()
  t.same(added(before), [])
})

test('two instances one after the other each install and remove their own listeners', async (t) => {
  const before = counts()
  for (let i = 0; i < 2; i++) {
    const app = Fastify()
    await app.register(graceful)
    await app.ready()
    t.same(added(before), ['SIGTERM+1', 'SIGINT+1', 'uncaughtException+1', 'unhandledRejection+1'])
    await app.close()
  }
  t.same(added(before), [])
})

test('listeners are removed even when the budget check fails the boot', async (t) => {
  const before = counts()
  const app = Fastify({ pluginTimeout: 0 })
  app.register(graceful, { timeout: 1000 })
  app.register(async function bigBudget (instance) { instance.lifecycle.setBudget('drain', 5000) })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_BUDGET_EXCEEDED' })
  await app.close()
  t.same(added(before), [])
})
