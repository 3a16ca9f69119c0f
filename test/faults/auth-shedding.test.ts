import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

// The service's own onRequest hooks (an auth check, a load shedder answering 503 to everything)
// run for every route; the probes are answered in front of them, or a pod under load would be
// restarted by its own load shedder and an authenticated API would never be ready.
test('auth and load-shedding hooks: the service refuses, the probes still answer, and the shutdown is clean', async (t) => {
  const proc = await startFixture(t, 'probes-service.js', { SHED_ALL: '1' })
  const plain = await request(`${proc.address}/`)
  await plain.body.dump()
  t.equal(plain.statusCode, 401, 'the auth hook refuses a request without a token')
  const shed = await request(`${proc.address}/`, { headers: { authorization: 'Bearer test' } })
  await shed.body.dump()
  t.equal(shed.statusCode, 503, 'the load shedder refuses everything else')
  for (const path of ['/livez', '/readyz', '/startupz']) {
    const res = await request(`${proc.address}${path}`)
    await res.body.dump()
    t.equal(res.statusCode, 200, `${path} is answered in front of both hooks`)
  }
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 0)
  t.equal(proc.report()!.clean, true)
})
