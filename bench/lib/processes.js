// Child processes for the benchmarks: started with their pino output parsed, stopped for sure.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'

/** @typedef {Record<string, any>} LogLine */

/** Every process started here, so that an exit of the benchmark never leaves one behind. */
const started = new Set()
process.on('exit', () => { for (const child of started) child.kill('SIGKILL') })

/**
 * Starts `node <file>` (or any command) and follows its JSON log lines.
 * @param {string} command
 * @param {string[]} args
 * @param {{ env?: Record<string, string>, cpu?: string }} [options]
 */
export function startProcess (command, args, options = {}) {
  const argv = options.cpu === undefined ? [command, ...args] : ['taskset', '-c', options.cpu, command, ...args]
  const child = spawn(argv[0], argv.slice(1), { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  started.add(child)
  /** @type {LogLine[]} */
  const lines = []
  /** @type {Array<{ test: (line: LogLine) => boolean, resolve: (line: LogLine) => void }>} */
  let waiters = []
  const onLine = (/** @type {string} */ text) => {
    let line
    try { line = JSON.parse(text) } catch { line = { msg: text } }
    lines.push(line)
    waiters = waiters.filter((w) => { if (w.test(line)) { w.resolve(line); return false } return true })
  }
  createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stdout) }).on('line', onLine)
  createInterface({ input: /** @type {import('node:stream').Readable} */ (child.stderr) }).on('line', onLine)
  const exited = once(child, 'exit').then(([code, signal]) => { started.delete(child); return { code: /** @type {number | null} */ (code), signal: /** @type {string | null} */ (signal) } })
  return {
    child,
    lines,
    exited,
    /**
     * Resolves with the first matching line; rejects if the process exits first, or after `ms`.
     * @param {(line: LogLine) => boolean} test
     * @param {number} [ms]
     */
    waitFor (test, ms = 30_000) {
      const found = lines.find(test)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no matching log line from ${args.join(' ')} within ${ms}ms`)), ms)
        waiters.push({ test, resolve: (line) => { clearTimeout(timer); resolve(line) } })
        exited.then(() => { clearTimeout(timer); reject(new Error(`${args.join(' ')} exited; last lines:\n${lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`)) })
      })
    },
    /** @param {NodeJS.Signals} signal */
    kill (signal) { child.kill(signal) }
  }
}

/** A port free on 127.0.0.1 right now. */
export async function freePort () {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = /** @type {import('node:net').AddressInfo} */ (server.address())
  server.close()
  await once(server, 'close')
  return port
}
