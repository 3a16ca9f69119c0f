import type { TeardownResult } from './teardown.js'
import { messageOf, roundMs } from './timers.js'

/** The phases of one Fastify server, in the only order they can happen. */
export type Phase = 'starting' | 'ready' | 'draining' | 'closing' | 'closed'

/** What started the shutdown: a signal name, `'error'`, `'manual'` (lifecycle.shutdown()) or `'close'` (fastify.close()). */
export interface ShutdownCause {
  cause: string
  /** The uncaught exception or rejection that started the shutdown, if one did. */
  error?: unknown
}

export interface PhaseTiming {
  phase: 'draining' | 'closing' | 'closed'
  /** When the phase began, in ms after the shutdown started. */
  atMs: number
  /** How long the phase lasted, in ms (0 for `closed`). */
  durationMs: number
  /** Requests in flight when the phase began. */
  inFlight: number
}

/** What the pre-stop plugin did: the delay served, or skipped for an instance never ready. */
/** What ended the pre-stop window: the fixed delay, a quiet period, or the maximum. */
export type PreStopEnd = 'delay' | 'quiet' | 'maxDelay'

export interface PreStopStage {
  /** `fixed`: a set delay; `adaptive`: until traffic stops (`quiet`), at most `maxDelay`. */
  mode: 'fixed' | 'adaptive'
  /** The configured delay (adaptive: the least time), in ms. */
  delay: number
  /** How long the service kept serving, in ms (0 when skipped). */
  waitedMs: number
  /** True when the instance was never ready, so no load balancer had to be waited for. */
  skipped: boolean
  /** What ended the window (absent when skipped). */
  endedBy?: PreStopEnd
  /** Adaptive: the quiet period that ends the window, in ms. */
  quiet?: number
  /** Adaptive: the latest the window could end, in ms after the shutdown started. */
  maxDelay?: number
  /** Adaptive: requests that arrived during the window (probes and ignored paths left out). */
  requests?: number
  /** Adaptive: when the last of them arrived, in ms after the shutdown started. */
  lastRequestMs?: number
}

/** Long-lived connections (WebSockets, SSE streams, your own) during the drain. */
export interface LongLivedCounts {
  /** Told to go (1001 close frame, final SSE event, your `notify()`). */
  notified: number
  /** Ended before the deadline. */
  closed: number
  /** Still open at the deadline, and destroyed. */
  cut: number
}

/** What the drain plugin did, from the listener close to the last request. */
export interface DrainStage {
  /** Requests in flight when the listener closed. */
  inFlightAtClose: number
  /** Work held with `hold()` when the listener closed, by name. */
  heldAtClose: string[]
  /** Requests still running at the deadline, cut: those partly received included. */
  cut: number
  /** Of `cut`, requests partly received (headers or body still arriving), cut with their connection. */
  cutPartial: number
  /** Held work still running at the deadline, by name. */
  heldCut: string[]
  longLived: LongLivedCounts
  /** The drain deadline, in ms. */
  timeout: number
  /** How long idle keep-alive sockets were left open after the listener closed, in ms (0 after a pre-stop delay). */
  idleGraceMs: number
  /** From the listener close to the end of the drain, in ms. */
  durationMs: number
  /** True only when the drain deadline ended the wait; false when everything finished before it. */
  deadlineReached: boolean
}

/** What the teardown plugin did: each resource, in the order its close ended. */
export interface TeardownStage {
  durationMs: number
  resources: TeardownResult[]
}

/**
 * The report's stages, one per piece that took part. Extended by declaration merging as
 * pieces are added.
 */
export interface ReportStages {
  preStop?: PreStopStage
  drain?: DrainStage
  teardown?: TeardownStage
}

/** Logged once at the end of every shutdown and returned by `lifecycle.shutdown()`. */
export interface ShutdownReport {
  cause: string
  /** True when no stage had to be forced and the shutdown was not caused by an error. */
  clean: boolean
  /** The code the graceful plugin exits with: 0 when clean, 1 otherwise. */
  exitCode: 0 | 1
  /** From the start of the shutdown to the `closed` phase, in ms. */
  totalMs: number
  phases: PhaseTiming[]
  /** One line per stage that had to be forced (requests cut, a deadline hit, a close that failed). */
  forced: string[]
  /** What each piece recorded about its stage. */
  stages: ReportStages
  /** Message of the error that caused the shutdown or made `close()` fail. */
  error?: string
}

/** Collects what happens during one shutdown and builds the report from it. */
export class ReportBuilder {
  readonly #timings: Array<Omit<PhaseTiming, 'durationMs'>> = []
  readonly #forced: string[] = []
  readonly #stages: ReportStages = {}
  #startedAt = 0

  /** The shutdown starts now: times are counted from here. */
  start (now: number): void {
    this.#startedAt = now
  }

  phase (phase: PhaseTiming['phase'], now: number, inFlight: number): void {
    this.#timings.push({ phase, atMs: roundMs(now - this.#startedAt), inFlight })
  }

  record<K extends keyof ReportStages> (stage: K, data: NonNullable<ReportStages[K]>): void {
    this.#stages[stage] = Object.freeze({ ...data }) as unknown as ReportStages[K]
  }

  markForced (stage: string, detail: string): void {
    this.#forced.push(`${stage}: ${detail}`)
  }

  build (now: number, cause: ShutdownCause, closeError: unknown): ShutdownReport {
    const error = cause.error ?? closeError
    const clean = this.#forced.length === 0 && error === undefined
    const totalMs = roundMs(now - this.#startedAt)
    const phases = this.#timings.map((timing, i, all) => ({
      ...timing,
      durationMs: roundMs((all[i + 1]?.atMs ?? totalMs) - timing.atMs)
    }))
    const report: ShutdownReport = {
      cause: cause.cause,
      clean,
      exitCode: clean ? 0 : 1,
      totalMs,
      phases,
      forced: [...this.#forced],
      stages: { ...this.#stages }
    }
    if (error !== undefined) report.error = messageOf(error)
    return report
  }
}
