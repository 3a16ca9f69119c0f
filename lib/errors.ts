import createError from '@fastify/error'

/** What every `FST_LIFECYCLE_*` error is: an Error (or TypeError, RangeError) with its code. */
export type LifecycleError<C extends string, B extends Error = Error> = B & {
  readonly code: C
  readonly statusCode: 500
  name: string
}

/**
 * A `FST_LIFECYCLE_*` error class: construct it (with or without `new`) with the values its
 * message names; `err instanceof` it narrows to its type. Declared here rather than taken from
 * @fastify/error's namespace, so the published types hold under any `moduleResolution`.
 */
export interface LifecycleErrorConstructor<C extends string, B extends Error = Error> {
  new (...values: unknown[]): LifecycleError<C, B>
  (...values: unknown[]): LifecycleError<C, B>
  readonly prototype: LifecycleError<C, B>
}

function define<C extends string> (code: C, message: string): LifecycleErrorConstructor<C>
function define<C extends string, B extends Error> (code: C, message: string, Base: new (message?: string) => B): LifecycleErrorConstructor<C, B>
function define (code: string, message: string, Base?: new (message?: string) => Error): unknown {
  return createError(code, message, 500, Base as ErrorConstructor | undefined)
}

/** An option has the wrong type or is out of range. */
export const FST_LIFECYCLE_INVALID_OPTION = define(
  'FST_LIFECYCLE_INVALID_OPTION',
  "option '%s' must be %s, received %O",
  TypeError
)

/** A method of `fastify.lifecycle` was called with an argument it cannot take. */
export const FST_LIFECYCLE_INVALID_ARGUMENT = define(
  'FST_LIFECYCLE_INVALID_ARGUMENT',
  '%s must be %s, received %O',
  TypeError
)

/** A piece of the suite registered a second time on the same server (in any context). */
export const FST_LIFECYCLE_ALREADY_REGISTERED = define(
  'FST_LIFECYCLE_ALREADY_REGISTERED',
  '%s is already registered on this server; register each piece once, at the root (one lifecycle per server: a second one would install a second set of %s)'
)

/** An options object has a key no plugin reads (usually a typo). */
export const FST_LIFECYCLE_UNKNOWN_OPTION = define(
  'FST_LIFECYCLE_UNKNOWN_OPTION',
  "option '%s' is not known; known options are %s",
  TypeError
)

/** `graceful.signals` names a signal the suite cannot handle. */
export const FST_LIFECYCLE_UNKNOWN_SIGNAL = define(
  'FST_LIFECYCLE_UNKNOWN_SIGNAL',
  "option '%s' names %O, which is not a signal fastify-lifecycle handles; use %s",
  TypeError
)

/** The drain would be cut by Fastify's pluginTimeout, which bounds preClose hooks. */
export const FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT = define(
  'FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT',
  'drain timeout %dms does not fit in pluginTimeout %dms (Fastify cuts preClose hooks at pluginTimeout); lower drain.timeout or raise pluginTimeout',
  RangeError
)

/** The shutdown phases cannot fit in the overall graceful deadline. */
export const FST_LIFECYCLE_BUDGET_EXCEEDED = define(
  'FST_LIFECYCLE_BUDGET_EXCEEDED',
  'shutdown budget does not fit: %s = %dms leaves no room inside graceful.timeout %dms; raise graceful.timeout or lower the phases',
  RangeError
)

/** The shutdown finished but a stage had to be forced; the process exits non-zero. */
export const FST_LIFECYCLE_SHUTDOWN_FORCED = define(
  'FST_LIFECYCLE_SHUTDOWN_FORCED',
  'shutdown was not clean: %s'
)

/** Two teardown resources with one name: the report and `after` could not tell them apart. */
export const FST_LIFECYCLE_TEARDOWN_DUPLICATE_NAME = define(
  'FST_LIFECYCLE_TEARDOWN_DUPLICATE_NAME',
  "teardown resource '%s' is already registered; give each resource its own name"
)

/** A teardown resource that teardown would not know how to close. */
export const FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD = define(
  'FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD',
  "teardown resource '%s' is %s, with no end(), quit(), close(), disconnect() or destroy() method; pass the client itself or a function that closes it",
  TypeError
)

