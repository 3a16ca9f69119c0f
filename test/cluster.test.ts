// The cluster primary's options, in-process (each case fails before anything is forked); the
// primary itself, and startPrimary() called in a worker, run on real processes in
// test/integration/reload-cluster.test.ts.
import { test } from 'tap'
import { startPrimary } from '../cluster/index.js'

test('options are checked before anything is started, with the option named', async (t) => {
  const bad: Array<[unknown, string, RegExp]> = [
    [null, 'FST_LIFECYCLE_INVALID_OPTION', /option 'options' must be an object/],
    [[], 'FST_LIFECYCLE_INVALID_OPTION', /option 'options' must be an object/],
    [{ worker: 2 }, 'FST_LIFECYCLE_UNKNOWN_OPTION', /option 'worker' is not known/],
    [{ exec: '' }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'exec' must be the path of a script/],
    [{ exec: 1 }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'exec'/],
    [{ args: 'a' }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'args' must be an array of strings/],
    [{ execArgv: [1] }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'execArgv' must be an array of strings/],
    [{ workers: 0 }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'workers' must be a positive integer/],
    [{ workers: 1.5 }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'workers'/],
    [{ env: { A: 1 } }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'env' must be an object of strings/],
    [{ reloadSignal: 'SIGTERM' }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'reloadSignal' must be one of SIGHUP, SIGUSR2, or false/],
    [{ readyTimeout: -1 }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'readyTimeout'/],
    [{ stopTimeout: 'x' }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'stopTimeout'/],
    [{ logger: console.log }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'logger' must be an object with info, warn and error methods/],
    [{ logger: { info () {}, warn () {} } }, 'FST_LIFECYCLE_INVALID_OPTION', /option 'logger'/]
  ]
  for (const [options, code, message] of bad) {
    await t.rejects(startPrimary(options as never), { code, message }, JSON.stringify(options))
  }
})
