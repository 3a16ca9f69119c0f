import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

function series (text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels === '' ? ' ' : `{${labels}} `}`))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

// What an operator's Prometheus sees of a rollout: scrapes of the probe port (open until the
// process exits) before the signal, in the pre-stop delay, while the drain waits for a slow
// request, and the process gone after.
test('scraped before, during and after a SIGTERM: the phase moves, readiness fails for a planned reason, requests in flight show', async (t) => {
  const proc = await startFixture(t, 'service.js', { METRICS: '1', PRE_STOP_DELAY_MS: '600', DRAIN_TIMEOUT_MS: '5000' })
  const probes = await proc.waitForLog('health: probe listener open')
  const metricsUrl = `http://127.0.0.1:${probes.port as number}/metrics`
  const scrape = async (): Promise<string> => await (await request(metricsUrl)).body.text()

  let text = await scrape()
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="ready"'), 1, 'before: ready')
  t.equal(series(text, 'fastify_lifecycle_ready'), 1)

  const slow = request(`${proc.address}/slow?ms=1500`)
  await proc.waitForLog('slow route entered')
  proc.kill('SIGTERM')
  await proc.waitForLog('pre-stop: still serving while load balancers stop routing here')
  text = await scrape()
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="draining"'), 1, 'in the pre-stop delay: draining')
  t.equal(series(text, 'fastify_lifecycle_not_ready', 'reason="shutdown"'), 1, 'not ready, for a planned shutdown')
  t.equal(series(text, 'fastify_lifecycle_requests_in_flight'), 1, 'the slow request in flight')

  await proc.waitForLog('drain: listener closed, waiting for in-flight requests')
  text = await scrape()
  t.equal(series(text, 'fastify_lifecycle_phase', 'phase="closing"'), 1, 'while the drain waits: closing')
  t.equal(series(text, 'fastify_lifecycle_requests_in_flight'), 1)

  t.equal((await slow).statusCode, 200)
  t.equal(await proc.exitCode, 0)
  await t.rejects(scrape(), { code: 'ECONNREFUSED' }, 'after: the process is gone, and its metrics with it')
})
