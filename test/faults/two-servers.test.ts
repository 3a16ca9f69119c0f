import { test } from 'tap'
import { request } from 'undici'
import { startFixture } from '../helpers/fixture.js'

test('two servers in one process: the shutdown that ends first waits for the other before the exit; nothing cut, exit 0', async (t) => {
  const proc = await startFixture(t, 'two-servers.js')
  const listening = await proc.waitForLog((l) => l.server === 'admin' && String(l.msg).startsWith('Server listening at '))
  const admin = String(listening.msg).slice('Server listening at '.length)
  // A request on the admin server outlasts the public server's whole shutdown.
  const slow = request(`${admin}/slow?ms=1500`, { headers: { 'x-test-id': 'admin-slow' } })
  await proc.waitForLog((l) => l.msg === 'slow route entered' && l.server === 'admin')
  proc.kill('SIGTERM')
  const res = await slow
  t.same(await res.body.json(), { server: 'admin' }, 'the admin request in flight was answered')
  t.equal(await proc.exitCode, 0, 'exit 0')

  const reports = proc.logs('lifecycle: shutdown report')
  t.same(reports.map((l) => l.server).sort(), ['admin', 'public'], 'both servers shut down and reported')
  t.ok(reports.every((l) => (l.report as { clean: boolean }).clean), 'both cleanly')
  t.match(proc.logs('graceful: waiting for the other servers of this process to shut down'), [{ server: 'public', servers: 1 }], 'the public server, done first, waited for the admin one')
  const last = proc.lines.at(-1)!
  t.equal(last.msg, 'graceful: shutdown complete, exiting', 'the last line says the process exits')
  t.equal(proc.lines.filter((l) => l.msg === 'lifecycle: shutdown report' && l.server === 'admin').length, 1)
  t.notOk(proc.lines.some((l) => l.level >= 40), 'no warning: the other server\'s signal handlers are not taken for a foreign handler')
})

test('two servers in one process: a forced shutdown of the other server makes the exit code 1', async (t) => {
  const proc = await startFixture(t, 'two-servers.js', { DRAIN_TIMEOUT_MS: '500' })
  const listening = await proc.waitForLog((l) => l.server === 'admin' && String(l.msg).startsWith('Server listening at '))
  const admin = String(listening.msg).slice('Server listening at '.length)
  const slow = request(`${admin}/slow?ms=5000`).catch((err: Error) => err)
  await proc.waitForLog((l) => l.msg === 'slow route entered' && l.server === 'admin')
  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 1, 'exit 1: the admin server cut a request')
  t.ok((await slow) instanceof Error, 'the cut request saw its connection end')
  const done = proc.logs('graceful: shutdown complete, exiting')
  t.ok(done.some((l) => l.server === 'public' && (l.forced as string[]).some((reason) => reason.startsWith('drain'))), 'the public server\'s last line names the admin server\'s forced drain')
})
