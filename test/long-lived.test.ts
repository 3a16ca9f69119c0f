import { once } from 'node:events'
import { connect } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { test } from 'tap'
import Fastify from 'fastify'
import { request } from 'undici'
import lifecycle, { drain } from '../plugins/index.js'
import { originOf } from './helpers/app.js'

test('an SSE handler that keeps writing after its stream was ended does not crash the process', async (t) => {
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, drain: { sseRetry: 250 } })
  let raw!: import('node:http').ServerResponse
  let streaming!: () => void
  const started = new Promise<void>((resolve) => { streaming = resolve })
  let wroteAfterEnd!: (code: string) => void
  const afterEnd = new Promise<string>((resolve) => { wroteAfterEnd = resolve })
  app.get('/sse', (_request, reply) => {
    reply.hijack()
    raw = reply.raw
    raw.writeHead(200, { 'content-type': 'text/event-stream' })
    streaming()
    // A careless handler: its timer never stops.
    const timer = setInterval(() => raw.write('data: tick\n\n', (err) => { if (err) { clearInterval(timer); wroteAfterEnd((err as NodeJS.ErrnoException).code as string) } }), 5)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await request(`${originOf(app)}/sse`)
  const body = res.body.text()
  await started
  const report = await app.lifecycle.shutdown()
  t.match(await body, /event: shutdown\ndata: server shutting down\nretry: 250\n\n$/)
  t.equal(await afterEnd, 'ERR_STREAM_WRITE_AFTER_END', 'the late write failed quietly')
  t.same(report.stages.drain!.longLived, { notified: 1, closed: 1, cut: 0 })
  t.throws(() => raw.emit('error', Object.assign(new Error('broken pipe'), { code: 'EPIPE' })), { code: 'EPIPE' }, 'any other error is still thrown')
})

