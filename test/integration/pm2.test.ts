import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

// PM2's protocol, as PM2 speaks it to a process it runs: its environment (pm_id, kill_timeout),
// an IPC channel, 'ready' expected for wait_ready, and 'shutdown' sent instead of a signal
// with shutdown_with_message. PM2 itself is not needed, nor depended on.
test("under PM2: 'ready' once listening, and the 'shutdown' message drains and exits 0 as a signal would", async (t) => {
  const proc = await startFixture(t, 'service.js', { pm_id: '3', kill_timeout: '30000', PRE_STOP_DELAY_MS: '200' })
  const ready = new Promise((resolve) => { proc.child.on('message', (message) => { if (message === 'ready') resolve(message) }) })
  await ready
  t.pass("'ready' sent")
  const slow = request(`${proc.address}/slow?ms=400`)
  await proc.waitForLog('slow route entered')
  proc.child.send('shutdown')
  const res = await slow
  t.equal(res.statusCode, 200, 'the request in flight was answered')
  await res.body.dump()
  t.equal(await proc.exitCode, 0)
  const report = proc.report()!
  t.equal(report.cause, 'pm2 shutdown message')
  t.equal(report.clean, true)
  t.equal(report.stages.preStop!.skipped, false, 'the pre-stop delay ran, as for a signal')
})

test('under PM2 with its default kill_timeout (1.6 s): the 20 s shutdown is refused at start-up, with what to change', async (t) => {
  const proc = await startFixture(t, 'service.js', { pm_id: '3' }, { waitListening: false, stderr: 'pipe' })
  t.equal(await proc.exitCode, 1)
  const failed = proc.lines.find((l) => l.msg === 'lifecycle: start-up failed, this instance will never be ready')
  t.match(failed, { err: { code: 'FST_LIFECYCLE_PM2_KILL_TIMEOUT', message: /PM2 sends SIGKILL 1600ms after .* up to 20000ms \(graceful\.timeout\): set kill_timeout above it/ } })
})

test('PM2 cluster mode: the worker leaves through the disconnect round trip before it exits', async (t) => {
  const proc = await startFixture(t, 'cluster-primary.js', {}, { waitListening: false })
  const forked = await proc.waitForLog('primary: worker forked')
  await proc.waitForLog('primary: worker ready')
  process.kill(forked.workerPid as number, 'SIGTERM')
  t.equal(await proc.exitCode, 0)
  const order = proc.lines.filter((l) => l.primary === true).map((l) => l.msg)
  t.same(order, ['primary: worker forked', 'primary: worker ready', 'primary: worker disconnected', 'primary: worker exited'], 'disconnected, then exited')
  t.match(proc.logs('primary: worker exited')[0], { code: 0, exitedAfterDisconnect: true }, 'exit 0, after a disconnect the worker asked for')
})
