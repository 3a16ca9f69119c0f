import { test } from 'tap'
import { request } from 'undici'
import { startLoad } from '../../cli/load.js'
import { startFixture } from '../helpers/fixture.js'

// The signal arrives while the event loop is blocked (a long synchronous computation, a GC
// pause): Node runs the signal handler once the loop is free. Everything that arrived meanwhile
// waits in the kernel and is served afterwards; the shutdown then runs as usual.
test('SIGTERM while the event loop is blocked: handled once it is free, everything accepted answered, exit 0', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '300' })
  const load = startLoad({ origin: proc.address, keepAliveClients: 10, freshClients: 4, maxDurationMs: 20_000, path: () => '/' })
  t.teardown(() => load.stop())
  await proc.waitForLog((l) => l.msg === 'request completed' && String(l.reqId).endsWith('-5'))
  const blocking = request(`${proc.address}/block?ms=800`, { headers: { 'x-test-id': 'blocker' } })
  await proc.waitForLog((l) => l.msg === 'incoming request' && l.reqId === 'blocker')
  // The process is inside the 800 ms block: the signal waits for it.
  proc.kill('SIGTERM')
  const blocked = await blocking
  await blocked.body.dump()
  t.equal(blocked.statusCode, 200, 'the blocking request finished')
  const exitCode = await proc.exitCode
  load.stop()
  const outcomes = await load.done
  const accepted = new Set(proc.logs('incoming request').map((l) => String(l.reqId)))
  t.equal(exitCode, 0)
  t.same(outcomes.filter((o) => accepted.has(o.id) && o.status !== 200), [], 'every request the server accepted was answered 200')
  t.same(outcomes.filter((o) => o.error !== undefined && o.error !== 'ECONNREFUSED').map((o) => `${o.id}: ${o.error}`), [], 'no reset: only refusals once the listener closed')
  const signal = proc.lines.findIndex((l) => l.msg === 'graceful: signal received, shutting down')
  const blockerDone = proc.lines.findIndex((l) => l.msg === 'request completed' && l.reqId === 'blocker')
  t.ok(blockerDone < signal, 'the signal was handled after the block')
  t.equal(proc.report()!.clean, true)
})
