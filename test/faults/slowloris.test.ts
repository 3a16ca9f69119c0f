import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

// Slow clients at the signal: connections sending their request headers a byte at a time
// (slowloris), and connections that never send anything. The drain must not wait for them
// past its deadline; it cuts the partly received requests and counts them (they force exit
// code 1, as docs/drain.md says: the service had them in hand), closes the silent connections
// without counting them, and answers every complete request in flight.
test('slowloris at the signal: cut at the drain deadline and counted, silent connections not counted, the rest answered', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '0', DRAIN_TIMEOUT_MS: '1000' })
  const { port } = new URL(proc.address)
  const SLOW = 6
  const SILENT = 4
  const sockets: Socket[] = []
  t.teardown(() => { for (const socket of sockets) socket.destroy() })
  const open = async (): Promise<Socket> => {
    const socket = connect(Number(port), '127.0.0.1')
    sockets.push(socket)
    socket.on('error', () => {})
    await once(socket, 'connect')
    return socket
  }
  const slow = await Promise.all(Array.from({ length: SLOW }, open))
  const silent = await Promise.all(Array.from({ length: SILENT }, open))
  const timers: NodeJS.Timeout[] = []
  t.teardown(() => { for (const timer of timers) clearInterval(timer) })
  for (const socket of slow) {
    socket.write('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ')
    // A byte every 50 ms, at most 400 (20 s): far longer than the drain deadline.
    let sent = 0
    const timer = setInterval(() => { if (++sent > 400 || socket.destroyed) clearInterval(timer); else socket.write('a') }, 50)
    timers.push(timer)
  }
  const inFlight = request(`${proc.address}/slow?ms=300`)
  await proc.waitForLog('slow route entered')

  proc.kill('SIGTERM')
  const answered = await inFlight
  t.equal(answered.statusCode, 200, 'the complete request in flight was answered')
  await answered.body.dump()
  // 'close' only: the server's cut may reach a socket as ECONNRESET first, which once() would
  // take for a failure.
  const closed = await Promise.all([...slow, ...silent].map(async (socket) => {
    if (!socket.destroyed) await new Promise((resolve) => socket.once('close', resolve))
    return true
  }))
  t.equal(closed.length, SLOW + SILENT, 'every slow and silent connection was closed by the server')
  t.equal(await proc.exitCode, 1, 'exit 1: requests the service had in hand were cut')
  const drain = proc.report()!.stages.drain!
  t.equal(drain.deadlineReached, true)
  t.equal(drain.cutPartial, SLOW, 'each partly received request counted')
  t.equal(drain.cut, SLOW, 'and only those: the silent connections are not requests')
})
