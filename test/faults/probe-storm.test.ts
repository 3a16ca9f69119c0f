import { test } from 'tap'
import { Agent, request } from 'undici'
import { startLoad } from '../../cli/load.js'
import { startFixture } from '../helpers/fixture.js'

const AUTH = { authorization: 'Bearer test' }

// An orchestrator and several load balancers probing at once, in waves, with a check that
// takes its time: each wave must be answered, the check must run at most once at a time, and
// the service's own traffic must not notice. Then a SIGTERM in the middle of a wave.
test('a probe storm: every probe answered, one check run at a time, the service unaffected, and a clean shutdown in the middle of it', async (t) => {
  const proc = await startFixture(t, 'probes-service.js', { SLOW_CHECK_MS: '50', PRE_STOP_DELAY_MS: '300' })
  const agent = new Agent({ connections: 200 })
  t.teardown(() => agent.close())
  const load = startLoad({ origin: proc.address, keepAliveClients: 10, freshClients: 2, maxDurationMs: 30_000, path: () => '/', headers: AUTH })
  t.teardown(() => load.stop())

  const WAVES = 10
  const PER_WAVE = 150
  const statuses: number[] = []
  for (let wave = 0; wave < WAVES; wave++) {
    const answers = await Promise.all(Array.from({ length: PER_WAVE }, async (_, i) => {
      const res = await request(`${proc.address}${i % 3 === 0 ? '/livez' : i % 3 === 1 ? '/readyz' : '/readyz?verbose'}`, { dispatcher: agent })
      await res.body.dump()
      return res.statusCode
    }))
    statuses.push(...answers)
  }
  t.equal(statuses.length, WAVES * PER_WAVE, 'every probe got an answer')
  t.same([...new Set(statuses)], [200], 'all of them 200')
  const stats = await (await request(`${proc.address}/stats`, { headers: AUTH })).body.json() as { started: number, maxRunning: number }
  t.equal(stats.maxRunning, 1, `the check never ran twice at once (${stats.started} runs for ${statuses.length} probes)`)

  // A last wave with the signal in its middle: readiness turns to 503, liveness stays 200.
  const wave = Array.from({ length: PER_WAVE }, async (_, i) => {
    const path = i % 2 === 0 ? '/livez' : '/readyz'
    const res = await request(`${proc.address}${path}`, { dispatcher: agent })
    await res.body.dump()
    return { path, status: res.statusCode }
  })
  proc.kill('SIGTERM')
  const last = await Promise.all(wave)
  t.ok(last.filter((a) => a.path === '/livez').every((a) => a.status === 200), 'liveness passed throughout the shutdown')
  t.ok(last.filter((a) => a.path === '/readyz').every((a) => a.status === 200 || a.status === 503), 'readiness answered, 503 once the signal was in')
  const exitCode = await proc.exitCode
  load.stop()
  const outcomes = await load.done
  const accepted = new Set(proc.logs('incoming request').map((l) => String(l.reqId)))
  t.equal(exitCode, 0, 'exit 0')
  t.same(outcomes.filter((o) => accepted.has(o.id) && o.status !== 200), [], 'every request of the service the server accepted was answered 200')
  t.ok(outcomes.filter((o) => o.status === 200).length > 100, 'the service kept serving through the storm')
  t.equal(proc.report()!.clean, true)
})
