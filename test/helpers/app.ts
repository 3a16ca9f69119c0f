// What the in-process tests share: an app's origin, a gate a test opens when it chooses, and a
// logger whose lines the test can read.
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'

/** `http://127.0.0.1:PORT` of a listening Fastify app (or any server with `address()`). */
export function originOf (app: { server: { address: () => unknown } }, scheme = 'http'): string {
  return `${scheme}://127.0.0.1:${(app.server.address() as AddressInfo).port}`
}

/** A promise and its resolver: the test decides when a route may answer. */
export function gate (): { open: () => void, opened: Promise<void> } {
  let open!: () => void
  const opened = new Promise<void>((resolve) => { open = resolve })
  return { open, opened }
}

/** One pino line, parsed. */
export type Line = Record<string, unknown> & { msg?: string }

/** A pino stream that keeps every line, for `Fastify({ logger: { level, stream } })`. */
export function captureLogs (): { stream: Writable, lines: Line[] } {
  const lines: Line[] = []
  const stream = new Writable({
    write (chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)))
      done()
    }
  })
  return { stream, lines }
}
