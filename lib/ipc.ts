/**
 * What a process running the suite and the process that started it (the cluster primary, or
 * the old process of a listener handoff) say to each other over the IPC channel. Every message
 * is an object with the `fastify-lifecycle` key, so that it never collides with the app's own
 * messages (or PM2's strings).
 * @packageDocumentation
 */
import type { ShutdownReport } from './report.js'

/** The environment variable the parent sets: `cluster` (a primary's worker) or `handoff` (the successor of a listener handoff). */
export const IPC_ENV = 'FST_LIFECYCLE_IPC'
/** The environment variable listing the sockets a handoff passes, as `name:fd,name:fd`. */
export const HANDOFF_FDS_ENV = 'FST_LIFECYCLE_HANDOFF_FDS'
/** The key every message of the protocol carries. */
export const KEY = 'fastify-lifecycle'

export type IpcRole = 'cluster' | 'handoff'

/** From the child: its lifecycle is `ready` and its server listens. */
export interface ReadyMessage { [KEY]: 'ready', pid: number }
/** From the child: its shutdown report, the moment before it exits. */
export interface ReportMessage { [KEY]: 'report', pid: number, report: ShutdownReport }
/**
 * To the child: shut down gracefully, as on a signal. `handover` is true when another process
 * already serves the same listener (a reload), so there is no load balancer to wait for: the
 * pre-stop window is skipped.
 */
export interface ShutdownMessage { [KEY]: 'shutdown', reason: string, handover: boolean }
/** From the old process of a handoff to its successor: how it ended. */
export interface PredecessorMessage { [KEY]: 'predecessor', pid: number, report: ShutdownReport }

export type ChildMessage = ReadyMessage | ReportMessage
export type ParentMessage = ShutdownMessage | PredecessorMessage

/** The protocol's message, or undefined for anything else on the channel. */
export function protocolMessage<M extends ChildMessage | ParentMessage> (message: unknown): M | undefined {
  if (message === null || typeof message !== 'object') return undefined
  return typeof (message as Record<string, unknown>)[KEY] === 'string' ? message as M : undefined
}

/** The role the parent gave this process, if it is one of ours with an IPC channel. */
export function ipcRole (env: NodeJS.ProcessEnv = process.env, send: unknown = process.send): IpcRole | undefined {
  const role = env[IPC_ENV]
  if (typeof send !== 'function') return undefined
  return role === 'cluster' || role === 'handoff' ? role : undefined
}

/**
 * Sends a message and resolves once it was handed to the channel, or at once when the channel
 * is closed (the other side exited: nobody is left to tell; Node then passes the error to the
 * callback rather than throwing).
 */
export function sendMessage (send: NonNullable<typeof process.send>, message: ChildMessage | ParentMessage): Promise<void> {
  return new Promise((resolve) => { send(message, undefined, {}, () => { resolve() }) })
}

/** The sockets a handoff passed to this process, by name, and whether they outlive it anyway. */
export interface HandedOffSockets {
  readonly fds: ReadonlyMap<string, number>
  /** The predecessor's listener was itself inherited (socket activation): it outlives every process. */
  readonly inherited: boolean
}

let handedOff: HandedOffSockets | undefined

/**
 * The sockets the old process of a handoff passed to this one (`service`, `probes`), read once
 * from `FST_LIFECYCLE_HANDOFF_FDS` (`service:4,probes:5`, `;inherited` appended when they were
 * systemd's), which is then removed from the environment so that a later child does not take
 * them for its own.
 */
export function handedOffSockets (env: NodeJS.ProcessEnv = process.env): HandedOffSockets {
  if (handedOff !== undefined) return handedOff
  const [list = '', flag] = (env[HANDOFF_FDS_ENV] ?? '').split(';')
  const fds = new Map<string, number>()
  for (const entry of list.split(',')) {
    const [name, fd] = entry.split(':')
    if (name !== undefined && name !== '' && Number.isSafeInteger(Number(fd)) && Number(fd) > 2) fds.set(name, Number(fd))
  }
  delete env[HANDOFF_FDS_ENV]
  handedOff = { fds, inherited: flag === 'inherited' }
  return handedOff
}

/** For tests: forget what was read, so the next call reads the environment again. */
export function forgetHandedOffSockets (): void {
  handedOff = undefined
}
