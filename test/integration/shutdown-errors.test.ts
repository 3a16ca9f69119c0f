// Uncaught exceptions and unhandled rejections shut down gracefully, with exit code 1.
import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

test('an uncaught exception shuts down gracefully: in-flight work answered, exit code 1', async (t) => {
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '0' })
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
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '15000', GRACEFUL_TIMEOUT_MS: '40000' })
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
  const proc = await startFixture(t, 'service.js', { PRE_STOP_DELAY_MS: '0' })
  const res = await request(`${proc.address}/reject`)
  await res.body.dump()
  t.equal(await proc.exitCode, 1)
  t.equal(proc.report()!.error, 'rejected with no handler')
})
