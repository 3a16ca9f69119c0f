import { readFileSync } from 'node:fs'
import { test } from 'tap'
import * as errors from '../lib/errors.js'

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')

test('every error is exported under its own code, coded FST_LIFECYCLE_*, and documented', async (t) => {
  const names = Object.keys(errors)
  t.ok(names.length > 0)
  for (const name of names) {
    const ErrorClass = errors[name as keyof typeof errors]
    const err = new ErrorClass('a', 'b', 'c')
    t.equal(err.code, name, `${name} has code ${name}`)
    t.match(name, /^FST_LIFECYCLE_[A-Z_]+$/)
    t.ok(doc.includes(`| \`${name}\` |`), `${name} has a row in docs/errors.md`)
  }
})

test('docs/errors.md lists no error that does not exist', async (t) => {
  const documented = [...doc.matchAll(/^\| `(FST_LIFECYCLE_[A-Z_]+)` \|/gm)].map((m) => m[1])
  t.same(documented.sort(), Object.keys(errors).sort())
})
