// `fastify-lifecycle verify`: starts the user's service, drives keep-alive and fresh-connection
// load with a share of slow requests, sends the signal with requests in flight, and observes
// everything a shutdown (or a reload) can lose. The verdict and its findings come from
// cli/verdict.ts; the load from cli/load.ts.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { Agent, get } from 'node:http'
import { createServer, type Socket } from 'node:net'
import { createInterface } from 'node:readline'
import { request } from 'undici'
import { settleWithin } from '../lib/timers.js'
import { startLoad, type Outcome } from './load.js'
import { countRequests, exitText, findings, timeline, verdictOf, type Finding, type Observed, type RequestCounts, type Slot } from './verdict.js'

export interface VerifyOptions {
  /** The command that starts the service, and its arguments. */
  command: readonly string[]
  /** The port to give the service in `PORT`; a free one when undefined. */
  port?: number | undefined
  /** Readiness path, polled until 200 before the load, and during the shutdown; null: wait for the port to accept. */
  readyPath: string | null
  /** Liveness path, polled during the shutdown; null: not probed. */
  livePath: string | null
  path: string
  slowPath?: string | undefined
  /** Load clients: three quarters keep-alive, one quarter a fresh connection per request. */
  connections: number
  /** ms of load before the signal (and after a reload signal). */
  duration: number
  signal: NodeJS.Signals
  /** ms to wait for the exit after the signal before killing the process. */
  timeout: number
  /** ms to wait for readiness. */
  readyTimeout: number
  /** A reload signal instead of a shutdown: the service must keep serving through it. */
  reload?: NodeJS.Signals | undefined
  /** Idle keep-alive sockets to hold open across the shutdown. */
  idleSockets: number
  /** Called every 250 ms while the load runs. */
  onProgress?: ((progress: Progress) => void) | undefined
}

export interface Progress {
  stage: 'load' | 'signal sent' | 'after the reload'
  elapsedMs: number
  requests: RequestCounts
}

export interface VerifyResult {
  verdict: 'pass' | 'fail'
  mode: 'shutdown' | 'reload' | 'rolling'
  command: string
  origin: string
  requests: RequestCounts
  inFlightAtSignal: number
  readiness: { flipMs: number | undefined }
  liveness: { failures: number | undefined }
  listenerClosedMs: number | undefined
  idleSockets: { opened: number, openAtExit: number }
  exit: { code: number | null, signal: string | null, afterSignalMs: number | undefined }
  report: Record<string, unknown> | undefined
  findings: Finding[]
  /** Requests per 100 ms by outcome, from the start of the load, and the moments marked on it. */
  timeline: { slots: Slot[], signalMs: number, readinessFlipMs: number | undefined, listenerClosedMs: number | undefined, exitMs: number | undefined }
  /** The service's last output lines. */
  output: string[]
  /** `--rolling`: how each replaced replica exited. */
  replicas?: Array<{ exit: string, afterSignalMs: number, clean: unknown }>
}

/** A problem with the command or its options: exit status 2, no stack. */
export class UsageError extends Error {}

/** The log lines of fastify-lifecycle's reloads: one started, one over (ready, rolled back, or skipped). */
const RELOAD_STARTED = /^(reload: new process started|primary: reload started)/
const RELOAD_ENDED = /^(reload: the new process is ready|reload: rolled back|primary: reload complete|primary: reload rolled back|primary: reload skipped)/

/** @internal */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** @internal Whether `test` came true within `ms`, checked every 20 ms. */
export async function waitUntil (test: () => boolean | Promise<boolean>, ms: number): Promise<boolean> {
  const endAt = performance.now() + ms
  while (!await test()) {
    if (performance.now() > endAt) return false
    await sleep(20)
  }
  return true
}

const alive = (pid: number): boolean => { try { process.kill(pid, 0); return true } catch { return false } }

/** Sends `signal` to a process, SIGKILL if it is still there after `ms`; nothing if it is gone. */
async function stopPid (pid: number, signal: NodeJS.Signals, ms: number): Promise<void> {
  try { process.kill(pid, signal) } catch { return }
  if (!await waitUntil(() => !alive(pid), ms)) process.kill(pid, 'SIGKILL')
}

