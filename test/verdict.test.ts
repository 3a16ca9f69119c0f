// The verify command's verdict, findings, output and report, from observations made up here
// (the command itself runs on real services in test/integration/verify.test.ts).
import { test } from 'tap'
import type { Outcome } from '../cli/load.js'
import { countRequests, findings, outcomeKind, timeline, verdictOf, type Observed } from '../cli/verdict.js'
import { describe, parse } from '../cli/command.js'
import { renderReport } from '../cli/report-html.js'
import type { VerifyResult } from '../cli/verify.js'

function outcome (fields: Partial<Outcome>): Outcome {
  return { id: 'r', path: '/', fresh: false, reused: false, startedAt: 0, endedAt: 10, ...fields }
}

test('requests are counted by outcome; what is still pending counts as timed out', async (t) => {
  const outcomes = [
    outcome({ status: 200 }),
    outcome({ status: 503 }),
    outcome({ status: 500 }),
    outcome({ status: 404 }),
    outcome({ error: 'ECONNREFUSED' }),
    outcome({ error: 'ECONNRESET', reused: true }),
    outcome({ error: 'UND_ERR_SOCKET' }),
    outcome({ error: 'UND_ERR_HEADERS_TIMEOUT' }),
    outcome({ endedAt: 0 })
  ]
  t.same(countRequests(outcomes), { sent: 9, answered: 1, lost: 6, refused: 1, resets: 2, resetsOnReused: 1, timeouts: 2, status503: 1, otherStatus: 2 })
  t.equal(outcomeKind(outcome({ status: 302 })), 'status')
  const slots = timeline([outcome({ status: 200, endedAt: 250 }), outcome({ error: 'ECONNREFUSED', endedAt: 30 }), outcome({ startedAt: 120, endedAt: 0 })], 0)
  t.same(slots, [{ atMs: 0, ok: 0, refused: 1, lost: 0 }, { atMs: 100, ok: 0, refused: 0, lost: 1 }, { atMs: 200, ok: 1, refused: 0, lost: 0 }])
})

const clean: Observed = {
  requests: countRequests([outcome({ status: 200 })]),
  inFlightAtSignal: 3,
  slowRequests: true,
  signal: 'SIGTERM',
  exit: { code: 0, signal: null, afterSignalMs: 800 },
  killedAfterMs: undefined,
  readinessFlipMs: 40,
  readinessProbed: true,
  listenerClosedMs: 500,
  livenessFailures: 0,
  idleSockets: { opened: 4, openAtExit: 0 },
  report: { clean: true, forced: [], exitCode: 0 }
}

test('a clean shutdown has no findings and passes', async (t) => {
  t.same(findings(clean), [])
  t.equal(verdictOf([]), 'pass')
})

test('each problem has its finding, with the likely cause and the fix', async (t) => {
  const kinds = (observed: Partial<Observed>): string[] => findings({ ...clean, ...observed }).map((finding) => `${finding.severity}:${finding.kind}`)
  t.same(kinds({ killedAfterMs: 60_000, exit: { code: null, signal: 'SIGKILL', afterSignalMs: 60_000 } }), ['fail:no-exit'])
  t.same(kinds({ exit: { code: 1, signal: null, afterSignalMs: 10_000 }, report: { clean: false, forced: ['drain: 2 request(s) cut at the 5000ms deadline'], exitCode: 1 } }), ['fail:exit-code'])
  t.match(findings({ ...clean, exit: { code: 1, signal: null, afterSignalMs: 10_000 }, report: { clean: false, forced: ['drain: 2 request(s) cut at the 5000ms deadline'], exitCode: 1 } })[0]?.message, 'exit code 1 after 10000 ms: drain: 2 request(s) cut at the 5000ms deadline')
  t.match(findings({ ...clean, exit: { code: 1, signal: null, afterSignalMs: undefined }, report: undefined })[0], { message: 'exit code 1', fix: /Log the shutdown/ })
  const resets = countRequests([outcome({ error: 'ECONNRESET', reused: true }), outcome({ error: 'ECONNRESET' })])
  t.same(kinds({ requests: resets }), ['fail:keep-alive-resets', 'fail:lost-requests'])
  t.same(kinds({ requests: resets, exit: { code: null, signal: 'SIGTERM', afterSignalMs: 20 } }), ['fail:no-handler', 'fail:lost-requests'], 'killed: every reset is a cut request')
  t.match(findings({ ...clean, requests: resets, exit: { code: null, signal: 'SIGTERM', afterSignalMs: 20 }, inFlightAtSignal: 0 })[0]?.message, /^the process was killed by SIGTERM: nothing handles it$/)
  t.same(kinds({ requests: countRequests([outcome({ status: 404 })]) }), ['warn:error-status'])
  t.same(kinds({ idleSockets: { opened: 4, openAtExit: 4 }, exit: { code: 0, signal: null, afterSignalMs: 10_500 } }), ['warn:idle-sockets'])
  t.same(kinds({ idleSockets: { opened: 4, openAtExit: 4 }, exit: { code: 0, signal: null, afterSignalMs: 300 } }), [], 'open at a prompt exit: nothing held it')
  t.same(kinds({ readinessFlipMs: undefined }), ['warn:readiness'])
  t.same(kinds({ readinessFlipMs: 600 }), ['warn:readiness'], 'after the listener closed')
  t.same(kinds({ readinessFlipMs: 600, listenerClosedMs: undefined }), [])
  t.same(kinds({ livenessFailures: 2 }), ['warn:liveness'])
  t.same(kinds({ listenerClosedMs: 10, readinessFlipMs: 5 }), ['info:no-serving-window'])
  t.same(kinds({ slowRequests: false }), ['info:no-slow-requests'])
  t.same(kinds({ report: undefined }), ['info:no-report'])
  t.equal(verdictOf(findings({ ...clean, livenessFailures: 1 })), 'pass', 'warnings do not fail')
})

