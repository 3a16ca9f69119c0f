// `npm run bench:reload [-- --rounds N]`: restarts of one service on one host, no load balancer,
// under constant keep-alive and fresh-connection load (8 + 3 clients, every 4th request slow):
// - plain restart: SIGTERM examples/service.js, start it again on the same port;
// - handoff: examples/service.js with RELOAD=handoff, SIGUSR2 (the listener passed to the new
//   process, the old one drains);
// - cluster: examples/cluster.js (2 workers), SIGHUP (workers replaced one at a time).
// For each: requests sent, failed by kind, and how long the restart took (from the signal to
// the old process's exit, or the primary's reload report). N rounds (default 3), one process
// chain per mode. Exits 1 if a handoff or cluster reload lost a single request.
import { fileURLToPath } from 'node:url'
import { startLoad, summarize } from '../dist/cli/load.js'
import { freePort, startProcess } from './lib/processes.js'

const at = process.argv.indexOf('--rounds')
const ROUNDS = at === -1 ? 3 : Number(process.argv[at + 1])
const service = fileURLToPath(new URL('../examples/service.js', import.meta.url))
const cluster = fileURLToPath(new URL('../examples/cluster.js', import.meta.url))
const ENV = { PRE_STOP_DELAY_MS: '0', HOST: '127.0.0.1' }

/** Successors of a handoff are not the benchmark's children: stopped by pid at the end. */
const successors = new Set()
process.on('exit', () => { for (const pid of successors) { try { process.kill(pid, 'SIGKILL') } catch {} } })

/** @param {number} ms */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
/**
 * The first line matching `test` in `lines`, polled: a handoff's later processes write to the
 * first one's output, which has exited by then.
 * @param {Array<Record<string, any>>} lines
 * @param {(line: Record<string, any>) => boolean} test
 */
async function lineIn (lines, test) {
  for (let i = 0; i < 1500; i++) {
    const found = lines.find(test)
    if (found !== undefined) return found
    await sleep(20)
  }
  throw new Error('no such line within 30 s')
}
/** @param {import('../dist/cli/load.js').Load} load */
const answered = (load) => load.outcomes.filter((o) => o.status !== undefined).length

/**
 * Load runs while `restart` happens `ROUNDS` times, with 1.5 s of traffic before and after each.
 * @param {string} origin
 * @param {(round: number) => Promise<number>} restart resolves with the restart's duration in ms
 */
async function measure (origin, restart) {
  const load = startLoad({ origin, keepAliveClients: 8, freshClients: 3, maxDurationMs: 120_000, maxRequestsPerClient: 1_000_000, path: (n) => n % 4 === 3 ? '/slow?ms=200' : '/', idPrefix: 'bench', timeoutMs: 10_000 })
  const durations = []
  await sleep(1500)
  for (let round = 0; round < ROUNDS; round++) {
    durations.push(await restart(round))
    const before = answered(load)
    // Traffic reaches the new processes before the next round (bounded).
    for (let i = 0; i < 150 && answered(load) < before + 200; i++) await sleep(20)
    await sleep(1500)
  }
  load.stop()
  const summary = summarize(await load.done)
  return { ...summary, durations }
}

async function plain () {
  const port = String(await freePort())
  let current = startProcess(process.execPath, [service], { env: { ...ENV, PORT: port } })
  await current.waitFor((l) => String(l.msg).startsWith('Server listening'))
  return measure(`http://127.0.0.1:${port}`, async () => {
    const started = performance.now()
    current.kill('SIGTERM')
    await current.exited
    current = startProcess(process.execPath, [service], { env: { ...ENV, PORT: port } })
    await current.waitFor((l) => String(l.msg).startsWith('Server listening'))
    return performance.now() - started
  }).finally(() => current.kill('SIGTERM'))
}

async function handoff () {
  const port = String(await freePort())
  const first = startProcess(process.execPath, [service], { env: { ...ENV, PORT: port, RELOAD: 'handoff' } })
  await first.waitFor((l) => String(l.msg).startsWith('Server listening'))
  let pid = /** @type {number} */ (first.child.pid)
  const result = await measure(`http://127.0.0.1:${port}`, async () => {
    const started = performance.now()
    const old = pid
    process.kill(old, 'SIGUSR2')
    const ready = await lineIn(first.lines, (l) => l.msg === 'reload: the new process is ready; this one drains and exits' && l.pid === old)
    pid = ready.newPid
    successors.add(pid)
    const exiting = await lineIn(first.lines, (l) => l.msg === 'graceful: shutdown complete, exiting' && l.pid === old)
    if (exiting.exitCode !== 0) throw new Error(`process ${old} exited ${exiting.exitCode} after the handoff`)
    return performance.now() - started
  })
  process.kill(pid, 'SIGTERM')
  return result
}

async function clustered () {
  const port = String(await freePort())
  const primary = startProcess(process.execPath, [cluster], { env: { ...ENV, PORT: port, WORKERS: '2' } })
  await primary.waitFor((l) => l.msg === 'primary: every worker ready')
  const result = await measure(`http://127.0.0.1:${port}`, async (round) => {
    primary.kill('SIGHUP')
    /** @param {Record<string, any>} l */
    const reported = (l) => typeof l.msg === 'string' && (l.msg.startsWith('primary: reload complete') || l.msg.startsWith('primary: reload rolled back'))
    const done = await primary.waitFor((l) => reported(l) && primary.lines.filter(reported).indexOf(l) === round)
    if (done.outcome !== 'replaced') throw new Error(`the reload was ${done.outcome}: ${done.reason}`)
    return done.durationMs
  })
  primary.kill('SIGTERM')
  await primary.exited
  return result
}

const rows = []
for (const [name, run] of /** @type {const} */ ([['plain restart (SIGTERM, start again)', plain], ['listener handoff (SIGUSR2)', handoff], ['cluster primary, 2 workers (SIGHUP)', clustered]])) {
  const result = await run()
  rows.push({ name, ...result })
  console.log(`${name}: ${result.sent} requests, ${result.failed} failed ${JSON.stringify(result.errors)}, ${result.non2xx} non-2xx; restart took ${result.durations.map((ms) => Math.round(ms)).join(', ')} ms`)
}

console.log('\n| restart | requests | failed (by kind) | non-2xx | restart took (ms, each round) |')
console.log('|---|---|---|---|---|')
for (const row of rows) {
  console.log(`| ${row.name} | ${row.sent} | ${row.failed}${row.failed > 0 ? ` (${Object.entries(row.errors).map(([code, n]) => `${n} ${code}`).join(', ')})` : ''} | ${row.non2xx} | ${row.durations.map((ms) => Math.round(ms)).join(', ')} |`)
}
const lost = rows.slice(1).filter((row) => row.failed + row.non2xx > 0)
if (lost.length > 0) {
  console.error(`\nFAIL: ${lost.map((row) => row.name).join(', ')} lost requests`)
  process.exit(1)
}
