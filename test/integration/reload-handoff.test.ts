// The listener handoff (reload.handoff), on real processes with real signals under keep-alive,
// fresh-connection and event-stream load: SIGUSR2 starts a new copy of the process with the
// listening sockets, which serves while the old one drains and exits. Three reloads in a row
// in one test (the races at a handoff show in about half the runs), rollbacks when the new
// version crashes or never becomes ready, and a control showing that the same harness catches
// what a plain stop-then-start restart loses.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from 'tap'
import { startFixture, type LogLine } from '../helpers/fixture.js'
import { freePort, startPythonHelper } from '../helpers/services.js'
import { alive, answered, killIfAlive, modeFile, reloadLoad, startStream, summarize, until, whoami } from '../helpers/reload.js'

const READY = 'reload: the new process is ready; this one drains and exits'
const ENDED = 'reload: the previous process ended'
const EXITING = 'graceful: shutdown complete, exiting'

test('three handoffs in a row under load: nothing refused, reset, hung or failed; each old process drains and exits 0', async (t) => {
  const port = await freePort()
  const probePort = await freePort()
  const pids: number[] = []
  t.teardown(() => { for (const pid of pids) killIfAlive(pid) })
  // A pre-stop delay the handoff must skip (the new process serves the socket), and probes on
  // a port of their own, which the new process must take over too.
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(port), PRE_STOP_DELAY_MS: '3000', METRICS: '1', PROBE_PORT: String(probePort) })
  pids.push(service.child.pid as number)
  const origin = service.address
  const load = reloadLoad(origin, 'handoff')
  const stream = startStream(origin, 60_000)

  for (let round = 0; round < 3; round++) {
    const old = pids[round] as number
    const before = answered(load)
    await until('traffic before the reload', () => answered(load) >= before + 150 && stream.events > 0)
    process.kill(old, 'SIGUSR2')
    const ready = await service.waitForLog((line) => line.msg === READY && line.pid === old)
    const next = ready.newPid as number
    pids.push(next)
    // The old process skips its pre-stop delay, drains, and exits 0; the new one logs its report.
    const ended = await service.waitForLog((line) => line.msg === ENDED && line.pid === next)
    t.equal(ended.predecessor, old, `round ${round + 1}: the new process (${next}) logs how ${old} ended`)
    t.same({ exitCode: ended.exitCode, forced: ended.forced }, { exitCode: 0, forced: [] }, `round ${round + 1}: the old process ended clean`)
    const exiting = await service.waitForLog((line) => line.msg === EXITING && line.pid === old)
    t.equal(exiting.exitCode, 0)
    t.ok(service.logs((line) => line.pid === old && line.msg === 'pre-stop: the listener is handed over to the new process, skipping the delay').length === 1, 'the pre-stop delay was skipped')
    await until(`process ${old} gone`, () => !alive(old))
    const after = answered(load)
    await until('traffic after the reload', () => answered(load) >= after + 150)
    t.equal(await whoami(origin), next, `round ${round + 1}: the new process answers`)
    const probe = await fetch(`http://127.0.0.1:${probePort}/readyz`)
    t.equal(probe.status, 200, `round ${round + 1}: the probe port is the new process's, and ready`)
  }
  t.equal(await service.exitCode, 0, 'the first process exited 0')

  load.stop()
  const outcomes = await load.done
  await stream.stop()
  const summary = summarize(outcomes)
  t.same({ failed: summary.failed, non2xx: summary.non2xx, errors: summary.errors }, { failed: 0, non2xx: 0, errors: {} }, `every one of ${summary.sent} requests answered 2xx through 3 reloads`)
  t.same(stream.errors, [], `event streams ended cleanly at each reload (${stream.ended} ended, ${stream.events} events) and reconnected`)
  t.ok(stream.pids.length >= 3, `events came from ${stream.pids.length} processes in turn`)
  for (const pid of pids.slice(0, 3)) t.notOk(alive(pid), `old process ${pid} is gone`)
})

