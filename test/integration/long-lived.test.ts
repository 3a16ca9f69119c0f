import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { request as httpRequest } from 'node:http'
import { connect } from 'node:http2'
import type { Socket } from 'node:net'
import { test } from 'tap'
import { request } from 'undici'
import WebSocket from 'ws'
import { startFixture } from '../helpers/fixture.js'

/** An SSE client that reads until the server ends the stream. */
async function sseClient (origin: string) {
  const res = await request(`${origin}/sse`)
  let text = ''
  const ended = (async () => {
    for await (const chunk of res.body) text += String(chunk)
    return text
  })()
  return { status: res.statusCode, ended, text: () => text }
}

test('SIGTERM with 20 WebSockets, 20 SSE streams and HTTP requests in flight: every client told, everything answered, exit 0', async (t) => {
  const proc = await startFixture(t, 'long-lived-service.js', { DRAIN_TIMEOUT_MS: '8000' })
  const wsOrigin = proc.address.replace('http', 'ws')
  const sockets = Array.from({ length: 20 }, () => new WebSocket(`${wsOrigin}/ws`))
  const closes = sockets.map((ws) => {
    const messages: string[] = []
    ws.on('message', (data) => messages.push(String(data)))
    return once(ws, 'close').then(([code, reason]) => ({ code: code as number, reason: String(reason), messages }))
  })
  await Promise.all(sockets.map((ws) => once(ws, 'open')))
  const streams = await Promise.all(Array.from({ length: 20 }, () => sseClient(proc.address)))
  let open = 0
  await proc.waitForLog((l) => (l.msg === 'fixture: websocket open' || l.msg === 'fixture: sse open') && ++open === 40)
  const slow = Array.from({ length: 5 }, () => request(`${proc.address}/slow?ms=600`).then(async (res) => { await res.body.dump(); return res.statusCode }))
  let entered = 0
  await proc.waitForLog((l) => l.msg === 'slow route entered' && ++entered === 5)

  proc.kill('SIGTERM')
  const results = await Promise.all(closes)
  t.same(results.map((r) => r.code), Array(20).fill(1001), 'every WebSocket client got 1001 Going Away')
  t.same(new Set(results.map((r) => r.reason)), new Set(['server shutting down']))
  t.ok(results.every((r) => r.messages.length > 0), 'they had been receiving the sequence')
  const texts = await Promise.all(streams.map((s) => s.ended))
  t.same(streams.map((s) => s.status), Array(20).fill(200))
  t.ok(texts.every((text) => text.endsWith('event: shutdown\ndata: server shutting down\nretry: 1000\n\n')), 'every SSE client got the final event with a retry hint')
  t.ok(texts.every((text) => text.startsWith('id: 1\ndata: 1\n\n')), 'after the events of the stream itself')
  t.same(await Promise.all(slow), Array(5).fill(200), 'HTTP requests in flight were answered')
  t.equal(await proc.exitCode, 0)
  const drain = proc.report()!.stages.drain
  t.same(drain!.longLived, { notified: 40, closed: 40, cut: 0 })
  t.equal(drain!.deadlineReached, false, 'done before the drain deadline, once the clients had gone')
  t.ok(drain!.durationMs < 8000 / 2, 'well before it')
})

test('a WebSocket client that ignores the close frame is cut at the deadline; exit 1; the report counts it', async (t) => {
  const proc = await startFixture(t, 'long-lived-service.js', { DRAIN_TIMEOUT_MS: '400' })
  const polite = new WebSocket(`${proc.address.replace('http', 'ws')}/ws`)
  const politeClosed = once(polite, 'close')
  await once(polite, 'open')
  // A raw upgrade that reads frames and never answers them, as a stuck client would.
  const upgrade = httpRequest(`${proc.address}/ws`, {
    headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') }
  })
  upgrade.end()
  const [, socket] = await once(upgrade, 'upgrade') as [unknown, Socket]
  t.teardown(() => socket.destroy())
  socket.on('data', () => {})
  const socketClosed = once(socket, 'close')
  let open = 0
  await proc.waitForLog((l) => l.msg === 'fixture: websocket open' && ++open === 2)
  proc.kill('SIGTERM')
  t.equal((await politeClosed)[0], 1001)
  t.equal(await proc.exitCode, 1)
  await socketClosed
  const report = proc.report()!
  t.same(report.stages.drain!.longLived, { notified: 2, closed: 1, cut: 1 })
  t.same(report.forced, ['drain: 1 long-lived connection(s) cut at the 400ms deadline'])
})

test('notifyAt closing: long-lived connections are told at the end of the pre-stop delay, not at the signal', async (t) => {
  const proc = await startFixture(t, 'long-lived-service.js', { NOTIFY_AT: 'closing', PRE_STOP_DELAY_MS: '300' })
  const ws = new WebSocket(`${proc.address.replace('http', 'ws')}/ws`)
  const closed = once(ws, 'close')
  await once(ws, 'open')
  proc.kill('SIGTERM')
  await proc.waitForLog('pre-stop: still serving while load balancers stop routing here')
  const [code] = await closed
  const closedAt = Date.now()
  t.equal(code, 1001)
  const over = await proc.waitForLog('pre-stop: delay over, closing the listener')
  t.ok(closedAt >= (over.time as number), 'the close frame came once the delay was over')
  t.equal(await proc.exitCode, 0)
  t.same(proc.report()!.stages.drain!.longLived, { notified: 1, closed: 1, cut: 0 })
})

test('HTTP/2: streams in flight at SIGTERM complete, the session gets GOAWAY, new streams are refused, the process exits', async (t) => {
  const proc = await startFixture(t, 'long-lived-service.js', { HTTP2: '1', PRE_STOP_DELAY_MS: '2000' })
  const session = connect(proc.address)
  t.teardown(() => session.destroy())
  session.on('error', () => {})
  const goaway = once(session, 'goaway')
  const inFlight = Array.from({ length: 3 }, () => {
    const stream = session.request({ ':path': '/slow?ms=500' })
    let body = ''
    stream.setEncoding('utf8')
    stream.on('data', (chunk: string) => { body += chunk })
    return Promise.all([once(stream, 'response'), once(stream, 'end')]).then(([[headers]]) => ({ status: headers[':status'] as number, body }))
  })
  let entered = 0
  await proc.waitForLog((l) => l.msg === 'slow route entered' && ++entered === 3)
  proc.kill('SIGTERM')
  const [code] = await goaway
  t.equal(code, 0, 'GOAWAY with NO_ERROR, while still in the pre-stop delay')
  t.notOk(proc.phases().includes('closing'), 'before the listener closed')
  // Node 20 throws at once, Node 24 fails the new stream: either way it is refused.
  const refused = await new Promise<string>((resolve) => {
    try {
      const stream = session.request({ ':path': '/' })
      stream.on('error', (err: NodeJS.ErrnoException) => resolve(err.code as string))
      stream.on('response', () => resolve('answered'))
    } catch (err) {
      resolve((err as NodeJS.ErrnoException).code as string)
    }
  })
  t.equal(refused, 'ERR_HTTP2_GOAWAY_SESSION', 'new streams are refused on that session')
  const answers = await Promise.all(inFlight)
  t.same(answers, Array(3).fill({ status: 200, body: '{"slow":true}' }), 'the streams in flight completed')
  t.equal(await proc.exitCode, 0)
})
