import { test } from 'tap'
import { mixedPath, summarize, type Outcome } from '../cli/load.js'

const at = { path: '/', fresh: false, reused: false, startedAt: 0, endedAt: 1 }

test('summarize() sorts outcomes: answered, error statuses, failures by code, failures after the server accepted', async (t) => {
  const outcomes: Outcome[] = [
    { ...at, id: 'a', status: 200 },
    { ...at, id: 'b', status: 503 },
    { ...at, id: 'c', error: 'ECONNRESET' },
    { ...at, id: 'd', error: 'ECONNRESET' },
    { ...at, id: 'e', error: 'ECONNREFUSED' }
  ]
  t.same(summarize(outcomes, new Set(['a', 'b', 'c'])), { sent: 5, answered2xx: 1, non2xx: 1, failed: 3, failedAfterAccept: 1, errors: { ECONNRESET: 2, ECONNREFUSED: 1 } })
  t.equal(summarize(outcomes).failedAfterAccept, 0, 'without the server\'s ids, no failure counts as accepted')
})

test('mixedPath() makes every 5th request slow', async (t) => {
  t.same([0, 1, 2, 3, 4, 9].map(mixedPath), ['/', '/', '/', '/', '/slow?ms=200', '/slow?ms=200'])
})
