// The load generator of the overhead benchmark, in a process of its own: loads two servers at
// the same time for one round and prints the requests each answered.
// @ts-expect-error autocannon ships no type declarations
import autocannon from 'autocannon'

const [portA, portB, seconds] = process.argv.slice(2).map(Number)
const run = (/** @type {number} */ port) => autocannon({ url: `http://127.0.0.1:${port}/`, connections: 32, pipelining: 1, duration: seconds })
const [a, b] = await Promise.all([run(portA), run(portB)])
console.log(JSON.stringify({ a: { requests: a.requests.total, errors: a.errors + a.non2xx }, b: { requests: b.requests.total, errors: b.errors + b.non2xx } }))
