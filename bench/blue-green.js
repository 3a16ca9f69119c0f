// `npm run bench:blue-green`: a blue and a green group of 2 replicas each behind nginx (upstream
// keep-alive, max_fails=0, proxy_next_upstream off), constant load through it. Blue serves;
// green is started and ready; the switch to green is issued and blue is sent SIGTERM at the same
// moment, as a deploy script does (`kubectl patch service …; kubectl scale deploy/blue
// --replicas=0`), while the switch reaches nginx SWITCH_LAG_MS later (the config rewrite and
// `nginx -s reload` of an ingress controller). Then the rollback: blue again, the switch back,
// green sent SIGTERM. Run with examples/service.js (adaptive pre-stop window), then with the
// contrast target (bench/naive-service.js: close-with-grace calling app.close()).
// Exits 1 if fastify-lifecycle lost a single request, or if the contrast lost none (then the
// lag was not reproduced).
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { request } from 'undici'
import { startLoad } from '../dist/cli/load.js'
import { countRequests } from '../dist/cli/verdict.js'
import { listening, nginxConfig, requireNginx } from './lib/nginx.js'
import { freePort, startProcess } from './lib/processes.js'

const REPLICAS = 2
/** From issuing the switch to nginx routing by it. */
const SWITCH_LAG_MS = 1500
const service = fileURLToPath(new URL('../examples/service.js', import.meta.url))
const naive = fileURLToPath(new URL('./naive-service.js', import.meta.url))

requireNginx()

const dir = mkdtempSync(join(tmpdir(), 'fastify-lifecycle-blue-green-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))

/** @param {number} port */
async function ready (port) {
  for (let i = 0; i < 200; i++) {
    try {
      const res = await request(`http://127.0.0.1:${port}/readyz`)
      await res.body.dump()
      if (res.statusCode === 200) return
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`127.0.0.1:${port} was never ready`)
}

/** @param {{ name: string, script: string, env: Record<string, string> }} run */
async function blueGreen ({ name, script, env }) {
  const prefix = join(dir, name)
  mkdirSync(prefix)
  const frontPort = await freePort()
  const config = join(prefix, 'nginx.conf')
  const route = (/** @type {number[]} */ ports) => writeFileSync(config, nginxConfig(prefix, frontPort, ports))

  const startGroup = async () => Promise.all(Array.from({ length: REPLICAS }, async () => {
    const port = await freePort()
    const replica = startProcess(process.execPath, [script], { env: { PORT: String(port), HOST: '127.0.0.1', REDIS_URL: '', PG_URL: '', ...env } })
    await replica.waitFor((l) => String(l.msg).startsWith('Server listening'))
    await ready(port)
    return { port, replica }
  }))

  /**
   * The switch to `next`: issued now, with the old group sent SIGTERM at once; nginx routes by
   * it SWITCH_LAG_MS later. Resolves once the old group has exited.
   * @param {Array<{ port: number, replica: ReturnType<typeof startProcess> }>} old
   * @param {Array<{ port: number, replica: ReturnType<typeof startProcess> }>} next
   */
  const switchTo = async (old, next) => {
    const effective = new Promise((resolve) => setTimeout(resolve, SWITCH_LAG_MS)).then(() => {
      route(next.map((r) => r.port))
      execFileSync('nginx', ['-c', config, '-p', prefix, '-s', 'reload'], { stdio: 'pipe' })
    })
    for (const { replica } of old) replica.kill('SIGTERM')
    const exits = await Promise.all(old.map(({ replica }) => replica.exited))
    await effective
    return exits.map((exit) => exit.code)
  }

  let blue = await startGroup()
  route(blue.map((r) => r.port))
  const nginx = startProcess('nginx', ['-c', config, '-p', prefix, '-g', 'daemon off;'])
  await listening(frontPort)
  const load = startLoad({ origin: `http://127.0.0.1:${frontPort}`, keepAliveClients: 20, freshClients: 5, maxDurationMs: 300_000, maxRequestsPerClient: 1_000_000, idPrefix: name, path: (n) => n % 5 === 4 ? '/slow?ms=300' : '/' })
  await new Promise((resolve) => setTimeout(resolve, 1000))

  const started = performance.now()
  const green = await startGroup()
  const blueExits = await switchTo(blue, green)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  // Rollback: blue again, traffic back to it, green shut down.
  blue = await startGroup()
  const greenExits = await switchTo(green, blue)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const switchesMs = Math.round(performance.now() - started)

  load.stop()
  const outcomes = await load.done
  for (const { replica } of blue) replica.kill('SIGTERM')
  await Promise.all(blue.map(({ replica }) => replica.exited))
  nginx.kill('SIGQUIT')
  await nginx.exited
  const counts = countRequests(outcomes)
  const http502 = outcomes.filter((o) => o.status === 502).length
  return { name, counts, failed: counts.sent - counts.answered, http502, exits: [...blueExits, ...greenExits], switchesMs }
}

/** @type {Array<{ name: string, script: string, env: Record<string, string>, label: string }>} */
const runs = [
  { name: 'fastify-lifecycle', script: service, env: { PRE_STOP_DELAY_MS: '0', PRE_STOP_QUIET_MS: '500', PRE_STOP_MAX_MS: '5000' }, label: 'examples/service.js, adaptive pre-stop window (quiet 500 ms)' },
  { name: 'contrast', script: naive, env: {}, label: 'bench/naive-service.js: close-with-grace calling app.close()' }
]
console.log(`blue-green behind nginx: ${REPLICAS} replicas per group, the switch effective ${SWITCH_LAG_MS} ms after it is issued and the old group is sent SIGTERM; switch, then roll back; Node ${process.version}, ${new Date().toISOString()}`)
/** @type {Record<string, number>} */
const failed = {}
for (const run of runs) {
  const result = await blueGreen(run)
  failed[run.name] = result.failed
  const c = result.counts
  console.log(`\n${run.name}: ${run.label}`)
  console.log(`  requests sent ${c.sent}, answered 2xx ${c.answered}, failed ${result.failed} (502 ${result.http502}, other status ${c.otherStatus - result.http502 + c.status503}, refused ${c.refused}, reset ${c.resets}, timed out ${c.timeouts})`)
  console.log(`  exit codes of the groups shut down: ${result.exits.join(', ')}; switch and rollback took ${result.switchesMs} ms`)
}
console.log(`\nRESULT: fastify-lifecycle lost ${failed['fastify-lifecycle']} request(s) through a switch and a rollback; the contrast lost ${failed.contrast}${failed.contrast === 0 ? ' (the lag was not reproduced: this run proves nothing)' : ''}`)
process.exitCode = failed['fastify-lifecycle'] === 0 && failed.contrast > 0 ? 0 : 1
