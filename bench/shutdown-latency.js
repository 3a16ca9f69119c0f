// `npm run bench:latency`: how long the suite takes to react at shutdown, on examples/service.js.
//   1. SIGTERM to readiness 503: probes /readyz on an open connection right after the signal.
//   2. last in-flight response to process exit: one slow request in flight at SIGTERM, no
//      pre-stop delay; the time from its answer reaching the client to the process exiting
//      is what the suite adds (it polls nothing, so this should be a few ms).
import { fileURLToPath } from 'node:url'
import { Client } from 'undici'
import { startProcess } from './lib/processes.js'

const RUNS = Number(process.env.RUNS ?? 7)
const service = fileURLToPath(new URL('../examples/service.js', import.meta.url))
const median = (/** @type {number[]} */ xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]
const fmt = (/** @type {number[]} */ xs) => `median ${median(xs).toFixed(1)} ms, min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}`

/** @param {Record<string, string>} env */
async function start (env) {
  const proc = startProcess(process.execPath, [service], { env: { PORT: '0', HOST: '127.0.0.1', REDIS_URL: '', PG_URL: '', ...env } })
  const listening = await proc.waitFor((l) => String(l.msg).startsWith('Server listening at '))
  return { proc, origin: String(listening.msg).slice('Server listening at '.length) }
}

const toNotReady = []
for (let i = 0; i < RUNS; i++) {
  const { proc, origin } = await start({ PRE_STOP_DELAY_MS: '1000' })
  const client = new Client(origin)
  const warm = await client.request({ method: 'GET', path: '/readyz' })
  await warm.body.dump()
  const signalAt = performance.now()
  proc.kill('SIGTERM')
  // Bounded: the pre-stop delay keeps serving for 1 s, the answer comes well within it.
  for (let probes = 0; probes < 1000; probes++) {
    const res = await client.request({ method: 'GET', path: '/readyz' })
    await res.body.dump()
    if (res.statusCode === 503) { toNotReady.push(performance.now() - signalAt); break }
  }
  await client.close()
  await proc.exited
}

const toExit = []
for (let i = 0; i < RUNS; i++) {
  const { proc, origin } = await start({ PRE_STOP_DELAY_MS: '0' })
  const client = new Client(origin)
  const pending = client.request({ method: 'GET', path: '/slow?ms=300' })
  await proc.waitFor((l) => l.msg === 'incoming request' && String(l.req?.url).startsWith('/slow'))
  proc.kill('SIGTERM')
  const res = await pending
  await res.body.dump()
  const answeredAt = performance.now()
  await proc.exited
  toExit.push(performance.now() - answeredAt)
  await client.close()
}

console.log(`shutdown latency, examples/service.js, Node ${process.version}, ${new Date().toISOString()}, ${RUNS} runs each`)
console.log(`SIGTERM to readiness 503: ${fmt(toNotReady)}`)
console.log(`last in-flight response received to process exit: ${fmt(toExit)}`)
