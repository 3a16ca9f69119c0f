// Signals: SIGINT, a second signal, a signal during start-up, the overall deadline.
import { test } from 'tap'
import { startFixture } from '../helpers/fixture.js'

test('a second signal exits at once with code 1 and logs the report as it stands', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '15000', GRACEFUL_TIMEOUT_MS: '40000' })
  proc.kill('SIGTERM')
  await proc.waitForLog('pre-stop: still serving while load balancers stop routing here')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 1)
  const abandoned = await proc.waitForLog('lifecycle: shutdown abandoned, exiting now')
  t.equal(abandoned.phase, 'draining', 'it was still in the pre-stop delay')
  t.same((abandoned.report as { forced: string[] }).forced, ['lifecycle: second SIGTERM received'])
})

test('SIGINT is handled like SIGTERM', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '0' })
  proc.kill('SIGINT')
  t.equal(await proc.exitCode, 0)
  t.equal(proc.report()!.cause, 'SIGINT')
})

test('SIGTERM during start-up, before ready, exits cleanly without the pre-stop delay', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '15000', GRACEFUL_TIMEOUT_MS: '40000', BOOT_DELAY_MS: '300' }, { waitListening: false })
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
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '0', DRAIN_TIMEOUT_MS: '200', TEARDOWN_TIMEOUT_MS: '500', GRACEFUL_TIMEOUT_MS: '1000', HANG_ON_CLOSE: '1' })
  proc.kill('SIGTERM')
  await proc.waitForLog('fixture: onClose hook hanging')
  t.equal(await proc.exitCode, 1)
  const abandoned = await proc.waitForLog('lifecycle: shutdown abandoned, exiting now')
  t.equal(abandoned.phase, 'closing', 'it was stuck closing')
  t.same((abandoned.report as { forced: string[] }).forced, ['lifecycle: overall deadline of 1000ms reached'])
})
