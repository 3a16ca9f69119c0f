/**
 * Process-level reloads without an orchestrator: a node:cluster primary that replaces its
 * workers start-first, with rollback. Not a Fastify plugin: run it in the primary process, and
 * the app (with the suite registered) in the workers.
 * @packageDocumentation
 */
export { startPrimary, RELOAD_SIGNALS } from './primary.js'
export type { Primary, PrimaryOptions, PrimaryLogger, ReloadReport, ReloadStep, ReloadSignal } from './primary.js'
