import createError from '@fastify/error'

/** An option has the wrong type or is out of range. */
export const FST_LIFECYCLE_INVALID_OPTION = createError(
  'FST_LIFECYCLE_INVALID_OPTION',
  "option '%s' must be %s, received %O",
  500,
  TypeError
)

/** A method of `fastify.lifecycle` was called with an argument it cannot take. */
export const FST_LIFECYCLE_INVALID_ARGUMENT = createError(
  'FST_LIFECYCLE_INVALID_ARGUMENT',
  '%s must be %s, received %O',
  500,
  TypeError
)

/** A piece of the suite registered a second time on the same server (in any context). */
export const FST_LIFECYCLE_ALREADY_REGISTERED = createError(
  'FST_LIFECYCLE_ALREADY_REGISTERED',
  '%s is already registered on this server; register each piece once, at the root (one lifecycle per server: a second one would install a second set of %s)',
  500
)

/** An options object has a key no plugin reads (usually a typo). */
export const FST_LIFECYCLE_UNKNOWN_OPTION = createError(
  'FST_LIFECYCLE_UNKNOWN_OPTION',
  "option '%s' is not known; known options are %s",
  500,
  TypeError
)

/** `graceful.signals` names a signal the suite cannot handle. */
export const FST_LIFECYCLE_UNKNOWN_SIGNAL = createError(
  'FST_LIFECYCLE_UNKNOWN_SIGNAL',
  "option '%s' names %O, which is not a signal fastify-lifecycle handles; use %s",
  500,
  TypeError
)

/** The drain would be cut by Fastify's pluginTimeout, which bounds preClose hooks. */
export const FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT = createError(
  'FST_LIFECYCLE_DRAIN_EXCEEDS_PLUGIN_TIMEOUT',
  'drain timeout %dms does not fit in pluginTimeout %dms (Fastify cuts preClose hooks at pluginTimeout); lower drain.timeout or raise pluginTimeout',
  500,
  RangeError
)

/** The shutdown phases cannot fit in the overall graceful deadline. */
export const FST_LIFECYCLE_BUDGET_EXCEEDED = createError(
  'FST_LIFECYCLE_BUDGET_EXCEEDED',
  'shutdown budget does not fit: %s = %dms leaves no room inside graceful.timeout %dms; raise graceful.timeout or lower the phases',
  500,
  RangeError
)

/** The shutdown finished but a stage had to be forced; the process exits non-zero. */
export const FST_LIFECYCLE_SHUTDOWN_FORCED = createError(
  'FST_LIFECYCLE_SHUTDOWN_FORCED',
  'shutdown was not clean: %s',
  500
)

/** Two teardown resources with one name: the report and `after` could not tell them apart. */
export const FST_LIFECYCLE_TEARDOWN_DUPLICATE_NAME = createError(
  'FST_LIFECYCLE_TEARDOWN_DUPLICATE_NAME',
  "teardown resource '%s' is already registered; give each resource its own name",
  500
)

/** A teardown resource that teardown would not know how to close. */
export const FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD = createError(
  'FST_LIFECYCLE_TEARDOWN_NO_CLOSE_METHOD',
  "teardown resource '%s' is %s, with no end(), quit(), close(), disconnect() or destroy() method; pass the client itself or a function that closes it",
  500,
  TypeError
)

/** `after` names a resource that was never registered. */
export const FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY = createError(
  'FST_LIFECYCLE_TEARDOWN_UNKNOWN_DEPENDENCY',
  "teardown resource '%s' is to close after '%s', which is not registered",
  500
)

/** The `after` relations loop, so no order can satisfy them. */
export const FST_LIFECYCLE_TEARDOWN_CYCLE = createError(
  'FST_LIFECYCLE_TEARDOWN_CYCLE',
  'teardown order has a cycle: %s',
  500
)

/** A resource registered once the teardown has begun would never be closed. */
export const FST_LIFECYCLE_TEARDOWN_STARTED = createError(
  'FST_LIFECYCLE_TEARDOWN_STARTED',
  "teardown resource '%s' was registered after the teardown started; register resources when they are created",
  500
)

/** `lifecycle.teardown()` without the teardown plugin: nothing would ever close the resource. */
export const FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED = createError(
  'FST_LIFECYCLE_TEARDOWN_NOT_REGISTERED',
  "lifecycle.teardown('%s') needs the teardown plugin: register fastify-lifecycle, or fastify-lifecycle/teardown",
  500
)

/** A start-up task registered once the app is ready: it could no longer hold readiness back. */
export const FST_LIFECYCLE_STARTUP_TASK_LATE = createError(
  'FST_LIFECYCLE_STARTUP_TASK_LATE',
  "start-up task '%s' was registered after the app became ready; register start-up tasks while plugins load",
  500
)

/** `lifecycle.check()` without the health plugin: no probe would ever run the check. */
export const FST_LIFECYCLE_HEALTH_NOT_REGISTERED = createError(
  'FST_LIFECYCLE_HEALTH_NOT_REGISTERED',
  "lifecycle.check('%s') needs the health plugin: register fastify-lifecycle, or fastify-lifecycle/health",
  500
)

/** Two checks with one name. */
export const FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK = createError(
  'FST_LIFECYCLE_HEALTH_DUPLICATE_CHECK',
  "health check '%s' is already registered; give each check its own name",
  500
)

/** Two probes configured on one path. */
export const FST_LIFECYCLE_HEALTH_PATH_CONFLICT = createError(
  'FST_LIFECYCLE_HEALTH_PATH_CONFLICT',
  "health probes '%s' and '%s' are both configured on path '%s'; give each probe its own path",
  500
)

/** A probe path that is also one of the service's routes: the probe would shadow it. */
export const FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT = createError(
  'FST_LIFECYCLE_HEALTH_ROUTE_CONFLICT',
  "the %s probe path '%s' is also a %s route of the service; the probe answers before routing, so that route would never be reached: choose another path",
  500
)
