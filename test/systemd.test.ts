import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type Test } from 'tap'
import Fastify from 'fastify'
import underPressure from '@fastify/under-pressure'
import lifecycle, { systemd, systemdListen } from '../plugins/index.js'
import { resolveSystemdOptions } from '../plugins/systemd.js'
import { forgetInheritedSockets, inheritedSockets, Notifier, somaxconn } from '../lib/systemd.js'
import { kBeforeExit } from '../lib/symbols.js'
import { captureLogs } from './helpers/app.js'

/** Sets environment variables for one test, and puts the old values back after it. */
function withEnv (t: Test, vars: Record<string, string | undefined>): void {
  const old = Object.fromEntries(Object.keys(vars).map((key) => [key, process.env[key]]))
  for (const [key, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[key]
    else process.env[key] = value
  }
  t.teardown(() => {
    for (const [key, value] of Object.entries(old)) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  })
}

/** A transport that keeps each message as its fields, and can be waited on. */
function recorder () {
  const messages: Array<Record<string, string>> = []
  const waiters: Array<{ test: (m: Record<string, string>) => boolean, resolve: () => void }> = []
  const transport = (message: string): void => {
    const fields = Object.fromEntries(message.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
    messages.push(fields)
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].test(fields)) { waiters[i].resolve(); waiters.splice(i, 1) }
    }
  }
  const waitFor = (test: (m: Record<string, string>) => boolean): Promise<void> => {
    if (messages.some(test)) return Promise.resolve()
    return new Promise((resolve) => waiters.push({ test, resolve }))
  }
  return { messages, transport, waitFor }
}

test('inert without NOTIFY_SOCKET: nothing is sent', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: undefined, WATCHDOG_USEC: '20000' })
  const { messages, transport } = recorder()
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, systemd: { transport } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  await app.lifecycle.shutdown()
  t.same(messages, [])
})

