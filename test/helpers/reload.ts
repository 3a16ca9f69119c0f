// What the reload tests share: the load they drive through a reload (keep-alive and fresh
// connections, slow requests, an event stream), waits on conditions (never on time alone), and
// the checks that a process is gone.
import { writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { request } from 'undici'
import { startLoad, summarize, type Load, type LoadSummary } from '../../cli/load.js'

/** The reloads' traffic: every 4th request slow, every 7th asks who answers. */
export function reloadPath (n: number): string {
  return n % 4 === 3 ? '/slow?ms=200' : n % 7 === 6 ? '/whoami' : '/'
}

/** An event-stream client that reconnects whenever its stream ends, until stopped. */
export interface StreamClient {
  /** Streams that ended cleanly (the server closed them, as a drain does). */
  ended: number
  /** Streams that failed (reset, hang-up mid-event), by error code. */
  errors: string[]
  /** Events received, over every stream. */
  events: number
  /** The pids that sent events, in order of first event. */
  pids: number[]
  stop: () => Promise<void>
}

export function startStream (origin: string, maxMs: number): StreamClient {
  const client: StreamClient = { ended: 0, errors: [], events: 0, pids: [], stop: async () => { await done } }
  const controller = new AbortController()
  const endAt = performance.now() + maxMs
  async function run (): Promise<void> {
    while (!controller.signal.aborted && performance.now() < endAt) {
      try {
        const res = await request(`${origin}/sse`, { signal: controller.signal, headers: { accept: 'text/event-stream' }, bodyTimeout: 10_000, headersTimeout: 10_000 })
        for await (const chunk of res.body) {
          for (const match of String(chunk).matchAll(/^data: (\d+)$/gm)) {
            client.events++
            const pid = Number(match[1])
            if (!client.pids.includes(pid)) client.pids.push(pid)
          }
        }
        client.ended++
      } catch (err) {
        if (controller.signal.aborted) return
        client.errors.push(String((err as { code?: string }).code ?? (err as Error).message))
      }
    }
  }
  const done = run()
  client.stop = async () => {
    controller.abort()
    await done
  }
  return client
}

/** Resolves once `test` holds, checked every 20 ms, or rejects after `ms` saying what was awaited. */
export async function until (what: string, test: () => boolean, ms = 20_000): Promise<void> {
  const endAt = performance.now() + ms
  while (!test()) {
    if (performance.now() > endAt) throw new Error(`timed out after ${ms}ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

/** Answered requests so far. */
export function answered (load: Load): number {
  return load.outcomes.filter((outcome) => outcome.status !== undefined).length
}

/** Whether a process is still there (signal 0). */
export function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** Kills a process the test started indirectly (a handoff's successor), if it is still there. */
export function killIfAlive (pid: number | undefined): void {
  if (pid !== undefined && alive(pid)) process.kill(pid, 'SIGKILL')
}

/** The load the reload tests drive: 8 keep-alive and 3 fresh-connection clients, bounded. */
export function reloadLoad (origin: string, idPrefix: string, maxDurationMs = 60_000): Load {
  return startLoad({ origin, keepAliveClients: 8, freshClients: 3, path: reloadPath, maxDurationMs, maxRequestsPerClient: 100_000, idPrefix, timeoutMs: 10_000 })
}

/** The pid that answers `/whoami` now. */
export async function whoami (origin: string): Promise<number> {
  const res = await request(`${origin}/whoami`)
  return ((await res.body.json()) as { pid: number }).pid
}

export type { LoadSummary }
export { summarize }

/**
 * A file saying what the version on disk does at boot (test/fixtures/service.js reads it when
 * it starts: '', 'crash', 'hang', 'slow', 'slow-start'); emptied when the test ends.
 */
export function modeFile (t: Test, mode: string): string {
  const file = join(tmpdir(), `fastify-lifecycle-boot-mode-${process.pid}-${Math.random().toString(36).slice(2)}`)
  writeFileSync(file, mode)
  t.teardown(() => { writeFileSync(file, '') })
  return file
}
