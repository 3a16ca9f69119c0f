// `npm run bench:overhead`: bare Fastify hello world against the same app with the whole suite
// registered. Three servers run at the same time, pinned together on CPU 0, so they share one
// core under the same load and the noise of this 2-core VM hits them alike: bare, the suite,
// and a second bare server as a control; three new ones each round. The load generator runs in
// its own process on CPU 1.
// Two loads, one after the other: plain keep-alive (pipelining 1) and HTTP/1.1 pipelining 10
// (PIPELINING=1,10 by default). For each, reports per round and the median, min and max of the
// ratios against bare: requests per second, and server CPU time per request. The control's ratios are what "no difference"
// looks like in this run: a cost is measurable only if the suite's ratios fall outside them.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'

const ROUNDS = Number(process.env.ROUNDS ?? 9)
const PIPELINING = (process.env.PIPELINING ?? '1,10').split(',').map(Number)
const SECONDS = Number(process.env.SECONDS ?? 5)
// Single pieces (`drain`, `health`) instead of the whole suite, to find where a cost comes from;
// `metrics`: the suite with its Prometheus metrics (AGAINST=metrics npm run bench:overhead).
const AGAINST = process.env.AGAINST ?? 'suite'
const here = (/** @type {string} */ file) => fileURLToPath(new URL(file, import.meta.url))
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

