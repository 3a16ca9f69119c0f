// `npm run bench:overhead`: bare Fastify hello world against the same app with the whole suite
// registered. Both servers run at the same time, pinned together on CPU 0, so they share one
// core under the same load and the noise of this 2-core VM hits both alike; the load generator
// runs in its own process on CPU 1. Reports per round and the median, min and max of the
// ratios suite/bare: requests per second, and server CPU time per request.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { fileURLToPath } from 'node:url'

const ROUNDS = Number(process.env.ROUNDS ?? 7)
const SECONDS = Number(process.env.SECONDS ?? 5)
const here = (/** @type {string} */ file) => fileURLToPath(new URL(file, import.meta.url))
const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim())

/** @param {'bare' | 'suite'} mode */
async function startServer (mode) {
  const child = spawn('taskset', ['-c', '0', process.execPath, here('./overhead-server.js')], { env: { ...process.env, MODE: mode }, stdio: ['ignore', 'pipe', 'inherit'] })
  const [chunk] = await once(/** @type {import('node:stream').Readable} */ (child.stdout), 'data')
  return { child, port: JSON.parse(String(chunk)).port }
}

/**
 * utime + stime of a process, in seconds (Linux /proc).
 * @param {number | undefined} pid
 */
function cpuSeconds (pid) {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond
}

/**
 * @param {number} portA
 * @param {number} portB
 * @param {number} seconds
 */
async function loadRound (portA, portB, seconds) {
  const child = spawn('taskset', ['-c', '1', process.execPath, here('./overhead-load.js'), String(portA), String(portB), String(seconds)], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  child.stdout.on('data', (chunk) => { out += chunk })
  await once(child, 'exit')
  return JSON.parse(out)
}

const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const bare = await startServer('bare')
const suite = await startServer(/** @type {'suite'} */ (process.env.AGAINST ?? 'suite'))
// The server pids are those of node under taskset (taskset execs).
process.on('exit', () => { bare.child.kill('SIGKILL'); suite.child.kill('SIGKILL') })

console.log('overhead: bare Fastify vs Fastify + fastify-lifecycle (health, drain, pre-stop, teardown, graceful)')
console.log(`machine: ${cpus().length} cores (${cpus()[0].model}); both servers pinned together on CPU 0, load generator (autocannon, 32 connections per server) on CPU 1`)
console.log(`Node ${process.version}, ${new Date().toISOString()}, ${ROUNDS} rounds of ${SECONDS}s after a warm-up round`)
await loadRound(bare.port, suite.port, 2)

const rpsRatios = []
const cpuRatios = []
let utilisation = 0
console.log('\nround   bare req/s   suite req/s   req/s ratio   CPU/req ratio')
for (let round = 1; round <= ROUNDS; round++) {
  // Alternate which server autocannon starts first.
  const swap = round % 2 === 0
  const before = { bare: cpuSeconds(bare.child.pid), suite: cpuSeconds(suite.child.pid) }
  const result = await loadRound(swap ? suite.port : bare.port, swap ? bare.port : suite.port, SECONDS)
  const after = { bare: cpuSeconds(bare.child.pid), suite: cpuSeconds(suite.child.pid) }
  const counts = swap ? { bare: result.b, suite: result.a } : { bare: result.a, suite: result.b }
  if (counts.bare.errors + counts.suite.errors > 0) throw new Error(`errors under load: ${JSON.stringify(counts)}`)
  const rps = { bare: counts.bare.requests / SECONDS, suite: counts.suite.requests / SECONDS }
  const cpuPerReq = { bare: (after.bare - before.bare) / counts.bare.requests, suite: (after.suite - before.suite) / counts.suite.requests }
  utilisation += ((after.bare - before.bare) + (after.suite - before.suite)) / SECONDS
  const rpsRatio = rps.suite / rps.bare
  const cpuRatio = cpuPerReq.suite / cpuPerReq.bare
  rpsRatios.push(rpsRatio)
  cpuRatios.push(cpuRatio)
  console.log(`${String(round).padStart(5)}   ${rps.bare.toFixed(0).padStart(10)}   ${rps.suite.toFixed(0).padStart(11)}   ${rpsRatio.toFixed(3).padStart(11)}   ${cpuRatio.toFixed(3).padStart(13)}`)
}
const fmt = (/** @type {number[]} */ xs) => `median ${median(xs).toFixed(3)}, min ${Math.min(...xs).toFixed(3)}, max ${Math.max(...xs).toFixed(3)}`
console.log(`\nrequests per second, suite / bare: ${fmt(rpsRatios)}`)
console.log(`server CPU time per request, suite / bare: ${fmt(cpuRatios)}`)
console.log(`CPU 0 busy with the two servers: ${(100 * utilisation / ROUNDS).toFixed(0)}% (near 100%: the servers, not the load generator, set the pace)`)
