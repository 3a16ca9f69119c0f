// The verify command's main(), in-process with stand-in terminals: the live progress line and
// the colours on a TTY, and the services that do not exit, ignore a reload signal, or never
// listen. Its usual runs (the bin, as users call it) are in test/integration/verify.test.ts.
import { test } from 'tap'
import { main } from '../cli/command.js'

function terminal (isTTY: boolean): NodeJS.WriteStream & { text: () => string } {
  let text = ''
  return { isTTY, write: (chunk: string) => { text += chunk; return true }, text: () => text } as unknown as NodeJS.WriteStream & { text: () => string }
}

const node = process.execPath
const QUICK = ['--duration', '600', '--connections', '4']

test('on a terminal: a live progress line, cleared at the end, and colours (unless NO_COLOR); liveness failures counted', async (t) => {
  const old = process.env.PRE_STOP_DELAY_MS
  process.env.PRE_STOP_DELAY_MS = '500'
  t.teardown(() => { if (old === undefined) delete process.env.PRE_STOP_DELAY_MS; else process.env.PRE_STOP_DELAY_MS = old })
  const out = terminal(true)
  const err = terminal(true)
  // A liveness path that answers 404 while the service still serves (the pre-stop delay).
  const code = await main(['verify', ...QUICK, '--live-path', '/missing', '--slow-path', '/slow?ms=200', '--', node, 'examples/service.js'], out, err, {})
  t.equal(code, 0, 'liveness failures warn, they do not fail')
  t.match(err.text(), /\rload: \d+(\.\d)? s, \d+ sent, \d+ answered, \d+ lost, \d+ refused/, 'the progress line')
  t.ok(err.text().endsWith('\r\u001b[K'), 'cleared before the verdict')
  t.ok(out.text().startsWith('verify: \u001b[32mPASS'), 'coloured')
  t.match(out.text(), /liveness failures: [1-9]/)
  t.ok(out.text().includes('warn\u001b[0m liveness failed '), 'the warning, in its colour')
  const plain = terminal(true)
  const server = 'require("http").createServer((q, s) => s.end("ok")).listen(process.env.PORT, process.env.HOST)'
  t.equal(await main(['verify', ...QUICK, '--ready-path', 'none', '--live-path', 'none', '--', node, '-e', server], plain, terminal(false), { NO_COLOR: '1' }), 1)
  t.ok(plain.text().startsWith('verify: FAIL'), 'NO_COLOR: no colours')
})

test('a service that does not exit after the signal is killed, and that fails the verdict', async (t) => {
  const out = terminal(false)
  const script = 'require("http").createServer((q, s) => s.end("ok")).listen(process.env.PORT, process.env.HOST); process.on("SIGTERM", () => {})'
  const code = await main(['verify', ...QUICK, '--ready-path', 'none', '--live-path', 'none', '--timeout', '1000', '--json', '--', node, '-e', script], out, terminal(false))
  t.equal(code, 1)
  const result = JSON.parse(out.text())
  t.match(result.findings[0], { kind: 'no-exit', severity: 'fail', message: 'the process had not exited 1000 ms after SIGTERM: it was killed' })
  t.equal(result.exit.signal, 'SIGKILL')
})

test('a reload signal the service ignores: still serving, nothing lost; it is stopped after, by SIGKILL if need be', async (t) => {
  const out = terminal(false)
  const script = 'require("http").createServer((q, s) => s.end("ok")).listen(process.env.PORT, process.env.HOST); process.on("SIGTERM", () => {}); process.on("SIGUSR2", () => {})'
  const code = await main(['verify', ...QUICK, '--ready-path', 'none', '--live-path', 'none', '--timeout', '500', '--reload', 'SIGUSR2', '--json', '--', node, '-e', script], out, terminal(false))
  t.equal(code, 0)
  t.match(JSON.parse(out.text()), { verdict: 'pass', mode: 'reload', requests: { lost: 0, refused: 0 }, exit: { code: null, signal: null } })
})

test('a service that never listens: not ready, said with what the port answered', async (t) => {
  const err = terminal(false)
  const code = await main(['verify', '--ready-path', 'none', '--ready-timeout', '300', '--', node, '-e', 'setTimeout(() => {}, 30000)'], terminal(false), err)
  t.equal(code, 1)
  t.match(err.text(), /^verify: FAIL: the service was not ready within 300 ms \(the port answered ECONNREFUSED\); its last output:/)
})
