import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_HEALTH_PATH_CONFLICT, FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT, FST_LIFECYCLE_INVALID_OPTION } from '../lib/errors.js'
import { CheckRegistry, type CheckFunction, type CheckOptions, type CheckResult, type ProbeKind } from '../lib/health.js'
import type { NotReadyReason } from '../lib/channels.js'
import { useLifecycle, type Lifecycle } from '../lib/lifecycle.js'
import { interceptRequests, type RawRequest, type RawResponse } from '../lib/node-internals.js'
import { alreadyResolved, bool, checkKnownKeys, duration, keysOf, optionsObject, resolved } from '../lib/options.js'
import { kBootFailed, kChecks, kClaim, kHandedOver, kLiveness, kProbe, kProbeRoutes, kProbeServer, kReadinessReason, kReadyCheck } from '../lib/symbols.js'
import { handedOffSockets } from '../lib/ipc.js'

export type { CheckFunction, CheckOptions, CheckResult, ProbeKind } from '../lib/health.js'

/** A check given through the health plugin's options. */
export interface HealthCheckOption extends CheckOptions {
  name: string
  check: CheckFunction
}

export type ProbeLogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent'

/** How the probes use @fastify/under-pressure, when it is registered. */
export interface UnderPressureOptions {
  /** Fail readiness while under-pressure reports pressure. @default true */
  readiness?: boolean | undefined
  /** Fail liveness while the measured event loop delay is over this many ms. @default 1000 */
  maxEventLoopDelay?: number | undefined
}

export interface HealthOptions {
  /** Path of the liveness probe; `false` for none. @default '/livez' */
  livenessPath?: string | false | undefined
  /** Path of the readiness probe; `false` for none. @default '/readyz' */
  readinessPath?: string | false | undefined
  /** Path of the startup probe; `false` for none. @default '/startupz' */
  startupPath?: string | false | undefined
  /** Checks to register, as with `fastify.lifecycle.check(name, check, options)`. @default [] */
  checks?: readonly HealthCheckOption[] | undefined
  /** Show why a check failed (error messages may name hosts) in probe answers; it is always logged. @default false */
  exposeFailureDetails?: boolean | undefined
  /** Level of the line logged for each probe answered. @default 'debug' */
  logLevel?: ProbeLogLevel | undefined
  /** Serve the probes on a listener of their own, on this port (0: any free port), instead of the service's. */
  port?: number | undefined
  /** Address of the probe listener, with `port`. @default '0.0.0.0' */
  host?: string | undefined
  /**
   * With @fastify/under-pressure registered: `readiness` fails readiness while it reports
   * pressure; liveness fails while its measured event loop delay is over `maxEventLoopDelay` ms.
   * `false` ignores it. @default { readiness: true, maxEventLoopDelay: 1000 }
   */
  underPressure?: UnderPressureOptions | false | undefined
}

export interface ResolvedHealthOptions {
  readonly paths: Readonly<Record<ProbeKind, string | false>>
  readonly checks: readonly HealthCheckOption[]
  readonly exposeFailureDetails: boolean
  readonly logLevel: ProbeLogLevel
  readonly port: number | undefined
  readonly host: string
  readonly underPressure: { readonly enabled: boolean, readonly readiness: boolean, readonly maxEventLoopDelay: number }
}

const KEYS = keysOf<HealthOptions>()({
  livenessPath: true,
  readinessPath: true,
  startupPath: true,
  checks: true,
  exposeFailureDetails: true,
  logLevel: true,
  port: true,
  host: true,
  underPressure: true
})
const PRESSURE_KEYS = keysOf<UnderPressureOptions>()({ readiness: true, maxEventLoopDelay: true })
const LOG_LEVELS: readonly ProbeLogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']