test('rollback: a new version that crashes on boot is reported, the old process keeps serving, and the next reload works', async (t) => {
  const port = await freePort()
  const mode = modeFile(t, '')
  const started: number[] = []
  t.teardown(() => { for (const pid of started) killIfAlive(pid) })
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(port), BOOT_MODE_FILE: mode }, { stderr: 'pipe' })
  // The version on disk now crashes on boot; the running one read the file when it started.
  writeFileSync(mode, 'crash')
  const old = service.child.pid as number
  const load = reloadLoad(service.address, 'crash')
  await until('traffic', () => answered(load) >= 100)
  service.kill('SIGUSR2')
  const rolledBack = await service.waitForLog((line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('reload: rolled back'))
  t.match(rolledBack.reason, /^exited \(code 1\) before it was ready$/, 'the reason: the new process exited on boot')
  t.equal(rolledBack.level, 50, 'logged as an error')
  const before = answered(load)
  await until('traffic after the rollback', () => answered(load) >= before + 100)
  t.equal(await whoami(service.address), old, 'the old process still serves')

  // The reload can be tried again once the version is fixed.
  writeFileSync(mode, '')
  service.kill('SIGUSR2')
  const ready = await service.waitForLog((line) => line.msg === READY)
  const successor = ready.newPid as number
  started.push(successor)
  t.equal(await service.exitCode, 0, 'the old process handed over and exited 0')
  load.stop()
  const summary = summarize(await load.done)
  t.same({ failed: summary.failed, non2xx: summary.non2xx }, { failed: 0, non2xx: 0 }, `${summary.sent} requests, none lost through the failed and the good reload`)
  t.equal(await whoami(service.address), successor)
})

test('rollback: a new version that never becomes ready is stopped after readyTimeout; a second signal meanwhile is ignored', async (t) => {
  const port = await freePort()
  const mode = modeFile(t, '')
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(port), BOOT_MODE_FILE: mode, READY_TIMEOUT_MS: '5000' })
  writeFileSync(mode, 'hang')
  const old = service.child.pid as number
  const load = reloadLoad(service.address, 'hang')
  await until('traffic', () => answered(load) >= 100)
  service.kill('SIGUSR2')
  const started = await service.waitForLog('reload: new process started, waiting for it to be ready')
  const hung = started.newPid as number
  t.teardown(() => { killIfAlive(hung) })
  service.kill('SIGUSR2')
  const ignored = await service.waitForLog((line) => line.msg === 'reload: SIGUSR2 ignored: a handoff is already starting')
  t.equal(ignored.level, 40)
  const rolledBack = await service.waitForLog((line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('reload: rolled back'))
  t.equal(rolledBack.reason, 'was not ready within readyTimeout (5000ms)')
  // The never-ready process was stopped gracefully (it served what it accepted meanwhile).
  const stopped = await service.waitForLog((line) => line.msg === EXITING && line.pid === hung)
  t.equal(stopped.exitCode, 0, 'the new process shut down clean')
  await until(`process ${hung} gone`, () => !alive(hung))
  const before = answered(load)
  await until('traffic after the rollback', () => answered(load) >= before + 100)
  load.stop()
  const summary = summarize(await load.done)
  t.same({ failed: summary.failed, non2xx: summary.non2xx }, { failed: 0, non2xx: 0 }, `${summary.sent} requests, none lost`)
  t.equal(await whoami(service.address), old, 'the old process still serves')
  service.kill('SIGTERM')
  t.equal(await service.exitCode, 0)
})

test('control: the same harness sees what a stop-then-start restart on the same port loses', async (t) => {
  const port = await freePort()
  const first = await startFixture(t, 'service.js', { PORT: String(port) })
  const load = reloadLoad(first.address, 'control')
  await until('traffic', () => answered(load) >= 100)
  first.kill('SIGTERM')
  t.equal(await first.exitCode, 0)
  const failedBefore = summarize(load.outcomes).failed
  await until('refused connections while nothing listens', () => summarize(load.outcomes).failed > failedBefore)
  const second = await startFixture(t, 'service.js', { PORT: String(port) })
  const before = answered(load)
  await until('traffic to the new process', () => answered(load) >= before + 100)
  load.stop()
  const summary = summarize(await load.done)
  t.ok(summary.failed > 0, `a plain restart: ${summary.failed} of ${summary.sent} requests failed (${JSON.stringify(summary.errors)})`)
  second.kill('SIGTERM')
  await second.exitCode
})

