/**
 * What the plugins need from each other and from the lifecycle, kept off the user's API: each
 * member of `Lifecycle` keyed by one of these symbols is plumbing between the pieces of the
 * suite. None of them is exported from the package; `stripInternal` keeps them out of the
 * published types.
 * @internal
 * @packageDocumentation
 */

/** @internal `lifecycle[kRecord](stage, data)`: what a stage did, for the report. */
export const kRecord = Symbol('fastify-lifecycle.record')
/** @internal `lifecycle[kMarkForced](stage, detail)`: a stage had to force something. */
export const kMarkForced = Symbol('fastify-lifecycle.markForced')
/** @internal `lifecycle[kAbandon](why)`: the process exits now; log the report as it stands. */
export const kAbandon = Symbol('fastify-lifecycle.abandon')
/** @internal `lifecycle[kCountInFlight](counter)`: how the drain counts requests in flight. */
export const kCountInFlight = Symbol('fastify-lifecycle.countInFlight')
/** @internal `lifecycle[kAbortDeadline]()`: the drain aborts `deadlineSignal` ahead of its deadline. */
export const kAbortDeadline = Symbol('fastify-lifecycle.abortDeadline')
/** @internal `lifecycle[kChecks]`: the health plugin's check registry. */
export const kChecks = Symbol('fastify-lifecycle.checks')
/** @internal `lifecycle[kTeardown]`: the teardown plugin's resource registry. */
export const kTeardown = Symbol('fastify-lifecycle.teardown')
/** @internal `lifecycle[kWork]`: held work and long-lived connections, writable. */
export const kWork = Symbol('fastify-lifecycle.work')
/** @internal `lifecycle[kClaim](piece)`: a piece of the suite registers once per server. */
export const kClaim = Symbol('fastify-lifecycle.claim')
/** @internal `lifecycle[kDeadline]`: the graceful plugin's overall deadline, in ms (it sets it). */
export const kDeadline = Symbol('fastify-lifecycle.deadline')
/** @internal `lifecycle[kExit]?.(why)`: the graceful plugin's shutdown-then-exit, as for a signal (PM2's 'shutdown' message). */
export const kExit = Symbol('fastify-lifecycle.exit')
/** @internal `lifecycle[kLiveness]`: the health plugin's liveness (it sets it), for a watchdog. */
export const kLiveness = Symbol('fastify-lifecycle.liveness')
/** @internal `lifecycle[kReadinessReason]()`: why readiness fails now; the health plugin replaces it with one that adds checks and pressure. */
export const kReadinessReason = Symbol('fastify-lifecycle.readinessReason')
/** @internal `lifecycle[kConnections]()`: open connections by protocol; the drain replaces it with its count. */
export const kConnections = Symbol('fastify-lifecycle.connections')
/** @internal `lifecycle[kProbeRoutes]`: extra GET routes of the probe listener (metrics), set by the health plugin when it has a port of its own. */
export const kProbeRoutes = Symbol('fastify-lifecycle.probeRoutes')
/** @internal `lifecycle[kServing](listener)`: called once the lifecycle is ready and the server listens, whichever comes last. */
export const kServing = Symbol('fastify-lifecycle.serving')
/** @internal `lifecycle[kBeforeExit]`: work the graceful plugin awaits (bounded) between the report and the exit. */
export const kBeforeExit = Symbol('fastify-lifecycle.beforeExit')
/** @internal `lifecycle[kSharedListener]`: the listening socket is inherited and outlives this process (socket activation). */
export const kSharedListener = Symbol('fastify-lifecycle.sharedListener')
/** @internal `lifecycle[kListenFailed]`: the server's listen() failed (EADDRINUSE, EACCES). */
export const kListenFailed = Symbol('fastify-lifecycle.listenFailed')
/**
 * @internal `lifecycle[kProbe](url)`: whether a request of the service's server is a probe; the
 * health plugin replaces it when it serves probes there (probes are not traffic).
 */
export const kProbe = Symbol('fastify-lifecycle.probe')
/** @internal `lifecycle[kReadyCheck](name, check)`: must pass before the lifecycle enters `ready`. */
export const kReadyCheck = Symbol('fastify-lifecycle.readyCheck')
/** @internal `lifecycle[kBootFailed](listener)`: a ready check failed the boot, with this error. */
export const kBootFailed = Symbol('fastify-lifecycle.bootFailed')
/** @internal on a resolved options object: the suite resolved it already. */
export const kResolved = Symbol('fastify-lifecycle.resolved')
/** @internal on the server object: its one lifecycle. */
export const kLifecycle = Symbol('fastify-lifecycle.lifecycle')
/** @internal `lifecycle[kHandedOver]`: another process serves this listener now (a reload): no load balancer to wait for. */
export const kHandedOver = Symbol('fastify-lifecycle.handedOver')
/** @internal `lifecycle[kProbeServer]`: the health plugin's probe listener, when it has a port of its own, for a handoff. */
export const kProbeServer = Symbol('fastify-lifecycle.probeServer')
/** @internal `lifecycle[kSuccessorEnv]`: variables a handoff's new process gets (systemd's NOTIFY_SOCKET, read and removed here). */
export const kSuccessorEnv = Symbol('fastify-lifecycle.successorEnv')
/** @internal `lifecycle[kOnHandoff]`: listeners told when a handoff starts, rolls back, or is done (the systemd plugin). */
export const kOnHandoff = Symbol('fastify-lifecycle.onHandoff')