function probePath (name: string, value: unknown, fallback: string): string | false {
  if (value === undefined) return fallback
  if (value === false) return false
  if (typeof value !== 'string' || !/^\/[^?#\s]*[^/?#\s]$/.test(value)) {
    throw new FST_LIFECYCLE_INVALID_OPTION(name, "a path like '/readyz' (starting with /, no query, no trailing slash) or false", value)
  }
  return value
}

/**
 * @internal Checks the options once, at registration; `prefix` names them inside the suite's
 * options.
 */
export function resolveHealthOptions (input?: HealthOptions, prefix = ''): ResolvedHealthOptions {
  const options = optionsObject<HealthOptions>(input, prefix, KEYS)
  const paths = {
    liveness: probePath(prefix + 'livenessPath', options.livenessPath, '/livez'),
    readiness: probePath(prefix + 'readinessPath', options.readinessPath, '/readyz'),
    startup: probePath(prefix + 'startupPath', options.startupPath, '/startupz')
  }
  const kinds = Object.keys(paths) as ProbeKind[]
  for (let i = 0; i < kinds.length; i++) {
    for (let j = i + 1; j < kinds.length; j++) {
      const a = paths[kinds[i]]
      const b = paths[kinds[j]]
      // One probe's path must not be the other's, nor a prefix of it: /readyz/<check> is a check.
      if (a !== false && b !== false && (a === b || b.startsWith(a + '/') || a.startsWith(b + '/'))) {
        throw new FST_LIFECYCLE_HEALTH_PATH_CONFLICT(kinds[i], kinds[j], a.length <= b.length ? a : b)
      }
    }
  }
  const checks = options.checks ?? []
  if (!Array.isArray(checks) || checks.some((c) => c === null || typeof c !== 'object')) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'checks', 'an array of { name, check, ...options }', checks)
  }
  const logLevel = options.logLevel ?? 'debug'
  if (!LOG_LEVELS.includes(logLevel)) throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'logLevel', `one of ${LOG_LEVELS.join(', ')}`, logLevel)
  let port: number | undefined
  if (options.port !== undefined) {
    if (typeof options.port !== 'number' || !Number.isInteger(options.port) || options.port < 0 || options.port > 65_535) {
      throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'port', 'an integer port from 0 to 65535', options.port)
    }
    port = options.port
  }
  const host = options.host ?? '0.0.0.0'
  if (typeof host !== 'string' || host === '') throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'host', 'a host name or address', host)
  const pressure = options.underPressure ?? {}
  if (pressure !== false && (pressure === null || typeof pressure !== 'object')) {
    throw new FST_LIFECYCLE_INVALID_OPTION(prefix + 'underPressure', 'an object or false', pressure)
  }
  const pressureOptions: UnderPressureOptions = pressure === false ? {} : pressure
  checkKnownKeys(prefix + 'underPressure.', pressureOptions, PRESSURE_KEYS)
  return resolved({
    paths: Object.freeze(paths),
    checks: Object.freeze([...checks]),
    exposeFailureDetails: bool(prefix + 'exposeFailureDetails', options.exposeFailureDetails, false),
    logLevel,
    port,
    host,
    underPressure: Object.freeze({
      enabled: pressure !== false,
      readiness: bool(prefix + 'underPressure.readiness', pressureOptions.readiness, true),
      maxEventLoopDelay: duration(prefix + 'underPressure.maxEventLoopDelay', pressureOptions.maxEventLoopDelay, 1000, true)
    })
  })
}

/** One line of a probe's answer: a registered check, or one the suite adds. */
interface Line {
  name: string
  ok: boolean
  critical: boolean
  detail?: string
  durationMs?: number
  cached?: boolean
}

interface UnderPressureDecorators {
  isUnderPressure: () => boolean
  memoryUsage: () => { eventLoopDelay: number }
}

const WITHHELD = 'reason withheld'
const NO_STORE = 'no-store'

/**
 * Liveness, readiness and startup probes in the style of the Kubernetes API server's /livez
 * and /readyz, with a registry of checks. The probes are answered in front of Fastify's router
 * (see lib/server.ts), so the service's own onRequest hooks (auth, load shedding) never block
 * them, and they follow the lifecycle: readiness fails from the first moment of a shutdown,
 * liveness passes until the process exits.
 */
