import { randomUUID } from 'node:crypto'
import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'
import { pgConnections, redisClients, requirePg, requireRedis, startOwnRedis } from '../helpers/services.js'

const appName = (): string => `fl-test-${randomUUID().slice(0, 8)}`

test('SIGTERM with pg queries and Redis commands in flight: all answered, then pool and client closed once, exit 0', async (t) => {
  await requirePg()
  await requireRedis()
  const name = appName()
  const proc = await startFixture(t, 'teardown-service.js', { APP_NAME: name, PRE_STOP_DELAY_MS: '0' })
  t.ok(await pgConnections(name) > 0, 'the service holds PostgreSQL connections')
  t.equal(await redisClients(name), 1, 'and one Redis connection')

  const pending = [
    ...Array.from({ length: 10 }, (_, i) => `/pg?s=0.${3 + (i % 4)}`),
    ...Array.from({ length: 10 }, (_, i) => `/redis?ms=${300 + i * 20}`)
  ].map((path, i) => request(`${proc.address}${path}`, { headers: { 'x-test-id': `q${i}` } }).then(async (res) => {
    await res.body.dump()
    return res.statusCode
  }))
  let started = 0
  await proc.waitForLog((l) => (l.msg === 'fixture: pg query started' || l.msg === 'fixture: redis work started') && ++started === 20)
  proc.kill('SIGTERM')
  const statuses = await Promise.all(pending)
  t.same(statuses, Array(20).fill(200), 'every request in flight got its answer')
  t.equal(await proc.exitCode, 0)

  const closes = proc.logs('fixture: close called')
  t.same(closes.map((l) => [l.resource, l.calls]), [['redis', 1], ['pg', 1]], 'each closed exactly once, redis first')
  const lastResponse = Math.max(...proc.logs('request completed').map((l) => l.time as number))
  t.ok(closes.every((l) => (l.time as number) >= lastResponse), 'closed after the last response')
  const report = proc.report()!
  t.same(report.stages.teardown!.resources.map((r: { name: string, outcome: string }) => [r.name, r.outcome]), [['redis', 'closed'], ['pg', 'closed']])
  t.equal(await pgConnections(name), 0, 'pg_stat_activity has no connection left from the service')
  t.equal(await redisClients(name), 0, 'Redis has no client left from the service')
})

test('a resource whose close never settles is cut at its timeout; the others close; exit 1 before the overall deadline', async (t) => {
  await requirePg()
  await requireRedis()
  const name = appName()
  const proc = await startFixture(t, 'teardown-service.js', { APP_NAME: name, HANG_TEARDOWN: '1', GRACEFUL_TIMEOUT_MS: '15000' })
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 1)
  const report = proc.report()!
  t.same(report.stages.teardown!.resources.map((r: { name: string, outcome: string }) => [r.name, r.outcome]), [['stuck-queue', 'timed out'], ['redis', 'closed'], ['pg', 'closed']])
  t.same(report.forced, ["teardown: 'stuck-queue' timed out"])
  t.equal(proc.logs('lifecycle: shutdown abandoned, exiting now').length, 0, 'the overall deadline was not needed')
  t.match(await proc.waitForLog('graceful: shutdown complete, exiting'), { exitCode: 1 })
  t.equal(await pgConnections(name), 0)
})

test('held work: the drain waits for release() before teardown closes what the work uses', async (t) => {
  await requireRedis()
  await requirePg()
  const proc = await startFixture(t, 'teardown-service.js', { APP_NAME: appName(), WORKER: '1', JOB_MS: '600' })
  await proc.waitForLog('worker: job started')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 0, 'the job finished, its Redis write succeeded')
  const finished = await proc.waitForLog('worker: job finished')
  const drained = await proc.waitForLog('drain: done')
  const teardown = await proc.waitForLog('teardown: closing resources')
  t.ok((finished.time as number) <= (drained.time as number), 'the drain ended after the job')
  t.ok((drained.time as number) <= (teardown.time as number), 'teardown came after the drain')
  await proc.waitForLog('worker: stopped taking jobs')
  t.match(proc.report()!.stages.drain, { heldAtClose: ['job'], heldCut: [] })
})

test('held work still running at the drain deadline is reported as cut, exit 1', async (t) => {
  await requireRedis()
  await requirePg()
  const proc = await startFixture(t, 'teardown-service.js', { APP_NAME: appName(), WORKER: '1', JOB_MS: '20000', DRAIN_TIMEOUT_MS: '300' })
  await proc.waitForLog('worker: job started')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 1)
  const report = proc.report()!
  t.match(report.stages.drain, { heldAtClose: ['job'], heldCut: ['job'] })
  t.same(report.forced, ['drain: held work still running at the 300ms deadline: job'])
})

test('Redis unreachable at shutdown: teardown finishes within its timeout and the process exits', async (t) => {
  await requirePg()
  const own = await startOwnRedis(t)
  const proc = await startFixture(t, 'teardown-service.js', { APP_NAME: appName(), REDIS_URL: own.url, RESOURCE_TIMEOUT_MS: '1000' })
  await own.stop()
  await proc.waitForLog('fixture: redis error')
  proc.kill('SIGTERM')
  const code = await proc.exitCode
  const report = proc.report()!
  const redis = report.stages.teardown!.resources.find((r) => r.name === 'redis')
  t.match(redis, { outcome: 'closed' }, 'ioredis ends a client it cannot reach when asked to quit')
  t.ok((redis?.durationMs ?? Infinity) < 1000, 'within its 1000ms timeout')
  t.equal(code, 0)
  t.equal(proc.logs('lifecycle: shutdown abandoned, exiting now').length, 0, 'no deadline had to end it')
})
