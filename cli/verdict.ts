// What a shutdown under load did, in numbers and in words: the counts by outcome, the timeline,
// and the findings (each with its likely cause and the fix) that make the verdict. Pure
// functions of what the `verify` command (and the demo, the benches, the tests) observed.
import type { Outcome } from './load.js'

/** Requests by what became of them. */
export interface RequestCounts {
  sent: number
  /** Answered with a 2xx. */
  answered: number
  /** Accepted by the service and then lost: reset, hung up, timed out, or answered 5xx. */
  lost: number
  /** Connections refused: nothing listened (expected once the listener is closed). */
  refused: number
  /** Reset or hung up without an answer. */
  resets: number
  /** Of `resets`, on a keep-alive socket an earlier request had used. */
  resetsOnReused: number
  /** No answer within the client's timeout. */
  timeouts: number
  /** Answered 503. */
  status503: number
  /** Answered another non-2xx status (503 aside). */
  otherStatus: number
}

const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT'])

/** Sorts requests by outcome; requests still pending count as timed out. */
export function countRequests (outcomes: readonly Outcome[]): RequestCounts {
  const counts: RequestCounts = { sent: outcomes.length, answered: 0, lost: 0, refused: 0, resets: 0, resetsOnReused: 0, timeouts: 0, status503: 0, otherStatus: 0 }
  for (const outcome of outcomes) {
    const kind = outcomeKind(outcome)
    if (kind === 'ok') counts.answered++
    else if (kind === 'refused') counts.refused++
    else if (kind === '503') counts.status503++
    else if (kind === 'status') counts.otherStatus++
    else if (kind === 'timeout') counts.timeouts++
    else {
      counts.resets++
      if (outcome.reused) counts.resetsOnReused++
    }
  }
  counts.lost = counts.resets + counts.timeouts + counts.status503 + outcomes.filter((o) => o.status !== undefined && o.status >= 500 && o.status !== 503).length
  return counts
}

export type OutcomeKind = 'ok' | 'refused' | 'reset' | 'timeout' | '503' | 'status'

/** One request's outcome, as the timeline and the counts see it. */
export function outcomeKind (outcome: Outcome): OutcomeKind {
  if (outcome.status !== undefined) {
    if (outcome.status >= 200 && outcome.status < 300) return 'ok'
    return outcome.status === 503 ? '503' : 'status'
  }
  if (outcome.endedAt === 0 || TIMEOUTS.has(outcome.error as string)) return 'timeout'
  return outcome.error === 'ECONNREFUSED' ? 'refused' : 'reset'
}

/** Requests per time slot by outcome, from `origin` (performance.now()), by when they ended. */
export interface Slot { atMs: number, ok: number, refused: number, lost: number }

export function timeline (outcomes: readonly Outcome[], origin: number, slotMs = 100): Slot[] {
  const slots: Slot[] = []
  for (const outcome of outcomes) {
    const at = (outcome.endedAt === 0 ? outcome.startedAt : outcome.endedAt) - origin
    const index = Math.max(0, Math.floor(at / slotMs))
    for (let i = slots.length; i <= index; i++) slots.push({ atMs: i * slotMs, ok: 0, refused: 0, lost: 0 })
    const slot = slots[index] as Slot
    const kind = outcomeKind(outcome)
    if (kind === 'ok') slot.ok++
    else if (kind === 'refused') slot.refused++
    else slot.lost++
  }
  return slots
}

/** One problem found, in plain words, with the likely cause and the fix. */
export interface Finding {
  kind: string
  /** `fail` makes the verdict fail; `warn` and `info` are advice. */
  severity: 'fail' | 'warn' | 'info'
  message: string
  fix: string
}

/** What the verdict is made from. Times are in ms after the signal. */
export interface Observed {
  requests: RequestCounts
  /** Requests sent before the signal and not answered yet when it was sent. */
  inFlightAtSignal: number
  /** Whether slow requests were part of the load (`--slow-path`). */
  slowRequests: boolean
  /** The signal sent. */
  signal: string
  exit: { code: number | null, signal: string | null, afterSignalMs: number | undefined }
  /** Killed by the verifier after this many ms without an exit. */
  killedAfterMs: number | undefined
  /** When readiness first failed; undefined if it never did, or was not probed. */
  readinessFlipMs: number | undefined
  /** Whether readiness was probed at all. */
  readinessProbed: boolean
  /** When the first connection was refused. */
  listenerClosedMs: number | undefined
  /** Liveness answers other than 200 during the shutdown (undefined: not probed). */
  livenessFailures: number | undefined
  /** Idle keep-alive sockets still open when the process exited, and how many were opened. */
  idleSockets: { opened: number, openAtExit: number }
  /** The service's own shutdown report, when it logged one (`lifecycle: shutdown report`). */
  report: { clean: boolean, forced: string[], exitCode: number } | undefined
}

/** What was verified, in a few words. */
export function modeText (mode: 'shutdown' | 'reload' | 'rolling'): string {
  return mode === 'reload' ? 'a reload' : mode === 'rolling' ? 'a rolling restart behind HAProxy' : 'a shutdown'
}

/** How a process ended, in words: `code 0`, `killed by SIGTERM`. */
export function exitText (exit: { code: number | null, signal: string | null }): string {
  return exit.signal !== null ? `killed by ${exit.signal}` : `code ${exit.code}`
}