const health: FastifyPluginAsync<HealthOptions> = async function health (fastify, options) {
  const config = alreadyResolved<ResolvedHealthOptions>(options) ?? resolveHealthOptions(options)
  const lifecycle = useLifecycle(fastify)
  lifecycle[kClaim]('fastify-lifecycle-health', 'probe routes')
  const log = fastify.log.child({ plugin: 'health' })
  const registry = new CheckRegistry(log, fastify.server)
  lifecycle[kChecks](registry)
  for (const { name, check, ...checkOptions } of config.checks) registry.add(name, check, checkOptions)

  let pressure: UnderPressureDecorators | undefined
  let startupPassed = false
  const paths = Object.entries(config.paths).filter((entry): entry is [ProbeKind, string] => entry[1] !== false)

  /** Takes the request if it is for a probe; false lets it go on to Fastify. */
  // This runs for every request the service gets: most are told apart from a probe by the
  // second character of their URL alone, with no allocation.
  const probes = paths.map((entry) => entry[0])
  const probePaths = paths.map((entry) => entry[1])
  const secondChars = new Set(probePaths.map((path) => path.charCodeAt(1)))
  function handleProbe (request: RawRequest, response: RawResponse): boolean {
    const url = request.url as string
    if (!secondChars.has(url.charCodeAt(1))) return false
    const match = matchProbe(url)
    if (match === undefined) return false
    answer(probes[match.index], match.only, match.query, request, response)
    return true
  }

  /** Which probe a URL asks for, if any, with the check it names and its query string. */
  function matchProbe (url: string): { index: number, only: string, query: string } | undefined {
    for (let i = 0; i < probePaths.length; i++) {
      const path = probePaths[i]
      if (!url.startsWith(path)) continue
      const queryAt = url.indexOf('?')
      let rest = (queryAt === -1 ? url : url.slice(0, queryAt)).slice(path.length)
      if (rest.endsWith('/')) rest = rest.slice(0, -1)
      // '/readyz', '/readyz/' or '/readyz/<check>'; '/readyzzz' is someone else's route.
      if (rest !== '' && !rest.startsWith('/')) continue
      return { index: i, only: rest.slice(1), query: queryAt === -1 ? '' : url.slice(queryAt + 1) }
    }
    return undefined
  }

  function answer (probe: ProbeKind, only: string, query: string, request: RawRequest, response: RawResponse): void {
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 })
      response.end()
      return
    }
    const params = new URLSearchParams(query)
    const exclude = new Set(params.getAll('exclude').flatMap((value) => value.split(',')))
    evaluate(probe, only, exclude).then((lines) => {
      const accept = request.headers.accept
      const json = typeof accept === 'string' && accept.includes('application/json')
      let statusCode: number
      let body: string
      if (lines === undefined) {
        statusCode = 404
        body = json ? JSON.stringify({ probe, status: 'unknown check', check: only }) : `unknown check: ${only}\n`
      } else {
        // Once the startup probe has passed, it keeps passing: start-up happens once.
        const ok = (probe === 'startup' && startupPassed) || lines.every((line) => line.ok || !line.critical)
        if (ok && probe === 'startup') startupPassed = true
        statusCode = ok ? 200 : 503
        const reason = probe === 'readiness' && !ok ? currentReason() : undefined
        body = json ? jsonBody(probe, ok, lines, reason) : textBody(probe, ok, lines, params.has('verbose'), reason)
      }
      response.writeHead(statusCode, {
        'content-type': json ? 'application/json; charset=utf-8' : 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': NO_STORE
      })
      if (request.method === 'HEAD') response.end()
      else response.end(body)
      log[config.logLevel]({ probe, statusCode, check: only || undefined }, 'health: probe answered')
    })
  }

  /** The lines of a probe, or undefined when `only` names no check of that probe. */
  async function evaluate (probe: ProbeKind, only: string, exclude: Set<string>): Promise<Line[] | undefined> {
    const lines: Line[] = builtInLines(probe, lifecycle)
    const names = registry.namesFor(probe)
    if (only !== '') {
      const builtIn = lines.find((line) => line.name === only)
      if (builtIn !== undefined) return [builtIn]
      if (!registry.belongsTo(only, probe)) return undefined
      return [fromResult(await registry.result(only))]
    }
    const results = await Promise.all(names.filter((name) => !exclude.has(name)).map((name) => registry.result(name)))
    return [...lines.filter((line) => !exclude.has(line.name) || line.name === 'lifecycle'), ...results.map(fromResult)]
  }

  function builtInLines (probe: ProbeKind, lc: Lifecycle): Line[] {
    const lines: Line[] = []
    if (probe === 'readiness') {
      lines.push({ name: 'lifecycle', ok: lc.isReady(), critical: true, detail: lifecycleDetail(lc) })
      if (pressure !== undefined && config.underPressure.readiness) {
        lines.push({ name: 'under-pressure', ok: !pressure.isUnderPressure(), critical: true, detail: 'under pressure' })
      }
    } else if (probe === 'startup') {
      lines.push({ name: 'lifecycle', ok: lc.everReady, critical: true, detail: lifecycleDetail(lc) })
    } else if (pressure !== undefined) {
      // Only a measured delay fails liveness: under-pressure reports Infinity for a sample
      // window it has no measurement for, and a restart is too heavy a cure for not knowing.
      const delay = pressure.memoryUsage().eventLoopDelay
      const blocked = Number.isFinite(delay) && delay > config.underPressure.maxEventLoopDelay
      lines.push({ name: 'event-loop', ok: !blocked, critical: true, detail: `event loop delay ${Math.round(delay)}ms over ${config.underPressure.maxEventLoopDelay}ms` })
    }
    return lines
  }

  function fromResult (result: CheckResult): Line {
    const detail = result.ok ? undefined : (result.timedOut || config.exposeFailureDetails ? result.error : WITHHELD)
    return { name: result.name, ok: result.ok, critical: result.critical, detail, durationMs: result.durationMs, cached: result.cached }
  }

  let closeProbes = (): void => {}
  if (config.port === undefined) {
    interceptRequests(fastify.server, handleProbe)
    // Probes on the service's port are not traffic to the pre-stop window.
    lifecycle[kProbe] = (url) => secondChars.has(url.charCodeAt(1)) && matchProbe(url) !== undefined
  } else {
    const extra = new Map<string, (request: RawRequest, response: RawResponse) => void>()
    lifecycle[kProbeRoutes] = extra
    closeProbes = await listenForProbes(fastify, config, log, function probeOrExtra (request, response) {
      if (handleProbe(request, response)) return true
      const route = extra.get((request.url as string).split('?')[0])
      if (route === undefined || request.method !== 'GET') return false
      route(request, response)
      return true
    })
  }

  // The boot failed on a ready check: the service port never opens, and the instance stays
  // `starting`. The probe listener closes at once, so no probe can pass on a pod that serves
  // nothing (liveness would), whether or not the process goes on to exit.
  /**
   * Why readiness fails now, undefined when it passes: the lifecycle's own reason first (a
   * shutdown says `shutdown`, whatever the checks do), then pressure, then a critical check,
   * from their latest results (nothing is run). The probe answers and the metrics both say it.
   */
  function currentReason (): NotReadyReason | undefined {
    const own = lifecycle.notReadyReason
    if (own !== undefined) return own
    if (pressure !== undefined && config.underPressure.readiness && pressure.isUnderPressure()) return 'pressure'
    const readiness = new Set(registry.namesFor('readiness'))
    return registry.latest().some((result) => readiness.has(result.name) && result.critical && !result.ok) ? 'check' : undefined
  }
  lifecycle[kReadinessReason] = currentReason

  lifecycle[kBootFailed](function closeProbesOnBootFailure () { closeProbes() })
  // The liveness probe, for a watchdog that must stop being fed when liveness fails.
  lifecycle[kLiveness] = {
    passes: async () => ((await evaluate('liveness', '', new Set())) as Line[]).every((line) => line.ok || !line.critical),
    eventLoopThreshold: () => config.underPressure.enabled && fastify.hasDecorator('isUnderPressure') ? config.underPressure.maxEventLoopDelay : undefined
  }

  if (config.port === undefined) {
    lifecycle[kReadyCheck](function checkProbeRoutes () { checkRouteConflicts(fastify, paths) })
  }

  fastify.addHook('onReady', async function startHealthChecks () {
    if (config.underPressure.enabled && fastify.hasDecorator('isUnderPressure')) {
      pressure = fastify as unknown as UnderPressureDecorators
    }
    registry.start()
  })

  fastify.addHook('onClose', async function stopHealthChecks () {
    registry.stop()
  })
}

