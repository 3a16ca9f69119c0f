import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'
import { PG_URL, requirePg, requireRedis, tcpProxy } from '../helpers/services.js'

// The database host goes away (a failover, a network partition) just before the rollout's
// SIGTERM: the pool's idle connections break and a query in flight dies with them. The
// request must still get an answer (an error, not a hang), and the shutdown must close the
// pool it can no longer reach within its timeouts, without the overall deadline.
test('PostgreSQL gone at shutdown: the request in flight is answered, the pool closes at once, exit 0', async (t) => {
  await requirePg()
  await requireRedis()
  const target = new URL(PG_URL)
  const proxy = await tcpProxy(t, { host: target.hostname, port: Number(target.port || 5432) })
  const proc = await startFixture(t, 'teardown-service.js', { APP_NAME: `fl-pg-gone-${process.pid}`, PG_URL: proxy.url(PG_URL), RESOURCE_TIMEOUT_MS: '2000' })
  // Five connections in the pool, idle again.
  const warm = await Promise.all(Array.from({ length: 5 }, async () => {
    const res = await request(`${proc.address}/pg?s=0`)
    await res.body.dump()
    return res.statusCode
  }))
  t.same(warm, [200, 200, 200, 200, 200])
  const inFlight = request(`${proc.address}/pg?s=30`)
  await proc.waitForLog('fixture: pg query started')

  await proxy.cut()
  const answer = await inFlight
  await answer.body.dump()
  t.equal(answer.statusCode, 500, 'the query in flight failed, and its request got an error answer')
  await proc.waitForLog('fixture: pg pool error')

  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 0, 'exit 0: nothing was left to close')
  const report = proc.report()!
  const pgResource = report.stages.teardown!.resources.find((r) => r.name === 'pg')
  t.match(pgResource, { outcome: 'closed' }, 'the pool closed: its broken clients were already out of it')
  t.equal(proc.logs('lifecycle: shutdown abandoned, exiting now').length, 0, 'no deadline had to end it')
  t.equal(report.clean, true)
})