/** @param {string} mode */
async function startServer (mode) {
  const child = spawn('taskset', ['-c', '0', process.execPath, here('./overhead-server.js')], { env: { ...process.env, MODE: mode }, stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = await once(/** @type {import('node:stream').Readable} */ (child.stdout), 'data')
  return { name: mode, child, port: JSON.parse(String(chunk)).port }
}

/**
 * utime + stime of a process, in seconds (Linux /proc).
 * @param {number | undefined} pid
 */
function cpuSeconds (pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
}

/** @type {string | undefined} */
let tool
/**
 * Loads the servers at once for `seconds`; returns the requests each answered.
 * @param {number[]} ports
 * @param {number} seconds
 * @param {number} pipelining
 * @returns {Promise<Array<{ requests: number, errors: number }>>}
 */
async function loadRound (ports, seconds, pipelining) {
  const child = spawn('taskset', ['-c', '1', process.execPath, here('./overhead-load.js'), String(seconds), ...ports.map(String)], { env: { ...process.env, PIPELINING: String(pipelining) }, stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk) => { out += chunk })
  await once(child, 'exit')
  const parsed = JSON.parse(out)
  tool = parsed.tool
  return parsed.results
}

/** @type {Array<Awaited<ReturnType<typeof startServer>>>} */
let running = []
// The server pids are those of node under taskset (taskset execs).
const stop = () => { for (const server of running) server.child.kill('SIGKILL') }
process.on('exit', stop)

console.log(`overhead: bare Fastify vs Fastify + ${AGAINST === 'suite' ? 'fastify-lifecycle (health, drain, pre-stop, teardown, graceful)' : AGAINST === 'metrics' ? 'fastify-lifecycle with its Prometheus metrics' : `fastify-lifecycle's ${AGAINST} plugin alone`}, and bare vs bare as the control`)
console.log(`machine: ${cpus().length} cores (${cpus()[0].model}); the three servers pinned together on CPU 0, the load generator (32 connections per server) on CPU 1`)
console.log(`Node ${process.version}, ${new Date().toISOString()}, ${ROUNDS} rounds of ${SECONDS}s per load, each on three new server processes after a 2s warm-up`)

const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (/** @type {number[]} */ xs) => `median ${median(xs).toFixed(3)}, min ${Math.min(...xs).toFixed(3)}, max ${Math.max(...xs).toFixed(3)}`
/** @type {string[]} */
const summary = []

for (const pipelining of PIPELINING) {
  /** @type {Record<'suite' | 'control', { rps: number[], cpu: number[] }>} */
  const ratios = { suite: { rps: [], cpu: [] }, control: { rps: [], cpu: [] } }
  let utilisation = 0
  console.log(`\npipelining ${pipelining}`)
  console.log('round   bare req/s   suite req/s   control req/s   suite/bare req/s   CPU/req   control/bare req/s   CPU/req')
  for (let round = 1; round <= ROUNDS; round++) {
    // New processes every round: two identical processes can differ by a percent or two for
    // their whole life (memory layout, JIT), which would otherwise stick to one side. The start
    // order rotates, and so does the order the load generator loads them in.
    const modes = ['bare', AGAINST, 'bare']
    const started = []
    for (let i = 0; i < modes.length; i++) started.push(await startServer(modes[(i + round) % modes.length]))
    running = started
    // The two bare servers swap roles every round: whichever started first is the reference in
    // odd rounds and the control in even ones, so start order cannot bias the control.
    const bares = started.filter((server) => server.name === 'bare')
    const [bare, control] = round % 2 === 1 ? bares : [bares[1], bares[0]]
    const suite = /** @type {typeof started[number]} */ (started.find((server) => server.name === AGAINST))
    await loadRound(started.map((server) => server.port), 2, pipelining)
    const before = started.map((server) => cpuSeconds(server.child.pid))
    const results = await loadRound(started.map((server) => server.port), SECONDS, pipelining)
    const cpu = new Map(started.map((server, i) => [server, cpuSeconds(server.child.pid) - before[i]]))
    const requests = new Map(started.map((server, i) => [server, results[i]]))
    const errors = results.reduce((sum, result) => sum + result.errors, 0)
    if (errors > 0) throw new Error(`errors under load: ${JSON.stringify(results)}`)
    // Also what lets this process exit at the end: the servers' stdout pipes would keep it alive.
    stop()
    const rps = (/** @type {typeof bare} */ server) => /** @type {{ requests: number }} */ (requests.get(server)).requests / SECONDS
    const cpuPerRequest = (/** @type {typeof bare} */ server) => /** @type {number} */ (cpu.get(server)) / /** @type {{ requests: number }} */ (requests.get(server)).requests
    for (const [name, server] of /** @type {const} */ ([['suite', suite], ['control', control]])) {
      ratios[name].rps.push(rps(server) / rps(bare))
      ratios[name].cpu.push(cpuPerRequest(server) / cpuPerRequest(bare))
    }
    utilisation += [...cpu.values()].reduce((sum, seconds) => sum + seconds, 0) / SECONDS
    const cell = (/** @type {number} */ value, /** @type {number} */ width) => value.toFixed(3).padStart(width)
    console.log(`${String(round).padStart(5)}   ${rps(bare).toFixed(0).padStart(10)}   ${rps(suite).toFixed(0).padStart(11)}   ${rps(control).toFixed(0).padStart(13)}   ${cell(ratios.suite.rps[round - 1], 16)}   ${cell(ratios.suite.cpu[round - 1], 7)}   ${cell(ratios.control.rps[round - 1], 18)}   ${cell(ratios.control.cpu[round - 1], 7)}`)
  }
  console.log(`load generator: ${tool}; CPU 0 busy with the three servers: ${(100 * utilisation / ROUNDS).toFixed(0)}% (near 100%: the servers, not the load generator, set the pace)`)
  summary.push(
    `pipelining ${String(pipelining).padEnd(2)}  req/s suite/bare:     ${fmt(ratios.suite.rps)}`,
    `pipelining ${String(pipelining).padEnd(2)}  req/s control/bare:   ${fmt(ratios.control.rps)}`,
    `pipelining ${String(pipelining).padEnd(2)}  CPU/req suite/bare:   ${fmt(ratios.suite.cpu)}`,
    `pipelining ${String(pipelining).padEnd(2)}  CPU/req control/bare: ${fmt(ratios.control.cpu)}`
  )
}
console.log('\n' + summary.join('\n'))