/** @internal Whether `promise` settled within `ms` (lib/timers.ts's bounded wait). */
export async function within (promise: Promise<unknown>, ms: number): Promise<boolean> {
  return (await settleWithin(() => promise, ms)).status !== 'timed out'
}

/** @internal */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** The status of one GET on a connection of its own, or the error code. */
async function probe (url: string): Promise<number | string> {
  try {
    const res = await request(url, { reset: true, headersTimeout: 2000, bodyTimeout: 2000 })
    await res.body.dump()
    return res.statusCode
  } catch (err) {
    return String((err as { code?: string }).code)
  }
}

/** Runs the service, the load and the signal; resolves with what happened. */
export async function verify (options: VerifyOptions): Promise<VerifyResult> {
  const port = options.port ?? await freePort()
  const origin = `http://127.0.0.1:${port}`
  const [file, ...args] = options.command
  const child = spawn(file as string, args, { env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  const output: string[] = []
  let report: Record<string, unknown> | undefined
  const successors: number[] = []
  const reloads = { started: 0, ended: 0 }
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (text) => {
      output.push(text)
      if (output.length > 40) output.shift()
      let line: Record<string, unknown>
      try { line = JSON.parse(text) } catch { return }
      if (line.msg === 'lifecycle: shutdown report' && line.pid === child.pid) report = line.report as Record<string, unknown>
      if (typeof line.newPid === 'number' && line.msg === 'reload: the new process is ready; this one drains and exits') successors.push(line.newPid)
      if (typeof line.msg === 'string' && RELOAD_STARTED.test(line.msg)) reloads.started++
      if (typeof line.msg === 'string' && RELOAD_ENDED.test(line.msg)) reloads.ended++
    })
  }
  let exit: { code: number | null, signal: string | null, at: number } | undefined
  let spawnError: UsageError | undefined
  child.once('error', (err) => { spawnError = new UsageError(`could not start ${file}: ${err.message}`) })
  const exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exit = { code, signal, at: performance.now() }
      resolve()
    })
  })
  // Never leave the service behind (a Ctrl-C reaches it too: it is in this terminal's group).
  try {
    try {
      await waitReady(options, origin, () => spawnError ?? exit)
    } catch (err) {
      if (spawnError !== undefined) throw spawnError
      throw new ServiceError(`${(err as Error).message}; its last output:\n${output.slice(-10).map((line) => `  ${line}`).join('\n')}`)
    }
    return await drive(options, origin, child, () => exit, exited, () => report, successors, output, reloads)
  } finally {
    // A process left behind must not hold this one open through its output.
    child.stdout.destroy()
    child.stderr.destroy()
    if (exit === undefined) child.kill('SIGKILL')
  }
}

async function waitReady (options: VerifyOptions, origin: string, exitOf: () => unknown): Promise<void> {
  const endAt = performance.now() + options.readyTimeout
  for (;;) {
    if (exitOf() !== undefined) throw new ServiceError('the service exited before it was ready')
    const status = options.readyPath === null ? await connects(origin) : await probe(origin + options.readyPath)
    if (status === 200) return
    if (performance.now() > endAt) throw new ServiceError(`the service was not ready within ${options.readyTimeout} ms (${options.readyPath ?? 'the port'} answered ${status})`)
    await sleep(100)
  }
}

/** 200 when the port accepts a connection, else the error code. */
async function connects (origin: string): Promise<number | string> {
  const { port } = new URL(origin)
  const { connect } = await import('node:net')
  return await new Promise((resolve) => {
    const socket = connect(Number(port), '127.0.0.1')
    socket.once('connect', () => { socket.destroy(); resolve(200) })
    socket.once('error', (err: NodeJS.ErrnoException) => { resolve(String(err.code)) })
  })
}

/** The service could not be verified: it did not start, or was never ready (a failing verdict, not a usage error). */
export class ServiceError extends Error {}

