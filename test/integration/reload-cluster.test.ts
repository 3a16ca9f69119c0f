// The cluster primary (fastify-lifecycle/cluster) on real processes with real signals under
// keep-alive, fresh-connection and event-stream load: SIGHUP replaces the workers one at a
// time, start-first; SIGTERM stops them all gracefully. Three reloads in a row in one test,
// rollbacks when the new version crashes or never becomes ready, a crashed worker replaced,
// and a control showing that the same harness catches what a stop-then-start restart loses.
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { test, type Test } from 'tap'
import { startFixture, type Fixture, type LogLine } from '../helpers/fixture.js'
import { freePort } from '../helpers/services.js'
import { alive, answered, killIfAlive, modeFile, reloadLoad, startStream, summarize, until, whoami } from '../helpers/reload.js'

const EVERY_READY = 'primary: every worker ready'
const RELOADED = 'primary: reload complete, every worker replaced'

/** The primary, once every worker is ready; its workers are killed at the end of the test. */
async function startPrimary (t: Test, env: Record<string, string>): Promise<{ primary: Fixture, origin: string }> {
  const port = env.PORT ?? String(await freePort())
  const primary = await startFixture(t, 'primary.js', { ...env, PORT: port }, { waitListening: false })
  // Every worker logs with its pid: whichever are left at the end are killed.
  t.teardown(() => { for (const pid of new Set(primary.lines.map((line) => line.pid))) if (typeof pid === 'number' && pid !== primary.child.pid) killIfAlive(pid) })
  await primary.waitForLog(EVERY_READY)
  return { primary, origin: `http://127.0.0.1:${port}` }
}

/** The pids the reload report names as the new workers. */
function newPids (line: LogLine): number[] {
  return (line.steps as Array<{ newPid: number }>).map((step) => step.newPid)
}

test('three cluster reloads in a row under load: every worker replaced start-first, nothing refused, reset, hung or failed', async (t) => {
  const { primary, origin } = await startPrimary(t, { WORKERS: '2', PRE_STOP_DELAY_MS: '3000' })
  const first = primary.logs(EVERY_READY)[0]?.workers as Array<{ pid: number }>
  let current = first.map((worker) => worker.pid)
  const load = reloadLoad(origin, 'cluster')
  const stream = startStream(origin, 60_000)
  for (let round = 0; round < 3; round++) {
    const before = answered(load)
    await until('traffic before the reload', () => answered(load) >= before + 150 && stream.events > 0)
    primary.kill('SIGHUP')
    const done = await primary.waitForLog((line) => line.msg === RELOADED && primary.logs(RELOADED).indexOf(line) === round)
    const steps = done.steps as Array<{ oldPid: number, newPid: number, exitCode: number, readyMs: number, drainMs: number }>
    t.same(steps.map((step) => step.oldPid), current, `round ${round + 1}: each old worker replaced in turn`)
    t.same(steps.map((step) => step.exitCode), [0, 0], `round ${round + 1}: the old workers exited 0`)
    t.ok(steps.every((step) => step.readyMs > 0 && step.drainMs >= 0), 'ready and drain times reported')
    // No pre-stop wait: the other workers serve; the drains are short.
    t.ok(steps.every((step) => step.drainMs < 3000), `round ${round + 1}: no pre-stop delay in a reload (drains ${steps.map((step) => step.drainMs).join(', ')} ms)`)
    for (const pid of current) {
      const report = await primary.waitForLog((line) => line.msg === 'primary: worker shutdown report' && line.worker === pid)
      t.equal(report.exitCode, 0, `worker ${pid}'s shutdown report reached the primary`)
      await until(`worker ${pid} gone`, () => !alive(pid))
    }
    current = newPids(done)
    const after = answered(load)
    await until('traffic after the reload', () => answered(load) >= after + 150)
    t.ok(current.includes(await whoami(origin)), `round ${round + 1}: a new worker answers`)
  }
  load.stop()
  const outcomes = await load.done
  await stream.stop()
  const summary = summarize(outcomes)
  t.same({ failed: summary.failed, non2xx: summary.non2xx, errors: summary.errors }, { failed: 0, non2xx: 0, errors: {} }, `every one of ${summary.sent} requests answered 2xx through 3 reloads`)
  t.same(stream.errors, [], `event streams ended cleanly (${stream.ended} ended, ${stream.events} events) and reconnected`)

  primary.kill('SIGTERM')
  t.equal(await primary.exitCode, 0, 'SIGTERM: every worker shut down clean, the primary exits 0')
  const stopped = primary.logs('primary: every worker stopped, exiting')[0]
  t.same((stopped?.workers as Array<{ pid: number, code: number }>).map((worker) => worker.code), [0, 0])
  for (const pid of current) t.notOk(alive(pid), `worker ${pid} is gone`)
  // At SIGTERM the workers run the full shutdown, pre-stop included (a load balancer may still send).
  t.equal(primary.logs((line) => line.msg === 'pre-stop: delay over, closing the listener').length, 2, 'the pre-stop delay ran in both workers at SIGTERM')
})