test('READY=1 once ready and listening; STOPPING=1 with the deadline and STATUS lines at the signal; the last status before the exit', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: '/run/test/notify', WATCHDOG_USEC: undefined })
  const { messages, transport, waitFor } = recorder()
  const app = Fastify()
  await app.register(lifecycle, { preStop: { delay: 30 }, graceful: { signals: ['SIGUSR2'], handleErrors: false, timeout: 20_000 }, systemd: { transport, statusInterval: 5 } })
  t.equal(process.env.NOTIFY_SOCKET, undefined, "removed from the environment: children do not notify in the unit's name")
  let release!: () => void
  app.get('/slow', () => new Promise((resolve) => { release = () => resolve('done') }))
  await app.ready()
  t.same(messages, [], 'ready but not listening yet: no READY=1')
  await app.listen({ port: 0, host: '127.0.0.1' })
  await waitFor((m) => m.READY === '1')
  t.same(messages, [{ READY: '1', STATUS: 'ready: serving' }])

  const slow = fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/slow`)
  await once(app.server, 'request')
  const report = app.lifecycle.shutdown('SIGTERM')
  await waitFor((m) => m.STOPPING === '1')
  t.match(messages[1], { STOPPING: '1', EXTEND_TIMEOUT_USEC: '21000000', STATUS: 'shutting down, still serving: 1 request(s) in flight' }, 'the stop job is extended to the overall deadline and a second')
  // The status follows the shutdown while it runs.
  await waitFor((m) => m.STATUS === 'draining: 1 request(s) in flight')
  release()
  await (await slow).text()
  await report
  await Promise.all(app.lifecycle[kBeforeExit].map((fn) => fn()))
  t.same(messages.at(-1), { STATUS: 'stopped: clean shutdown' }, 'the last status, sent before the exit')
  t.ok(messages.slice(2, -1).every((m) => Object.keys(m).length === 1 && /^(shutting down, still serving|draining): \d+ request\(s\) in flight$/.test(m.STATUS)), 'only STATUS lines in between')
})

test('STATUS names held work; the last status says why a shutdown was not clean', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: '/run/test/notify', WATCHDOG_USEC: undefined })
  const { messages, transport } = recorder()
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, drain: { timeout: 50 }, systemd: { transport } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  app.lifecycle.hold('report-job')
  await app.lifecycle.shutdown()
  await Promise.all(app.lifecycle[kBeforeExit].map((fn) => fn()))
  t.ok(messages.some((m) => /held: report-job$/.test(m.STATUS ?? '')), 'the held work is named')
  t.match(messages.at(-1), { STATUS: /^stopped: drain: held work still running at the 50ms deadline: report-job$/ })

  withEnv(t, { NOTIFY_SOCKET: '/run/test/notify' })
  const failed = recorder()
  const crashed = Fastify()
  await crashed.register(lifecycle, { graceful: false, preStop: { delay: 0 }, systemd: { transport: failed.transport } })
  await crashed.ready()
  await crashed.lifecycle.shutdown({ cause: 'error', error: new Error('boom') })
  await Promise.all(crashed.lifecycle[kBeforeExit].map((fn) => fn()))
  t.same(failed.messages.at(-1), { STATUS: 'stopped: not clean' }, 'an error caused it: not clean, nothing forced')
})

test('READY=1 waits for start-up tasks when the server listens first; a failed boot says why in STATUS', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: '/run/test/notify' })
  const { messages, transport, waitFor } = recorder()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, systemd: { transport } })
  let warm!: () => void
  app.lifecycle.startupTask('warm', () => new Promise<void>((resolve) => { warm = resolve }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.same(messages, [], 'listening, but the start-up task still runs')
  warm()
  await waitFor((m) => m.READY === '1')

  withEnv(t, { NOTIFY_SOCKET: '/run/test/notify' })
  const failing = recorder()
  const broken = Fastify()
  t.teardown(() => broken.close())
  await broken.register(lifecycle, { graceful: false, systemd: { transport: failing.transport } })
  broken.lifecycle.teardown('cache', () => {}, { after: ['nope'] })
  await t.rejects(async () => { await broken.ready() })
  await failing.waitFor((m) => m.STATUS !== undefined)
  t.match(failing.messages, [{ STATUS: /^start-up failed: .*nope/ }])
  t.notOk(failing.messages.some((m) => m.READY !== undefined), 'never READY=1')
})

test('the watchdog is fed every half of WATCHDOG_USEC while liveness passes, and not while it fails', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: '/run/test/notify', WATCHDOG_USEC: '40000', WATCHDOG_PID: String(process.pid) })
  const { messages, transport, waitFor } = recorder()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false, systemd: { transport } })
  let alive = true
  let runs = 0
  const ran: Array<() => void> = []
  app.lifecycle.check('heart', () => { runs++; ran.splice(0).forEach((fn) => fn()); return alive }, { probe: 'liveness' })
  // Listening keeps the event loop alive: the watchdog's timer does not (it is unref'd).
  await app.listen({ port: 0, host: '127.0.0.1' })
  const pings = (): number => messages.filter((m) => m.WATCHDOG === '1').length
  await waitFor(() => pings() >= 3)
  alive = false
  // From the next liveness run on, no ping: wait for three runs that failed.
  const runsAt = runs
  await new Promise<void>((resolve) => { const check = (): void => { if (runs >= runsAt + 4) resolve(); else ran.push(check) }; ran.push(check) })
  const before = pings()
  const runsBefore = runs
  await new Promise<void>((resolve) => { const check = (): void => { if (runs >= runsBefore + 3) resolve(); else ran.push(check) }; ran.push(check) })
  t.equal(pings(), before, 'no ping while liveness fails')
  alive = true
  await waitFor(() => pings() > before)
  t.pass('pings resume once liveness passes again')
})

test('a watchdog meant for another process, or turned off, is not fed', async (t) => {
  for (const [env, options] of [[{ WATCHDOG_PID: '1' }, {}], [{}, { watchdog: false }]] as const) {
    // A control fed by the same interval: once it got three pings, the other would have too.
    withEnv(t, { NOTIFY_SOCKET: '/run/test/notify', WATCHDOG_USEC: '20000', WATCHDOG_PID: undefined })
    const control = recorder()
    const fed = Fastify()
    // Without the health plugin, nothing to ask: fed on every tick.
    await fed.register(lifecycle, { graceful: false, health: false, preStop: { delay: 0 }, systemd: { transport: control.transport } })
    await fed.listen({ port: 0, host: '127.0.0.1' })
    withEnv(t, { NOTIFY_SOCKET: '/run/test/notify', WATCHDOG_USEC: '20000', WATCHDOG_PID: undefined, ...env })
    const { messages, transport } = recorder()
    const app = Fastify()
    await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, systemd: { transport, ...options } })
    await app.listen({ port: 0, host: '127.0.0.1' })
    await control.waitFor(() => control.messages.filter((m) => m.WATCHDOG === '1').length >= 3)
    t.notOk(messages.some((m) => m.WATCHDOG !== undefined), `not fed (${JSON.stringify(env)} ${JSON.stringify(options)})`)
    await app.close()
    await fed.close()
  }
})

test('a watchdog not above the liveness threshold fails the boot with FST_LIFECYCLE_SYSTEMD_WATCHDOG', async (t) => {
  withEnv(t, { NOTIFY_SOCKET: '/run/test/notify', WATCHDOG_USEC: '500000', WATCHDOG_PID: undefined })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(underPressure, { maxEventLoopDelay: 0, exposeStatusRoute: false })
  await app.register(lifecycle, { graceful: false, systemd: { transport: () => {} }, health: { underPressure: { maxEventLoopDelay: 1000 } } })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_SYSTEMD_WATCHDOG', message: /\(WatchdogSec=, 500ms\) is not above the liveness threshold \(1000ms/ })
})

test('a transport that fails is reported once, never thrown', async (t) => {
  const { stream, lines } = captureLogs()
  const log = (await import('pino')).pino({ level: 'info' }, stream)
  const notifier = new Notifier(log, () => { throw new Error('socket gone') })
  notifier.send({ READY: 1 })
  notifier.send({ STATUS: 'x' })
  await notifier.flushed
  t.equal(lines.filter((l) => l.msg?.startsWith('systemd: could not notify')).length, 1)
  // Without systemd-notify on the PATH, the same.
  const path = process.env.PATH
  process.env.PATH = '/nonexistent'
  t.teardown(() => { process.env.PATH = path })
  const binary = new Notifier(log, undefined, '/run/test/notify')
  binary.send({ READY: 1 })
  await binary.flushed
  t.equal(lines.filter((l) => l.msg?.startsWith('systemd: could not notify')).length, 2)
})

test('systemd options are checked at registration', async (t) => {
  t.same(resolveSystemdOptions(), { notify: true, transport: undefined, statusInterval: 1000, watchdog: true })
  for (const [options, message] of [[{ transport: 'systemd-notify' }, /option 'systemd\.transport' must be a function/], [{ statusInterval: 0 }, /option 'systemd\.statusInterval' must be a positive integer/], [{ notify: 'yes' }, /option 'systemd\.notify' must be a boolean/]] as const) {
    await t.rejects(async () => { await Fastify().register(lifecycle, { graceful: false, systemd: options as object }) }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message })
  }
  const app = Fastify()
  await app.register(systemd, { notify: false })
  await app.ready()
  t.equal(app.lifecycle.phase, 'ready', 'usable alone')
})

test('socket activation: systemdListen() reads LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES once, then removes them', async (t) => {
  t.teardown(forgetInheritedSockets)
  forgetInheritedSockets()
  withEnv(t, { LISTEN_FDS: undefined, LISTEN_PID: undefined, LISTEN_FDNAMES: undefined })
  t.equal(systemdListen(), undefined, 'none passed in: listen as usual')

  forgetInheritedSockets()
  withEnv(t, { LISTEN_FDS: '2', LISTEN_PID: String(process.pid), LISTEN_FDNAMES: 'web:probes' })
  t.same(inheritedSockets(), [{ fd: 3, name: 'web' }, { fd: 4, name: 'probes' }])
  t.equal(process.env.LISTEN_FDS, undefined, 'removed, as sd_listen_fds() does')
  t.same(systemdListen({ name: 'probes' }), { fd: 4, host: '0.0.0.0', backlog: somaxconn() })
  t.same(systemdListen({ name: 'web', backlog: 128 }), { fd: 3, host: '0.0.0.0', backlog: 128 })
  t.throws(() => systemdListen(), { code: 'FST_LIFECYCLE_SYSTEMD_SOCKET', message: /2 sockets were passed in \(names: web, probes\): say which with systemdListen\(\{ name \}\)/ })
  t.throws(() => systemdListen({ name: 'admin' }), { code: 'FST_LIFECYCLE_SYSTEMD_SOCKET', message: /no socket named 'admin'/ })
  t.throws(() => systemdListen({ name: 'web', backlog: 0 }), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT' })
  t.throws(() => systemdListen(null as unknown as object), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT' })

  forgetInheritedSockets()
  withEnv(t, { LISTEN_FDS: '1', LISTEN_PID: undefined, LISTEN_FDNAMES: undefined })
  t.same(systemdListen(), { fd: 3, host: '0.0.0.0', backlog: somaxconn() }, 'one socket, unnamed')
  t.same(inheritedSockets(), [{ fd: 3, name: 'unknown' }])

  forgetInheritedSockets()
  withEnv(t, { LISTEN_FDS: '1', LISTEN_PID: '1' })
  t.equal(systemdListen(), undefined, 'sockets meant for another process are not taken')
})

test('somaxconn(): the kernel cap, or 4096 when it cannot be read', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-somaxconn-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'n'), '1024\n')
  writeFileSync(join(dir, 'bad'), 'many\n')
  t.equal(somaxconn(join(dir, 'n')), 1024)
  t.equal(somaxconn(join(dir, 'bad')), 4096)
  t.equal(somaxconn(join(dir, 'missing')), 4096)
})
