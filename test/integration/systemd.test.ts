import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test, type Test } from 'tap'
import { request } from 'undici'
import { startLoad } from '../../cli/load.js'
import { startFixture } from '../helpers/fixture.js'
import { freePort, startPythonHelper } from '../helpers/services.js'

const service = fileURLToPath(new URL('../fixtures/service.js', import.meta.url))
const execArgv = process.execArgv.filter((arg) => !arg.includes('@tapjs/typescript'))

function fields (message: string): Record<string, string> {
  return Object.fromEntries(message.split('\n').map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]))
}

test('Type=notify through the real systemd-notify: READY=1, the watchdog fed until the event loop blocks, STOPPING=1 with the extended timeout, the last status, in order', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-notify-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const socket = join(dir, 'notify.sock')
  const receiver = startPythonHelper(t, 'notify-receiver.py', [socket])
  await receiver.waitFor((l) => l.listening === socket)
  const messages = (): Array<{ ms: number, fields: Record<string, string> }> => receiver.lines
    .filter((l) => typeof l.message === 'string' && l.message !== 'BARRIER=1')
    .map((l) => ({ ms: l.ms as number, fields: fields(l.message as string) }))

  const proc = await startFixture(t, 'service.js', { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '600000', PRE_STOP_DELAY_MS: '200' })
  await receiver.waitFor((l) => typeof l.message === 'string' && l.message.includes('READY=1'))
  t.match(messages()[0].fields, { READY: '1', STATUS: 'ready: serving', MAINPID: String(proc.child.pid) }, 'READY=1 first, about the node process')

  // Fed every 300 ms; a 1500 ms block stops the pings, which resume after it.
  const pings = (): number[] => messages().filter((m) => m.fields.WATCHDOG === '1').map((m) => m.ms)
  await receiver.waitFor(() => pings().length >= 3)
  const blocked = await request(`${proc.address}/block?ms=1500`)
  await blocked.body.dump()
  const afterBlock = pings().length
  await receiver.waitFor(() => pings().length >= afterBlock + 2)
  const gaps = pings().slice(1).map((ms, i) => ms - pings()[i])
  t.ok(Math.max(...gaps) >= 1200, `no ping while the event loop was blocked (longest gap ${Math.max(...gaps)} ms, cadence 300 ms)`)

  proc.kill('SIGTERM')
  t.equal(await proc.exitCode, 0)
  const all = messages()
  const stopping = all.findIndex((m) => m.fields.STOPPING === '1')
  t.ok(stopping > 0, 'STOPPING=1 after READY=1')
  t.equal(all[stopping].fields.EXTEND_TIMEOUT_USEC, '21000000', 'the stop timeout extended to graceful.timeout (20 s) and a second')
  t.match(all[stopping].fields.STATUS, /^shutting down, still serving: \d+ request\(s\) in flight$/)
  t.same(all.at(-1)!.fields.STATUS, 'stopped: clean shutdown', 'the last status arrived before the exit')
  t.equal(all.filter((m) => m.fields.READY === '1').length, 1, 'READY=1 once')
})

test('socket activation under systemd-socket-activate: the first connection, made before node started, is answered on the inherited socket', async (t) => {
  const port = await freePort()
  const child = spawn('systemd-socket-activate', ['-l', `127.0.0.1:${port}`, '--fdname=web', process.execPath, ...execArgv, service], {
    env: { ...process.env, PRE_STOP_DELAY_MS: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let log = ''
  child.stdout!.on('data', (chunk: Buffer) => { log += chunk })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk })
  // systemd-socket-activate listens, then execs node (same pid) at the first connection.
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', () => { if (stderr.includes('Listening on')) resolve() })
    child.once('exit', () => reject(new Error(stderr)))
  })
  const first = await request(`http://127.0.0.1:${port}/`)
  t.same(await first.body.json(), { ok: true }, 'the connection queued before node started was served')
  t.match(log, /"msg":"Server listening at http:\/\/127\.0\.0\.1:\d+"/)
  child.kill('SIGTERM')
  const [code] = await once(child, 'exit')
  t.equal(code, 0)
  t.match(log, /"msg":"graceful: shutdown complete, exiting"/)
})

