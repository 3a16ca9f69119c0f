import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:http'
import { readFileSync } from 'node:fs'
import { connect as connectTcp, Server as NetServer, type Socket } from 'node:net'
import { connect as connectTls } from 'node:tls'
import { connect } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { test } from 'tap'
import Fastify from 'fastify'
import { Client, request } from 'undici'
import drain from '../plugins/drain.js'
import { gate, originOf as origin } from './helpers/app.js'

test('from draining on, every HTTP/1 response asks the client to close, in-flight ones included', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(drain)
  const release = gate()
  const entered = gate()
  app.get('/held', async () => { entered.open(); await release.opened; return 'held' })
  app.get('/async', async () => 'async')
  app.get('/sync', (_request, reply) => { reply.send('sync') })
  const preStopGate = gate()
  app.lifecycle.during('draining', () => preStopGate.opened)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = new Client(origin(app), { keepAliveTimeout: 60_000 })
  t.teardown(() => client.destroy())

  const before = await client.request({ method: 'GET', path: '/async' })
  await before.body.dump()
  t.equal(before.headers.connection, 'keep-alive', 'keep-alive while ready')

  const held = client.request({ method: 'GET', path: '/held' })
  await entered.opened
  const shutdown = app.lifecycle.shutdown()
  t.equal(app.lifecycle.phase, 'draining')

  const fresh = new Client(origin(app))
  t.teardown(() => fresh.destroy())
  for (const path of ['/async', '/sync', '/missing']) {
    const res = await fresh.request({ method: 'GET', path })
    await res.body.dump()
    t.equal(res.headers.connection, 'close', `${path} answered during draining with Connection: close`)
  }
  release.open()
  const heldRes = await held
  await heldRes.body.dump()
  t.equal(heldRes.statusCode, 200)
  t.equal(heldRes.headers.connection, 'close', 'the request in flight at draining too')

  preStopGate.open()
  const report = await shutdown
  t.match(report.stages.drain, { inFlightAtClose: 0, cut: 0, timeout: 5000, deadlineReached: false })
})

