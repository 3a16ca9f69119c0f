// `npm run bench:rolling [-- --short]`: HAProxy on 127.0.0.1 in front of 3 replicas of
// examples/service.js, health-checking /readyz the way an endpoints controller would, constant
// keep-alive load through it with a share of slow requests, and the replicas replaced one by
// one (start a new one, wait until HAProxy sees it up, SIGTERM an old one), for several rounds.
// Run twice: HAProxy's default server-connection reuse, then `http-reuse always`. Then the
// same with a Fastify service shut down the common way, for contrast.
// Exits 1 if the fastify-lifecycle target lost a single request.
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLoad } from '../dist/cli/load.js'
import { freePort, startProcess } from './lib/processes.js'

const SHORT = process.argv.includes('--short')
const ROUNDS = SHORT ? 1 : 3
const REPLICAS = 3
const PRE_STOP_DELAY_MS = 2000 // > HAProxy's detection time: inter 500ms x fall 1, plus margin
const HEALTH_INTERVAL_MS = 500
const ADAPTIVE_QUIET_MS = 300
const service = fileURLToPath(new URL('../examples/service.js', import.meta.url))
const naive = fileURLToPath(new URL('./naive-service.js', import.meta.url))

try {
  execFileSync('haproxy', ['-v'], { stdio: 'ignore' })
} catch {
  console.error('HAProxy is not installed. Install it with: apt-get update && apt-get install -y haproxy (as root)')
  process.exit(2)
}

const dir = mkdtempSync(join(tmpdir(), 'fastify-lifecycle-rolling-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

/**
 * Asks HAProxy's runtime API for each server's status (UP, DOWN, MAINT…).
 * @param {string} socketPath
 * @returns {Promise<Map<string, string>>}
 */
async function serverStatus (socketPath) {
  const socket = connect(socketPath)
  socket.end('show stat\n')
  let text = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk) => { text += chunk })
  await once(socket, 'end')
  const status = new Map()
  for (const row of text.split('\n')) {
    const cols = row.split(',')
    if (cols[0] === 'be' && cols[1] !== 'BACKEND') status.set(cols[1], cols[17])
  }
  return status
}

/**
 * HAProxy has no push API: poll its runtime state, bounded in time.
 * @param {string} socketPath
 * @param {string} server
 * @param {string} wanted
 */
async function waitForServer (socketPath, server, wanted) {
  const until = Date.now() + 20_000
  while (Date.now() < until) {
    const status = (await serverStatus(socketPath)).get(server)
    if (status?.startsWith(wanted)) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`HAProxy never saw ${server} ${wanted}`)
}

/**
 * One run: HAProxy, REPLICAS replicas, load, ROUNDS rounds of replacement.
 * @param {{ name: string, target: 'lifecycle' | 'naive', reuse: 'safe' | 'always', rounds: number, env?: Record<string, string> }} run
 */
async function rollingRestart ({ name, target, reuse, rounds, env = {} }) {
  const frontPort = await freePort()
  const socketPath = join(dir, `${name}.sock`)
  // Two ports per slot: the new replica starts on the free one while the old one drains.
  const slots = []
  for (let i = 0; i < REPLICAS; i++) slots.push({ ports: [await freePort(), await freePort()], active: 0, replica: /** @type {any} */ (null) })
  const servers = slots.flatMap((slot, i) => slot.ports.map((port, j) => `  server s${i}${'ab'[j]} 127.0.0.1:${port} check`))
  const config = join(dir, `${name}.cfg`)
  writeFileSync(config, [
    'global',
    `  stats socket ${socketPath} mode 600 level admin`,
    '  log stdout format raw local0 notice',
    'defaults',
    '  mode http',
    '  log global',
    '  option httplog',
    '  timeout connect 2s',
    '  timeout client 30s',
    '  timeout server 30s',
    '  retries 3',
    'frontend fe',
    `  bind 127.0.0.1:${frontPort}`,
    '  default_backend be',
    'backend be',
    '  balance roundrobin',
    '  option httpchk GET /readyz',
    '  http-check expect status 200',
    `  http-reuse ${reuse}`,
    `  default-server inter ${HEALTH_INTERVAL_MS} fall 1 rise 1`,
    ...servers,
    ''
  ].join('\n'))
  const haproxy = startProcess('haproxy', ['-f', config, '-db'])

  const script = target === 'lifecycle' ? service : naive
  /** @param {number} port */
  const startReplica = async (port) => {
    const replica = startProcess(process.execPath, [script], {
      env: { PORT: String(port), HOST: '127.0.0.1', PRE_STOP_DELAY_MS: String(PRE_STOP_DELAY_MS), DRAIN_TIMEOUT_MS: '5000', REDIS_URL: '', PG_URL: '', ...env }
    })
    await replica.waitFor((l) => String(l.msg).startsWith('Server listening'))
    return replica
  }
  for (const [i, slot] of slots.entries()) {
    slot.replica = await startReplica(slot.ports[0])
    await waitForServer(socketPath, `s${i}a`, 'UP')
    await waitForServer(socketPath, `s${i}b`, 'DOWN')
  }

  const load = startLoad({ origin: `http://127.0.0.1:${frontPort}`, keepAliveClients: 30, freshClients: 5, maxDurationMs: 600_000, idPrefix: name })
  const shutdowns = []
  const started = performance.now()
  for (let round = 0; round < rounds; round++) {
    for (const [i, slot] of slots.entries()) {
      const next = 1 - slot.active
      const fresh = await startReplica(slot.ports[next])
      await waitForServer(socketPath, `s${i}${'ab'[next]}`, 'UP')
      const old = slot.replica
      const signalAt = performance.now()
      old.kill('SIGTERM')
      const { code } = await old.exited
      const report = old.lines.find((/** @type {Record<string, any>} */ l) => l.msg === 'lifecycle: shutdown report')?.report
      shutdowns.push({ replica: `s${i}${'ab'[slot.active]}`, exitCode: code, shutdownMs: Math.round(performance.now() - signalAt), lost: report?.forced ?? [], preStop: report?.stages?.preStop })
      slot.replica = fresh
      slot.active = next
    }
  }
  const rolloutMs = Math.round(performance.now() - started)
  load.stop()
  const outcomes = await load.done
  for (const slot of slots) slot.replica.kill('SIGTERM')
  await Promise.all(slots.map((slot) => slot.replica.exited))
  haproxy.kill('SIGTERM')
  await haproxy.exited

  const kinds = { answered: 0, refused: 0, reset: 0, http502: 0, http503: 0, otherStatus: 0, timeout: 0, otherError: 0 }
  for (const o of outcomes) {
    if (o.status !== undefined) {
      if (o.status >= 200 && o.status < 300) kinds.answered++
      else if (o.status === 502) kinds.http502++
      else if (o.status === 503) kinds.http503++
      else kinds.otherStatus++
    } else if (o.error === 'ECONNREFUSED') kinds.refused++
    else if (o.error === 'ECONNRESET' || o.error === 'UND_ERR_SOCKET') kinds.reset++
    else if (String(o.error).includes('TIMEOUT')) kinds.timeout++
    else kinds.otherError++
  }
  const failed = outcomes.length - kinds.answered
  const haproxyErrors = haproxy.lines.filter((l) => / 5\d\d /.test(String(l.msg)) || /SC--|CD--|SD--/.test(String(l.msg))).slice(0, 5).map((l) => l.msg)
  return { name, target, reuse, rounds, sent: outcomes.length, failed, kinds, shutdowns, haproxyErrors, rolloutMs }
}

