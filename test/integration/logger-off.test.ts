// With Fastify's logger left off (its default), what ends the process still reaches stderr,
// stack included, as it would without the suite; and a service that never served skips the
// pre-stop delay.
import { once } from 'node:events'
import { createServer } from 'node:net'
import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

const listening = (l: { msg?: string }): boolean => String(l.msg).startsWith('listening ')

test('an uncaught exception: exit 1, the error and its stack on stderr', async (t) => {
  const proc = await startFixture(t, 'quiet-service.js', { SCENARIO: 'uncaught' }, { waitListening: false, stderr: 'pipe' })
  t.equal(await proc.exitCode, 1)
  t.match(proc.stderr(), /fastify-lifecycle: graceful: uncaught error, shutting down\nError: thrown from a timer\n\s+at /, 'the error, with its stack')
  t.match(proc.stderr(), /shutdown not clean, exiting with code 1: error: thrown from a timer/, 'and why the exit code is 1')
})

test('listen() failing on a taken port: exit 1 at once, the error on stderr, no pre-stop delay', async (t) => {
  const taken = createServer()
  taken.listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const { port } = taken.address() as { port: number }
  const started = performance.now()
  const proc = await startFixture(t, 'quiet-service.js', { SCENARIO: 'listen', PORT: String(port), PRE_STOP_DELAY_MS: '15000' }, { waitListening: false, stderr: 'pipe' })
  t.equal(await proc.exitCode, 1)
  const took = performance.now() - started
  t.ok(took < 10_000, `exited after ${Math.round(took)}ms: the 15000ms pre-stop delay was skipped`)
  t.match(proc.stderr(), /EADDRINUSE/, 'the listen error is on stderr')
  t.match(proc.stderr(), /\n\s+at /, 'with its stack')
})

test('a budget that cannot fit: exit 1, FST_LIFECYCLE_BUDGET_EXCEEDED on stderr', async (t) => {
  const proc = await startFixture(t, 'quiet-service.js', { SCENARIO: 'budget' }, { waitListening: false, stderr: 'pipe' })
  t.equal(await proc.exitCode, 1)
  t.match(proc.stderr(), /FST_LIFECYCLE_BUDGET_EXCEEDED/)
  t.match(proc.stderr(), /shutdown budget does not fit/)
  t.equal(proc.logs(listening).length, 0, 'it never listened')
})

test('a forced shutdown: exit 1 and the reason on stderr', async (t) => {
  const proc = await startFixture(t, 'quiet-service.js', { SCENARIO: 'forced' }, { waitListening: false, stderr: 'pipe' })
  const up = await proc.waitForLog(listening)
  const { port } = JSON.parse(String(up.msg).slice('listening '.length)) as { port: number }
  const pending = request(`http://127.0.0.1:${port}/slow`).then(async (res) => { await res.body.dump(); return res.statusCode }, (err: { code: string }) => err.code)
  await proc.waitForLog('slow entered')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 1)
  t.match(await pending, /UND_ERR_SOCKET|ECONNRESET/)
  t.match(proc.stderr(), /shutdown not clean, exiting with code 1: drain: 1 request\(s\) cut at the 300ms deadline/)
})