test('the successor logs an unclean predecessor as a warning: the old process cut a request at its drain deadline', async (t) => {
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(await freePort()), DRAIN_TIMEOUT_MS: '500' })
  const started: number[] = []
  t.teardown(() => { for (const pid of started) killIfAlive(pid) })
  const slow = fetch(`${service.address}/slow?ms=5000`).then((res) => res.status, () => 'cut')
  await service.waitForLog('slow route entered')
  service.kill('SIGUSR2')
  const ready = await service.waitForLog(READY)
  started.push(ready.newPid as number)
  const ended = await service.waitForLog(ENDED)
  t.equal(ended.level, 40)
  t.equal(ended.exitCode, 1)
  t.same(ended.forced, ['drain: 1 request(s) cut at the 500ms deadline'])
  t.equal(await service.exitCode, 1)
  t.equal(await slow, 'cut')
  // The successor, alone now, shuts down on SIGTERM as any instance: its report goes nowhere.
  process.kill(ready.newPid as number, 'SIGTERM')
  const exiting = await service.waitForLog((line) => line.msg === EXITING && line.pid === ready.newPid)
  t.equal(exiting.exitCode, 0)
  // Gone, its coverage written: it is not this test's child, so nothing else waits for it.
  await until(`process ${ready.newPid} gone`, () => !alive(ready.newPid as number))
})

test('a shutdown during a handoff stops the new process: nothing is left orphaned on the socket', async (t) => {
  const mode = modeFile(t, '')
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(await freePort()), BOOT_MODE_FILE: mode })
  writeFileSync(mode, 'slow')
  service.kill('SIGUSR2')
  const started = await service.waitForLog('reload: new process started, waiting for it to be ready')
  const next = started.newPid as number
  t.teardown(() => { killIfAlive(next) })
  await service.waitForLog((line) => line.msg === 'boot: warming up' && line.pid === next)
  service.kill('SIGTERM')
  const stopping = await service.waitForLog('reload: shutting down during a handoff, stopping the new process')
  t.equal(stopping.newPid, next)
  t.equal(await service.exitCode, 0)
  await until(`process ${next} gone`, () => !alive(next))
})

test('a reload signal during a shutdown is ignored', async (t) => {
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(await freePort()), PRE_STOP_DELAY_MS: '2000' })
  service.kill('SIGTERM')
  await service.waitForLog('pre-stop: still serving while load balancers stop routing here')
  service.kill('SIGUSR2')
  const ignored = await service.waitForLog((line: LogLine) => typeof line.msg === 'string' && line.msg.startsWith('reload: SIGUSR2 ignored'))
  t.equal(ignored.msg, 'reload: SIGUSR2 ignored: the lifecycle is draining')
  t.equal(await service.exitCode, 0)
})

test('rollback: a never-ready new process that does not exit after SIGTERM is killed after stopTimeout', async (t) => {
  const mode = modeFile(t, '')
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(await freePort()), BOOT_MODE_FILE: mode, READY_TIMEOUT_MS: '5000', STOP_TIMEOUT_MS: '1000', HANG_ON_CLOSE: '1', GRACEFUL_TIMEOUT_MS: '2500', DRAIN_TIMEOUT_MS: '500', TEARDOWN_TIMEOUT_MS: '500' })
  writeFileSync(mode, 'hang')
  service.kill('SIGUSR2')
  const started = await service.waitForLog('reload: new process started, waiting for it to be ready')
  const hung = started.newPid as number
  t.teardown(() => { killIfAlive(hung) })
  const killed = await service.waitForLog('reload: the failed new process did not exit after SIGTERM, killing it')
  t.equal(killed.newPid, hung)
  await until(`process ${hung} gone`, () => !alive(hung))
  t.equal((await fetch(`${service.address}/`)).status, 200, 'the old process serves')
  // Its own shutdown hangs too (HANG_ON_CLOSE): the overall deadline ends it, with code 1.
  service.kill('SIGTERM')
  t.equal(await service.exitCode, 1)
})

