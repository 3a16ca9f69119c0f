// SIGTERM on a real child process: the pre-stop delay serves, keep-alive sockets do not hold the exit, the drain deadline cuts and says so.
import { test } from 'tap'
import { Client, request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

test('during the pre-stop delay the service still serves, new connections included, while readiness fails', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '1500' })
  proc.kill('SIGTERM')
  await proc.waitForLog('pre-stop: still serving while load balancers stop routing here')

  // Each request on a connection of its own, opened after the signal.
  const fresh = async (path: string) => {
    const client = new Client(proc.address)
    t.teardown(() => client.destroy())
    const res = await client.request({ method: 'GET', path })
    return { status: res.statusCode, connection: res.headers.connection, body: await res.body.text() }
  }
  const [home, ready, live] = await Promise.all([fresh('/'), fresh('/readyz'), fresh('/livez')])
  t.equal(proc.phases().at(-1), 'draining', 'the answers came during the delay, before the listener closed')
  t.equal(home.status, 200, 'a normal route answers 200')
  t.equal(home.connection, 'close', 'and asks the client to reconnect elsewhere')
  t.equal(ready.status, 503, 'readiness fails')
  t.match(ready.body, /\[-\]lifecycle failed: draining/, 'and says why')
  t.equal(live.status, 200, 'liveness still passes')

  t.equal(await proc.exitCode, 0)
  t.same(proc.phases(), ['ready', 'draining', 'closing', 'closed'])
  const report = proc.report()!
  t.ok(report.stages.preStop!.waitedMs >= 1500, 'the whole delay was served')
})

test('a keep-alive response whose headers went out before the signal does not hold the process open', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '0', KEEP_ALIVE_TIMEOUT_MS: '60000' })
  const client = new Client(proc.address, { keepAliveTimeout: 60_000 })
  t.teardown(() => client.destroy())
  const res = await client.request({ method: 'GET', path: '/stream?ms=300' })
  await proc.waitForLog('stream route entered')
  t.equal(res.headers.connection, 'keep-alive', 'headers were sent as keep-alive, before the drain')
  proc.kill('SIGTERM')
  t.equal(await res.body.text(), 'start\nend\n', 'the stream finished')
  t.equal(await proc.exitCode, 0, 'the swept socket let the process exit cleanly')
  t.match(await proc.waitForLog('graceful: shutdown complete, exiting'), { level: 30, exitCode: 0, forced: [] })
  t.equal(proc.report()!.stages.drain!.deadlineReached, false, 'the swept socket did not hold the drain until its deadline')
  t.ok(proc.report()!.stages.drain!.durationMs < 30_000, 'well before keepAliveTimeout')
})

test('a request longer than the drain deadline is cut, the log counts it, and the exit code is 1', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '0', DRAIN_TIMEOUT_MS: '300' })
  const pending = request(`${proc.address}/slow?ms=20000`).then(
    async (res) => { await res.body.dump(); return res.statusCode },
    (err: NodeJS.ErrnoException) => err.code
  )
  await proc.waitForLog('slow route entered')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 1, 'a forced stage means exit code 1')
  t.match(await pending, /UND_ERR_SOCKET|ECONNRESET/, 'the cut request saw its connection end')
  const warning = await proc.waitForLog('drain: deadline reached, cut in-flight requests')
  t.equal(warning.cut, 1, 'the log names how many requests were cut')
  t.equal(warning.level, 40, 'at warn level')
  const report = proc.report()!
  t.equal(report.clean, false)
  t.equal(report.exitCode, 1)
  t.same(report.forced, ['drain: 1 request(s) cut at the 300ms deadline'])
  const exiting = await proc.waitForLog('graceful: shutdown complete, exiting')
  t.match(exiting, { level: 40, exitCode: 1, forced: ['drain: 1 request(s) cut at the 300ms deadline'] }, 'graceful says why it exits 1')
})
