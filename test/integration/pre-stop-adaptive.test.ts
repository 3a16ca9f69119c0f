import { test } from 'tap'
import { startLoad, summarize } from '../../cli/load.js'
import { startFixture } from '../helpers/fixture.js'

// A load balancer that takes a while to move on: after the signal, the load keeps coming for
// three quiet periods, then stops, as if the instance had left the upstream. The adaptive
// window must serve all of it and close the listener only once it has stopped.
const QUIET_MS = 500
test('SIGTERM with the adaptive window: traffic served until it stops, then the listener closes; nothing refused, exit 0', async (t) => {
  const proc = await startFixture(t, 'service.js', {
    PRE_STOP_QUIET_MS: String(QUIET_MS),
    PRE_STOP_MAX_MS: '8000',
    DRAIN_TIMEOUT_MS: '5000'
  })
  const load = startLoad({ origin: proc.address, keepAliveClients: 20, freshClients: 5, maxDurationMs: 30_000, path: (n) => n % 5 === 4 ? '/slow?ms=100' : '/' })
  t.teardown(() => load.stop())
  await proc.waitForLog((l) => l.msg === 'request completed' && String(l.reqId).endsWith('-5'))

  proc.kill('SIGTERM')
  await proc.waitForLog('pre-stop: still serving until traffic stops arriving')
  // The lag of the load balancer: a scenario's timing, not a wait for something to happen.
  await new Promise((resolve) => setTimeout(resolve, 3 * QUIET_MS))
  load.stop()
  const outcomes = await load.done
  const exitCode = await proc.exitCode

  const accepted = new Set(proc.logs('incoming request').map((l) => String(l.reqId)))
  const summary = summarize(outcomes, accepted)
  t.comment(JSON.stringify(summary))
  t.equal(exitCode, 0, 'clean shutdown exits 0')
  t.same(outcomes.filter((o) => o.status !== 200), [], 'every request sent until the traffic stopped was answered 200: none refused or reset')
  const report = proc.report()!
  const stage = report.stages.preStop!
  t.equal(stage.endedBy, 'quiet', 'the window ended on the quiet period, once the traffic stopped')
  t.ok(stage.requests! >= 100, `the traffic after the signal was counted (${stage.requests})`)
  t.ok(stage.lastRequestMs! > QUIET_MS, `traffic came for longer than the quiet period (the last request at ${stage.lastRequestMs} ms)`)
  t.ok(stage.waitedMs >= stage.lastRequestMs! + QUIET_MS - 1, `the listener closed a quiet period after the last request (last at ${stage.lastRequestMs} ms, window ${stage.waitedMs} ms)`)
  t.equal(report.clean, true)
  t.same(proc.phases(), ['ready', 'draining', 'closing', 'closed'])
})
