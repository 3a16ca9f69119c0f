// Canaries for lib/node-internals.ts: each test pins down a Node (or Fastify) behaviour a
// workaround there depends on. A canary that fails means Node changed: read the comment of the
// workaround it names, and remove or adapt it.
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type Test } from 'tap'
import Fastify from 'fastify'
import { pino } from 'pino'
import { closeAcceptQueue, closeIdleSockets, interceptRequests, isEventStream, listenerFd, logDestination, logsWritten, observeRequests, responseOn } from '../lib/node-internals.js'

const SIZE = 8 * 1024 * 1024

async function listen (server: Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return (server.address() as AddressInfo).port
}

/**
 * A server that ends a large response at once, to a client that does not read: the response
 * is ended while most of it is still in buffers. `after` runs right after res.end().
 */
async function flushingResponse (t: Test, after: (server: Server, socket: Socket) => void): Promise<number> {
  const server: Server = createServer((_request, response) => {
    response.end(Buffer.alloc(SIZE, 120))
    // Once the parser has finished with the request: the socket is "idle" to Node from then on.
    setImmediate(() => after(server, response.socket as Socket))
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = await listen(server)
  const client = connect(port, '127.0.0.1')
  t.teardown(() => client.destroy())
  client.pause()
  // Connection: close, so a socket left alone ends once the response is out.
  client.write('GET / HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n')
  await once(server, 'request')
  let received = 0
  client.on('data', (chunk: Buffer) => { received += chunk.length })
  client.resume()
  await once(client, 'close')
  return received
}

test('canary (workaround 2): closeIdleConnections() truncates an ended response still flushing', async (t) => {
  const received = await flushingResponse(t, (server) => { server.closeIdleConnections() })
  t.ok(received < SIZE, `Node cut the response at ${received} of ${SIZE} bytes; when this fails, Node flushes first and closeIdleSockets() no longer needs to hold sockets back`)
})

test('canary (workaround 2): http.Server#close() truncates it too, which is why the listener is closed with net\'s close', async (t) => {
  const received = await flushingResponse(t, (server) => { server.close() })
  t.ok(received < SIZE, `cut at ${received} of ${SIZE} bytes; when this fails, closeListener() may use server.close()`)
})

test('closeIdleSockets() holds back a socket still flushing, and the response arrives whole', async (t) => {
  let held = false
  const received = await flushingResponse(t, (server, socket) => {
    held = socket.writableLength > 0
    closeIdleSockets(server, [socket])
    t.equal(Object.hasOwn(socket, 'destroy'), false, 'destroy is the prototype\'s again')
  })
  t.ok(held, 'the socket was still flushing when the sweep ran')
  t.ok(received > SIZE, `all ${SIZE} bytes arrived, headers included (${received})`)
})

test('canary (workaround 2b): listen(0) on a listening handle leaves it listening, and accepting', async (t) => {
  const server = createServer((_req, res) => { res.end('ok') })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const handle = (server as unknown as { _handle: { listen?: unknown } })._handle
  t.equal(typeof handle.listen, 'function', 'the TCP handle has the listen(backlog) net.Server calls')
  closeAcceptQueue(server)
  t.equal(server.listening, true)
  const socket = connect((server.address() as AddressInfo).port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  const [accepted] = await Promise.all([once(server, 'connection'), once(socket, 'connect')])
  t.ok(accepted, 'a connection is still accepted once the queue is closed to further ones')
  // A server with no handle of its own (not listening, a cluster worker's stand-in) is left alone.
  closeAcceptQueue(createServer())
  closeAcceptQueue({ _handle: {} } as unknown as Server)
})

test('canary (workaround 7): a listening server\'s handle has the socket\'s fd', async (t) => {
  const server = createServer((_req, res) => { res.end('ok') })
  t.equal(listenerFd(server), undefined, 'none before listening')
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const fd = listenerFd(server)
  t.ok(typeof fd === 'number' && fd > 2, `the socket's descriptor (${fd})`)
  t.equal(listenerFd({ _handle: { fd: -1 } } as unknown as Server), undefined, 'no descriptor (Windows, a round-robin worker)')
})

test('canary (workaround 1): socket._httpMessage is the response in flight, and null once written out', async (t) => {
  let during: ServerResponse | undefined
  let socket!: Socket
  const server = createServer((_request, response) => {
    socket = response.socket as Socket
    during = responseOn(socket)
    t.equal(during, response, 'the response in flight is found on its socket')
    response.end('ok')
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = await listen(server)
  const res = await fetch(`http://127.0.0.1:${port}/`)
  await res.text()
  t.ok(during !== undefined)
  t.equal(responseOn(socket), undefined, 'none once the response was written out')
})

test('canary (workaround 3): getHeader() does not see headers passed to writeHead()', async (t) => {
  const seen: Array<string | number | string[] | undefined> = []
  const server = createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/event-stream' })
    seen.push(response.getHeader('content-type'))
    seen.push(String(isEventStream(request, response)))
    response.end()
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = await listen(server)
  await (await fetch(`http://127.0.0.1:${port}/`)).text()
  t.equal(seen[0], undefined, 'when this fails, getHeader() sees writeHead() headers and isEventStream() no longer needs response._header')
  t.equal(seen[1], 'true', 'isEventStream() finds the content type in the header block sent')
})

test('isEventStream(): the Accept header first, then the content type set, then the header block sent', async (t) => {
  const answers: boolean[] = []
  const server = createServer((request, response) => {
    const before = isEventStream(request, response)
    if (request.url === '/set') response.setHeader('content-type', 'text/event-stream; charset=utf-8')
    if (request.url === '/json') response.setHeader('content-type', 'application/json')
    response.writeHead(200)
    response.flushHeaders()
    answers.push(before, isEventStream(request, response))
    response.end()
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = await listen(server)
  await (await fetch(`http://127.0.0.1:${port}/accept`, { headers: { accept: 'text/event-stream' } })).text()
  await (await fetch(`http://127.0.0.1:${port}/set`)).text()
  await (await fetch(`http://127.0.0.1:${port}/json`)).text()
  await (await fetch(`http://127.0.0.1:${port}/none`)).text()
  t.same(answers, [false, true, false, true, false, false, false, false], 'nothing before the headers are sent; then accept, set, json, none')
})

test('canary (workaround 4): http.server.request.start is published before the request listeners, with its server', async (t) => {
  const order: string[] = []
  const server = createServer((_request, response) => { order.push('listener'); response.end() })
  const other = createServer()
  const stop = observeRequests(server, (_request: IncomingMessage, response: ServerResponse) => {
    order.push(`observed, headers sent: ${response.headersSent}`)
  })
  const stopOther = observeRequests(other, () => { order.push('wrong server') })
  t.teardown(() => { stop(); stopOther(); server.closeAllConnections(); server.close() })
  const port = await listen(server)
  await (await fetch(`http://127.0.0.1:${port}/`)).text()
  stop()
  await (await fetch(`http://127.0.0.1:${port}/`)).text()
  t.same(order, ['observed, headers sent: false', 'listener', 'listener'], 'first, for this server only, until unsubscribed')
})

test('canary (workaround 5): Fastify\'s handler is the server\'s only request listener', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  t.equal(app.server.listenerCount('request'), 1, 'when this fails, requestGate() must find Fastify\'s handler another way')
})

test('interceptRequests(): the interceptor answers what it takes; every other request reaches all the listeners', async (t) => {
  const seen: string[] = []
  const server = createServer((request, response) => { seen.push(`first ${request.url}`); response.end('first') })
  server.on('request', (request: IncomingMessage) => { seen.push(`second ${request.url}`) })
  interceptRequests(server, (request, response) => {
    if (request.url !== '/probe') return false
    response.end('probe')
    return true
  })
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const port = await listen(server)
  t.equal(await (await fetch(`http://127.0.0.1:${port}/probe`)).text(), 'probe')
  t.equal(await (await fetch(`http://127.0.0.1:${port}/other`)).text(), 'first')
  t.same(seen, ['first /other', 'second /other'])
})

test('canary (workaround 6): a pino destination is found, with a write in flight after a line is logged; logsWritten() waits for it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fastify-lifecycle-log-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'app.log')
  const destination = pino.destination({ dest: file, sync: false })
  await once(destination, 'ready')
  const app = Fastify({ loggerInstance: pino(destination) })
  t.teardown(() => app.close())
  const log = app.log.child({ plugin: 'test' })
  t.equal(logDestination(log), destination, 'found from a child logger too; when this fails, pino keeps its destination elsewhere')
  log.info('the last line')
  t.equal((destination as unknown as { _writing: boolean })._writing, true, 'a write is in flight right after logging')
  await logsWritten(log, 5000)
  t.match(readFileSync(file, 'utf8'), /"msg":"the last line"/, 'written out once logsWritten() resolved')
  t.equal(logDestination(Fastify().log), undefined, 'Fastify\'s logger left off has no destination')
  await logsWritten(Fastify().log, 5000)
})
