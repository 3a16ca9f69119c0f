import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

// A dependency that never answers (a half-open socket, a lock held forever): its check never
// settles. Probes must still be answered, the hung run must not pile up behind each wave, and
// the shutdown must not wait for it.
test('a check that never settles: probes answer 503 and say it is still running, one run only, and the shutdown does not wait for it', async (t) => {
  const proc = await startFixture(t, 'probes-service.js', { HUNG_CHECK: '1', CHECK_TIMEOUT_MS: '100' })
  const answers: Array<{ status: number, body: string }> = []
  for (let wave = 0; wave < 5; wave++) {
    answers.push(...await Promise.all(Array.from({ length: 20 }, async () => {
      const res = await request(`${proc.address}/readyz?verbose`)
      return { status: res.statusCode, body: await res.body.text() }
    })))
  }
  t.equal(answers.length, 100, 'every probe was answered')
  t.ok(answers.every((a) => a.status === 503), 'readiness fails while a critical check hangs')
  t.ok(answers.some((a) => /hung-dependency.*still running/.test(a.body)), 'the verbose answer says the run is still going')
  const stats = await (await request(`${proc.address}/stats`, { headers: { authorization: 'Bearer test' } })).body.json() as { started: number, running: number }
  t.equal(stats.started, 1, 'one run in all: none started while it hangs')

  const live = await request(`${proc.address}/livez`)
  await live.body.dump()
  t.equal(live.statusCode, 200, 'liveness does not include the readiness check')

  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 0, 'exit 0: the hung check held nothing')
  const report = proc.report()!
  t.equal(report.clean, true)
  t.equal(report.stages.drain!.deadlineReached, false, 'the drain did not wait for it')
})
