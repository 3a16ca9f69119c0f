import closeWithGrace from 'close-with-grace'
import fp from 'fastify-plugin'
import type { FastifyPluginAsync } from 'fastify'
import { FST_LIFECYCLE_SHUTDOWN_FORCED } from '../lib/errors.js'
import { useLifecycle } from '../lib/lifecycle.js'
import { checkBudget, HANDLED_SIGNALS, resolveGracefulOptions, type GracefulOptions } from '../lib/options.js'

export type { GracefulOptions }

/**
 * Owns the process signals through close-with-grace: the first signal (or an uncaught error)
 * starts `lifecycle.shutdown()`, a second one exits at once, and one overall deadline bounds
 * everything. Exits 0 after a clean shutdown, 1 when a stage was forced or an error caused it.
 */
const graceful: FastifyPluginAsync<GracefulOptions> = async function graceful (fastify, options) {
  const config = resolveGracefulOptions(options)
  const lifecycle = useLifecycle(fastify)
  const log = fastify.log.child({ plugin: 'graceful' })

  const skip: closeWithGrace.AllEvents[] = ['beforeExit', 'SIGILL', 'SIGTRAP', 'SIGABRT', 'SIGBUS', 'SIGFPE', 'SIGSEGV']
  for (const signal of HANDLED_SIGNALS) if (!config.signals.includes(signal)) skip.push(signal)
  if (!config.handleErrors) skip.push('uncaughtException', 'unhandledRejection')

  const handlers = closeWithGrace({
    delay: config.timeout,
    skip,
    // Every exit is explained by this plugin's own log lines.
    logger: false,
    onSecondSignal (signal) {
      lifecycle.abandon(`second ${signal} received`)
    },
    onSecondError (err) {
      log.error({ err }, 'graceful: another uncaught error during the shutdown')
      lifecycle.abandon('second uncaught error')
    },
    onTimeout (delay) {
      lifecycle.abandon(`overall deadline of ${delay}ms reached`)
    }
  }, async function shutdownGracefully ({ signal, err }) {
    if (err !== undefined) {
      log.error({ err }, 'graceful: uncaught error, shutting down')
    } else {
      log.info({ signal, timeout: config.timeout }, 'graceful: signal received, shutting down')
    }
    const report = await lifecycle.shutdown(err !== undefined ? { cause: 'error', error: err } : { cause: signal as string })
    log[report.exitCode === 0 ? 'info' : 'warn']({ exitCode: report.exitCode, totalMs: report.totalMs, forced: report.forced }, 'graceful: shutdown complete, exiting')
    // close-with-grace exits 1 on an error cause or a rejection, 0 otherwise.
    if (report.forced.length > 0) throw new FST_LIFECYCLE_SHUTDOWN_FORCED(report.forced.join('; '))
  })

  fastify.addHook('onReady', async function checkShutdownBudget () {
    checkBudget(lifecycle.budget, config.timeout)
  })

  fastify.addHook('onClose', async function removeSignalHandlers () {
    handlers.uninstall()
  })
}

export default fp(graceful, { name: 'fastify-lifecycle-graceful', fastify: '5.x' })
export { graceful as fastifyLifecycleGraceful }