const runs = [
  { name: 'lifecycle-reuse-safe', target: /** @type {const} */ ('lifecycle'), reuse: /** @type {const} */ ('safe'), rounds: ROUNDS },
  { name: 'lifecycle-reuse-always', target: /** @type {const} */ ('lifecycle'), reuse: /** @type {const} */ ('always'), rounds: ROUNDS },
  // The adaptive pre-stop window instead of the fixed delay: it ends once HAProxy, having seen
  // readiness fail, stops sending (its health checks are probes, not traffic).
  { name: 'lifecycle-adaptive', target: /** @type {const} */ ('lifecycle'), reuse: /** @type {const} */ ('safe'), rounds: ROUNDS, env: { PRE_STOP_DELAY_MS: '0', PRE_STOP_QUIET_MS: String(ADAPTIVE_QUIET_MS), PRE_STOP_MAX_MS: '5000' } },
  { name: 'naive-reuse-safe', target: /** @type {const} */ ('naive'), reuse: /** @type {const} */ ('safe'), rounds: 1 }
]

console.log(`rolling restart behind HAProxy: ${REPLICAS} replicas, ${SHORT ? 'short form' : 'full'}, Node ${process.version}, ${new Date().toISOString()}`)
let lost = 0
for (const run of runs) {
  const result = await rollingRestart(run)
  if (result.target === 'lifecycle') lost += result.failed
  const preStop = result.target === 'naive' ? '' : result.name === 'lifecycle-adaptive' ? `, adaptive pre-stop window (quiet ${ADAPTIVE_QUIET_MS} ms, no least time)` : `, fixed pre-stop delay ${PRE_STOP_DELAY_MS} ms`
  console.log(`\n${result.name}: ${result.target === 'lifecycle' ? 'fastify-lifecycle (examples/service.js)' : 'close-with-grace + app.close(), Fastify defaults'}, http-reuse ${result.reuse}${preStop}, ${result.rounds} round(s) of ${REPLICAS} replacements in ${result.rolloutMs} ms`)
  console.log(`  requests sent ${result.sent}, answered 2xx ${result.kinds.answered}, failed ${result.failed}`)
  console.log(`  failed by kind: refused ${result.kinds.refused}, reset ${result.kinds.reset}, 502 ${result.kinds.http502}, 503 ${result.kinds.http503}, other status ${result.kinds.otherStatus}, timeout ${result.kinds.timeout}, other error ${result.kinds.otherError}`)
  for (const s of result.shutdowns) {
    const window = s.preStop === undefined ? '' : `, window ${s.preStop.waitedMs} ms ended by ${s.preStop.endedBy}`
    console.log(`  replica ${s.replica}: exit code ${s.exitCode}, SIGTERM to exit ${s.shutdownMs} ms${window}${s.lost.length > 0 ? `, forced: ${s.lost.join('; ')}` : ''}`)
  }
  if (result.failed > 0 && result.haproxyErrors.length > 0) console.log(`  HAProxy log (first errors):\n    ${result.haproxyErrors.join('\n    ')}`)
}
console.log(lost === 0 ? '\nRESULT: fastify-lifecycle lost no request' : `\nRESULT: fastify-lifecycle lost ${lost} request(s)`)
process.exitCode = lost === 0 ? 0 : 1
