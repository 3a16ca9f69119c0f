// `verify --rolling N`: the service as N replicas behind HAProxy, health-checked on the
// readiness path the way an endpoints controller would, constant load through HAProxy, and
// each replica replaced in turn (a new one on a port of its own, up in HAProxy, then the old
// one sent the signal and waited for). Every request the load sent must be answered 2xx.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { startLoad } from './load.js'
import { countRequests, exitText, findings, timeline, verdictOf, type Finding } from './verdict.js'
import { freePort, sleep, UsageError, waitUntil, within, type VerifyOptions, type VerifyResult } from './verify.js'

/** HAProxy's health check: every 500 ms, one failure takes a server out. */
const INTER_MS = 500

interface Replica {
  port: number
  child: ReturnType<typeof spawn>
  exited: Promise<{ code: number | null, signal: string | null }>
  report: () => Record<string, unknown> | undefined
}

function startReplica (command: readonly string[], port: number, output: string[]): Replica {
  const [file, ...args] = command
  const child = spawn(file as string, args, { env: { ...process.env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'pipe', 'pipe'] })
  let report: Record<string, unknown> | undefined
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (text) => {
      output.push(text)
      if (output.length > 40) output.shift()
      try {
        const line = JSON.parse(text) as Record<string, unknown>
        if (line.msg === 'lifecycle: shutdown report') report = line.report as Record<string, unknown>
      } catch {}
    })
  }
  const exited = once(child, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as string | null }))
  return { port, child, exited, report: () => report }
}

/** Each server's status on HAProxy's runtime API (UP, DOWN, …). */
async function serverStatus (socketPath: string): Promise<Map<string, string>> {
  const socket = connect(socketPath)
  socket.end('show stat\n')
  let text = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { text += chunk })
  await once(socket, 'end')
  const status = new Map<string, string>()
  for (const row of text.split('\n')) {
    const cols = row.split(',')
    if (cols[0] === 'be' && cols[1] !== 'BACKEND') status.set(cols[1] as string, cols[17] as string)
  }
  return status
}

