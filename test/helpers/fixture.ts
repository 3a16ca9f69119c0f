import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, statSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import type { ShutdownReport } from '../../lib/report.js'

/** One pino line from the child, parsed. */
export type LogLine = Record<string, unknown> & { msg?: string, level: number }
type Match = string | ((line: LogLine) => boolean)

export interface Fixture {
  readonly child: ChildProcess
  /** `http://127.0.0.1:PORT`, from Fastify's own "Server listening" line. */
  address: string
  readonly lines: LogLine[]
  /** Resolves with the first line (already logged or yet to come) that matches. */
  waitForLog: (match: Match) => Promise<LogLine>
  /** Every logged line that matches. */
  logs: (match: Match) => LogLine[]
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exitCode: Promise<number | null>
  /** What the child wrote to stderr so far (only with `stderr: 'pipe'`; else it goes to the test's). */
  stderr: () => string
  /** The `phase` fields of the lifecycle's phase lines, in order. */
  phases: () => string[]
  /** The shutdown report, once logged. */
  report: () => ShutdownReport | undefined
  kill: (signal: NodeJS.Signals) => void
}

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url))
const root = new URL('../../', import.meta.url)

/**
 * Fixtures run the built package: a test of stale code would prove nothing. Fails loudly when
 * a source under lib/ or plugins/ is newer than dist/ (`npm test` builds first).
 */
function checkBuilt (): void {
  let built: number
  try {
    built = statSync(new URL('dist/plugins/index.js', root)).mtimeMs
  } catch {
    throw new Error('dist/ is missing: the integration fixtures run the built package; run `npm run build` (npm test does)')
  }
  for (const dir of ['lib', 'plugins']) {
    for (const file of readdirSync(new URL(`${dir}/`, root))) {
      if (statSync(new URL(`${dir}/${file}`, root)).mtimeMs > built) {
        throw new Error(`${dir}/${file} is newer than dist/: run \`npm run build\` (npm test does) before the integration tests`)
      }
    }
  }
}

/**
 * The child's Node flags: tap's, for coverage (processinfo) and source maps, without its
 * TypeScript loader, which fixtures (plain JavaScript on dist/) do not need and which costs
 * about 1.2 s per process start.
 */
const execArgv = process.execArgv.filter((arg) => !arg.includes('@tapjs/typescript'))

function matcher (match: Match): (line: LogLine) => boolean {
  return typeof match === 'string' ? (line) => line.msg === match : match
}

/**
 * Forks a fixture (coverage comes along through execArgv), reads
 * its log lines, and kills it with SIGKILL when the test ends if it is still running.
 */
export async function startFixture (t: Test, file: string, env: Record<string, string> = {}, opts: { waitListening?: boolean, stderr?: 'pipe', args?: string[] } = {}): Promise<Fixture> {
  checkBuilt()
  // A fixture of test/fixtures by name, or any script by absolute path (fastify-cli's).
  const child = fork(file.startsWith('/') ? file : fixtures + file, opts.args ?? [], {
    execArgv,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', opts.stderr ?? 'inherit', 'ipc']
  })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => { stderr += chunk })
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  const lines: LogLine[] = []
  const waiters: Array<{ test: (line: LogLine) => boolean, resolve: (line: LogLine) => void }> = []
  const reader = createInterface({ input: child.stdout! })
  reader.on('line', (text) => {
    let line: LogLine
    try {
      line = JSON.parse(text)
    } catch {
      line = { level: 30, msg: text }
    }
    lines.push(line)
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].test(line)) {
        waiters[i].resolve(line)
        waiters.splice(i, 1)
      }
    }
  })
  const closed = once(reader, 'close')

  const fixture: Fixture = {
    child,
    address: '',
    lines,
    exitCode: exited,
    waitForLog (match) {
      const test = matcher(match)
      const found = lines.find(test)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        waiters.push({ test, resolve })
        // Output ended and the line never came: fail now instead of at the test timeout.
        closed.then(() => reject(new Error(`fixture ${file} exited before logging ${String(match)}`)), reject)
      })
    },
    logs: (match) => lines.filter(matcher(match)),
    phases: () => lines.filter((l) => l.msg === 'lifecycle: phase changed').map((l) => l.phase as string),
    report: () => lines.find((l) => l.msg === 'lifecycle: shutdown report')?.report as ShutdownReport | undefined,
    kill: (signal) => { child.kill(signal) },
    stderr: () => stderr
  }
  if (opts.waitListening !== false) {
    const listening = await fixture.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('Server listening at '))
    fixture.address = (listening.msg as string).slice('Server listening at '.length)
  }
  return fixture
}
