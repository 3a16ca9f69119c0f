import { test } from 'tap'
import Fastify, { type FastifyBaseLogger } from 'fastify'
import { logFatal, shows } from '../lib/fatal.js'
import { captureLogs } from './helpers/app.js'

function stderrOf (t: { teardown: (fn: () => void) => void }): () => string {
  let written = ''
  const write = process.stderr.write
  process.stderr.write = ((chunk: string) => { written += chunk; return true }) as typeof process.stderr.write
  t.teardown(() => { process.stderr.write = write })
  return () => written
}

test('shows(): what each kind of logger would show', async (t) => {
  const { stream } = captureLogs()
  t.equal(shows(Fastify().log, 'error'), false, 'Fastify() has its logger off')
  t.equal(shows(Fastify({ logger: { level: 'silent', stream } }).log, 'error'), false, 'pino at silent')
  t.equal(shows(Fastify({ logger: { level: 'fatal', stream } }).log, 'error'), false, 'pino above error')
  t.equal(shows(Fastify({ logger: { level: 'error', stream } }).log, 'warn'), false, 'pino at error hides warnings')
  t.equal(shows(Fastify({ logger: { level: 'info', stream } }).log, 'warn'), true)
  const own = { info () {}, error () {}, debug () {}, fatal () {}, warn () {}, trace () {}, child () { return own } } as unknown as FastifyBaseLogger
  t.equal(shows(own, 'error'), true, 'a logger of the user\'s own, with no level, is trusted to show errors')
  t.equal(shows({ ...own, level: 'audit' } as unknown as FastifyBaseLogger, 'error'), true, 'and one at a custom level')
})

test('logFatal(): logged, and on stderr too, with the stack, when the logger would not show it', async (t) => {
  const written = stderrOf(t)
  logFatal(Fastify().log, { err: new Error('gone wrong'), code: 7 }, 'plugin: it broke')
  logFatal(Fastify().log, { phase: 'closing' }, 'plugin: no error object')
  const { stream, lines } = captureLogs()
  logFatal(Fastify({ logger: { level: 'info', stream } }).log, { err: new Error('shown') }, 'plugin: logged only')
  t.match(written(), /^fastify-lifecycle: plugin: it broke \{"code":7\}\nError: gone wrong\n\s+at /)
  t.match(written(), /fastify-lifecycle: plugin: no error object \{"phase":"closing"\}\n$/)
  t.notMatch(written(), /shown/, 'nothing on stderr when the logger shows it')
  t.match(lines, [{ msg: 'plugin: logged only', err: { message: 'shown' } }])
})