/** The findings, most serious first. */
export function findings (observed: Observed): Finding[] {
  const found: Finding[] = []
  const { requests, exit, signal } = observed
  const exitMs = exit.afterSignalMs === undefined ? undefined : Math.round(exit.afterSignalMs)
  if (observed.killedAfterMs !== undefined) {
    found.push({
      kind: 'no-exit',
      severity: 'fail',
      message: `the process had not exited ${observed.killedAfterMs} ms after ${signal}: it was killed`,
      fix: 'something keeps the process alive after the shutdown (an open handle, a timer, a connection): exit after close() (the graceful plugin does), and bound every stage with a deadline'
    })
  } else if (exit.signal === signal) {
    found.push({
      kind: 'no-handler',
      severity: 'fail',
      message: `the process was killed by ${signal}: nothing handles it${observed.inFlightAtSignal > 0 ? `, and the ${observed.inFlightAtSignal} request(s) in flight were cut` : ''}`,
      fix: `handle ${signal}: register fastify-lifecycle (its graceful plugin closes the app and exits), or call app.close() from a ${signal} handler`
    })
  } else if (exit.code !== 0) {
    const why = observed.report !== undefined && observed.report.forced.length > 0 ? `: ${observed.report.forced.join('; ')}` : ''
    found.push({
      kind: 'exit-code',
      severity: 'fail',
      message: `exit ${exitText(exit)}${exitMs === undefined ? '' : ` after ${exitMs} ms`}${why}`,
      fix: why !== ''
        ? 'a stage of the shutdown hit its deadline: finish that work sooner, or give the stage more time within the overall deadline'
        : 'the shutdown did not finish cleanly; a process manager counts this as a crash. Log the shutdown (the suite\'s report says which stage was forced)'
    })
  }
  // A process killed by the signal cuts everything: its resets are not the keep-alive race.
  const killed = observed.killedAfterMs !== undefined || exit.signal === signal
  if (requests.resetsOnReused > 0 && !killed) {
    found.push({
      kind: 'keep-alive-resets',
      severity: 'fail',
      message: `${requests.resetsOnReused} request(s) reset on reused keep-alive sockets: the server closed idle connections under clients that were sending`,
      fix: 'answer requests after the signal with Connection: close and give idle sockets a grace before closing them (the drain plugin does both)'
    })
  }
  const otherResets = killed ? requests.resets : requests.resets - requests.resetsOnReused
  if (otherResets > 0 || requests.timeouts > 0) {
    found.push({
      kind: 'lost-requests',
      severity: 'fail',
      message: `${otherResets + requests.timeouts} request(s) lost without an answer (${otherResets} reset or hung up, ${requests.timeouts} timed out)`,
      fix: 'let requests in flight finish before the process exits or the sockets are destroyed: close the listener, then wait for them (the drain plugin), within a deadline'
    })
  }
  if (requests.status503 > 0) {
    found.push({
      kind: 'status-503',
      severity: 'fail',
      message: `${requests.status503} request(s) answered 503 during the shutdown`,
      fix: 'Fastify answers 503 to requests it had not started once close() begins: close the listener first and serve what was accepted (the drain plugin runs before close())'
    })
  }
  if (requests.otherStatus > 0) {
    found.push({
      kind: 'error-status',
      severity: 'warn',
      message: `${requests.otherStatus} request(s) answered with another non-2xx status`,
      fix: 'check that the load\'s paths (--path, --slow-path) answer 2xx when the service is healthy'
    })
  }
  if (observed.idleSockets.openAtExit > 0 && exitMs !== undefined && exitMs >= 1000) {
    found.push({
      kind: 'idle-sockets',
      severity: 'warn',
      message: `${observed.idleSockets.openAtExit} of ${observed.idleSockets.opened} idle keep-alive socket(s) stayed open until the exit, ${exitMs} ms after ${signal}`,
      fix: 'an idle keep-alive socket holds close() until keepAliveTimeout: register the drain (it closes idle sockets after a short grace)'
    })
  }
  if (observed.readinessProbed && (observed.readinessFlipMs === undefined || (observed.listenerClosedMs !== undefined && observed.readinessFlipMs > observed.listenerClosedMs))) {
    found.push({
      kind: 'readiness',
      severity: 'warn',
      message: 'readiness did not fail before the listener closed: a load balancer keeps sending requests to an instance that is going away',
      fix: 'fail readiness at the signal and keep serving for a pre-stop delay (the health and pre-stop plugins)'
    })
  }
  if (observed.livenessFailures !== undefined && observed.livenessFailures > 0) {
    found.push({
      kind: 'liveness',
      severity: 'warn',
      message: `liveness failed ${observed.livenessFailures} time(s) during the shutdown: an orchestrator may kill the process before it has drained`,
      fix: 'keep liveness passing until the exit: only readiness should fail at the signal'
    })
  }
  if (observed.listenerClosedMs !== undefined && observed.listenerClosedMs < 100) {
    found.push({
      kind: 'no-serving-window',
      severity: 'info',
      message: `connections were refused ${Math.round(observed.listenerClosedMs)} ms after ${signal}: the listener closed at once`,
      fix: 'fine for one instance; behind a load balancer, keep serving while it notices (preStop.delay, or preStop.quiet)'
    })
  }
  if (!observed.slowRequests) {
    found.push({
      kind: 'no-slow-requests',
      severity: 'info',
      message: 'the load had no slow requests, so few requests were in flight at the signal',
      fix: 'pass --slow-path with a route that takes a second or so, to check that requests in flight finish'
    })
  }
  if (observed.report === undefined) {
    found.push({
      kind: 'no-report',
      severity: 'info',
      message: 'the service logged no shutdown report',
      fix: 'fastify-lifecycle logs one (`lifecycle: shutdown report`) with what each stage did; keep the logger on, at info'
    })
  }
  return found
}

/** `pass` when no finding makes it fail. */
export function verdictOf (found: readonly Finding[]): 'pass' | 'fail' {
  return found.some((finding) => finding.severity === 'fail') ? 'fail' : 'pass'
}
