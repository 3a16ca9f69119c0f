import diagnosticsChannel from 'node:diagnostics_channel'
import type { CheckResult } from './health.js'
import type { Phase, ShutdownReport } from './report.js'

/**
 * The diagnostics channels the lifecycle publishes on, for APM agents, metrics and tests that
 * subscribe without a logger. Messages carry the Fastify server they are about (`server`), so
 * a subscriber can tell several servers of one process apart. Nothing is built when no one
 * subscribes.
 */
export const channels = {
  /** `{ server, phase, previous }` at every phase change. */
  phase: diagnosticsChannel.channel('fastify-lifecycle:phase'),
  /** `{ server, ready, reason }` when the lifecycle's readiness changes (`reason` when not ready). */
  readiness: diagnosticsChannel.channel('fastify-lifecycle:readiness'),
  /** `{ server, result }` for every run of a health check (cached answers are not runs). */
  check: diagnosticsChannel.channel('fastify-lifecycle:check'),
  /** `{ server, report }` once, when the shutdown report is built. */
  report: diagnosticsChannel.channel('fastify-lifecycle:report')
} as const

/** Why the lifecycle says not ready; the health plugin adds `check` and `pressure`. */
export type NotReadyReason = 'starting' | 'startup-task' | 'shutdown' | 'manual' | 'listen-failed' | 'check' | 'pressure'

export interface PhaseMessage { server: object, phase: Phase, previous: Phase }
export interface ReadinessMessage { server: object, ready: boolean, reason: NotReadyReason | undefined }
export interface CheckMessage { server: object, result: CheckResult }
export interface ReportMessage { server: object, report: ShutdownReport }
