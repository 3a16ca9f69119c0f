import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

// A SIGTERM while a start-up task (cache warm-up, migrations check) still runs: the instance
// was never ready, so nothing routes to it. It must stop the task, skip the pre-stop delay and
// exit cleanly, not wait for the task or for the delay.
test('SIGTERM during a start-up task: the task is told to stop, no pre-stop delay, a clean exit', async (t) => {
  const proc = await startFixture(t, 'probes-service.js', { STARTUP_TASK_MS: '60000', PRE_STOP_DELAY_MS: '15000', GRACEFUL_TIMEOUT_MS: '30000' })
  await proc.waitForLog('fixture: start-up task running')
  const ready = await request(`${proc.address}/readyz`)
  await ready.body.dump()
  t.equal(ready.statusCode, 503, 'not ready while the task runs')
  const startup = await request(`${proc.address}/startupz`)
  await startup.body.dump()
  t.equal(startup.statusCode, 503, 'the startup probe holds the others back')

  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 0, 'exit 0')
  const report = proc.report()!
  t.equal(report.clean, true)
  t.equal(report.stages.preStop!.skipped, true, 'the 15 s pre-stop delay was skipped: nothing routed here')
  t.notOk(proc.logs('fixture: start-up task done').length, 'the task did not run to its end')
  t.same(proc.phases(), ['draining', 'closing', 'closed'], 'never ready')
})
