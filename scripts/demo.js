// `npm run demo`: starts examples/service.js, drives concurrent keep-alive load with slow
// requests in flight, sends a real SIGTERM, and prints what happened to every request.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { startLoad, summarize } from '../dist/cli/load.js'

const PRE_STOP_DELAY_MS = Number(process.env.PRE_STOP_DELAY_MS ?? 1000)
const DRAIN_TIMEOUT_MS = Number(process.env.DRAIN_TIMEOUT_MS ?? 5000)
const SLOW_MS = 800
const KEEP_ALIVE = 50
const FRESH = 10
const WARM_UP_RESPONSES = 300

const service = spawn(process.execPath, [fileURLToPath(new URL('../examples/service.js', import.meta.url))], {
  env: { ...process.env, PORT: '0', HOST: '127.0.0.1', PRE_STOP_DELAY_MS: String(PRE_STOP_DELAY_MS), DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS) },
  stdio: ['ignore', 'pipe', 'inherit']
})
const exited = once(service, 'exit')
// Never leave the service behind, whatever happens here.
process.on('exit', () => { if (service.exitCode === null) service.kill('SIGKILL') })

/** @type {Array<Record<string, any>>} */
const lines = []
/** @type {Array<{ test: (line: Record<string, any>) => boolean, resolve: (line: Record<string, any>) => void }>} */
let waiters = []
createInterface({ input: /** @type {import('node:stream').Readable} */ (service.stdout) }).on('line', (text) => {
  let line
  try { line = JSON.parse(text) } catch { return }
  lines.push(line)
  waiters = waiters.filter((w) => { if (w.test(line)) { w.resolve(line); return false } return true })
})
/** @param {(line: Record<string, any>) => boolean} test */
function waitForLog (test) {
  const found = lines.find(test)
  if (found) return Promise.resolve(found)
  return new Promise((resolve, reject) => {
    waiters.push({ test, resolve })
    exited.then(() => reject(new Error('the service exited early; run `npm run build` first?')))
  })
}

const listening = await waitForLog((l) => String(l.msg).startsWith('Server listening at '))
const origin = String(listening.msg).slice('Server listening at '.length)
const load = startLoad({
  origin,
  keepAliveClients: KEEP_ALIVE,
  freshClients: FRESH,
  path: (n) => n % 5 === 4 ? `/slow?ms=${SLOW_MS}` : '/',
  maxDurationMs: 60_000,
  idPrefix: 'demo'
})

let completed = 0
await waitForLog((l) => l.msg === 'request completed' && ++completed >= WARM_UP_RESPONSES)
const signalAt = performance.now()
service.kill('SIGTERM')
const draining = await waitForLog((l) => l.phase === 'draining')
// A load balancer stops routing here during the pre-stop delay; this client stops when the
// listener closes, and counts whatever still raced the close.
await waitForLog((l) => l.phase === 'closing')
load.stop()
const [code] = await exited
const exitMs = performance.now() - signalAt
const outcomes = await load.done

const accepted = new Set(lines.filter((l) => l.msg === 'incoming request').map((l) => String(l.reqId)))
const s = summarize(outcomes, accepted)
const lost = s.failedAfterAccept + s.non2xx
const report = lines.find((l) => l.msg === 'lifecycle: shutdown report')?.report
const inFlightAtSignal = outcomes.filter((o) => o.startedAt < signalAt && (o.endedAt === 0 || o.endedAt > signalAt)).length

const row = (/** @type {string} */ label, /** @type {unknown} */ value) => console.log(`  ${label.padEnd(50)} ${value}`)
console.log('\nfastify-lifecycle demo: a real SIGTERM under concurrent keep-alive load\n')
row('service', `node examples/service.js (pid ${service.pid}), ${origin}`)
row('options', `pre-stop delay ${PRE_STOP_DELAY_MS} ms, drain timeout ${DRAIN_TIMEOUT_MS} ms`)
row('load', `${KEEP_ALIVE} keep-alive + ${FRESH} fresh-connection clients, every 5th request /slow?ms=${SLOW_MS}`)
console.log('')
row('outstanding at SIGTERM: sent / in the server', `${inFlightAtSignal} / ${draining.inFlight}`)
row('requests sent', s.sent)
row('answered 2xx', s.answered2xx)
row('LOST (accepted, then failed or non-2xx)', lost)
row('never reached the server (listener closed)', `${s.failed - s.failedAfterAccept} ${JSON.stringify(s.errors)}`)
row('SIGTERM to exit', `${Math.round(exitMs)} ms`)
row('exit code', code)
if (report) {
  console.log('\n  phases (from the shutdown report):')
  for (const p of report.phases) {
    console.log(`    ${p.phase.padEnd(9)} at ${String(p.atMs).padStart(7)} ms, lasted ${String(p.durationMs).padStart(7)} ms, ${p.inFlight} in flight`)
  }
  console.log(`    drain: ${JSON.stringify(report.stages.drain)}`)
}
console.log('')
if (lost > 0 || code !== 0) {
  console.log('  RESULT: requests were lost or the exit was not clean')
  process.exitCode = 1
} else {
  console.log('  RESULT: nothing the server accepted was lost; clean exit')
}