function lifecycleDetail (lc: Lifecycle): string {
  const pending = lc.startupPending
  if (lc.phase === 'starting' && pending.length > 0) return `start-up tasks pending: ${pending.join(', ')}`
  if (lc.phase === 'ready' && !lc.manualReady) return 'taken out of rotation by setReady(false)'
  return lc.phase
}

function textBody (probe: ProbeKind, ok: boolean, lines: Line[], verbose: boolean, reason: NotReadyReason | undefined): string {
  if (ok && !verbose) return 'ok'
  let body = ''
  for (const line of lines) {
    const timing = line.durationMs === undefined ? '' : ` (${line.durationMs}ms${line.cached === true ? ', cached' : ''})`
    const kind = line.critical ? '' : ' (non-critical)'
    body += line.ok ? `[+]${line.name} ok${timing}\n` : `[-]${line.name} failed${kind}: ${line.detail as string}${timing}\n`
  }
  if (reason !== undefined) body += `reason: ${reason}\n`
  return body + `${probe} check ${ok ? 'passed' : 'failed'}\n`
}

function jsonBody (probe: ProbeKind, ok: boolean, lines: Line[], reason: NotReadyReason | undefined): string {
  return JSON.stringify({
    probe,
    status: ok ? 'ok' : 'failed',
    ...(reason === undefined ? {} : { reason }),
    checks: lines.map((line) => ({
      name: line.name,
      status: line.ok ? 'ok' : 'failed',
      critical: line.critical,
      ...(line.ok ? {} : { reason: line.detail }),
      ...(line.durationMs === undefined ? {} : { durationMs: line.durationMs, cached: line.cached })
    }))
  })
}