/** `after` names a resource that was never registered. */
export const FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY = define(
  'FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY',
  "teardown resource '%s' is to close after '%s', which is not registered"
)

/** The `after` relations loop, so no order can satisfy them. */
export const FST_LIFECYCLE_TEARDOWN_CYCLE = define(
  'FST_LIFECYCLE_TEARDOWN_CYCLE',
  'teardown order has a cycle: %s'
)

/** A resource registered once the teardown has begun would never be closed. */
export const FST_LIFECYCLE_TEARDOWN_STARTED = define(
  'FST_LIFECYCLE_TEARDOWN_STARTED',
  "teardown resource '%s' was registered after the teardown started; register resources when they are created"
)

/** `lifecycle.teardown()` without the teardown plugin: nothing would ever close the resource. */
export const FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED = define(
  'FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED',
  "lifecycle.teardown('%s') needs the teardown plugin: register fastify-lifecycle, or fastify-lifecycle/teardown"
)

/** A start-up task registered once the app is ready: it could no longer hold readiness back. */
export const FST_LIFECYCLE_STARTUP_TASK_LATE = define(
  'FST_LIFECYCLE_STARTUP_TASK_LATE',
  "start-up task '%s' was registered after the app became ready; register start-up tasks while plugins load"
)

/** `lifecycle.check()` without the health plugin: no probe would ever run the check. */
export const FST_LIFECYCLE_HEALTH_NOT_REGISTERED = define(
  'FST_LIFECYCLE_HEALTH_NOT_REGISTERED',
  "lifecycle.check('%s') needs the health plugin: register fastify-lifecycle, or fastify-lifecycle/health"
)

/** Two checks with one name. */
export const FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK = define(
  'FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK',
  "health check '%s' is already registered; give each check its own name"
)

/** Two probes configured on one path. */
export const FST_LIFECYCLE_HEALTH_PATH_CONFLICT = define(
  'FST_LIFECYCLE_HEALTH_PATH_CONFLICT',
  "health probes '%s' and '%s' are both configured on path '%s'; give each probe its own path"
)

/** A probe path that is also one of the service's routes: the probe would shadow it. */
export const FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT = define(
  'FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT',
  "the %s probe path '%s' is also a %s route of the service; the probe answers before routing, so that route would never be reached: choose another path"
)

/** Socket activation: the socket asked for was not passed in, or which one is ambiguous. */
export const FST_LIFECYCLE_SYSTEMD_SOCKET = define(
  'FST_LIFECYCLE_SYSTEMD_SOCKET',
  'systemd socket activation: %s'
)

/** A systemd watchdog shorter than the liveness threshold: systemd would kill the service first. */
export const FST_LIFECYCLE_SYSTEMD_WATCHDOG = define(
  'FST_LIFECYCLE_SYSTEMD_WATCHDOG',
  "systemd's watchdog (WatchdogSec=, %dms) is not above the liveness threshold (%dms of event-loop delay): a blocked event loop would be killed by systemd before liveness fails; raise WatchdogSec= or lower health.underPressure.maxEventLoopDelay"
)

/** A shutdown that cannot finish before PM2's kill_timeout: PM2 would SIGKILL it. */
export const FST_LIFECYCLE_PM2_KILL_TIMEOUT = define(
  'FST_LIFECYCLE_PM2_KILL_TIMEOUT',
  "PM2 sends SIGKILL %dms after it asks the process to stop (kill_timeout), but the shutdown may take up to %dms (%s): set kill_timeout above it in the ecosystem file, or lower the shutdown's deadlines"
)

/** A listener handoff that cannot work in this process (PID 1, no graceful plugin to exit). */
export const FST_LIFECYCLE_RELOAD_HANDOFF = define(
  'FST_LIFECYCLE_RELOAD_HANDOFF',
  'reload.handoff: %s'
)

/** Cluster primary: bad options to startPrimary(), or it was started in a worker. */
export const FST_LIFECYCLE_CLUSTER = define(
  'FST_LIFECYCLE_CLUSTER',
  'cluster primary: %s'
)
