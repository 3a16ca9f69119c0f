// The load generator of the overhead benchmark, in a process of its own: loads every server
// given (by port) at the same time for one round and prints the requests each answered.
// @ts-expect-error autocannon ships no type declarations
import autocannon from 'autocannon'

const seconds = Number(process.argv[2])
const ports = process.argv.slice(3).map(Number)
const run = (/** @type {number} */ port) => autocannon({ url: `http://127.0.0.1:${port}/`, connections: 32, pipelining: Number(process.env.PIPELINING ?? 1), duration: seconds })
const results = await Promise.all(ports.map(run))
console.log(JSON.stringify(results.map((/** @type {{ requests: { total: number }, errors: number, non2xx: number }} */ result) => ({ requests: result.requests.total, errors: result.errors + result.non2xx }))))
