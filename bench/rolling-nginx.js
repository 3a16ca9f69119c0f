// `npm run bench:nginx [-- --short]`: nginx on 127.0.0.1 in front of 3 replicas of
// examples/service.js, as an ingress controller runs it: upstream keep-alive, no passive
// failure marking (max_fails=0), no retries (proxy_next_upstream off), and each old replica
// taken out of the upstream (`nginx -s reload`) some time after its SIGTERM, the lag of an
// endpoints update. Constant load through nginx; the replicas replaced one by one. Run with
// the fixed pre-stop delay shorter than the lag, then with the adaptive window and no least
// time, in the same run of the bench.
// Exits 1 if the adaptive run lost a single request, or if the fixed run lost none (then the
// bench did not reproduce the lag it exists to show).
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startLoad } from '../dist/cli/load.js'
import { listening, nginxConfig, requireNginx } from './lib/nginx.js'
import { freePort, startProcess } from './lib/processes.js'

const SHORT = process.argv.includes('--short')
const ROUNDS = SHORT ? 1 : 2
const REPLICAS = 3
/** How long after its SIGTERM a replica leaves the upstream: the endpoints lag. */
const REMOVAL_LAG_MS = 2500
const FIXED_DELAY_MS = 1500
const QUIET_MS = 500
const MAX_DELAY_MS = 5000 // with drain 5 s and teardown 10 s, inside the example's 25 s deadline
const service = fileURLToPath(new URL('../examples/service.js', import.meta.url))

requireNginx()

