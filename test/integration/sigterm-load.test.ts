import { test } from 'tap'
import { Client } from 'undici'
import { startLoad, summarize } from '../../cli/load.js'
import { startFixture } from '../helpers/fixture.js'

const KEEP_ALIVE_TIMEOUT_MS = 60_000

test('SIGTERM under concurrent keep-alive load: every accepted request is answered and the process exits 0', async (t) => {
  const proc = await startFixture(t, 'service.js', {
    PRE_STOP_DELAY_MS: '400',
    DRAIN_TIMEOUT_MS: '5000',
    KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS)
  })
  // Every 5th request takes a second, so the drain has real requests to wait for.
  const load = startLoad({ origin: proc.address, keepAliveClients: 50, freshClients: 10, maxDurationMs: 30_000, path: (n) => n % 5 === 4 ? '/slow?ms=1000' : '/' })
  t.teardown(() => load.stop())
  // A keep-alive client that goes quiet before the signal: only the drain's idle sweep closes
  // its socket, so it is what would hold the drain until its deadline.
  const idle = new Client(proc.address, { keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS })
  t.teardown(() => idle.destroy())
  const warm = await idle.request({ method: 'GET', path: '/', headers: { 'x-test-id': 'quiet' } })
  await warm.body.dump()
  t.equal(warm.headers.connection, 'keep-alive', 'the quiet client holds a keep-alive socket')

  // Signal once load is flowing on reused keep-alive connections, with one request the server
  // answers only when told: it is in flight at the signal and when the listener closes, on any
  // machine. (The load's own slow requests all start in step and can all be between two slow
  // ones at the moment of the signal: they cannot promise this.)
  await proc.waitForLog((l) => l.msg === 'request completed' && String(l.reqId).endsWith('-5'))
  const anchorClient = new Client(proc.address)
  t.teardown(() => anchorClient.destroy())
  const anchor = anchorClient.request({ method: 'GET', path: '/held', headers: { 'x-test-id': 'anchor' } })
  await proc.waitForLog((l) => l.msg === 'held route entered')
  const signalAt = performance.now()
  proc.kill('SIGTERM')
  const draining = await proc.waitForLog((l) => l.phase === 'draining')
  await proc.waitForLog('drain: listener closed, waiting for in-flight requests')
  proc.child.send({ release: 'anchor' })
  const anchored = await anchor
  await anchored.body.dump()
  // Keep sending through the pre-stop delay and until the process is gone, like a client
  // that has not yet learned the instance is leaving.
  const exitCode = await proc.exitCode
  load.stop()
  const outcomes = await load.done

  const accepted = new Set(proc.logs('incoming request').map((l) => String(l.reqId)).filter((id) => id !== 'quiet' && id !== 'anchor'))
  const summary = summarize(outcomes, accepted)
  t.comment(JSON.stringify({ ...summary, inFlightAtSignal: draining.inFlight }))

  t.equal(exitCode, 0, 'clean shutdown exits 0')
  t.ok((draining.inFlight as number) > 0, 'requests were in flight when the signal arrived')
  t.ok(accepted.size >= 100, 'the server accepted a real load')
  const acceptedOutcomes = outcomes.filter((o) => accepted.has(o.id))
  t.equal(acceptedOutcomes.length, accepted.size, 'the client saw every request the server accepted')
  t.same(acceptedOutcomes.filter((o) => o.status !== 200), [], 'every accepted request got a 200, none was reset')
  t.same(outcomes.filter((o) => o.status !== undefined && o.status !== 200), [], 'no request was answered with an error status')

  t.comment(JSON.stringify({ slowAnsweredAcrossSignal: acceptedOutcomes.filter((o) => o.path.startsWith('/slow') && o.startedAt < signalAt && o.endedAt > signalAt).length }))

  const report = proc.report()!
  t.equal(anchored.statusCode, 200, 'the request in flight at the signal and at the listener close was answered')
  t.ok(report.stages.drain!.inFlightAtClose >= 1, 'the drain waited for it')
  t.same(report.phases.map((p: { phase: string }) => p.phase), ['draining', 'closing', 'closed'], 'report phases in order')
  t.same(proc.phases(), ['ready', 'draining', 'closing', 'closed'], 'phase log lines in order')
  t.equal(report.clean, true, 'the report calls the shutdown clean')
  t.equal(report.exitCode, 0, 'the report gives exit code 0')
  t.equal(report.stages.drain!.cut, 0, 'nothing was cut')
  t.equal(report.stages.preStop!.skipped, false, 'the pre-stop delay ran')
  t.equal(report.stages.drain!.deadlineReached, false, 'keep-alive sockets did not hold the drain until its deadline')
  t.ok(report.stages.drain!.durationMs < KEEP_ALIVE_TIMEOUT_MS / 10, 'nor until keepAliveTimeout')

  t.equal(proc.lines.at(-1)?.msg, 'graceful: shutdown complete, exiting', 'the last line logged is the last one written')

  const afterSignal = acceptedOutcomes.filter((o) => o.connection === 'close')
  t.ok(afterSignal.length > 0, 'responses during the drain carried Connection: close')
})