/** Connections refused in a restart under load: through the holder (socket activation), or a plain stop-then-start. */
async function restartUnderLoad (t: Test, held: boolean): Promise<{ sent: number, sentDuringRestart: number, answeredDuringRestart: number, refused: number, failedAccepted: number }> {
  const port = await freePort()
  const env = { PRE_STOP_DELAY_MS: '0', PORT: String(port) }
  let stopOld: () => Promise<void>
  let startNew: () => Promise<void>
  if (held) {
    const holder = startPythonHelper(t, 'socket-holder.py', [String(port), process.execPath, ...execArgv, service], { stdin: true })
    await holder.waitFor((l) => l.holding === port)
    const start = async (): Promise<number> => {
      const count = holder.lines.filter((l) => l.started !== undefined).length
      holder.write('start\n')
      const started = await holder.waitFor(() => holder.lines.filter((l) => l.started !== undefined).length > count)
      const pid = started.started as number
      t.teardown(() => { try { process.kill(pid, 'SIGKILL') } catch {} })
      await holder.waitFor((l) => l.pid === pid && String(l.msg).startsWith('Server listening'))
      return pid
    }
    let current = await start()
    stopOld = async () => {
      process.kill(current, 'SIGTERM')
      await holder.waitFor((l) => l.pid === current && l.msg === 'graceful: shutdown complete, exiting')
    }
    startNew = async () => { current = await start() }
  } else {
    let proc = await startFixture(t, 'service.js', env)
    stopOld = async () => { proc.kill('SIGTERM'); await proc.exitCode }
    startNew = async () => { proc = await startFixture(t, 'service.js', env) }
  }
  const load = startLoad({ origin: `http://127.0.0.1:${port}`, keepAliveClients: 8, freshClients: 3, maxDurationMs: 20_000, path: () => '/', idPrefix: held ? 'held' : 'plain' })
  t.teardown(() => load.stop())
  // Load flowing first: turns of the loop until 50 answers, bounded by the load's own limits.
  while (load.outcomes.filter((o) => o.status === 200).length < 50) await new Promise((resolve) => setImmediate(resolve))
  // Stop, then start: the gap in which nothing accepts is where a plain restart refuses.
  const gapStart = performance.now()
  await stopOld()
  await startNew()
  const gapEnd = performance.now()
  const until = load.outcomes.length + 200
  while (load.outcomes.length < until) await new Promise((resolve) => setImmediate(resolve))
  load.stop()
  const outcomes = await load.done
  const duringRestart = outcomes.filter((o) => o.startedAt >= gapStart && o.startedAt <= gapEnd)
  return {
    sent: outcomes.length,
    sentDuringRestart: duringRestart.length,
    answeredDuringRestart: duringRestart.filter((o) => o.status === 200).length,
    refused: outcomes.filter((o) => o.error === 'ECONNREFUSED').length,
    failedAccepted: outcomes.filter((o) => o.error !== undefined && o.error !== 'ECONNREFUSED').length
  }
}

test('a restart behind a held socket refuses nothing; a plain stop-then-start refuses (the control)', async (t) => {
  const held = await restartUnderLoad(t, true)
  const plain = await restartUnderLoad(t, false)
  t.comment(JSON.stringify({ plain, held }))
  t.ok(plain.refused > 0, `the control: a plain restart refused ${plain.refused} request(s), so refusals are counted`)
  t.equal(held.refused, 0, 'behind the held socket: none refused, connections waited in its queue')
  t.ok(held.sentDuringRestart > 0 && held.answeredDuringRestart === held.sentDuringRestart, `requests sent while no instance accepted were answered once the new one did (${held.answeredDuringRestart} of ${held.sentDuringRestart})`)
  t.equal(held.failedAccepted, 0, 'and none reset')
})
