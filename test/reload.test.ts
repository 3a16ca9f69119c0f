// The reload piece in-process: its options, what it refuses at boot, the handoff signal when
// there is nothing to hand over, a handoff whose process cannot be started, and the side a
// primary's worker runs (ready, the shutdown message, the report). The handoffs themselves run
// on real processes in test/integration/reload-handoff.test.ts and reload-cluster.test.ts.
import { test, type Test } from 'tap'
import Fastify from 'fastify'
import lifecycle, { graceful, reload } from '../plugins/index.js'
import { resolveReloadOptions } from '../plugins/reload.js'
import { captureLogs } from './helpers/app.js'

const KEY = 'fastify-lifecycle'

test('options are checked at registration, with the option named', async (t) => {
  t.same(resolveReloadOptions(), { handoff: false, signal: 'SIGUSR2', readyTimeout: 30_000, stopTimeout: 10_000 })
  t.same(resolveReloadOptions({ handoff: true, signal: 'SIGHUP', readyTimeout: 5000, stopTimeout: 1000 }), { handoff: true, signal: 'SIGHUP', readyTimeout: 5000, stopTimeout: 1000 })
  const bad: Array<[unknown, RegExp]> = [
    [{ handoff: 'yes' }, /option 'handoff' must be a boolean/],
    [{ handoff: true, signal: 'SIGTERM' }, /option 'signal' must be one of SIGUSR2, SIGHUP/],
    [{ signal: 'SIGHUP' }, /option 'signal' must be left out unless handoff is true/],
    [{ readyTimeout: 1000 }, /option 'readyTimeout' must be left out unless handoff is true/],
    [{ handoff: true, readyTimeout: 0 }, /option 'readyTimeout' must be a positive integer/]
  ]
  for (const [options, message] of bad) {
    t.throws(() => resolveReloadOptions(options as never), { code: 'FST_LIFECYCLE_INVALID_OPTION', message }, JSON.stringify(options))
  }
  t.throws(() => resolveReloadOptions({ handoff: true, stop: 1 } as never), { code: 'FST_LIFECYCLE_UNKNOWN_OPTION', message: /option 'stop' is not known/ })
  const app = Fastify()
  await t.rejects(async () => { await app.register(lifecycle, { reload: { handoff: true, signal: 'SIGHUP' }, graceful: { signals: ['SIGTERM', 'SIGHUP'] } }).ready() }, {
    code: 'FST_LIFECYCLE_INVALID_OPTION',
    message: /option 'reload.signal' must be a signal that graceful.signals does not list \(SIGTERM, SIGHUP\)/
  }, 'one signal cannot both reload and shut down')
})

test('a handoff needs the graceful plugin, which exits the process once it has drained', async (t) => {
  const app = Fastify()
  await app.register(reload, { handoff: true })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_RELOAD_HANDOFF', message: /needs the graceful plugin/ })
})

test('the handoff signal with no listening socket to pass on is ignored, with a warning', async (t) => {
  const { stream, lines } = captureLogs()
  const listeners = process.listenerCount('SIGUSR2')
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(lifecycle, { reload: { handoff: true } })
  t.teardown(() => app.close())
  await app.ready()
  process.emit('SIGUSR2', 'SIGUSR2')
  const warning = lines.find((line) => line.msg === 'reload: SIGUSR2 ignored: the server has no listening socket to pass on')
  t.equal(warning?.level, 40)
  await app.close()
  t.equal(process.listenerCount('SIGUSR2'), listeners, 'the listener goes with the app')
})

test('a new process that cannot be started leaves this one serving, and the next signal tries again', async (t) => {
  const { default: mocked } = await t.mockImport<typeof import('../plugins/reload.js')>('../plugins/reload.js', {
    'node:child_process': { spawn: () => { throw new Error('spawn EAGAIN') } }
  })
  const { stream, lines } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(graceful)
  await app.register(mocked, { handoff: true })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  for (let attempt = 1; attempt <= 2; attempt++) {
    process.emit('SIGUSR2', 'SIGUSR2')
    await new Promise((resolve) => setImmediate(resolve))
    const failures = lines.filter((line) => line.msg === 'reload: the handoff failed; this process keeps serving')
    t.equal(failures.length, attempt, `attempt ${attempt}: logged as an error`)
    t.match(failures.at(-1), { level: 50, err: { message: 'spawn EAGAIN' } })
  }
  t.equal(app.lifecycle.phase, 'ready', 'still serving')
})

/** A primary's worker for one test: FST_LIFECYCLE_IPC set, `process.send` recording. */
function underPrimary (t: Test): unknown[] {
  const sent: unknown[] = []
  const old = process.send
  process.send = ((message: unknown, _handle: unknown, _options: unknown, callback?: () => void) => {
    sent.push(message)
    callback?.()
    return true
  }) as typeof process.send
  process.env.FST_LIFECYCLE_IPC = 'cluster'
  t.teardown(() => {
    process.send = old
    delete process.env.FST_LIFECYCLE_IPC
  })
  return sent
}

test('a primary\'s worker says ready once ready and listening, and shuts down once when asked, skipping the pre-stop wait on a reload', async (t) => {
  const sent = underPrimary(t)
  const { stream, lines } = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream } })
  await app.register(lifecycle, { graceful: false, preStop: { delay: 5000 } })
  t.equal(process.env.FST_LIFECYCLE_IPC, undefined, 'the variable is for this process only')
  await app.ready()
  t.same(sent, [], 'not before it listens')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.same(sent, [{ [KEY]: 'ready', pid: process.pid }])
  const closed = new Promise((resolve) => app.lifecycle.once('closed', resolve))
  process.emit('message', 'something of the app\'s own', undefined)
  process.emit('message', { [KEY]: 'shutdown', reason: 'reload', handover: true }, undefined)
  process.emit('message', { [KEY]: 'shutdown', reason: 'again', handover: false }, undefined)
  const report = await closed as { cause: string, stages: { preStop?: { skipped: boolean } } }
  t.equal(report.cause, 'reload')
  t.equal(report.stages.preStop?.skipped, true, 'no pre-stop wait: the other workers serve')
  t.equal(lines.filter((line) => line.msg === 'reload: shutdown asked for').length, 1, 'asked once')
  t.equal(lines.find((line) => line.msg === 'pre-stop: the listener is handed over to the new process, skipping the delay')?.level, 30)
})