test('cluster rollback: a new version that crashes on boot stops the reload, the old workers keep serving; fixed, the next reload works', async (t) => {
  const mode = modeFile(t, '')
  const { primary, origin } = await startPrimary(t, { WORKERS: '2', BOOT_MODE_FILE: mode })
  const old = (primary.logs(EVERY_READY)[0]?.workers as Array<{ pid: number }>).map((worker) => worker.pid)
  writeFileSync(mode, 'crash')
  const load = reloadLoad(origin, 'cluster-crash')
  await until('traffic', () => answered(load) >= 100)
  primary.kill('SIGHUP')
  const rolledBack = await primary.waitForLog((line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('primary: reload rolled back'))
  t.match(rolledBack.reason, /^new worker \d+ exited \(code 1\) before it was ready$/)
  t.equal(rolledBack.outcome, 'rolled back')
  t.equal(rolledBack.level, 50)
  for (const pid of old) t.ok(alive(pid), `old worker ${pid} still serves`)
  const before = answered(load)
  await until('traffic after the rollback', () => answered(load) >= before + 100)
  t.ok(old.includes(await whoami(origin)))
  writeFileSync(mode, '')
  primary.child.send('reload')
  const returned = await primary.waitForLog('fixture: reload() returned')
  t.equal((returned.report as { outcome: string }).outcome, 'replaced', 'reload() through the API')
  t.equal((returned.pids as number[]).filter((pid) => old.includes(pid)).length, 0, 'pids lists the new workers')
  load.stop()
  const summary = summarize(await load.done)
  t.same({ failed: summary.failed, non2xx: summary.non2xx }, { failed: 0, non2xx: 0 }, `${summary.sent} requests, none lost`)
  primary.kill('SIGTERM')
  t.equal(await primary.exitCode, 0)
})

test('cluster rollback: a new worker that is never ready is stopped after readyTimeout; signals during the reload are handled', async (t) => {
  const mode = modeFile(t, '')
  const { primary, origin } = await startPrimary(t, { WORKERS: '1', BOOT_MODE_FILE: mode, READY_TIMEOUT_MS: '5000', PRIMARY_LOGGER: 'pino' })
  const old = (primary.logs(EVERY_READY)[0]?.workers as Array<{ pid: number }>).map((worker) => worker.pid)
  writeFileSync(mode, 'hang')
  const load = reloadLoad(origin, 'cluster-hang')
  await until('traffic', () => answered(load) >= 100)
  primary.kill('SIGHUP')
  await primary.waitForLog('primary: reload started, replacing workers one at a time')
  primary.kill('SIGHUP')
  const skipped = await primary.waitForLog('primary: reload skipped')
  t.equal(skipped.reason, 'a reload is already under way')
  const rolledBack = await primary.waitForLog((line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('primary: reload rolled back'))
  t.match(rolledBack.reason, /^new worker \d+ was not ready within readyTimeout \(5000ms\)$/)
  const hung = (rolledBack.steps as Array<{ newPid: number, exitCode: number }>)[0]
  t.equal(hung?.exitCode, 0, 'the new worker was shut down gracefully')
  t.ok(old.includes(await whoami(origin)), 'the old worker serves')
  load.stop()
  const summary = summarize(await load.done)
  t.same({ failed: summary.failed, non2xx: summary.non2xx }, { failed: 0, non2xx: 0 }, `${summary.sent} requests, none lost`)
  primary.kill('SIGTERM')
  t.equal(await primary.exitCode, 0)
})

test('a worker that dies is replaced; SIGHUP while shutting down is skipped; a second SIGTERM kills the workers and exits 1', async (t) => {
  const mode = modeFile(t, '')
  const { primary, origin } = await startPrimary(t, { WORKERS: '2', PRE_STOP_DELAY_MS: '5000', PRIMARY_TWICE: '1', PRIMARY_SAME_SCRIPT: '1', BOOT_MODE_FILE: mode })
  const refused = await primary.waitForLog('fixture: second startPrimary() refused')
  t.equal(refused.code, 'FST_LIFECYCLE_CLUSTER')
  t.match(refused.message, /called twice/)
  const inWorker = await primary.waitForLog('fixture: startPrimary() in a worker refused')
  t.equal(inWorker.code, 'FST_LIFECYCLE_CLUSTER')
  t.match(inWorker.message, /startPrimary\(\) was called in a worker/)
  const old = (primary.logs(EVERY_READY)[0]?.workers as Array<{ pid: number }>).map((worker) => worker.pid)
  // The first replacement crashes on boot (the version on disk is broken); the next one, a
  // second later, starts.
  writeFileSync(mode, 'crash')
  process.kill(old[0] as number, 'SIGKILL')
  const died = await primary.waitForLog('primary: a worker exited on its own; starting another')
  t.equal(died.worker, old[0])
  t.equal(died.signal, 'SIGKILL')
  const failed = await primary.waitForLog('primary: the replacement worker exited (code 1) before it was ready')
  t.equal(failed.retryInMs, 1000)
  writeFileSync(mode, '')
  const replacement = await primary.waitForLog('primary: replacement worker ready')
  t.not(replacement.worker, old[0])
  t.equal((await fetch(`${origin}/`)).status, 200)
  primary.kill('SIGTERM')
  await primary.waitForLog('primary: shutting every worker down')
  primary.kill('SIGHUP')
  const skipped = await primary.waitForLog('primary: reload skipped')
  t.equal(skipped.reason, 'the primary is shutting down')
  primary.kill('SIGTERM')
  t.equal(await primary.exitCode, 1, 'a second SIGTERM exits 1 at once')
  await until('the workers killed', () => !alive(replacement.worker as number) && !alive(old[1] as number))
})

test('workers that cannot start: the primary stops the others and exits 1', async (t) => {
  const mode = modeFile(t, 'crash')
  const primary = await startFixture(t, 'primary.js', { PORT: String(await freePort()), WORKERS: '2', BOOT_MODE_FILE: mode }, { waitListening: false, stderr: 'pipe' })
  t.equal(await primary.exitCode, 1)
  const said = primary.logs('primary: a worker exited (code 1) before it was ready; stopping the others and exiting')
  t.equal(said.length, 1, 'said why')
  t.equal(said[0]?.level, 50)
})

test('control: the same harness sees what stopping the primary and starting another loses', async (t) => {
  const port = String(await freePort())
  const first = await startPrimary(t, { WORKERS: '1', PORT: port })
  const load = reloadLoad(first.origin, 'cluster-control')
  await until('traffic', () => answered(load) >= 100)
  first.primary.kill('SIGTERM')
  t.equal(await first.primary.exitCode, 0)
  const failedBefore = summarize(load.outcomes).failed
  await until('refused connections while nothing listens', () => summarize(load.outcomes).failed > failedBefore)
  const second = await startPrimary(t, { WORKERS: '1', PORT: port })
  const before = answered(load)
  await until('traffic to the new primary', () => answered(load) >= before + 100)
  load.stop()
  const summary = summarize(await load.done)
  t.ok(summary.failed > 0, `stop-then-start: ${summary.failed} of ${summary.sent} requests failed (${JSON.stringify(summary.errors)})`)
  second.primary.kill('SIGTERM')
  await second.primary.exitCode
})

test('SIGTERM while a new worker boots: the reload stops, and every worker, the booting one included, shuts down', async (t) => {
  const mode = modeFile(t, '')
  const { primary } = await startPrimary(t, { WORKERS: '2', BOOT_MODE_FILE: mode })
  writeFileSync(mode, 'slow')
  primary.kill('SIGHUP')
  const started = await primary.waitForLog('primary: reload started, replacing workers one at a time')
  await primary.waitForLog((line) => line.msg === 'boot: warming up' && !(started.workers as number[]).includes(line.pid as number))
  primary.kill('SIGTERM')
  const stopped = await primary.waitForLog((line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('primary: reload rolled back'))
  t.equal(stopped.reason, 'the primary is shutting down')
  t.equal(await primary.exitCode, 0, 'every worker shut down clean')
  const exits = primary.logs('primary: every worker stopped, exiting')[0]?.workers as Array<{ pid: number }>
  t.equal(exits.length, 3, 'the two old workers and the booting one')
})

test('SIGTERM while a new worker has not set up the suite yet: it is stopped by signal, not by a message it cannot hear', async (t) => {
  const mode = modeFile(t, '')
  const { primary } = await startPrimary(t, { WORKERS: '1', BOOT_MODE_FILE: mode, STOP_TIMEOUT_MS: '20000' })
  writeFileSync(mode, 'slow-start')
  primary.kill('SIGHUP')
  await primary.waitForLog('fixture: slow start')
  primary.kill('SIGTERM')
  t.equal(await primary.exitCode, 0, 'the booting worker served nothing: its end loses nothing')
  t.same(primary.logs('primary: a worker did not exit within stopTimeout, killing it'), [], 'nothing waited for stopTimeout')
  const exits = primary.logs('primary: every worker stopped, exiting')[0]?.workers as Array<{ ready: boolean, signal: string | null }>
  t.same(exits.map((exit) => [exit.ready, exit.signal]).sort(), [[false, 'SIGTERM'], [true, null]])
})

test('SIGTERM while an old worker drains in a reload: no new worker is started past it; workers forced by their own deadline make the primary exit 1', async (t) => {
  const { primary } = await startPrimary(t, { WORKERS: '2', HANG_ON_CLOSE: '1', GRACEFUL_TIMEOUT_MS: '2500', DRAIN_TIMEOUT_MS: '500', TEARDOWN_TIMEOUT_MS: '500' })
  primary.kill('SIGHUP')
  const started = await primary.waitForLog('primary: reload started, replacing workers one at a time')
  const [first] = started.workers as number[]
  await primary.waitForLog((line) => line.msg === 'fixture: onClose hook hanging' && line.pid === first)
  primary.kill('SIGTERM')
  const stopped = await primary.waitForLog((line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('primary: reload rolled back'))
  t.equal(stopped.reason, 'the primary is shutting down')
  t.equal((stopped.steps as unknown[]).length, 1, 'one worker was replaced, no second one started')
  t.equal(await primary.exitCode, 1)
  const done = primary.logs('primary: every worker stopped, exiting')[0]
  t.equal(done?.level, 40)
  t.equal(done?.exitCode, 1)
})

test('a worker still running at stopTimeout is killed; a worker whose drain cut a request reports it, and the primary exits 1', async (t) => {
  await t.test('stopTimeout', async (t) => {
    const { primary } = await startPrimary(t, { WORKERS: '1', HANG_ON_CLOSE: '1', STOP_TIMEOUT_MS: '1000' })
    primary.kill('SIGTERM')
    const killed = await primary.waitForLog('primary: a worker did not exit within stopTimeout, killing it')
    t.equal(killed.level, 50)
    t.equal(await primary.exitCode, 1)
    t.equal((primary.logs('primary: every worker stopped, exiting')[0]?.workers as Array<{ signal: string }>)[0]?.signal, 'SIGKILL')
  })
  await t.test('a cut request', async (t) => {
    const { primary, origin } = await startPrimary(t, { WORKERS: '1', DRAIN_TIMEOUT_MS: '500' })
    const slow = fetch(`${origin}/slow?ms=5000`).then((res) => res.status, () => 'cut')
    await primary.waitForLog('slow route entered')
    primary.kill('SIGTERM')
    const report = await primary.waitForLog('primary: worker shutdown report')
    t.equal(report.level, 40, 'an unclean report is a warning')
    t.same(report.forced, ['drain: 1 request(s) cut at the 500ms deadline'])
    t.equal(await primary.exitCode, 1)
    t.equal(await slow, 'cut')
  })
})

test('the primary as PID 1 (a container\'s init): it reloads on SIGHUP and stops every worker on SIGTERM', async (t) => {
  const port = await freePort()
  const script = fileURLToPath(new URL('../fixtures/primary.js', import.meta.url))
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, ...process.execArgv.filter((arg) => !arg.includes('@tapjs/typescript')), script], {
    env: { ...process.env, PORT: String(port), WORKERS: '2' },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  child.on('error', (err) => { t.fail(`unshare (util-linux) is needed, as root: ${err.message}`) })
  const lines: LogLine[] = []
  createInterface({ input: child.stdout }).on('line', (text) => { try { lines.push(JSON.parse(text)) } catch {} })
  const exited = once(child, 'exit')
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  await until('every worker ready', () => lines.some((line) => line.msg === EVERY_READY))
  t.equal(lines.find((line) => line.msg === EVERY_READY)?.pid, 1, 'the primary is PID 1 in its namespace')
  // Its pid as this (the parent) namespace sees it: unshare's only child.
  const primaryPid = Number(execFileSync('pgrep', ['-P', String(child.pid)], { encoding: 'utf8' }).trim())
  const load = reloadLoad(`http://127.0.0.1:${port}`, 'pid1')
  await until('traffic', () => answered(load) >= 100)
  process.kill(primaryPid, 'SIGHUP')
  await until('the reload', () => lines.some((line) => line.msg === RELOADED))
  const before = answered(load)
  await until('traffic after the reload', () => answered(load) >= before + 100)
  load.stop()
  const summary = summarize(await load.done)
  t.same({ failed: summary.failed, non2xx: summary.non2xx }, { failed: 0, non2xx: 0 }, `${summary.sent} requests, none lost`)
  process.kill(primaryPid, 'SIGTERM')
  const [code] = await exited
  t.equal(code, 0, 'the primary exited 0 (unshare passes its code on)')
  t.same((lines.find((line) => line.msg === 'primary: every worker stopped, exiting')?.workers as Array<{ code: number }>).map((worker) => worker.code), [0, 0])
})