const result: VerifyResult = {
  verdict: 'fail',
  mode: 'shutdown',
  command: 'node <server>.js',
  origin: 'http://127.0.0.1:3000',
  requests: countRequests([outcome({ status: 200 }), outcome({ error: 'ECONNRESET', reused: true }), outcome({ error: 'ECONNREFUSED' })]),
  inFlightAtSignal: 1,
  readiness: { flipMs: undefined },
  liveness: { failures: undefined },
  listenerClosedMs: undefined,
  idleSockets: { opened: 4, openAtExit: 1 },
  exit: { code: 1, signal: null, afterSignalMs: undefined },
  report: { clean: false, forced: ['drain: cut'] },
  findings: findings({ ...clean, requests: countRequests([outcome({ error: 'ECONNRESET', reused: true })]), livenessFailures: 1, slowRequests: false }),
  timeline: { slots: [], signalMs: 0, readinessFlipMs: undefined, listenerClosedMs: undefined, exitMs: undefined },
  output: []
}

test('the text says what happened, coloured only when asked', async (t) => {
  const plain = describe(result, false)
  t.match(plain, /^verify: FAIL \(a shutdown under load of node <server>.js\)/)
  t.match(plain, /1 lost \(1 reset or hung up, of which 1 on reused keep-alive sockets; 0 timed out; 0 answered 503\)/)
  t.match(plain, /refused: 1 \(expected once the listener is closed\)/)
  t.match(plain, /readiness failed: never; liveness failures: not probed/)
  t.match(plain, /exit: code 1\n/)
  t.match(plain, /the service's report: not clean: drain: cut/)
  t.match(plain, / {2}fail 1 request\(s\) reset on reused keep-alive sockets/)
  t.match(plain, / {2}warn liveness failed 1 time\(s\)/)
  t.match(plain, / {2}info the load had no slow requests/)
  const ESC = '\u001b'
  t.notOk(plain.includes(ESC), 'no colour codes')
  const coloured = describe({ ...result, verdict: 'pass', mode: 'reload', findings: [], report: undefined }, true)
  t.ok(coloured.startsWith(`verify: ${ESC}[32mPASS${ESC}[0m (a reload under load`), 'green PASS')
  t.notMatch(coloured, /exit:|findings:/, 'a reload reports no exit')
  t.ok(describe({ ...result, findings: [] }, true).includes(`${ESC}[31mFAIL`), 'red FAIL')
  const marks = describe(result, true)
  t.ok([`${ESC}[31mfail${ESC}[0m`, `${ESC}[33mwarn${ESC}[0m`, `${ESC}[36minfo${ESC}[0m`].every((mark) => marks.includes(mark)), 'each severity in its colour')
})

test('the HTML report escapes what it shows, and marks only what happened', async (t) => {
  const html = renderReport(result)
  t.match(html, /node &#60;server&#62;.js/, 'escaped')
  t.match(html, /<span class="fail">fail<\/span>/)
  t.notMatch(html, /<rect /, 'no bars without requests')
  t.match(html, />signal \(0 ms\)</)
  t.notMatch(html, />exit \(/)
  t.match(renderReport({ ...result, findings: [] }), /<p>None.<\/p>/)
  t.match(renderReport({ ...result, mode: 'reload' }), />reload signal \(0 ms\)</)
  t.match(renderReport({ ...result, exit: { code: null, signal: 'SIGTERM', afterSignalMs: 12 } }), /killed by SIGTERM<\/td>.*12 ms/s)
})

test('options: defaults, names without SIG, and none for the probes', async (t) => {
  const parsed = parse(['verify', '--signal', 'int', '--ready-path', 'none', '--live-path', '/health', '--port', '8080', '--report', 'r.html', '--', 'node', 'server.js'])
  t.match(parsed, { help: false, json: false, report: 'r.html', options: { command: ['node', 'server.js'], signal: 'SIGINT', readyPath: null, livePath: '/health', port: 8080, path: '/', slowPath: undefined, connections: 20, duration: 3000, timeout: 60_000, readyTimeout: 30_000, reload: undefined } })
  t.same(parse(['-h']), { help: true })
})
