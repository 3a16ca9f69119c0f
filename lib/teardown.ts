import { performance } from 'node:perf_hooks'
import type { FastifyBaseLogger } from 'fastify'
import {
  FST_LIFECYCLE_INVALID_ARGUMENT,
  FST_LIFECYCLE_INVALID_OPTION,
  FST_LIFECYCLE_TEARDOWN_CYCLE,
  FST_LIFECYCLE_TEARDOWN_DUPLICATE_NAME,
  FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD,
  FST_LIFECYCLE_TEARDOWN_STARTED,
  FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY
} from './errors.js'
import { duration, keysOf, optionsObject } from './options.js'
import { deadline, messageOf, roundMs, settleWithin } from './timers.js'

/** A function that closes something; may return a promise. */
export type CloseFunction = () => unknown

/** Anything with one of the close methods teardown knows (pg, ioredis, node-redis, servers, …). */
export interface Closable {
  end?: () => unknown
  quit?: () => unknown
  close?: () => unknown
  disconnect?: () => unknown
  destroy?: () => unknown
}

export interface TeardownResourceOptions {
  /** Longest wait for this resource to close, in ms. @default the teardown plugin's `resourceTimeout` */
  timeout?: number | undefined
  /** Resources that must be closed before this one starts closing: this one outlives them. */
  after?: readonly string[] | undefined
}

/**
 * `'already closed'`: its owner closed it first (@fastify/postgres and @fastify/redis close
 * their clients in onClose hooks of their own); not a failure.
 */
export type TeardownOutcome = 'closed' | 'already closed' | 'failed' | 'timed out' | 'skipped'

/** One resource in the shutdown report. */
export interface TeardownResult {
  name: string
  /** `end`, `quit`, … or `function`. */
  method: string
  outcome: TeardownOutcome
  /** When its close started, in ms after the teardown started (absent when skipped). */
  startedAtMs?: number
  durationMs?: number
  /** The error's message, when it failed; why, when it was skipped before the deadline. */
  error?: string
}

interface Entry {
  readonly name: string
  readonly method: string
  /** Whether the resource says it is closed (or closing) already. */
  readonly closed: () => boolean
  readonly close: () => unknown
  /** Called when the close timed out, to stop what it left running (a reconnect loop). */
  readonly force: (() => unknown) | undefined
  readonly timeout: number
  readonly after: readonly string[]
}

const CLOSE_METHODS = ['end', 'quit', 'close', 'disconnect', 'destroy'] as const
const FORCE_METHODS = ['destroy', 'disconnect'] as const
const RESOURCE_OPTIONS = keysOf<TeardownResourceOptions>()({ timeout: true, after: true })

/**
 * The close method, in the documented order `end`, `quit`, `close`, `disconnect`, `destroy`;
 * except that a client with both `quit()` and `end()` is closed with `quit()`: that is a Redis
 * client (ioredis), whose `end()` drops the commands still pending.
 */
function closeMethodOf (resource: Closable): typeof CLOSE_METHODS[number] | undefined {
  if (typeof resource.quit === 'function' && typeof resource.end === 'function') return 'quit'
  return CLOSE_METHODS.find((method) => typeof resource[method] === 'function')
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (typeof value !== 'object') return typeof value
  return `an object (${value.constructor?.name ?? 'no prototype'})`
}

/** Every resource registered with `lifecycle.teardown()`, and the code that closes them in order. */
export class TeardownRegistry {
  readonly #entries = new Map<string, Entry>()
  /** Latest registered first: the order resources start closing in, when `after` allows. */
  #order: Entry[] | undefined
  #defaultTimeout: number
  #checkOnAdd = false
  #started = false

  constructor (defaultTimeout: number) {
    this.#defaultTimeout = defaultTimeout
  }

