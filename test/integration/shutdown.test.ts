import { test } from 'tap'
import { Client, request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

test('during the pre-stop delay the service still serves, new connections included, while readiness fails', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '3000' })
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
  t.ok(report.stages.preStop!.waitedMs >= 3000, 'the whole delay was served')
})

test('a keep-alive response whose headers went out before the signal does not hold the process open', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '0', KEEP_ALIVE_TIMEOUT_MS: '60000' })
  const client = new Client(proc.address, { keepAliveTimeout: 60_000 })
  t.teardown(() => client.destroy())
  const res = await client.request({ method: 'GET', path: '/stream?ms=300' })
  await proc.waitForLog('stream route entered')
  t.equal(res.headers.connection, 'keep-alive', 'headers were sent as keep-alive, before the drain')
  proc.kill('SIGTERM')
  t.equal(await res.body.text(), 'start\nend\n', 'the stream finished')
  t.equal(await proc.exitCode, 0, 'the swept socket let the process exit cleanly')
  t.match(await proc.waitForLog('graceful: shutdown complete, exiting'), { level: 30, exitCode: 0, forced: [] })
  t.ok(proc.report()!.stages.drain!.durationMs < 30_000, 'well before keepAliveTimeout')
})

test('a request longer than the drain deadline is cut, the log counts it, and the exit code is 1', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '0', DRAIN_TIMEOUT_MS: '300' })
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

test('a second signal exits at once with code 1 and logs the report as it stands', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '15000', GRACEFUL_TIMEOUT_MS: '40000' })
  proc.kill('SIGTERM')
  await proc.waitForLog('pre-stop: still serving while load balancers stop routing here')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 1)
  const abandoned = await proc.waitForLog('lifecycle: shutdown abandoned, exiting now')
  t.equal(abandoned.phase, 'draining', 'it was still in the pre-stop delay')
  t.same((abandoned.report as { forced: string[] }).forced, ['lifecycle: second SIGTERM received'])
})

test('SIGINT is handled like SIGTERM', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '0' })
  proc.kill('SIGINT')
  t.equal(await proc.exitCode, 0)
  t.equal(proc.report()!.cause, 'SIGINT')
})

test('an uncaught exception shuts down gracefully: in-flight work answered, exit code 1', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '0' })
  const slow = request(`${proc.address}/slow?ms=400`)
  await proc.waitForLog('slow route entered')
  const boom = await request(`${proc.address}/boom`)
  await boom.body.dump()
  const res = await slow
  t.equal(res.statusCode, 200, 'the request in flight when the error hit was answered')
  await res.body.dump()
  t.equal(await proc.exitCode, 1)
  const logged = await proc.waitForLog('graceful: uncaught error, shutting down')
  t.equal((logged.err as { message: string }).message, 'boom from a timer', 'the error is logged')
  const report = proc.report()!
  t.equal(report.cause, 'error')
  t.equal(report.error, 'boom from a timer')
  t.equal(report.exitCode, 1)
  t.same(proc.phases(), ['ready', 'draining', 'closing', 'closed'])
})

test('a second uncaught error during the shutdown exits at once with code 1', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '15000', GRACEFUL_TIMEOUT_MS: '40000' })
  const first = await request(`${proc.address}/boom`)
  await first.body.dump()
  await proc.waitForLog('pre-stop: still serving while load balancers stop routing here')
  const second = await request(`${proc.address}/boom`)
  await second.body.dump()
  t.equal(await proc.exitCode, 1)
  await proc.waitForLog('graceful: another uncaught error during the shutdown')
  const abandoned = await proc.waitForLog('lifecycle: shutdown abandoned, exiting now')
  t.same((abandoned.report as { forced: string[] }).forced, ['lifecycle: second uncaught error'])
})

test('an unhandled rejection shuts down gracefully with exit code 1', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '0' })
  const res = await request(`${proc.address}/reject`)
  await res.body.dump()
  t.equal(await proc.exitCode, 1)
  t.equal(proc.report()!.error, 'rejected with no handler')
})

test('SIGTERM during start-up, before ready, exits cleanly without the pre-stop delay', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '15000', GRACEFUL_TIMEOUT_MS: '40000', BOOT_DELAY_MS: '300' }, { waitListening: false })
  await proc.waitForLog('boot: warming up')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 0)
  t.equal(proc.phases()[0], 'draining', 'straight from starting to draining')
  t.notOk(proc.phases().includes('ready'), 'never became ready')
  const report = proc.report()!
  t.equal(report.stages.preStop!.skipped, true, 'the pre-stop delay was skipped')
  t.equal(proc.logs((l) => String(l.msg).startsWith('Server listening')).length, 0, 'it never started serving')
})

test('the overall deadline exits with code 1 when a close step hangs', async (t) => {
  const proc = await startFixture(t, 'service.ts', { PRE_STOP_DELAY_MS: '0', DRAIN_TIMEOUT_MS: '200', TEARDOWN_TIMEOUT_MS: '500', GRACEFUL_TIMEOUT_MS: '1000', HANG_ON_CLOSE: '1' })
  proc.kill('SIGTERM')
  await proc.waitForLog('fixture: onClose hook hanging')
  t.equal(await proc.exitCode, 1)
  const abandoned = await proc.waitForLog('lifecycle: shutdown abandoned, exiting now')
  t.equal(abandoned.phase, 'closing', 'it was stuck closing')
  t.same((abandoned.report as { forced: string[] }).forced, ['lifecycle: overall deadline of 1000ms reached'])
})