test('a handoff under socket activation: the inherited socket is passed on, nothing refused', async (t) => {
  const port = await freePort()
  const holder = startPythonHelper(t, 'socket-holder.py', [String(port), process.execPath, ...process.execArgv.filter((arg) => !arg.includes('@tapjs/typescript')), fileURLToPath(new URL('../fixtures/service.js', import.meta.url))], { stdin: true, env: { RELOAD: 'handoff' } })
  await holder.waitFor((line) => line.holding === port)
  holder.write('start\n')
  const first = (await holder.waitFor((line) => line.started !== undefined)).started as number
  const pids = [first]
  t.teardown(() => { for (const pid of pids) killIfAlive(pid) })
  await holder.waitFor((line) => line.pid === first && String(line.msg).startsWith('Server listening'))
  const origin = `http://127.0.0.1:${port}`
  const load = reloadLoad(origin, 'activated')
  await until('traffic', () => answered(load) >= 100)
  process.kill(first, 'SIGUSR2')
  const ready = await holder.waitFor((line) => line.msg === READY && line.pid === first)
  pids.push(ready.newPid as number)
  await holder.waitFor((line) => line.msg === ENDED && line.pid === ready.newPid)
  const before = answered(load)
  await until('traffic after the reload', () => answered(load) >= before + 100)
  t.equal(await whoami(origin), ready.newPid)
  load.stop()
  const summary = summarize(await load.done)
  t.same({ failed: summary.failed, non2xx: summary.non2xx }, { failed: 0, non2xx: 0 }, `${summary.sent} requests, none lost`)
})

test('a handoff cannot work as PID 1 (a container\'s init): refused at boot with a coded error', async (t) => {
  const port = await freePort()
  const child = spawn('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, ...process.execArgv.filter((arg) => !arg.includes('@tapjs/typescript')), fileURLToPath(new URL('../fixtures/service.js', import.meta.url))], {
    env: { ...process.env, RELOAD: 'handoff', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  child.on('error', (err) => { t.fail(`unshare (util-linux) is needed, as root: ${err.message}`) })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk })
  const [code] = await once(child, 'exit')
  t.not(code, 0, 'the boot failed')
  t.match(output, /FST_LIFECYCLE_RELOAD_HANDOFF/, 'with the coded error')
  t.match(output, /this process is PID 1/)
})

test('under systemd (Type=notify): RELOADING=1, then the new process is named the main one (MAINPID=) and the old one falls silent, watchdog included', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-notify-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const socket = join(dir, 'notify.sock')
  const receiver = startPythonHelper(t, 'notify-receiver.py', [socket])
  await receiver.waitFor((line) => line.listening === socket)
  const messages = (): Array<Record<string, string>> => receiver.lines
    .filter((line) => typeof line.message === 'string' && line.message !== 'BARRIER=1')
    .map((line) => Object.fromEntries((line.message as string).split('\n').map((field) => [field.slice(0, field.indexOf('=')), field.slice(field.indexOf('=') + 1)])))
  const mode = modeFile(t, '')
  const service = await startFixture(t, 'service.js', { RELOAD: 'handoff', PORT: String(await freePort()), NOTIFY_SOCKET: socket, WATCHDOG_USEC: '400000', BOOT_MODE_FILE: mode }, { stderr: 'pipe' })
  const old = String(service.child.pid)
  const started: number[] = []
  t.teardown(() => { for (const pid of started) killIfAlive(pid) })
  await receiver.waitFor((line) => typeof line.message === 'string' && line.message.includes('READY=1'))
  // A reload that fails first: the unit is ready again, with the reason.
  writeFileSync(mode, 'crash')
  service.kill('SIGUSR2')
  const again = await receiver.waitFor((line) => typeof line.message === 'string' && line.message.includes('reload rolled back'))
  t.match(again.message, /READY=1/)
  t.match(again.message, /STATUS=ready: serving \(reload rolled back: exited \(code 1\) before it was ready\)/)
  writeFileSync(mode, '')
  service.kill('SIGUSR2')
  const ready = await service.waitForLog(READY)
  const next = String(ready.newPid)
  started.push(ready.newPid as number)
  t.equal(await service.exitCode, 0)
  // The new process feeds the watchdog from now on.
  await receiver.waitFor(() => messages().filter((message) => message.MAINPID === next && message.WATCHDOG === '1').length >= 2)
  const all = messages()
  const reloading = all.findLastIndex((message) => message.RELOADING === '1')
  t.match(all[reloading], { MAINPID: old, STATUS: 'reloading: SIGUSR2' }, 'RELOADING=1 at the signal')
  t.ok(Number(all[reloading]?.MONOTONIC_USEC) > 0, 'with MONOTONIC_USEC')
  const handover = all.findIndex((message) => message.READY === '1' && message.STATUS === `ready: serving (handed over by ${old})`)
  t.equal(all[handover]?.MAINPID, next, 'the old process names the new one main')
  t.same(all.slice(handover).filter((message) => message.MAINPID === old), [], 'and says nothing more: no STOPPING=1, no status, no watchdog ping')
})
