import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import { FST_LIFECYCLE_INVALID_ARGUMENT, FST_LIFECYCLE_STARTUP_TASK_LATE } from './errors.js'
import { duration } from './options.js'
import { deadline } from './timers.js'

/** Options of `lifecycle.startupTask()`. */
export interface StartupTaskOptions {
  /** Wait before running a failed task again, in ms. @default 1000 */
  retryDelay?: number | undefined
}

/** Start-up tasks of one server: work that must succeed before it is `ready`. */
export class StartupTasks {
  readonly #tasks = new Map<string, { task: () => unknown, retryDelay: number }>()
  readonly #pending = new Set<string>()
  #closed = false

  get size (): number { return this.#tasks.size }

  get pending (): string[] { return [...this.#pending] }

  /** How long each task took to succeed, in ms, retries included (tasks done so far). */
  readonly durations = new Map<string, number>()

  add (name: string, task: () => unknown, options: StartupTaskOptions = {}): void {
    if (typeof name !== 'string' || name === '' || this.#tasks.has(name)) {
      throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.startupTask(): name', 'a non-empty string not used by another start-up task', name)
    }
    if (typeof task !== 'function') throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.startupTask(): task', 'a function', task)
    if (this.#closed) throw new FST_LIFECYCLE_STARTUP_TASK_LATE(name)
    if (options === null || typeof options !== 'object') {
      throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.startupTask(): options', 'an object', options)
    }
    const retryDelay = duration(`startupTask '${name}' retryDelay`, options.retryDelay, 1000, true)
    this.#tasks.set(name, { task, retryDelay })
    this.#pending.add(name)
  }

  /** No task may be added from now on: the app is ready. */
  close (): void {
    this.#closed = true
  }

  /**
   * Runs every task, each until it succeeds or `signal` aborts; a failure is logged and the
   * task run again after its retry delay. Never rejects. Resolves true when all succeeded.
   */
  async run (signal: AbortSignal, log: FastifyBaseLogger): Promise<boolean> {
    log.info({ tasks: this.pending }, 'lifecycle: running start-up tasks')
    await Promise.all([...this.#tasks].map(async ([name, { task, retryDelay }]) => {
      const started = performance.now()
      for (let attempt = 1; !signal.aborted; attempt++) {
        try {
          await task()
          this.durations.set(name, performance.now() - started)
          this.#pending.delete(name)
          log.info({ task: name, attempt }, 'lifecycle: start-up task done')
          return
        } catch (err) {
          log.error({ err, task: name, attempt, retryDelay }, 'lifecycle: start-up task failed, retrying')
          const pause = deadline(retryDelay)
          const abort = (): void => pause.clear()
          signal.addEventListener('abort', abort, { once: true })
          await pause.promise
          signal.removeEventListener('abort', abort)
        }
      }
    }))
    return this.#pending.size === 0
  }
}