/** The rolling restart; resolves with the same result as a single instance's verification. */
export async function verifyRolling (options: VerifyOptions & { replicas: number }): Promise<VerifyResult> {
  try {
    execFileSync('haproxy', ['-v'], { stdio: 'ignore' })
  } catch {
    throw new UsageError('--rolling runs the service behind HAProxy, which is not installed: apt-get install -y haproxy (Debian, Ubuntu), or brew install haproxy')
  }
  const dir = mkdtempSync(join(tmpdir(), 'fastify-lifecycle-verify-'))
  const socketPath = join(dir, 'haproxy.sock')
  const frontPort = await freePort()
  // Two ports per replica: the new one starts on the free one while the old one drains.
  const slots = await Promise.all(Array.from({ length: options.replicas }, async () => ({ ports: [await freePort(), await freePort()], active: 0 })))
  const check = options.readyPath === null ? [] : [`  option httpchk GET ${options.readyPath}`, '  http-check expect status 200']
  writeFileSync(join(dir, 'haproxy.cfg'), [
    'global',
    `  stats socket ${socketPath} mode 600 level admin`,
    'defaults',
    '  mode http',
    '  timeout connect 2s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend fe',
    `  bind 127.0.0.1:${frontPort}`,
    '  default_backend be',
    'backend be',
    '  balance roundrobin',
    ...check,
    `  default-server inter ${INTER_MS} fall 1 rise 1`,
    ...slots.flatMap((slot, i) => slot.ports.map((port, j) => `  server s${i}${'ab'[j]} 127.0.0.1:${port} check`)),
    ''
  ].join('\n'))
  const output: string[] = []
  const haproxy = spawn('haproxy', ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'pipe'] })
  const replicas = new Set<Replica>()
  // Its runtime API first: the replicas' states are read there.
  await waitUntil(() => existsSync(socketPath), 10_000)
  const up = async (server: string): Promise<boolean> => waitUntil(async () => (await serverStatus(socketPath)).get(server)?.startsWith('UP') === true, options.readyTimeout)
  const begin = async (slot: { ports: number[], active: number }, i: number, which: number): Promise<Replica> => {
    const replica = startReplica(options.command, slot.ports[which] as number, output)
    replicas.add(replica)
    if (!await up(`s${i}${'ab'[which]}`)) throw new ServiceNotUp(`replica ${i + 1} (port ${slot.ports[which]}) was not up in HAProxy within ${options.readyTimeout} ms`, output)
    return replica
  }
  try {
    const current: Replica[] = []
    for (const [i, slot] of slots.entries()) current.push(await begin(slot, i, 0))
    const loadStarted = performance.now()
    const load = startLoad({
      origin: `http://127.0.0.1:${frontPort}`,
      keepAliveClients: Math.max(1, Math.ceil(options.connections * 3 / 4)),
      freshClients: Math.floor(options.connections / 4),
      path: (n) => options.slowPath !== undefined && n % 5 === 4 ? options.slowPath : options.path,
      maxRequestsPerClient: 10_000_000,
      maxDurationMs: 30 * 60_000,
      idPrefix: 'rolling',
      timeoutMs: Math.max(options.timeout, 10_000)
    })
    await sleep(options.duration)
    const signalAt = performance.now()
    const exits: Array<{ code: number | null, signal: string | null, afterSignalMs: number, report: Record<string, unknown> | undefined }> = []
    let killedAfterMs: number | undefined
    for (const [i, slot] of slots.entries()) {
      const next = 1 - slot.active
      const fresh = await begin(slot, i, next)
      const old = current[i] as Replica
      const sent = performance.now()
      old.child.kill(options.signal)
      if (!await within(old.exited, options.timeout)) {
        killedAfterMs = options.timeout
        old.child.kill('SIGKILL')
      }
      const exit = await old.exited
      exits.push({ ...exit, afterSignalMs: performance.now() - sent, report: old.report() })
      current[i] = fresh
      slot.active = next
    }
    await sleep(Math.min(options.duration, 1000))
    load.stop()
    await within(load.done, options.timeout)
    const requests = countRequests(load.outcomes)
    const worst = exits.find((exit) => exit.signal !== null || exit.code !== 0) ?? exits[0] as typeof exits[number]
    const unclean = exits.map((exit) => exit.report).find((report) => report !== undefined && report.clean !== true)
    const found: Finding[] = findings({
      requests,
      inFlightAtSignal: 0,
      slowRequests: options.slowPath !== undefined,
      signal: options.signal,
      exit: { code: worst.code, signal: worst.signal, afterSignalMs: worst.afterSignalMs },
      killedAfterMs,
      readinessFlipMs: undefined,
      readinessProbed: false,
      listenerClosedMs: undefined,
      livenessFailures: undefined,
      idleSockets: { opened: 0, openAtExit: 0 },
      report: (unclean ?? exits.map((exit) => exit.report).find((report) => report !== undefined)) as Parameters<typeof findings>[0]['report']
    })
    const failedThrough = requests.sent - requests.answered
    if (failedThrough > 0) {
      found.unshift({
        kind: 'lost-in-rollout',
        severity: 'fail',
        message: `${failedThrough} of ${requests.sent} request(s) through HAProxy failed during the rolling restart (${requests.refused} refused, ${requests.resets} reset, ${requests.status503} answered 503, ${requests.otherStatus} other non-2xx)`,
        fix: `keep serving after ${options.signal} until HAProxy has taken the replica out (${INTER_MS} ms checks here; a pre-stop delay above inter × fall, or preStop.quiet), with readiness failing from the signal, then drain`
      })
    }
    return {
      verdict: verdictOf(found),
      mode: 'rolling',
      command: options.command.join(' '),
      origin: `http://127.0.0.1:${frontPort}`,
      requests,
      inFlightAtSignal: 0,
      readiness: { flipMs: undefined },
      liveness: { failures: undefined },
      listenerClosedMs: undefined,
      idleSockets: { opened: 0, openAtExit: 0 },
      exit: { code: worst.code, signal: worst.signal, afterSignalMs: Math.round(worst.afterSignalMs) },
      report: unclean,
      findings: found,
      timeline: { slots: timeline(load.outcomes, loadStarted), signalMs: Math.round(signalAt - loadStarted), readinessFlipMs: undefined, listenerClosedMs: undefined, exitMs: undefined },
      output: [...output],
      replicas: exits.map((exit) => ({ exit: exitText(exit), afterSignalMs: Math.round(exit.afterSignalMs), clean: exit.report?.clean }))
    }
  } finally {
    for (const replica of replicas) replica.child.kill('SIGKILL')
    haproxy.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A replica that never came up: the verification fails, with the service's last output. */
export class ServiceNotUp extends Error {
  constructor (message: string, output: readonly string[]) {
    super(`${message}; the last output:\n${output.slice(-10).map((line) => `  ${line}`).join('\n')}`)
  }
}