async function drive (options: VerifyOptions, origin: string, child: ReturnType<typeof spawn>, exitOf: () => { code: number | null, signal: string | null, at: number } | undefined, exited: Promise<void>, reportOf: () => Record<string, unknown> | undefined, successors: number[], output: string[], reloads: { started: number, ended: number }): Promise<VerifyResult> {
  const keepAlive = Math.max(1, Math.ceil(options.connections * 3 / 4))
  const fresh = Math.max(0, options.connections - keepAlive)
  const slowPath = options.slowPath
  const idle = await openIdleSockets(origin + options.path, options.idleSockets)

  const loadStarted = performance.now()
  const load = startLoad({
    origin,
    keepAliveClients: keepAlive,
    freshClients: fresh,
    path: (n) => slowPath !== undefined && n % 5 === 4 ? slowPath : options.path,
    maxRequestsPerClient: 10_000_000,
    maxDurationMs: options.duration * 2 + options.timeout + 10_000,
    idPrefix: 'verify',
    timeoutMs: Math.max(options.timeout, 10_000)
  })
  let stage: Progress['stage'] = 'load'
  const progress = options.onProgress === undefined
    ? undefined
    : setInterval(() => { options.onProgress?.({ stage, elapsedMs: performance.now() - loadStarted, requests: countRequests(load.outcomes) }) }, 250)

  // Probes from the signal on: readiness's first failure, liveness's failures.
  let signalAt = 0
  let readinessFlipAt: number | undefined
  let livenessFailures: number | undefined = options.livePath === null ? undefined : 0
  const probing = { on: true }
  const probes = (async () => {
    while (probing.on) {
      if (signalAt > 0) {
        const [ready, live] = await Promise.all([
          options.readyPath === null ? 200 : probe(origin + options.readyPath),
          options.livePath === null ? 200 : probe(origin + options.livePath)
        ])
        if (ready !== 200 && readinessFlipAt === undefined) readinessFlipAt = performance.now()
        if (typeof live === 'number' && live !== 200) livenessFailures = (livenessFailures as number) + 1
      }
      await sleep(50)
    }
  })()

  await sleep(options.duration)
  // A slow request in flight at the signal, when the load has some (bounded).
  if (slowPath !== undefined) await waitUntil(() => load.outcomes.some((o) => o.path === slowPath && o.endedAt === 0), 2000)
  const inFlightAtSignal = load.outcomes.filter((o) => o.endedAt === 0).length
  signalAt = performance.now()
  let killedAfterMs: number | undefined
  if (options.reload === undefined) {
    child.kill(options.signal)
    stage = 'signal sent'
    if (!await within(exited, options.timeout)) {
      killedAfterMs = options.timeout
      child.kill('SIGKILL')
      await exited
    }
  } else {
    child.kill(options.reload)
    stage = 'after the reload'
    await sleep(Math.max(options.duration, 1000))
    // A reload of fastify-lifecycle's that is still under way (a slow boot) is waited for.
    await waitUntil(() => reloads.ended >= reloads.started, options.timeout)
  }
  load.stop()
  await within(load.done, options.timeout)
  const outcomes = load.outcomes
  probing.on = false
  await probes
  clearInterval(progress)
  const openAtExit = idle.filter((socket) => !socket.destroyed).length
  for (const socket of idle) socket.destroy()

  // A reload's exit is the one it caused (a handoff's old process), not the stop below.
  const exitAtReload = exitOf()
  let serving = true
  if (options.reload !== undefined) {
    serving = await probe(origin + options.path) === 200
    for (const pid of [child.pid as number, ...successors]) await stopPid(pid, options.signal, options.timeout)
    await exited
  }
  const exit = options.reload === undefined ? exitOf() : exitAtReload
  const refusedAt = outcomes.filter((o) => o.error === 'ECONNREFUSED' && o.startedAt >= signalAt).map((o) => o.startedAt)
  const listenerClosedAt = refusedAt.length > 0 ? Math.min(...refusedAt) : undefined
  const requests = countRequests(outcomes)
  const report = reportOf()
  const observed: Observed = {
    requests,
    inFlightAtSignal,
    slowRequests: slowPath !== undefined,
    signal: options.reload ?? options.signal,
    exit: { code: exit?.code ?? null, signal: exit?.signal ?? null, afterSignalMs: exit === undefined ? undefined : exit.at - signalAt },
    killedAfterMs,
    readinessFlipMs: readinessFlipAt === undefined ? undefined : readinessFlipAt - signalAt,
    readinessProbed: options.readyPath !== null && options.reload === undefined,
    listenerClosedMs: listenerClosedAt === undefined ? undefined : listenerClosedAt - signalAt,
    livenessFailures,
    idleSockets: { opened: idle.length, openAtExit },
    report: report as Observed['report']
  }
  const found = options.reload === undefined ? findings(observed) : reloadFindings(observed, serving, options.reload)
  const rel = (at: number | undefined): number | undefined => at === undefined ? undefined : Math.round(at - loadStarted)
  return {
    verdict: verdictOf(found),
    mode: options.reload === undefined ? 'shutdown' : 'reload',
    command: options.command.join(' '),
    origin,
    requests,
    inFlightAtSignal,
    readiness: { flipMs: round(observed.readinessFlipMs) },
    liveness: { failures: livenessFailures },
    listenerClosedMs: round(observed.listenerClosedMs),
    idleSockets: observed.idleSockets,
    exit: { ...observed.exit, afterSignalMs: round(observed.exit.afterSignalMs) },
    report,
    findings: found,
    timeline: { slots: timeline(outcomes, loadStarted), signalMs: rel(signalAt) as number, readinessFlipMs: rel(readinessFlipAt), listenerClosedMs: rel(listenerClosedAt), exitMs: options.reload === undefined ? rel(exit?.at) : undefined },
    output: [...output]
  }
}

