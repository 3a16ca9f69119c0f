import { once } from 'node:events'
import { test, type Test } from 'tap'
import Fastify from 'fastify'
import lifecycle, { pm2 } from '../plugins/index.js'
import { resolvePm2Options, runByPm2 } from '../plugins/pm2.js'

/** PM2's environment and IPC channel for one test: `pm_id` set, `process.send` recording. */
function underPm2 (t: Test, env: Record<string, string | undefined> = {}): unknown[] {
  const sent: unknown[] = []
  const old = { send: process.send, pm_id: process.env.pm_id, kill_timeout: process.env.kill_timeout }
  process.send = ((message: unknown) => { sent.push(message); return true }) as typeof process.send
  process.env.pm_id = '0'
  delete process.env.kill_timeout
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) delete process.env[key]
    else process.env[key] = value
  }
  t.teardown(() => {
    process.send = old.send
    for (const key of ['pm_id', 'kill_timeout'] as const) {
      if (old[key] === undefined) delete process.env[key]
      else process.env[key] = old[key]
    }
  })
  return sent
}

test('inert unless PM2 runs the process', async (t) => {
  const old = process.env.pm_id
  delete process.env.pm_id
  t.teardown(() => { if (old !== undefined) process.env.pm_id = old })
  t.equal(runByPm2(), false)
  const listeners = process.listenerCount('message')
  const app = Fastify()
  await app.register(lifecycle, { graceful: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.equal(process.listenerCount('message'), listeners, 'no message listener of its own')
  await app.close()
})

test("process.send('ready') once ready and listening, for wait_ready", async (t) => {
  const sent = underPm2(t, { kill_timeout: '30000' })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  await app.ready()
  t.same(sent, [], 'ready, not listening yet')
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.same(sent, ['ready'])
})

test("'ready' waits for start-up tasks that end after listen()", async (t) => {
  const sent = underPm2(t, { kill_timeout: '30000' })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  let warm!: () => void
  app.lifecycle.startupTask('warm', () => new Promise<void>((resolve) => { warm = resolve }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.same(sent, [], 'listening, the task still running')
  const ready = once(app.lifecycle, 'ready')
  warm()
  await ready
  t.same(sent, ['ready'])
})

test("the 'shutdown' message shuts down as a signal would; other messages are left alone", async (t) => {
  underPm2(t, { kill_timeout: '30000' })
  const listeners = process.listenerCount('message')
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  process.emit('message', { type: 'process:msg' }, undefined)
  t.equal(app.lifecycle.phase, 'ready', 'another message is not a shutdown')
  const closed = once(app.lifecycle, 'closed')
  process.emit('message', 'shutdown', undefined)
  const [report] = await closed
  t.equal(report.cause, 'pm2 shutdown message')
  t.equal(process.listenerCount('message'), listeners, 'the listener is gone with the app')
})

test("PM2's kill_timeout must exceed the shutdown's deadline: FST_LIFECYCLE_PM2_KILL_TIMEOUT at ready", async (t) => {
  underPm2(t)
  const suite = Fastify()
  await suite.register(lifecycle, { graceful: { signals: ['SIGUSR2'], handleErrors: false } })
  await t.rejects(async () => { await suite.ready() }, { code: 'FST_LIFECYCLE_PM2_KILL_TIMEOUT', message: /PM2 sends SIGKILL 1600ms after .* may take up to 25000ms \(graceful\.timeout\)/ }, "PM2's default 1600 ms against the default 25 s")
  await suite.close()

  underPm2(t, { kill_timeout: '5000' })
  const pieces = Fastify()
  await pieces.register(lifecycle, { graceful: false })
  await t.rejects(async () => { await pieces.ready() }, { code: 'FST_LIFECYCLE_PM2_KILL_TIMEOUT', message: /5000ms .* up to 20000ms \(drain 5000ms \+ preStop 5000ms \+ teardown 10000ms\)/ }, 'without graceful, the phases added up, against the kill_timeout PM2 passes')
  await pieces.close()

  underPm2(t, { kill_timeout: '1000' })
  const fits = Fastify()
  await fits.register(lifecycle, { graceful: false, preStop: { delay: 0 }, drain: false, teardown: false, pm2: { killTimeout: 30_000 } })
  await fits.ready()
  t.pass('the option overrides the environment')
  await fits.close()
})

test('pm2 options: defaults, switches and errors', async (t) => {
  t.same(resolvePm2Options(), { ready: true, shutdownMessage: true, killTimeout: undefined })
  const sent = underPm2(t, { kill_timeout: '30000' })
  const listeners = process.listenerCount('message')
  const app = Fastify()
  await app.register(pm2, { ready: false, shutdownMessage: false })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.same(sent, [], "no 'ready' when turned off")
  t.equal(process.listenerCount('message'), listeners, 'no shutdown listener when turned off')
  await app.close()
  await t.rejects(async () => { await Fastify().register(lifecycle, { graceful: false, pm2: { killTimeout: 0 } }) }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /pm2\.killTimeout/ })
  await t.rejects(async () => { await Fastify().register(lifecycle, { graceful: false, pm2: { ready: 'yes' as unknown as boolean } }) }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message: /pm2\.ready/ })
})