test('a keep-alive request in flight when close() starts does not hold close() until keepAliveTimeout', async (t) => {
  const app = Fastify({ keepAliveTimeout: 600_000 })
  await app.register(drain)
  const release = gate()
  const entered = gate()
  app.get('/held', async () => { entered.open(); await release.opened; return 'held' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = new Client(origin(app), { keepAliveTimeout: 600_000 })
  t.teardown(() => client.destroy())
  const held = client.request({ method: 'GET', path: '/held' })
  await entered.opened
  const closing = once(app.lifecycle, 'closing')
  const closed = app.close()
  await closing
  release.open()
  const res = await held
  await res.body.dump()
  t.equal(res.statusCode, 200, 'the request was answered')
  t.equal(res.headers.connection, 'close', 'with Connection: close, so the socket ends with it')
  await closed
  t.equal(app.lifecycle.report?.clean, true)
  t.equal(app.lifecycle.report?.stages.drain?.deadlineReached, false, 'close() finished before the drain deadline: no socket was left holding it')
  t.match(app.lifecycle.report?.stages.drain, { inFlightAtClose: 1, cut: 0 })
})

test('at the deadline, requests still running are cut and counted', async (t) => {
  const app = Fastify()
  await app.register(drain, { timeout: 100 })
  const entered = gate()
  app.get('/forever', (_request, _reply) => { entered.open() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = new Client(origin(app))
  t.teardown(() => client.destroy())
  const pending = client.request({ method: 'GET', path: '/forever' }).catch((err: Error & { code: string }) => err.code)
  await entered.opened
  t.equal(app.lifecycle.inFlight, 1)
  await app.close()
  t.equal(await pending, 'UND_ERR_SOCKET', 'the client saw the connection end')
  const report = app.lifecycle.report!
  t.match(report.stages.drain, { inFlightAtClose: 1, cut: 1, timeout: 100, deadlineReached: true })
  t.same(report.forced, ['drain: 1 request(s) cut at the 100ms deadline'])
  t.equal(report.exitCode, 1)
  t.equal(report.phases.at(-1)?.inFlight, 0, 'a cut request no longer counts as in flight')
})

test('a drain with nothing in flight takes no time, listening or not', async (t) => {
  const app = Fastify()
  await app.register(drain, { timeout: 9000 })
  app.get('/', async () => 'ok')
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  await app.close()
  t.match(app.lifecycle.report?.stages.drain, { inFlightAtClose: 0, cut: 0, deadlineReached: false })
  t.equal(app.lifecycle.report?.clean, true)
})

test('HTTP/2: idle sessions get GOAWAY and let the drain end at once', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(drain, { timeout: 9000 })
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const session = connect(origin(app))
  t.teardown(() => session.destroy())
  const ok = session.request({ ':path': '/' })
  const [headers] = await once(ok, 'response')
  t.equal(headers[':status'], 200)
  ok.resume()
  await once(ok, 'end')
  const goaway = once(session, 'goaway')
  const report = await app.lifecycle.shutdown()
  await goaway
  t.match(report.stages.drain, { cut: 0 })
  t.equal(report.clean, true)
  t.equal(report.stages.drain!.deadlineReached, false, 'the open session did not hold the drain until its deadline')
})

test('HTTP/2: a connection opened during the pre-stop delay is served, then its session gets GOAWAY', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(drain, { timeout: 9000 })
  // Stands in for the pre-stop delay: the service is draining and still serving.
  const delayOver = gate()
  app.lifecycle.during('draining', () => delayOver.opened)
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const draining = once(app.lifecycle, 'draining')
  const shutdown = app.lifecycle.shutdown()
  await draining
  const session = connect(origin(app))
  t.teardown(() => session.destroy())
  const goaway = once(session, 'goaway')
  const late = session.request({ ':path': '/' })
  const [headers] = await once(late, 'response')
  t.equal(headers[':status'], 200, 'the request on the new connection was answered')
  late.resume()
  const [code] = await goaway
  t.equal(code, 0, 'GOAWAY with NO_ERROR, before the delay is over')
  delayOver.open()
  const report = await shutdown
  t.equal(report.clean, true)
  t.match(report.stages.drain, { cut: 0, deadlineReached: false })
})

test('HTTP/2: streams still running at the deadline are cut with their session', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(drain, { timeout: 100 })
  const entered = gate()
  app.get('/forever', (_request, _reply) => { entered.open() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const session = connect(origin(app))
  t.teardown(() => session.destroy())
  session.on('error', () => {})
  const forever = session.request({ ':path': '/forever' })
  forever.on('error', () => {})
  let answered = false
  forever.on('response', () => { answered = true })
  await entered.opened
  const sessionClosed = once(session, 'close')
  const report = await app.lifecycle.shutdown()
  await sessionClosed
  t.equal(answered, false, 'the stream ended without an answer')
  t.match(report.stages.drain, { inFlightAtClose: 1, cut: 1 })
  t.same(report.forced, ['drain: 1 request(s) cut at the 100ms deadline'])
})

test('a large response ended just before the listener closes reaches a slow client whole', async (t) => {
  const size = 8 * 1024 * 1024
  const app = Fastify()
  await app.register(drain, { timeout: 5000 })
  const sent = gate()
  app.get('/download', (_request, reply) => {
    reply.header('content-type', 'application/octet-stream').send(Buffer.alloc(size, 120))
    sent.open()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const socket = connectTcp(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  socket.write('GET /download HTTP/1.1\r\nhost: localhost\r\n\r\n')
  socket.pause()
  await sent.opened
  // The response is ended and mostly still in buffers: a plain server.close() would cut it.
  const closing = once(app.lifecycle, 'closing')
  const shutdown = app.lifecycle.shutdown()
  await closing
  let received = 0
  socket.on('data', (chunk: Buffer) => { received += chunk.length })
  socket.resume()
  await once(socket, 'close')
  const report = await shutdown
  t.ok(received > size, `all ${size} bytes of the body arrived, headers included (${received})`)
  t.equal(report.clean, true)
  t.match(report.stages.drain, { cut: 0, deadlineReached: false })
})

test('HTTPS: in-flight requests finish with Connection: close and idle TLS sockets are closed', async (t) => {
  const tls = new URL('./fixtures/tls/', import.meta.url)
  const app = Fastify({ https: { key: readFileSync(new URL('key.pem', tls)), cert: readFileSync(new URL('cert.pem', tls)) } })
  await app.register(drain)
  const release = gate()
  const entered = gate()
  app.get('/held', async () => { entered.open(); await release.opened; return 'held' })
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const origin = `https://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  const idle = new Client(origin, { connect: { rejectUnauthorized: false }, keepAliveTimeout: 60_000 })
  const busy = new Client(origin, { connect: { rejectUnauthorized: false }, keepAliveTimeout: 60_000 })
  t.teardown(() => Promise.all([idle.destroy(), busy.destroy()]))
  const warm = await idle.request({ method: 'GET', path: '/' })
  await warm.body.dump()
  t.equal(warm.headers.connection, 'keep-alive', 'an idle keep-alive TLS socket')
  const held = busy.request({ method: 'GET', path: '/held' })
  await entered.opened
  const closing = once(app.lifecycle, 'closing')
  const shutdown = app.lifecycle.shutdown()
  await closing
  release.open()
  const res = await held
  t.equal(await res.body.text(), 'held')
  t.equal(res.headers.connection, 'close')
  const report = await shutdown
  t.equal(report.clean, true)
  t.equal(report.stages.drain!.deadlineReached, false, 'no socket held the drain until its deadline')
  t.match(report.stages.drain, { inFlightAtClose: 1, cut: 0 })
})

test('a keep-alive client half-way through sending its next request when the listener closes gets its answer', async (t) => {
  // Over TLS the server's socket emits 'data' in JavaScript (a plain TCP socket feeds Node's
  // HTTP parser directly), which tells the test when the server has read the first half.
  const tls = new URL('./fixtures/tls/', import.meta.url)
  const app = Fastify({ https: { key: readFileSync(new URL('key.pem', tls)), cert: readFileSync(new URL('cert.pem', tls)) } })
  await app.register(drain)
  app.get('/*', async (request) => request.url)
  let serverSocket!: Socket
  app.server.on('secureConnection', (socket: Socket) => { serverSocket = socket })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = connectTls({ port: (app.server.address() as AddressInfo).port, host: '127.0.0.1', rejectUnauthorized: false })
  t.teardown(() => client.destroy())
  await once(client, 'secureConnect')
  let received = ''
  client.on('data', (chunk: Buffer) => { received += chunk })
  client.write('GET /first HTTP/1.1\r\nhost: localhost\r\n\r\n')
  while (!received.endsWith('/first')) await once(client, 'data')
  t.match(received, /connection: keep-alive/i, 'the first response keeps the connection')
  received = ''
  const firstHalfRead = once(serverSocket, 'data')
  client.write('GET /second HTTP/1.1\r\nhost: loc')
  await firstHalfRead
  const closing = once(app.lifecycle, 'closing')
  const shutdown = app.lifecycle.shutdown()
  await closing
  // The listener is closed and idle sockets are gone: this one is not idle, its parser is
  // in the middle of a request.
  client.write('alhost\r\n\r\n')
  await once(client, 'close')
  t.match(received, /^HTTP\/1\.1 200 OK\r\n/, 'the second request was answered')
  t.match(received, /connection: close/i, 'with Connection: close')
  t.ok(received.endsWith('/second'), 'whole')
  const report = await shutdown
  t.equal(report.clean, true)
  t.match(report.stages.drain, { cut: 0, deadlineReached: false })
})

test('a request still arriving at the deadline (headers sent slowly) is cut and counted; a connection that sent nothing is not', async (t) => {
  const app = Fastify()
  await app.register(drain, { timeout: 150 })
  app.get('/*', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const slow = connectTcp(port, '127.0.0.1')
  const silent = connectTcp(port, '127.0.0.1')
  const keepAlive = connectTcp(port, '127.0.0.1')
  t.teardown(() => { slow.destroy(); silent.destroy(); keepAlive.destroy() })
  await Promise.all([once(slow, 'connect'), once(silent, 'connect'), once(keepAlive, 'connect')])
  // A finished request on a keep-alive connection, then half of the next one's headers.
  keepAlive.write('GET /first HTTP/1.1\r\nhost: localhost\r\n\r\n')
  await once(keepAlive, 'data')
  keepAlive.write('GET /second HTTP/1.1\r\nhost: loc')
  slow.write('GET /slowloris HTTP/1.1\r\nhost: localhost\r\nx-a: 1\r\n')
  // The server has read those bytes once a complete request sent after them is answered.
  const probe = new Client(origin(app))
  t.teardown(() => probe.destroy())
  await (await probe.request({ method: 'GET', path: '/sync' })).body.dump()
  await probe.close()
  const report = await app.lifecycle.shutdown()
  t.match(report.stages.drain, { deadlineReached: true, cut: 2, cutPartial: 2 }, 'the two requests still arriving were cut and counted')
  t.same(report.forced, ['drain: 2 request(s) cut at the 150ms deadline'], 'which makes the shutdown unclean')
  t.equal(report.exitCode, 1)
})

test('with no serving window, an idle keep-alive socket gets a grace: a request sent on it as the listener closes is answered, not reset', async (t) => {
  for (const idleGrace of [300, 0]) {
    const app = Fastify()
    await app.register(drain, { idleGrace })
    app.get('/', async () => 'ok')
    await app.listen({ port: 0, host: '127.0.0.1' })
    const client = new Client(origin(app), { keepAliveTimeout: 60_000 })
    t.teardown(() => client.destroy())
    const warm = await client.request({ method: 'GET', path: '/' })
    await warm.body.dump()
    t.equal(warm.headers.connection, 'keep-alive', 'an idle keep-alive socket')
    const closing = once(app.lifecycle, 'closing')
    const shutdown = app.lifecycle.shutdown()
    await closing
    // The listener is closing now: the client sends its next request on the socket it has.
    const next = await client.request({ method: 'GET', path: '/' }).then(
      async (res) => { await res.body.dump(); return `${res.statusCode} ${String(res.headers.connection)}` },
      (err: { code: string }) => err.code
    )
    const report = await shutdown
    if (idleGrace > 0) {
      t.equal(next, '200 close', 'answered, with Connection: close')
      t.match(report.stages.drain, { cut: 0, deadlineReached: false })
      const grace = report.stages.drain!.idleGraceMs
      t.ok(grace > 0 && grace <= 300, `the grace was the rest of the 300ms since the signal (${grace}ms)`)
    } else {
      t.match(next, /UND_ERR_SOCKET|ECONNRESET/, 'the control: without the grace, the request meets a socket closed under it')
    }
  }
})

test('after a serving window at least as long as idleGrace, idle sockets are closed at once', async (t) => {
  const app = Fastify()
  // A grace of 1 ms: the serving window below (a whole request over HTTP) lasts longer.
  await app.register(drain, { idleGrace: 1 })
  const window = gate()
  app.lifecycle.during('draining', () => window.opened)
  app.get('/', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = new Client(origin(app), { keepAliveTimeout: 60_000 })
  t.teardown(() => client.destroy())
  await (await client.request({ method: 'GET', path: '/' })).body.dump()
  const shutdown = app.lifecycle.shutdown()
  // The serving window: a request answered, with Connection: close, after the signal.
  const during = await request(`${origin(app)}/`)
  await during.body.dump()
  t.equal(during.headers.connection, 'close')
  window.open()
  const report = await shutdown
  t.match(report.stages.drain, { idleGraceMs: 0, deadlineReached: false })
})

/**
 * `count` clients, in a process of their own, each connecting and sending a request at once;
 * resolves with what became of them. `connected` resolves once every connect() has been issued.
 */
function queuedClients (port: number, count: number): { issued: Promise<void>, outcomes: Promise<Record<string, number>> } {
  const child = spawn(process.execPath, ['-e', `
    const net = require('node:net')
    const outcomes = {}
    let done = 0
    for (let i = 0; i < ${count}; i++) {
      const socket = net.connect(${port}, '127.0.0.1', () => socket.write('GET / HTTP/1.1\\r\\nhost: x\\r\\n\\r\\n'))
      let data = ''
      socket.on('data', (chunk) => { data += chunk })
      socket.on('error', (err) => { outcomes[err.code] = (outcomes[err.code] || 0) + 1 })
      socket.on('close', () => {
        if (data.startsWith('HTTP/1.1 200')) outcomes.answered = (outcomes.answered || 0) + 1
        if (++done === ${count}) process.stdout.write(JSON.stringify(outcomes))
      })
    }
    process.stderr.write('issued\\n')
  `], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => { out += chunk })
  const issued = once(child.stderr, 'data').then(() => {})
  const outcomes = once(child, 'exit').then(() => JSON.parse(out) as Record<string, number>)
  return { issued, outcomes }
}

/** Blocks the event loop while the clients connect and send: they wait in the kernel's queue. */
async function blockWhile (clients: { issued: Promise<void> }): Promise<void> {
  await clients.issued
  const end = performance.now() + 300
  while (performance.now() < end) { /* the event loop is blocked, as by a long synchronous task */ }
}

test('connections queued in the kernel when the listener is to close are accepted and answered, not reset (3 rounds, a just-blocked event loop)', async (t) => {
  // The control: a plain server closed the same way loses them, so the harness sees resets.
  const bare = createServer((_request, response) => { response.end('ok') })
  bare.listen(0, '127.0.0.1')
  await once(bare, 'listening')
  const control = queuedClients((bare.address() as AddressInfo).port, 20)
  await blockWhile(control)
  NetServer.prototype.close.call(bare)
  const lost = await control.outcomes
  t.ok((lost.ECONNRESET ?? 0) > 0, `control: a plain close resets queued connections (${JSON.stringify(lost)})`)

  for (let round = 1; round <= 3; round++) {
    const app = Fastify()
    await app.register(drain, { idleGrace: 0 })
    app.get('/', async () => 'ok')
    await app.listen({ port: 0, host: '127.0.0.1' })
    const clients = queuedClients((app.server.address() as AddressInfo).port, 20)
    await blockWhile(clients)
    // The shutdown starts the moment the loop is free again, with every client still queued.
    const report = await app.lifecycle.shutdown()
    const outcomes = await clients.outcomes
    t.same(outcomes, { answered: 20 }, `round ${round}: all 20 queued connections were answered`)
    t.match(report.stages.drain, { cut: 0, deadlineReached: false })
  }
})

test('a zero drain timeout closes the listener without turning the event loop for queued connections', async (t) => {
  const app = Fastify()
  await app.register(drain, { timeout: 0 })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const report = await app.lifecycle.shutdown()
  t.equal(app.server.listening, false)
  t.equal(report.stages.drain!.timeout, 0)
})
