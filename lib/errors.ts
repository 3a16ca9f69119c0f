import createError from '@fastify/error'

/** An option has the wrong type or is out of range. */
export const FST_LIFECYCLE_INVALID_OPTION = createError(
  'FST_LIFECYCLE_INVALID_OPTION',
  "option '%s' must be %s, received %O",
  500,
  TypeError
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
