// The `fastify-lifecycle` command's parsing and output: `fastify-lifecycle verify [options] --
// <command>`. Exit status: 0 when the verdict passes, 1 when it fails, 2 on bad usage.
import { writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { renderReport } from './report-html.js'
import { verifyRolling } from './rolling.js'
import { exitText, modeText } from './verdict.js'
import { UsageError, verify, type VerifyOptions, type VerifyResult } from './verify.js'

const USAGE = `Usage: fastify-lifecycle verify [options] -- <command that starts the service>

Starts the service (with a free port in PORT and HOST=127.0.0.1), waits until it is ready,
drives keep-alive and fresh-connection load, sends the signal with requests in flight, and
says what was lost, why, and how to fix it.

Options:
  --port N            the port given in PORT (default: a free one)
  --ready-path PATH   readiness, polled until 200 before the load and during the shutdown
                      (default /readyz; "none": wait until the port accepts)
  --live-path PATH    liveness, polled during the shutdown (default /livez; "none")
  --path PATH         the load's requests (default /)
  --slow-path PATH    every 5th request, to have requests in flight (e.g. /slow?ms=1000)
  --connections N     load clients, three quarters keep-alive (default 20)
  --duration MS       load before the signal (default 3000)
  --signal NAME       the shutdown signal (default SIGTERM)
  --timeout MS        how long to wait for the exit after the signal (default 60000)
  --ready-timeout MS  how long to wait for readiness (default 30000)
  --reload NAME       send this reload signal instead (SIGUSR2: reload.handoff, SIGHUP: the
                      cluster primary); the service must keep serving through it
  --rolling N         run N replicas behind HAProxy (installed) and replace them one by
                      one, sending each old one the signal; every request must succeed
  --json              print the result as JSON
  --report FILE       write an HTML report (self-contained)
  -h, --help          this text

Exit status: 0 pass, 1 fail, 2 bad usage.
`

const SIGNALS = new Set(['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2'])

function count (name: string, value: string | undefined, fallback: number, least = 1): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < least) throw new UsageError(`--${name} must be an integer of at least ${least}, got ${JSON.stringify(value)}`)
  return n
}

function signalName (name: string, value: string): NodeJS.Signals {
  const signal = value.toUpperCase().startsWith('SIG') ? value.toUpperCase() : `SIG${value.toUpperCase()}`
  if (!SIGNALS.has(signal)) throw new UsageError(`--${name} must be one of ${[...SIGNALS].join(', ')}, got ${JSON.stringify(value)}`)
  return signal as NodeJS.Signals
}

function path (name: string, value: string | undefined, fallback: string | null, noneAllowed: boolean): string | null {
  if (value === undefined) return fallback
  if (noneAllowed && value === 'none') return null
  if (!value.startsWith('/')) throw new UsageError(`--${name} must start with /${noneAllowed ? ' (or be "none")' : ''}, got ${JSON.stringify(value)}`)
  return value
}

/** The options, or a UsageError; `help` when asked for. */
export function parse (argv: readonly string[]): { help: true } | { help: false, options: VerifyOptions, rolling: number | undefined, json: boolean, report: string | undefined } {
  const split = argv.indexOf('--')
  const own = split === -1 ? [...argv] : argv.slice(0, split)
  const command = split === -1 ? [] : argv.slice(split + 1)
  let values: Record<string, string | boolean | undefined>
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: own,
      allowPositionals: true,
      options: {
        port: { type: 'string' },
        'ready-path': { type: 'string' },
        'live-path': { type: 'string' },
        path: { type: 'string' },
        'slow-path': { type: 'string' },
        connections: { type: 'string' },
        duration: { type: 'string' },
        signal: { type: 'string' },
        timeout: { type: 'string' },
        'ready-timeout': { type: 'string' },
        reload: { type: 'string' },
        rolling: { type: 'string' },
        json: { type: 'boolean' },
        report: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      }
    }))
  } catch (err) {
    throw new UsageError((err as Error).message)
  }
  if (values.help === true) return { help: true }
  if (positionals[0] !== 'verify' || positionals.length > 1) throw new UsageError(positionals.length === 0 ? 'say which command: verify' : `unknown command: ${positionals.join(' ')}`)
  if (command.length === 0) throw new UsageError('give the command that starts the service after --, e.g. -- node server.js')
  const str = (key: string): string | undefined => values[key] as string | undefined
  const options: VerifyOptions = {
    command,
    port: str('port') === undefined ? undefined : count('port', str('port'), 0, 1),
    readyPath: path('ready-path', str('ready-path'), '/readyz', true),
    livePath: path('live-path', str('live-path'), '/livez', true),
    path: path('path', str('path'), '/', false) as string,
    slowPath: path('slow-path', str('slow-path'), null, false) ?? undefined,
    connections: count('connections', str('connections'), 20),
    duration: count('duration', str('duration'), 3000, 0),
    signal: signalName('signal', str('signal') ?? 'SIGTERM'),
    timeout: count('timeout', str('timeout'), 60_000),
    readyTimeout: count('ready-timeout', str('ready-timeout'), 30_000),
    reload: str('reload') === undefined ? undefined : signalName('reload', str('reload') as string),
    idleSockets: 4
  }
  const rolling = str('rolling') === undefined ? undefined : count('rolling', str('rolling'), 0, 2)
  if (rolling !== undefined && options.reload !== undefined) throw new UsageError('--rolling and --reload are two ways to restart: choose one')
  return { help: false, options, rolling, json: values.json === true, report: str('report') }
}