/** A probe path that is also a route of the service would shadow that route. */
function checkRouteConflicts (fastify: FastifyInstance, paths: Array<[ProbeKind, string]>): void {
  for (const [probe, path] of paths) {
    for (const method of ['GET', 'HEAD'] as const) {
      if (fastify.hasRoute({ method, url: path })) throw new FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT(probe, path, method)
    }
  }
}

/**
 * The probes on a listener of their own, open from registration (so the startup probe answers
 * during the boot) until the lifecycle is `closed`, the moment before the process exits, or
 * until the boot fails. Returns what closes it.
 */
async function listenForProbes (fastify: FastifyInstance, config: ResolvedHealthOptions, log: FastifyBaseLogger, handleProbe: (request: RawRequest, response: RawResponse) => boolean): Promise<() => void> {
  const server: Server = createServer(function probeListener (request, response) {
    if (!handleProbe(request, response)) {
      response.writeHead(404, { 'content-length': 0 })
      response.end()
    }
  })
  // The probe socket a listener handoff passed in (the previous process still holds it).
  const inherited = handedOffSockets().fds.get('probes')
  if (inherited === undefined) server.listen(config.port, config.host)
  else server.listen({ fd: inherited })
  await once(server, 'listening')
  fastify.lifecycle[kProbeServer] = server
  const { port } = server.address() as { port: number }
  log.info({ port, host: config.host }, 'health: probe listener open')
  function closeProbeListener (): void {
    if (!server.listening) return
    server.closeAllConnections()
    server.close()
  }
  fastify.lifecycle.once('closed', closeProbeListener)
  // Handed over: the new process holds the socket too and answers new probe connections from
  // now on; this one's not-ready answers would only take the instance out of rotation.
  fastify.lifecycle.once('draining', function stopTakingProbes () {
    if (!fastify.lifecycle[kHandedOver] || !server.listening) return
    server.close()
    server.closeIdleConnections()
  })
  return closeProbeListener
}

// The `fastify.lifecycle` decorator's type comes with this piece alone too, as with the suite.
export type { Lifecycle } from '../lib/lifecycle.js'
export default fp(health, { name: 'fastify-lifecycle-health', fastify: '5.x' })
export { health as fastifyLifecycleHealth }
