import { once } from 'node:events'
import { connect, type AddressInfo } from 'node:net'
import { test, type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import websocketPlugin from '@fastify/websocket'
import { Client } from 'undici'
import WebSocket from 'ws'
import lifecycle, { preStop } from '../plugins/index.js'
import { resolvePreStopOptions } from '../plugins/pre-stop.js'
import { captureLogs, originOf } from './helpers/app.js'

/** The suite without signal handlers, listening on 127.0.0.1, with its log lines kept. */
async function service (t: Test, preStopOptions: object, setup?: (app: FastifyInstance) => Promise<void>) {
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  await app.register(lifecycle, { graceful: false, preStop: preStopOptions, drain: { timeout: 2000 } })
  if (setup !== undefined) await setup(app)
  app.get('/', async () => ({ ok: true }))
  app.get('/my-health', async () => ({ ok: true }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, logs, origin: originOf(app) }
}

/**
 * One client sending requests one after another until the pre-stop window is over (the
 * lifecycle enters `closing`), bounded in count. Returns what each request got.
 */
function sendUntilClosing (app: FastifyInstance, origin: string, paths: string[]) {
  const client = new Client(origin)
  const outcomes: Array<{ path: string, status?: number, connection?: string, error?: string }> = []
  const state = { closing: false }
  app.lifecycle.once('closing', () => { state.closing = true })
  const done = (async () => {
    for (let n = 0; n < 20_000 && !state.closing; n++) {
      const path = paths[n % paths.length]
      try {
        const res = await client.request({ method: 'GET', path })
        await res.body.dump()
        outcomes.push({ path, status: res.statusCode, connection: res.headers.connection as string })
      } catch (err) {
        outcomes.push({ path, error: String((err as { code?: string }).code) })
      }
    }
    await client.close()
    return outcomes
  })()
  return done
}

test('adaptive: with no traffic after the signal, the listener closes once the quiet period is over', async (t) => {
  const { app, logs } = await service(t, { quiet: 100 })
  const report = await app.lifecycle.shutdown()
  const stage = report.stages.preStop!
  t.equal(stage.mode, 'adaptive')
  t.equal(stage.endedBy, 'quiet', 'the quiet period ended the window')
  t.equal(stage.requests, 0)
  t.equal(stage.lastRequestMs, undefined, 'no request arrived')
  t.ok(stage.waitedMs >= 99, `the window lasted the quiet period (${stage.waitedMs} ms)`)
  t.match(logs.lines.find((l) => l.msg === 'pre-stop: still serving until traffic stops arriving'), { delay: 0, quiet: 100, maxDelay: 5000 })
  t.match(logs.lines.find((l) => l.msg === 'pre-stop: no traffic for the quiet period, closing the listener'), { endedBy: 'quiet', requests: 0 })
  t.equal(report.clean, true)
})

test('adaptive: the window lasts at least `delay`, however quiet', async (t) => {
  const { app } = await service(t, { delay: 150, quiet: 20 })
  const stage = (await app.lifecycle.shutdown()).stages.preStop!
  t.equal(stage.endedBy, 'quiet')
  t.ok(stage.waitedMs >= 149, `the least time was kept (${stage.waitedMs} ms)`)
})

test('adaptive: a client that keeps sending is served, told to reconnect, and the window ends at maxDelay', async (t) => {
  // A quiet period far longer than the gap between two requests on any machine.
  const { app, logs, origin } = await service(t, { quiet: 1000, maxDelay: 1200 })
  const started = app.lifecycle.shutdown()
  const outcomes = await sendUntilClosing(app, origin, ['/'])
  const report = await started
  const stage = report.stages.preStop!
  t.equal(stage.endedBy, 'maxDelay', 'traffic never stopped: the maximum ended the window')
  t.ok(stage.waitedMs >= 1199, `it ended at the maximum (${stage.waitedMs} ms)`)
  t.ok(stage.requests! > 10, `the requests were counted (${stage.requests})`)
  // The last one may arrive just after the window ended: answered, not counted.
  const answered = outcomes.filter((o) => o.status !== undefined).length
  t.ok(stage.requests === answered || stage.requests === answered - 1, `each request that arrived during the window was counted (${stage.requests} of ${answered} answered)`)
  t.same(outcomes.filter((o) => o.status !== 200), [], 'every request sent during the window was answered')
  t.ok(outcomes.every((o) => o.connection === 'close'), 'each response told the client to reconnect (Connection: close)')
  t.match(logs.lines.find((l) => l.msg === 'pre-stop: traffic still arriving at maxDelay, closing the listener'), { endedBy: 'maxDelay' })
  t.equal(report.clean, true)
})

test('adaptive: probes and ignored paths are not traffic, whatever their rate', async (t) => {
  const { app, origin } = await service(t, { quiet: 300, maxDelay: 4000, ignorePaths: ['/my-health'] })
  const started = app.lifecycle.shutdown()
  const outcomes = await sendUntilClosing(app, origin, ['/readyz', '/livez?verbose', '/my-health?from=lb', '/my-health'])
  const stage = (await started).stages.preStop!
  t.equal(stage.endedBy, 'quiet', 'only probes arrived: the quiet period ended the window')
  t.equal(stage.requests, 0)
  t.ok(outcomes.length > 10, `the probes kept coming (${outcomes.length})`)
  t.ok(outcomes.filter((o) => o.path === '/readyz').every((o) => o.status === 503), 'readiness failed throughout')
})

test("adaptive: a route of the service whose path only starts like a probe's is traffic", async (t) => {
  const { app, origin } = await service(t, { quiet: 1000, maxDelay: 1100 }, async (instance) => {
    // Not the suite's health here: a user's own route at a probe's usual path.
    instance.get('/readyz-own', async () => ({ ok: true }))
  })
  const started = app.lifecycle.shutdown()
  await sendUntilClosing(app, origin, ['/readyz-own'])
  t.equal((await started).stages.preStop!.endedBy, 'maxDelay', "a path that only starts like a probe's is traffic")
})

test('adaptive: a WebSocket handshake is traffic; a server without WebSockets keeps refusing upgrades as before', async (t) => {
  const { app, origin } = await service(t, { quiet: 400, maxDelay: 5000 }, async (instance) => {
    await instance.register(websocketPlugin)
    instance.get('/ws', { websocket: true }, () => {})
  })
  const draining = once(app.lifecycle, 'draining')
  const started = app.lifecycle.shutdown()
  await draining
  const socket = new WebSocket(origin.replace('http', 'ws') + '/ws')
  t.teardown(() => socket.terminate())
  await once(socket, 'open')
  const stage = (await started).stages.preStop!
  t.equal(stage.requests, 1, 'the handshake was counted')
  t.ok(stage.lastRequestMs! >= 0)

  // With no 'upgrade' listener, Node answers an Upgrade request as a plain one: the window
  // must not add a listener that would take such requests and leave them unanswered.
  const plain = Fastify()
  await plain.register(preStop, { quiet: 300 })
  plain.get('/', async () => ({ plain: true }))
  await plain.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => plain.close())
  const plainDraining = once(plain.lifecycle, 'draining')
  const shutdown = plain.lifecycle.shutdown()
  await plainDraining
  // undici refuses to send an Upgrade header: a raw socket does.
  const raw = connect((plain.server.address() as AddressInfo).port, '127.0.0.1')
  t.teardown(() => raw.destroy())
  raw.end('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n')
  let answer = ''
  raw.setEncoding('utf8')
  raw.on('data', (chunk: string) => { answer += chunk })
  await once(raw, 'close')
  t.match(answer, /^HTTP\/1\.1 200 /, 'the Upgrade request was answered as a plain request')
  await shutdown
})

test('adaptive options: defaults, budget and errors at registration', async (t) => {
  t.same(resolvePreStopOptions({}), { delay: 5000, quiet: undefined, maxDelay: 5000, ignorePaths: [] }, 'a fixed 5 s delay by default')
  t.same(resolvePreStopOptions({ quiet: 500 }), { delay: 0, quiet: 500, maxDelay: 5000, ignorePaths: [] }, 'adaptive: no least time, at most the fixed default')
  t.same(resolvePreStopOptions({ quiet: 500, delay: 8000 }), { delay: 8000, quiet: 500, maxDelay: 8000, ignorePaths: [] }, 'the maximum is never below the least time')

  const app = Fastify()
  await app.register(preStop, { quiet: 500, maxDelay: 12_000 })
  t.same(app.lifecycle.budget, { preStop: 12_000 }, 'the maximum counts in the shutdown budget')

  const bad: Array<[object, RegExp]> = [
    [{ quiet: 0 }, /option 'preStop\.quiet' must be a positive integer of ms/],
    [{ maxDelay: 9000 }, /option 'preStop\.maxDelay' must be left out unless preStop\.quiet is set/],
    [{ ignorePaths: ['/x'] }, /option 'preStop\.ignorePaths' must be left out unless preStop\.quiet is set/],
    [{ quiet: 100, delay: 3000, maxDelay: 2000 }, /option 'preStop\.maxDelay' must be at least preStop\.delay \(3000ms\), received 2000/],
    [{ quiet: 6000 }, /option 'preStop\.quiet' must be at most preStop\.maxDelay \(5000ms\), received 6000/],
    [{ quiet: 100, ignorePaths: 'health' }, /option 'preStop\.ignorePaths' must be an array of paths/],
    [{ quiet: 100, ignorePaths: ['/health?x'] }, /option 'preStop\.ignorePaths' must be an array of paths/],
    [{ quiet: 100, ignorePaths: [7] }, /option 'preStop\.ignorePaths' must be an array of paths/]
  ]
  for (const [options, message] of bad) {
    const instance = Fastify()
    await t.rejects(async () => { await instance.register(lifecycle, { graceful: false, preStop: options }) }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message })
  }
})