/** The result in plain words, coloured when `colour`. */
export function describe (result: VerifyResult, colour: boolean): string {
  const paint = (code: number, text: string): string => colour ? `\u001b[${code}m${text}\u001b[0m` : text
  const r = result.requests
  const lines = [
    `verify: ${result.verdict === 'pass' ? paint(32, 'PASS') : paint(31, 'FAIL')} (${modeText(result.mode)} under load of ${result.command})`,
    `  requests: ${r.sent} sent, ${r.answered} answered 2xx, ${r.lost} lost${r.lost > 0 ? ` (${r.resets} reset or hung up, of which ${r.resetsOnReused} on reused keep-alive sockets; ${r.timeouts} timed out; ${r.status503} answered 503)` : ''}`,
    `  refused: ${r.refused}${r.refused > 0 && result.mode === 'shutdown' ? ' (expected once the listener is closed' + (result.listenerClosedMs === undefined ? ')' : `, ${result.listenerClosedMs} ms after the signal)`) : ''}`,
    `  in flight at the signal: ${result.inFlightAtSignal}`
  ]
  if (result.mode === 'shutdown') {
    lines.push(`  readiness failed: ${result.readiness.flipMs === undefined ? 'never' : `${result.readiness.flipMs} ms after the signal`}; liveness failures: ${result.liveness.failures ?? 'not probed'}`)
    lines.push(`  idle keep-alive sockets open at the exit: ${result.idleSockets.openAtExit} of ${result.idleSockets.opened}`)
    lines.push(`  exit: ${exitText(result.exit)}${result.exit.afterSignalMs === undefined ? '' : `, ${result.exit.afterSignalMs} ms after the signal`}`)
  }
  for (const [i, replica] of (result.replicas ?? []).entries()) lines.push(`  replica ${i + 1}: exit ${replica.exit}, ${replica.afterSignalMs} ms after the signal`)
  if (result.report !== undefined) lines.push(`  the service's report: ${result.report.clean === true ? 'clean' : `not clean: ${(result.report.forced as string[]).join('; ')}`}`)
  if (result.findings.length > 0) {
    lines.push('findings:')
    for (const finding of result.findings) {
      const mark = finding.severity === 'fail' ? paint(31, 'fail') : finding.severity === 'warn' ? paint(33, 'warn') : paint(36, 'info')
      lines.push(`  ${mark} ${finding.message}`, `       fix: ${finding.fix}`)
    }
  }
  return lines.join('\n') + '\n'
}

/** Runs the command; resolves with the exit status. */
export async function main (argv: readonly string[], out: NodeJS.WriteStream = process.stdout, err: NodeJS.WriteStream = process.stderr, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed
  try {
    parsed = parse(argv)
  } catch (error) {
    err.write(`fastify-lifecycle: ${(error as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (parsed.help) {
    out.write(USAGE)
    return 0
  }
  const live = err.isTTY === true && !parsed.json
  if (live) {
    parsed.options.onProgress = (progress) => {
      err.write(`\r${progress.stage}: ${Math.round(progress.elapsedMs / 100) / 10} s, ${progress.requests.sent} sent, ${progress.requests.answered} answered, ${progress.requests.lost} lost, ${progress.requests.refused} refused   `)
    }
  }
  let result: VerifyResult
  try {
    result = parsed.rolling === undefined ? await verify(parsed.options) : await verifyRolling({ ...parsed.options, replicas: parsed.rolling })
  } catch (error) {
    if (error instanceof UsageError) {
      err.write(`fastify-lifecycle: ${error.message}\n`)
      return 2
    }
    // The service did not start or was never ready (ServiceError), or the verification itself
    // failed: a failing verdict either way, said in one line.
    const message = (error as Error).message
    if (parsed.json) out.write(JSON.stringify({ verdict: 'fail', error: message }) + '\n')
    else err.write(`verify: FAIL: ${message}\n`)
    return 1
  } finally {
    if (live) err.write('\r\u001b[K')
  }
  if (parsed.report !== undefined) writeFileSync(parsed.report, renderReport(result))
  out.write(parsed.json ? JSON.stringify(result, null, 2) + '\n' : describe(result, out.isTTY === true && env.NO_COLOR === undefined))
  return result.verdict === 'pass' ? 0 : 1
}
