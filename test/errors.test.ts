import { readFileSync } from 'node:fs'
import { test } from 'tap'
import * as errors from '../lib/errors.js'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')
/** code → the class docs/errors.md names for it. */
const documented = new Map([...doc.matchAll(/^\| `(FST_LIFECYCLE_[A-Z0-9_]+)` \| (\w+) \|/gm)].map((m) => [m[1], m[2]]))
const classes: Record<string, ErrorConstructor> = { Error, TypeError, RangeError }

test('every error is exported under its own code, of the documented class, with status 500', async (t) => {
  const names = Object.keys(errors) as Array<keyof typeof errors>
  t.ok(names.length > 0)
  for (const name of names) {
    const ErrorClass = errors[name]
    const err = new ErrorClass('a', 'b', 'c')
    t.equal(err.code, name, `${name} has code ${name}`)
    t.match(name, /^FST_LIFECYCLE_[A-Z0-9_]+$/)
    t.equal(err.statusCode, 500, `${name} has status 500`)
    t.ok(err instanceof ErrorClass, `${name} is an instance of its own class`)
    const className = documented.get(name)
    t.ok(className !== undefined, `${name} has a row in docs/errors.md`)
    t.ok(className !== undefined && err instanceof classes[className], `${name} is a ${className}, as documented`)
    if (className === 'Error') t.notOk(err instanceof TypeError || err instanceof RangeError, `${name} is a plain Error`)
  }
})

test('docs/errors.md lists no error that does not exist', async (t) => {
  t.same([...documented.keys()].sort(), Object.keys(errors).sort())
})

test('an argument error names the method, the argument and the value', async (t) => {
  const err = new errors.FST_LIFECYCLE_INVALID_ARGUMENT('lifecycle.startupTask(): task', 'a function', 42)
  t.equal(err.message, 'lifecycle.startupTask(): task must be a function, received 42')
})
