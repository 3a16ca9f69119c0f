import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import { FST_LIFECYCLE_INVALID_ARGUMENT, FST_LIFECYCLE_SYSTEMD_SOCKET } from './errors.js'

/** The first file descriptor systemd passes (sd_listen_fds(3): SD_LISTEN_FDS_START). */
const FIRST_FD = 3

/** A socket systemd passed in, by its file descriptor and its name (`FileDescriptorName=`). */
export interface ListenFd {
  fd: number
  name: string
}

/** What `fastify.listen()` takes to listen on a socket systemd passed in. */
export interface SystemdListenOptions {
  fd: number
  /** Not used to bind (the socket is bound): set so Fastify does not add a `localhost` binding. */
  host: string
  /** The listen(2) backlog Node applies to the socket; see `systemdListen()`. */
  backlog: number
}

let inherited: readonly ListenFd[] | undefined

/**
 * The sockets systemd passed to this process (`LISTEN_FDS`, `LISTEN_PID`, `LISTEN_FDNAMES`),
 * read once. The variables are then removed from `process.env`, as sd_listen_fds(3) does, so
 * a child process does not take the sockets for its own. Empty when there are none, or when
 * `LISTEN_PID` names another process (they were meant for a parent).
 */
export function inheritedSockets (env: NodeJS.ProcessEnv = process.env): readonly ListenFd[] {
  if (inherited !== undefined) return inherited
  const count = Number(env.LISTEN_FDS)
  const forUs = env.LISTEN_PID === undefined || Number(env.LISTEN_PID) === process.pid
  const names = (env.LISTEN_FDNAMES ?? '').split(':')
  inherited = Number.isSafeInteger(count) && count > 0 && forUs
    ? Array.from({ length: count }, (_, i) => ({ fd: FIRST_FD + i, name: names[i] !== undefined && names[i] !== '' ? names[i] : 'unknown' }))
    : []
  delete env.LISTEN_FDS
  delete env.LISTEN_PID
  delete env.LISTEN_FDNAMES
  return inherited
}

/** For tests: forget what was read, so the next call reads the environment again. */
export function forgetInheritedSockets (): void {
  inherited = undefined
}

/** The kernel's cap on listen backlogs (Linux), which systemd's `Backlog=` cannot exceed; 4096 when unknown. */
export function somaxconn (file = '/proc/sys/net/core/somaxconn'): number {
  try {
    const value = Number(readFileSync(file, 'utf8').trim())
    return Number.isSafeInteger(value) && value > 0 ? value : 4096
  } catch {
    return 4096
  }
}

/**
 * Listen options for the socket systemd passed in (socket activation), or `undefined` when it
 * passed none: `await app.listen(systemdListen() ?? { port: 3000, host: '0.0.0.0' })`.
 *
 * With several sockets (a `.socket` unit with several `Listen…=` lines, or several units), give
 * the `FileDescriptorName=` of the one to use. Node calls listen(2) again on the socket with
 * its own backlog (511 unless told), which would lower the unit's `Backlog=`: the backlog here
 * is the kernel's cap (`net.core.somaxconn`), which the unit's cannot exceed, unless given.
 */
export function systemdListen (options: { name?: string, backlog?: number } = {}): SystemdListenOptions | undefined {
  if (options === null || typeof options !== 'object') throw new FST_LIFECYCLE_INVALID_ARGUMENT('systemdListen(): options', 'an object', options)
  const sockets = inheritedSockets()
  if (sockets.length === 0) return undefined
  let socket: ListenFd | undefined
  if (options.name !== undefined) {
    socket = sockets.find((s) => s.name === options.name)
    if (socket === undefined) throw new FST_LIFECYCLE_SYSTEMD_SOCKET(`no socket named '${options.name}' was passed in (names: ${sockets.map((s) => s.name).join(', ')})`)
  } else {
    if (sockets.length > 1) throw new FST_LIFECYCLE_SYSTEMD_SOCKET(`${sockets.length} sockets were passed in (names: ${sockets.map((s) => s.name).join(', ')}): say which with systemdListen({ name })`)
    socket = sockets[0]
  }
  const backlog = options.backlog ?? somaxconn()
  if (!Number.isSafeInteger(backlog) || backlog < 1) throw new FST_LIFECYCLE_INVALID_ARGUMENT('systemdListen(): options.backlog', 'a positive integer', backlog)
  return { fd: socket.fd, host: '0.0.0.0', backlog }
}

/** Sends one notification (newline-separated `KEY=VALUE` lines) to the service manager. */
export type NotifyTransport = (message: string) => unknown

/**
 * Notifications to the service manager, in order, one at a time. Node has no unix datagram
 * sockets, so the default transport runs systemd's own `systemd-notify` (with `--pid`, so the
 * message is about this process); a transport given by the user (a native sd_notify binding)
 * replaces it. A failure is logged once, never thrown: notifications must not break a service.
 */
export class Notifier {
  readonly #transport: (message: string, pid: number) => unknown
  readonly #log: FastifyBaseLogger
  #queue: Promise<void> = Promise.resolve()
  #warned = false

  constructor (log: FastifyBaseLogger, transport?: NotifyTransport, socket = process.env.NOTIFY_SOCKET) {
    this.#log = log
    this.#transport = transport ?? ((message, pid) => runSystemdNotify(message, socket as string, pid))
  }

  /**
   * Queues a notification, sent once those before it were handed over. With the default
   * transport the message is about this process (`--pid`, which also says `MAINPID=`); a
   * `MAINPID` field names another one instead (a handoff's new process).
   */
  send (fields: Record<string, string | number>): void {
    const message = Object.entries(fields).map(([key, value]) => `${key}=${value}`).join('\n')
    this.#queue = this.#queue.then(async () => {
      try {
        await this.#transport(message, fields.MAINPID === undefined ? process.pid : Number(fields.MAINPID))
      } catch (err) {
        if (this.#warned) return
        this.#warned = true
        this.#log.warn({ err }, 'systemd: could not notify the service manager; install systemd-notify (Debian: the systemd package) or pass systemd.transport')
      }
    })
  }

  /** Resolves once every notification queued so far was handed over (or failed, logged). */
  get flushed (): Promise<void> {
    return this.#queue
  }
}

/** systemd-notify with the message's assignments as arguments; rejects on failure. */
function runSystemdNotify (message: string, socket: string, pid: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('systemd-notify', [`--pid=${pid}`, ...message.split('\n')], {
      env: { ...process.env, NOTIFY_SOCKET: socket },
      stdio: ['ignore', 'ignore', 'pipe']
    })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk })
    child.once('error', reject)
    child.once('close', (code) => {
      if (code === 0) resolve()
      else reject(new Error(`systemd-notify exited with code ${code}: ${stderr.trim()}`))
    })
  })
}
