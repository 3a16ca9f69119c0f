import { test } from 'tap'
import Fastify from 'fastify'
import graceful from '../plugins/graceful.js'
import { captureLogs } from './helpers/app.js'

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

test('another signal handler added after the plugin is named at ready, with the fix; one added before is not', async (t) => {
  const { stream, lines } = captureLogs()
  const earlier = (): void => {}
  const later = (): void => {}
  process.on('SIGTERM', earlier)
  t.teardown(() => { process.removeListener('SIGTERM', earlier); process.removeListener('SIGTERM', later) })
  const app = Fastify({ logger: { level: 'info', stream } })
  t.teardown(() => app.close())
  await app.register(graceful)
  process.on('SIGTERM', later)
  await app.ready()
  const warnings = lines.filter((l) => String(l.msg).startsWith('graceful: another handler listens for these signals'))
  t.match(warnings, [{ level: 40, events: ['SIGTERM'], msg: /remove it \(close-with-grace, process\.on\('SIGTERM'\)\)/ }], 'one warning, naming the signal and the fix')
  t.ok(process.listeners('SIGTERM').includes(later), 'outside fastify-cli, the other handler is left in place')
})

test('a main script that is not fastify-cli (one that does not exist, or none) gets the warning, not the take-over', async (t) => {
  const main = process.argv[1]
  t.teardown(() => { process.argv[1] = main })
  for (const script of ['/no/such/dir/cli.js', undefined]) {
    if (script === undefined) process.argv.splice(1, 1)
    else process.argv[1] = script
    const { stream, lines } = captureLogs()
    const app = Fastify({ logger: { level: 'info', stream } })
    await app.register(graceful)
    const foreign = (): void => {}
    process.on('SIGTERM', foreign)
    await app.ready()
    process.removeListener('SIGTERM', foreign)
    await app.close()
    t.equal(lines.filter((l) => String(l.msg).startsWith('graceful: another handler')).length, 1, `main script ${String(script)}: not fastify-cli, so a warning`)
    if (script === undefined) process.argv.splice(1, 0, main)
  }
})