function round (ms: number | undefined): number | undefined {
  return ms === undefined ? undefined : Math.round(ms)
}

/** A reload: nothing refused or lost, a clean exit if the process exited (a handoff), still serving after. */
function reloadFindings (observed: Observed, serving: boolean, signal: string): Finding[] {
  const found = findings({ ...observed, report: observed.report ?? { clean: true, forced: [], exitCode: 0 }, slowRequests: true, idleSockets: { opened: 0, openAtExit: 0 } })
    .filter((finding) => finding.kind !== 'no-serving-window' && finding.kind !== 'exit-code' && finding.kind !== 'no-handler')
  const { exit, requests } = observed
  if (requests.refused > 0) {
    found.unshift({
      kind: 'refused-during-reload',
      severity: 'fail',
      message: `${requests.refused} connection(s) refused during the reload: for a moment nothing listened`,
      fix: 'reload start-first on the same socket: the listener handoff (reload.handoff) or the cluster primary (fastify-lifecycle/cluster)'
    })
  }
  if (exit.signal !== null || (exit.code ?? 0) !== 0) {
    found.unshift({
      kind: 'reload-exit',
      severity: 'fail',
      message: `the process ended (${exitText(exit)}) at ${signal}`,
      fix: `make ${signal} a reload: reload: { handoff: true } for a single process, or run it under the cluster primary (SIGHUP)`
    })
  }
  if (!serving) {
    found.unshift({
      kind: 'not-serving',
      severity: 'fail',
      message: `the service did not answer after ${signal}`,
      fix: 'the new version must become ready: see its output below'
    })
  }
  return found
}

/** Keep-alive connections that made one request and then stay idle; watched until the exit. */
async function openIdleSockets (url: string, count: number): Promise<Socket[]> {
  const agent = new Agent({ keepAlive: true, keepAliveMsecs: 60_000, maxSockets: count })
  const sockets = await Promise.all(Array.from({ length: count }, () => new Promise<Socket>((resolve, reject) => {
    const req = get(url, { agent }, (res) => {
      res.resume()
      res.once('end', () => { resolve(req.socket as Socket) })
    })
    req.once('error', reject)
  })))
  // The agent keeps them; without it, nothing else would.
  for (const socket of sockets) socket.unref()
  return sockets
}

export type { Finding, RequestCounts, Slot } from './verdict.js'
export type { Outcome }
