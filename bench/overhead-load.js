// The load generator of the overhead benchmark, in a process of its own: loads every server
// given (by port) at the same time for one round and prints the requests each answered.
// wrk (Debian package `wrk`) when installed: one wrk process per server, so the load generator
// keeps ahead of the servers even with pipelining; autocannon otherwise, which on one core
// cannot keep three servers busy at pipelining 10 (the run then measures autocannon).
import { execFile, execFileSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
// @ts-expect-error autocannon ships no type declarations
import autocannon from 'autocannon'

const seconds = Number(process.argv[2])
const ports = process.argv.slice(3).map(Number)
const pipelining = Number(process.env.PIPELINING ?? 1)
const CONNECTIONS = 32

function hasWrk () {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' })
    return true
  } catch (err) {
    // wrk --version exits 1 after printing its version.
    return /** @type {{ status?: number }} */ (err).status === 1
  }
}

/** @param {number} port */
async function runWrk (port) {
  const script = fileURLToPath(new URL('./pipeline.lua', import.meta.url))
  // Without pipelining, wrk's own static request: a Lua request() would run per request and make
  // wrk, not the servers, set the pace.
  const scriptArgs = pipelining > 1 ? ['-s', script] : []
  const { stdout } = await promisify(execFile)('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, ...scriptArgs, `http://127.0.0.1:${port}/`], { env: { ...process.env, PIPELINING: String(pipelining) } })
  const requests = Number(/(\d+) requests in/.exec(stdout)?.[1])
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0)
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout)
  const errors = non2xx + (socketErrors === null ? 0 : socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0))
  return { requests, errors }
}

/** @param {number} port */
async function runAutocannon (port) {
  const result = /** @type {{ requests: { total: number }, errors: number, non2xx: number }} */ (await autocannon({ url: `http://127.0.0.1:${port}/`, connections: CONNECTIONS, pipelining, duration: seconds }))
  return { requests: result.requests.total, errors: result.errors + result.non2xx }
}

const run = hasWrk() ? runWrk : runAutocannon
console.log(JSON.stringify({ tool: run === runWrk ? 'wrk' : 'autocannon', results: await Promise.all(ports.map(run)) }))