  add (name: string, resource: Closable | CloseFunction, options: TeardownResourceOptions = {}): void {
    if (typeof name !== 'string' || name === '') {
      throw new FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.teardown(): name', 'a non-empty string', name)
    }
    if (this.#started) throw new FST_LIFECYCLE_TEARDOWN_STARTED(name)
    if (this.#entries.has(name)) throw new FST_LIFECYCLE_TEARDOWN_DUPLICATE_NAME(name)
    optionsObject<TeardownResourceOptions>(options, `teardown '${name}' `, RESOURCE_OPTIONS, `teardown '${name}' options`)
    const timeout = duration(`teardown '${name}' timeout`, options.timeout, this.#defaultTimeout, true)
    const after = options.after ?? []
    if (!Array.isArray(after) || after.some((dep) => typeof dep !== 'string')) {
      throw new FST_LIFECYCLE_INVALID_OPTION(`teardown '${name}' after`, 'an array of resource names', after)
    }

    let entry: Entry
    if (typeof resource === 'function') {
      entry = { name, method: 'function', closed: () => false, close: resource, force: undefined, timeout, after: [...after] }
    } else {
      const method = resource !== null && typeof resource === 'object' ? closeMethodOf(resource) : undefined
      if (method === undefined) throw new FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD(name, describe(resource))
      const forceMethod = FORCE_METHODS.find((m) => m !== method && typeof resource[m] === 'function')
      entry = {
        name,
        method,
        closed: () => closedAlready(resource),
        close: () => (resource[method] as () => unknown)(),
        force: forceMethod === undefined ? undefined : () => (resource[forceMethod] as () => unknown)(),
        timeout,
        after: [...after]
      }
    }
    this.#entries.set(name, entry)
    this.#order = undefined
    // Registered once the app is ready: check now, there is no later moment.
    if (this.#checkOnAdd) {
      try {
        this.check()
      } catch (err) {
        this.#entries.delete(name)
        throw err
      }
    }
  }

  /** Every entry, latest registered first (a Map keeps registration order). */
  #latestFirst (): Entry[] {
    return [...this.#entries.values()].reverse()
  }

  /** The registered names, in registration order. */
  get names (): string[] {
    return [...this.#entries.keys()]
  }

  /**
   * Every `after` names a registered resource and the order has no cycle. Checked when the app
   * is ready, which also computes the closing order once.
   */
  check (): void {
    this.#checkOnAdd = true
    this.#order = this.#latestFirst()
    for (const entry of this.#entries.values()) {
      for (const dep of entry.after) {
        if (!this.#entries.has(dep)) throw new FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY(entry.name, dep)
      }
    }
    // Depth-first search over `after` edges; a node met again on the current path closes a cycle.
    const done = new Set<string>()
    const path: string[] = []
    const visit = (name: string): void => {
      if (done.has(name)) return
      const at = path.indexOf(name)
      if (at !== -1) throw new FST_LIFECYCLE_TEARDOWN_CYCLE([...path.slice(at), name].join(' → '))
      path.push(name)
      for (const dep of (this.#entries.get(name) as Entry).after) visit(dep)
      path.pop()
      done.add(name)
    }
    for (const name of this.#entries.keys()) visit(name)
  }

  /**
   * Closes everything: a resource starts once every resource it is `after` is done (closed or
   * not), latest registered first; one at a time, or all that may at once when `parallel`.
   * Each is bounded by its own timeout and all by `timeout`; failures never stop the others.
   */
  async run (options: { timeout: number, parallel: boolean }, log: FastifyBaseLogger): Promise<TeardownResult[]> {
    this.#started = true
    const origin = performance.now()
    const since = (): number => roundMs(performance.now() - origin)
    const results: TeardownResult[] = []
    // Computed at ready; computed here when the boot failed before (or close() came first).
    this.#order ??= this.#latestFirst()
    const pending = new Set(this.#order)
    const done = new Set<string>()
    const running = new Map<Entry, { startedAtMs: number, finished: Promise<void> }>()
    const overall = deadline(options.timeout)
    const limit = options.parallel ? Number.POSITIVE_INFINITY : 1

    while (pending.size > 0 || running.size > 0) {
      const startable = [...pending].filter((entry) => entry.after.every((dep) => done.has(dep)))
      if (startable.length === 0 && running.size === 0) {
        // Only resources whose `after` can never be met are left (an unknown name, a cycle: the
        // boot failed on them): nothing will ever let them start, so skip them now.
        const skipped = [...pending].map((entry) => entry.name)
        log.warn({ skipped }, 'teardown: resources whose `after` can never be met were skipped')
        for (const entry of pending) results.push({ name: entry.name, method: entry.method, outcome: 'skipped', error: `its after (${entry.after.join(', ')}) can never be met` })
        break
      }
      for (const entry of startable.slice(0, limit - running.size)) {
        pending.delete(entry)
        const startedAtMs = since()
        const finished = closeOne(entry, log).then((result) => {
          results.push({ name: entry.name, method: entry.method, startedAtMs, durationMs: roundMs(since() - startedAtMs), ...result })
          running.delete(entry)
          done.add(entry.name)
        })
        running.set(entry, { startedAtMs, finished })
      }
      const outcome = await Promise.race([...[...running.values()].map((r) => r.finished), overall.promise])
      if (outcome === overall.expired) {
        const skipped = [...pending].map((entry) => entry.name)
        log.warn({ timeout: options.timeout, running: [...running.keys()].map((e) => e.name), skipped }, 'teardown: overall deadline reached, giving up on the rest')
        for (const [entry, { startedAtMs }] of running) {
          results.push({ name: entry.name, method: entry.method, outcome: 'timed out', startedAtMs, durationMs: roundMs(since() - startedAtMs) })
          forceClose(entry)
        }
        for (const entry of pending) results.push({ name: entry.name, method: entry.method, outcome: 'skipped' })
        break
      }
    }
    overall.clear()
    return results
  }
}

/**
 * Whether a client has been closed (or is closing) by someone else, by the flags the common
 * clients keep: pg's Pool (`ending`, `ended`) and Client (`_ending`), ioredis (`status` 'end', or
 * `manuallyClosing` from the moment quit() was called: its promise resolves on the server's OK,
 * before the socket has closed), node-redis (`isOpen` false once closed, with `isReady` false).
 */
function closedAlready (resource: object): boolean {
  const flags = resource as { ending?: unknown, ended?: unknown, _ending?: unknown, status?: unknown, manuallyClosing?: unknown, isOpen?: unknown, isReady?: unknown }
  return flags.ending === true || flags.ended === true || flags._ending === true || flags.status === 'end' ||
    flags.manuallyClosing === true || (flags.isOpen === false && flags.isReady === false)
}

async function closeOne (entry: Entry, log: FastifyBaseLogger): Promise<Pick<TeardownResult, 'outcome' | 'error'>> {
  if (entry.closed()) {
    log.info({ resource: entry.name, method: entry.method }, 'teardown: resource already closed by its owner')
    return { outcome: 'already closed' }
  }
  const settled = await settleWithin(entry.close, entry.timeout)
  if (settled.status === 'timed out') {
    log.warn({ resource: entry.name, method: entry.method, timeout: entry.timeout }, 'teardown: resource timed out')
    forceClose(entry)
    return { outcome: 'timed out' }
  }
  if (settled.status === 'rejected') {
    log.error({ err: settled.reason, resource: entry.name, method: entry.method }, 'teardown: resource failed to close')
    return { outcome: 'failed', error: messageOf(settled.reason) }
  }
  log.info({ resource: entry.name, method: entry.method }, 'teardown: resource closed')
  return { outcome: 'closed' }
}

/** A close that hung may leave a reconnect loop behind: stop it if the resource can be forced. */
function forceClose (entry: Entry): void {
  if (entry.force !== undefined) Promise.resolve().then(entry.force).catch(() => {})
}