test('HTTP/2: SSE streams get the final event too', async (t) => {
  const app = Fastify({ http2: true })
  await app.register(drain, { timeout: 2000 })
  app.get('/sse', (_request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    reply.raw.write('data: hello\n\n')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const session = connect(originOf(app))
  t.teardown(() => session.destroy())
  const stream = session.request({ ':path': '/sse' })
  stream.setEncoding('utf8')
  let body = ''
  stream.on('data', (chunk: string) => { body += chunk })
  await once(stream, 'data')
  const streamClosed = once(stream, 'close')
  const report = await app.lifecycle.shutdown()
  await streamClosed
  t.match(body, /^data: hello\n\nevent: shutdown\n/)
  t.same(report.stages.drain!.longLived, { notified: 1, closed: 1, cut: 0 })
})

test('a connection registered with longLived(): told at the notice, also when it comes late, cut at the deadline', async (t) => {
  const app = Fastify()
  await app.register(drain, { timeout: 100, abortBefore: 0 })
  const events: string[] = []
  app.lifecycle.longLived({ kind: 'tunnel', notify: () => { events.push('tunnel notified') }, destroy: () => { events.push('tunnel destroyed') } })
  const polite = app.lifecycle.longLived({ kind: 'feed', notify: () => { events.push('feed notified'); polite.done() }, destroy: () => { events.push('feed destroyed') } })
  app.lifecycle.longLived({ kind: 'broken', notify: () => { throw new Error('peer gone') }, destroy: () => { events.push('broken destroyed') } })
  await app.ready()
  const draining = once(app.lifecycle, 'draining')
  const shutdown = app.lifecycle.shutdown()
  await draining
  app.lifecycle.longLived({ kind: 'late', notify: () => { events.push('late notified') }, destroy: () => { events.push('late destroyed') } })
  const report = await shutdown
  t.same(events, ['tunnel notified', 'feed notified', 'late notified', 'tunnel destroyed', 'broken destroyed', 'late destroyed'])
  t.same(report.stages.drain!.longLived, { notified: 4, closed: 1, cut: 3 })
  t.same(report.forced, ['drain: 3 long-lived connection(s) cut at the 100ms deadline'])
  t.same(app.lifecycle.longLivedConnections.size, 0)
})

test('longLived() checks what it is given', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(drain)
  for (const bad of [null, {}, { kind: 'x', notify: () => {} }, { kind: 1, notify: () => {}, destroy: () => {} }]) {
    t.throws(() => app.lifecycle.longLived(bad as never), { code: 'FST_LIFECYCLE_INVALID_ARGUMENT', message: /^lifecycle\.longLived\(\): connection must be \{ kind: string, notify\(\): void, destroy\(\): void \}/ })
  }
})

test('deadlineSignal is aborted ahead of the deadline, so long work can answer instead of being cut', async (t) => {
  const app = Fastify()
  await app.register(drain, { timeout: 600, abortBefore: 400 })
  let entered!: () => void
  const inRoute = new Promise<void>((resolve) => { entered = resolve })
  app.get('/report', async () => {
    entered()
    await once(app.lifecycle.deadlineSignal, 'abort')
    return { partial: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const pending = request(`${originOf(app)}/report`)
  await inRoute
  t.equal(app.lifecycle.deadlineSignal.aborted, false)
  const report = await app.lifecycle.shutdown()
  const res = await pending
  t.equal(res.statusCode, 200)
  t.same(await res.body.json(), { partial: true })
  t.equal(report.stages.drain!.cut, 0, 'answered before the cut')
  t.equal(report.stages.drain!.deadlineReached, false, 'the answer ended the drain before its deadline')
  t.equal(report.clean, true)
})

test('drain options for long-lived connections are validated', async (t) => {
  for (const [options, message] of [
    [{ notifyAt: 'signal' }, /'notifyAt' must be 'draining' or 'closing', received 'signal'/],
    [{ timeout: 500, abortBefore: 600 }, /'abortBefore' must be at most timeout \(500ms\), received 600/],
    [{ sseRetry: -1 }, /'sseRetry' must be a non-negative integer/]
  ] as const) {
    const app = Fastify()
    app.register(drain, options as object)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_LIFECYCLE_INVALID_OPTION', message })
  }
})

test('an SSE client that stops reading is cut at the deadline: even the final event cannot reach it', async (t) => {
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, drain: { timeout: 200 } })
  let streaming!: () => void
  const started = new Promise<void>((resolve) => { streaming = resolve })
  app.get('/sse', (_request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    // More than the socket buffers can hold for a client that reads nothing.
    reply.raw.write(`data: ${'x'.repeat(8 * 1024 * 1024)}\n\n`)
    streaming()
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const { connect: tcp } = await import('node:net')
  const socket = tcp(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  socket.on('error', () => {})
  socket.write('GET /sse HTTP/1.1\r\nhost: localhost\r\n\r\n')
  socket.pause()
  await started
  const report = await app.lifecycle.shutdown()
  t.same(report.stages.drain!.longLived, { notified: 1, closed: 0, cut: 1 })
  t.equal(report.stages.drain!.cut, 0, 'counted once, as a long-lived connection, not also as a request')
  t.same(report.forced, ['drain: 1 long-lived connection(s) cut at the 200ms deadline'])
})

test('an SSE stream that starts during the drain (an EventSource reconnecting at once) gets the final event too, not the deadline', async (t) => {
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 }, drain: { timeout: 3000, sseRetry: 250 } })
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  app.get('/held', async () => { await held; return 'done' })
  app.get('/', async () => 'ok')
  app.get('/sse', (_request, reply) => {
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream' })
    const timer = setInterval(() => reply.raw.write('data: tick\n\n'), 20)
    reply.raw.once('close', () => clearInterval(timer))
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  const { connect: tcp } = await import('node:net')
  // A request in flight keeps the drain open; a keep-alive socket will ask for a stream during it.
  const holder = tcp(port, '127.0.0.1')
  t.teardown(() => holder.destroy())
  holder.write('GET /held HTTP/1.1\r\nhost: localhost\r\n\r\n')
  const socket = tcp(port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { received += chunk })
  socket.write('GET / HTTP/1.1\r\nhost: localhost\r\n\r\n')
  await until(() => received.includes('ok'))
  const closing = once(app.lifecycle, 'closing')
  const report = app.lifecycle.shutdown()
  await closing
  socket.write('GET /sse HTTP/1.1\r\nhost: localhost\r\naccept: text/event-stream\r\n\r\n')
  await until(() => received.includes('event: shutdown'))
  t.match(received, /retry: 250/, 'the stream ended with the retry hint')
  release()
  const { stages, forced } = await report
  t.same(stages.drain!.longLived, { notified: 1, closed: 1, cut: 0 })
  t.same(forced, [], 'nothing cut at the deadline')
})

/** Resolves once `test` holds, checked on each turn of the event loop for at most 5 s. */
async function until (test: () => boolean): Promise<void> {
  const endAt = performance.now() + 5000
  while (!test()) {
    if (performance.now() > endAt) throw new Error('condition not met within 5 s')
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}
