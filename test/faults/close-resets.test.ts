import { test } from 'tap'
import { startLoad } from '../../cli/load.js'
import { startFixture } from '../helpers/fixture.js'

// Connections that the kernel has completed but Node has not accepted yet, when the listener
// closes: the client has sent its request, so a reset there loses a request that cannot be
// retried safely. The drain closes the accept queue to new connections, accepts what is queued,
// then closes; a client that connects after that is refused (ECONNREFUSED, nothing sent).
// Clients connect without pause through the close, with the event loop free, and just after a
// 300 ms block that fills the accept queue; several rounds each, a new process each round.
// What docs/drain.md promises, and this checks: no queued connection is reset; a handshake
// that completes in the very last turn before the close can be (measured: 2 in 56 closes under
// this storm, with four copies of this test at once on 2 cores). Without the drain's queue
// handling, every round resets 27 to 43.
const ROUNDS = 4
const LAST_INSTANT_RESETS = 2
const resets = (error: string | undefined): boolean => error !== undefined && error !== 'ECONNREFUSED'

for (const blockMs of [0, 300]) {
  test(`the listener close resets no connection that reached it, ${blockMs === 0 ? 'event loop free' : `after a ${blockMs} ms event-loop block`} (${ROUNDS} rounds)`, async (t) => {
    const seen = []
    const resetIds: string[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const proc = await startFixture(t, 'service.js', {
        PRE_STOP_DELAY_MS: '200',
        DRAIN_TIMEOUT_MS: '3000',
        ...(blockMs > 0 ? { BLOCK_AT_CLOSE_MS: String(blockMs) } : {})
      })
      // Fresh connections, one per request, without pause: some are always in the accept queue.
      const load = startLoad({ origin: proc.address, keepAliveClients: 4, freshClients: 40, maxDurationMs: 20_000, path: () => '/', idPrefix: `r${round}` })
      await proc.waitForLog((l) => l.msg === 'request completed' && String(l.reqId).includes('-f') && String(l.reqId).endsWith('-3'))
      proc.kill('SIGTERM')
      // Keep connecting until the process is gone: through the close and after it.
      const exitCode = await proc.exitCode
      load.stop()
      const outcomes = await load.done
      const drain = proc.report()!.stages.drain!
      const failed = outcomes.filter((o) => resets(o.error))
      seen.push({ round, sent: outcomes.length, refused: outcomes.filter((o) => o.error === 'ECONNREFUSED').length, resets: failed.length, queuedAccepted: proc.logs('drain: listener closed, waiting for in-flight requests')[0]?.queuedAccepted })
      t.equal(exitCode, 0, `round ${round}: exit 0`)
      resetIds.push(...failed.map((o) => `${o.id}: ${o.error}`))
      t.equal(drain.cut, 0, `round ${round}: the drain cut nothing`)
      t.ok(outcomes.some((o) => o.error === 'ECONNREFUSED'), `round ${round}: clients kept connecting past the close (refused once it was closed)`)
      // pino's asynchronous destination once wrote lines out of order at the exit (4% of runs).
      t.equal(proc.lines.at(-1)?.msg, 'graceful: shutdown complete, exiting', `round ${round}: the last line logged is the last one written`)
    }
    t.comment(JSON.stringify(seen))
    t.ok(resetIds.length <= LAST_INSTANT_RESETS, `no queued connection was reset: ${resetIds.length} reset(s) in ${ROUNDS} closes, at most the last instant's (${resetIds.slice(0, 10).join(', ') || 'none'})`)
  })
}
