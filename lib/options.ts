import { FST_LIFECYCLE_INVALID_OPTION, FST_LIFECYCLE_UNKNOWN_OPTION } from './errors.js'
import { kResolved } from './symbols.js'

/**
 * The option checks every plugin shares. Each plugin owns its own options type, key list and
 * resolver (in its own file); what is common to all of them lives here.
 */

/**
 * The keys of an options type, listed once: `keysOf<DrainOptions>()({ timeout: true, … })`.
 * Leaving a key out, or naming one the type lacks, fails to compile.
 */
export function keysOf<T extends object> () {
  return function list<const K extends Record<keyof Required<T>, true>> (keys: K & Record<Exclude<keyof K, keyof T>, never>): ReadonlyArray<keyof T & string> {
    return Object.freeze(Object.keys(keys)) as ReadonlyArray<keyof T & string>
  }
}

/** Rejects keys that no plugin reads, so a typo fails loudly instead of being ignored. */
export function checkKnownKeys (prefix: string, input: object, known: readonly string[]): void {
  for (const key of Object.keys(input)) {
    if (!known.includes(key)) {
      throw new FST_LIFECYCLE_UNKNOWN_OPTION(prefix + key, known.join(', '))
    }
  }
}

/** A duration in ms: a non-negative safe integer (or positive when `positive`). */
export function duration (name: string, value: unknown, fallback: number, positive = false): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (positive ? 1 : 0)) {
    throw new FST_LIFECYCLE_INVALID_OPTION(name, positive ? 'a positive integer of ms' : 'a non-negative integer of ms', value)
  }
  return value
}

/** A boolean switch; undefined gives the fallback. */
export function bool (name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback
  if (typeof value !== 'boolean') throw new FST_LIFECYCLE_INVALID_OPTION(name, 'a boolean', value)
  return value
}

/** An options object: undefined gives `{}`; null, arrays and other values are rejected. */
export function plainObject (name: string, value: unknown): object {
  if (value === undefined) return {}
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new FST_LIFECYCLE_INVALID_OPTION(name, 'an object', value)
  }
  return value
}

/**
 * An options object as given, checked to be an object with only known keys. `prefix` is the
 * path of its keys in messages: inside the suite's options (`'drain.'`), empty when a plugin is
 * registered alone, or the owner of per-call options (`"check 'db' "`); `name` names the object
 * itself (by default the prefix without its separator).
 */
export function optionsObject<T extends object> (input: unknown, prefix: string, known: readonly string[], name = prefix.slice(0, -1) || 'options'): Partial<T> {
  const options = plainObject(name, input) as Partial<T>
  checkKnownKeys(prefix, options, known)
  return options
}

/**
 * Freezes a plugin's resolved config and marks it, so that when the suite registers the plugin
 * with it the plugin uses it as it is: options are resolved once.
 */
export function resolved<T extends object> (config: T): Readonly<T> {
  Object.defineProperty(config, kResolved, { value: true })
  return Object.freeze(config)
}

/** The config the suite resolved already, or undefined for options a user passed. */
export function alreadyResolved<T> (options: unknown): T | undefined {
  return options !== null && typeof options === 'object' && (options as Record<symbol, unknown>)[kResolved] === true ? options as T : undefined
}