const dir = mkdtempSync(join(tmpdir(), 'fastify-lifecycle-nginx-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

/**
 * One run: nginx, REPLICAS replicas started with `env`, ROUNDS rounds of replacement.
 * @param {{ name: string, env: Record<string, string> }} run
 */
async function rollingRestart ({ name, env }) {
  const prefix = join(dir, name)
  mkdirSync(prefix)
  const frontPort = await freePort()
  const config = join(prefix, 'nginx.conf')
  /** @type {Set<number>} */
  const upstream = new Set()
  const writeUpstream = () => writeFileSync(config, nginxConfig(prefix, frontPort, [...upstream]))
  const reload = () => execFileSync('nginx', ['-c', config, '-p', prefix, '-s', 'reload'], { stdio: 'pipe' })

  const startReplica = async () => {
    const port = await freePort()
    const replica = startProcess(process.execPath, [service], {
      env: { PORT: String(port), HOST: '127.0.0.1', DRAIN_TIMEOUT_MS: '5000', REDIS_URL: '', PG_URL: '', ...env }
    })
    await replica.waitFor((l) => String(l.msg).startsWith('Server listening'))
    return { port, replica }
  }

  /** @type {Array<{ port: number, replica: ReturnType<typeof startProcess> }>} */
  let replicas = []
  for (let i = 0; i < REPLICAS; i++) replicas.push(await startReplica())
  for (const { port } of replicas) upstream.add(port)
  writeUpstream()
  const nginx = startProcess('nginx', ['-c', config, '-p', prefix, '-g', 'daemon off;'])
  await listening(frontPort)
  // In service once every replica has answered a request through it.
  const load = startLoad({ origin: `http://127.0.0.1:${frontPort}`, keepAliveClients: 30, freshClients: 5, maxDurationMs: 600_000, idPrefix: name })
  await Promise.all(replicas.map(({ replica }) => replica.waitFor((l) => l.msg === 'incoming request', 10_000)))

  const started = performance.now()
  const shutdowns = []
  for (let round = 0; round < ROUNDS; round++) {
    const next = []
    for (const old of replicas) {
      const fresh = await startReplica()
      upstream.add(fresh.port)
      writeUpstream()
      reload()
      await fresh.replica.waitFor((l) => l.msg === 'incoming request', 10_000)
      const signalAt = performance.now()
      old.replica.kill('SIGTERM')
      // The endpoints update reaches nginx REMOVAL_LAG_MS after the signal: a scenario's
      // timing, not a wait for something to happen.
      const removal = new Promise((resolve) => setTimeout(resolve, REMOVAL_LAG_MS)).then(() => {
        upstream.delete(old.port)
        writeUpstream()
        reload()
      })
      const { code } = await old.replica.exited
      const exitMs = Math.round(performance.now() - signalAt)
      await removal
      const report = old.replica.lines.find((l) => l.msg === 'lifecycle: shutdown report')?.report
      shutdowns.push({ port: old.port, exitCode: code, exitMs, preStop: report?.stages?.preStop, forced: report?.forced ?? [] })
      next.push(fresh)
    }
    replicas = next
  }
  const rolloutMs = Math.round(performance.now() - started)
  load.stop()
  const outcomes = await load.done
  for (const { replica } of replicas) replica.kill('SIGTERM')
  await Promise.all(replicas.map(({ replica }) => replica.exited))
  nginx.kill('SIGQUIT')
  await nginx.exited

  const kinds = { answered: 0, http502: 0, otherStatus: 0, refused: 0, reset: 0, otherError: 0 }
  for (const o of outcomes) {
    if (o.status !== undefined) {
      if (o.status >= 200 && o.status < 300) kinds.answered++
      else if (o.status === 502) kinds.http502++
      else kinds.otherStatus++
    } else if (o.error === 'ECONNREFUSED') kinds.refused++
    else if (o.error === 'ECONNRESET' || o.error === 'UND_ERR_SOCKET') kinds.reset++
    else kinds.otherError++
  }
  return { name, sent: outcomes.length, failed: outcomes.length - kinds.answered, kinds, shutdowns, rolloutMs }
}

/** @type {Array<{ name: string, label: string, env: Record<string, string> }>} */
const runs = [
  { name: 'fixed', label: `fixed pre-stop delay ${FIXED_DELAY_MS} ms`, env: { PRE_STOP_DELAY_MS: String(FIXED_DELAY_MS) } },
  { name: 'adaptive', label: `adaptive window: delay 0, quiet ${QUIET_MS} ms, maxDelay ${MAX_DELAY_MS} ms`, env: { PRE_STOP_DELAY_MS: '0', PRE_STOP_QUIET_MS: String(QUIET_MS), PRE_STOP_MAX_MS: String(MAX_DELAY_MS) } }
]

console.log(`rolling restart behind nginx: ${REPLICAS} replicas, each removed from the upstream ${REMOVAL_LAG_MS} ms after its SIGTERM, max_fails=0, proxy_next_upstream off, ${ROUNDS} round(s), Node ${process.version}, ${new Date().toISOString()}`)
/** @type {Record<string, number>} */
const failed = {}
for (const run of runs) {
  const result = await rollingRestart(run)
  failed[run.name] = result.failed
  console.log(`\n${run.name}: ${run.label}`)
  console.log(`  requests sent ${result.sent}, answered 2xx ${result.kinds.answered}, failed ${result.failed} (502 ${result.kinds.http502}, other status ${result.kinds.otherStatus}, refused ${result.kinds.refused}, reset ${result.kinds.reset}, other error ${result.kinds.otherError})`)
  console.log(`  rollout of ${result.shutdowns.length} replacements: ${result.rolloutMs} ms`)
  for (const s of result.shutdowns) {
    const window = s.preStop === undefined ? 'no report' : `window ${s.preStop.waitedMs} ms, ended by ${s.preStop.endedBy}${s.preStop.lastRequestMs === undefined ? '' : `, last request at ${s.preStop.lastRequestMs} ms`}`
    console.log(`  replica :${s.port}: exit code ${s.exitCode}, SIGTERM to exit ${s.exitMs} ms, ${window}${s.forced.length > 0 ? `, forced: ${s.forced.join('; ')}` : ''}`)
  }
}
const ok = failed.adaptive === 0 && failed.fixed > 0
console.log(`\nRESULT: adaptive window lost ${failed.adaptive} request(s); fixed ${FIXED_DELAY_MS} ms delay lost ${failed.fixed}${failed.fixed === 0 ? ' (the lag was not reproduced: this run proves nothing)' : ''}`)
process.exitCode = ok ? 0 : 1
