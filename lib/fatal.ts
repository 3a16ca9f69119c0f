import { inspect } from 'node:util'
import type { FastifyBaseLogger } from 'fastify'

const LEVELS: Readonly<Record<string, number>> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Number.POSITIVE_INFINITY }

/**
 * Whether `log` shows lines of `level`. Fastify's default (`Fastify()`, logger off) is a logger
 * whose methods do nothing; pino at `silent` (or above `level`) shows nothing either.
 */
export function shows (log: FastifyBaseLogger, level: 'warn' | 'error'): boolean {
  const current = (log as { level?: unknown }).level
  if (typeof current === 'string') return (LEVELS[current] ?? 0) <= LEVELS[level]
  // Fastify's logger left off: abstract-logging's methods, all one function named noop.
  return log.error.name !== 'noop'
}

/**
 * Logs what ends the process; when the logger would not show it, writes it to stderr too, stack
 * included, as Node does for an error nothing handles: no error ends a process in silence.
 */
export function logFatal (log: FastifyBaseLogger, fields: Record<string, unknown>, msg: string): void {
  log.error(fields, msg)
  if (!shows(log, 'error')) {
    const { err, ...rest } = fields
    const detail = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : ''
    process.stderr.write(`fastify-lifecycle: ${msg}${detail}\n${err === undefined ? '' : `${inspect(err)}\n`}`)
  }
}
