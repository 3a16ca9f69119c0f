// An app started with the real fastify-cli binary (7 and 8), in the layout `npm init fastify`
// generates (examples/fastify-cli): under concurrent keep-alive and fresh-connection load, a
// real SIGTERM gets the same shutdown as `node server.js`: readiness fails at once, the pre-stop
// delay is served with normal answers, then drain, teardown, one report, exit 0. The load
// behaves as a load balancer does: it stops sending once it has seen readiness fail, and from
// then on nothing it sent may fail. (What happens to clients that keep connecting while the
// listener closes is the drain's business, tested elsewhere.)
import { fileURLToPath } from 'node:url'
import { test } from 'tap'
import { Client } from 'undici'
import { startLoad, summarize } from '../../cli/load.js'
import { startFixture } from '../helpers/fixture.js'
import { freePort } from '../helpers/services.js'

const root = fileURLToPath(new URL('../../', import.meta.url))
const app = root + 'examples/fastify-cli/app.js'
const PRE_STOP_DELAY_MS = 2000

for (const cli of ['fastify-cli', 'fastify-cli-7']) {
  test(`${cli}: SIGTERM under load runs the pre-stop delay, the drain and the teardown, and loses nothing`, async (t) => {
    const proc = await startFixture(t, `${root}node_modules/${cli}/cli.js`, { PRE_STOP_DELAY_MS: String(PRE_STOP_DELAY_MS), DRAIN_TIMEOUT_MS: '3000' }, {
      // fastify-cli reads -p 0 as "no port" and takes 3000: a free port of the test's own.
      args: ['start', '-l', 'info', '-a', '127.0.0.1', '-p', String(await freePort()), app]
    })
    t.ok(proc.logs('graceful: fastify-cli\'s signal handling set aside, the suite runs the shutdown').length === 1, 'the suite took over fastify-cli\'s signal handling at start-up')
    const load = startLoad({ origin: proc.address, keepAliveClients: 20, freshClients: 4, maxDurationMs: 30_000, path: (n) => n % 4 === 3 ? '/slow?ms=300' : '/' })
    t.teardown(() => load.stop())
    await proc.waitForLog(() => proc.logs('request completed').length >= 150)
    proc.kill('SIGTERM')
    await proc.waitForLog('pre-stop: still serving while load balancers stop routing here')

    // During the delay, on connections of their own: the service answers, readiness fails.
    const fresh = async (path: string): Promise<number> => {
      const client = new Client(proc.address)
      try {
        const res = await client.request({ method: 'GET', path })
        await res.body.dump()
        return res.statusCode
      } finally {
        await client.destroy()
      }
    }
    const [home, ready] = await Promise.all([fresh('/'), fresh('/readyz')])
    t.equal(proc.phases().at(-1), 'draining', 'both answered during the pre-stop delay, before the listener closed')
    t.equal(home, 200, 'the service still serves')
    t.equal(ready, 503, 'readiness fails')
    // Readiness has failed: the balancer stops sending; what it sent must all be answered.
    load.stop()
    const outcomes = await load.done
    t.equal(proc.phases().at(-1), 'draining', 'the last request was answered before the listener closed')

    t.equal(await proc.exitCode, 0, 'clean exit')
    const summary = summarize(outcomes)
    t.comment(JSON.stringify(summary))
    t.ok(summary.answered2xx >= 150, 'the service served a real load')
    t.equal(summary.answered2xx, summary.sent, 'every request sent got a 200: none refused, reset or answered 503 by a close() under it')
    const report = proc.report()!
    t.match(report, { cause: 'SIGTERM', clean: true, exitCode: 0 })
    t.equal(report.stages.preStop!.skipped, false)
    t.ok(report.stages.preStop!.waitedMs >= PRE_STOP_DELAY_MS, 'the whole pre-stop delay was served')
    t.equal(report.stages.drain!.deadlineReached, false, 'the drain ended before its deadline')
    t.ok(report.stages.teardown !== undefined, 'the teardown ran')
    t.same(proc.phases(), ['ready', 'draining', 'closing', 'closed'])
    t.equal(proc.logs('graceful: shutdown complete, exiting').length, 1, 'and said so, once')
  })
}
