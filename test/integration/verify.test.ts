// `fastify-lifecycle verify`, run as users run it (the built bin, a real service started by it,
// real signals and load): it passes on the example service, fails with the right findings on a
// service with no shutdown handling and on the close-with-grace recipe, verifies reloads, and
// answers bad usage with exit status 2 and no stack.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test, type Test } from 'tap'

const root = fileURLToPath(new URL('../../', import.meta.url))
const bin = join(root, 'dist/cli/index.js')
const execArgv = process.execArgv.filter((arg) => !arg.includes('@tapjs/typescript'))

interface Run { code: number | null, stdout: string, stderr: string }

/** Runs the bin with `args`, from the repository's root, with coverage. */
async function run (t: Test, args: string[], env: Record<string, string> = {}): Promise<Run> {
  const child = spawn(process.execPath, [...execArgv, bin, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk })
  child.stderr.on('data', (chunk: Buffer) => { stderr += chunk })
  const started = performance.now()
  const [code] = await once(child, 'exit') as [number | null]
  if (process.env.VERIFY_TIMINGS !== undefined) t.comment(`${args.join(' ')}: ${Math.round(performance.now() - started)} ms`)
  return { code, stdout, stderr }
}

const FAST = ['--duration', '1500', '--connections', '12']

test('passes on the example service: nothing lost, clean exit; --json and an HTML report', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fl-verify-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const report = join(dir, 'report.html')
  const { code, stdout } = await run(t, ['verify', ...FAST, '--slow-path', '/slow?ms=500', '--json', '--report', report, '--', process.execPath, 'examples/service.js'], { PRE_STOP_DELAY_MS: '500' })
  t.equal(code, 0, 'exit status 0')
  const result = JSON.parse(stdout)
  t.equal(result.verdict, 'pass')
  t.equal(result.requests.lost, 0)
  t.ok(result.requests.sent > 100, `${result.requests.sent} requests sent`)
  t.ok(result.inFlightAtSignal > 0, 'requests were in flight at the signal')
  t.equal(result.exit.code, 0)
  t.ok(result.exit.afterSignalMs >= 500, 'after the pre-stop delay')
  t.ok(result.readiness.flipMs < 500, `readiness failed ${result.readiness.flipMs} ms after the signal, before the listener closed`)
  t.equal(result.liveness.failures, 0)
  t.equal(result.report.clean, true, 'the service\'s own report')
  t.same(result.findings.filter((finding: { severity: string }) => finding.severity === 'fail'), [])
  const html = readFileSync(report, 'utf8')
  t.match(html, /<h1>verify: <span class="pass">pass<\/span><\/h1>/)
  t.match(html, /<svg[^>]+aria-label="requests per 100 ms by outcome"/)
  t.match(html, /<rect class="ok"/)
  t.match(html, />signal \(\d+ ms\)</, 'the signal is marked')
  t.match(html, />readiness 503 \(\d+ ms\)</)
  t.match(html, />exit \(\d+ ms\)</)
  t.notMatch(html, /<script|src=|href=|@import|url\(/, 'self-contained: no script, nothing fetched')
})

test('fails on a service with no shutdown handling: killed by SIGTERM, the requests in flight cut', async (t) => {
  const { code, stdout } = await run(t, ['verify', ...FAST, '--ready-path', 'none', '--live-path', 'none', '--slow-path', '/slow?ms=500', '--', process.execPath, 'test/fixtures/no-shutdown.js'])
  t.equal(code, 1)
  t.match(stdout, /^verify: FAIL/)
  t.match(stdout, /fail the process was killed by SIGTERM: nothing handles it, and the \d+ request\(s\) in flight were cut/)
  t.match(stdout, /fix: handle SIGTERM: register fastify-lifecycle/)
  t.match(stdout, /exit: killed by SIGTERM/)
})

test('fails on the close-with-grace recipe: requests answered 503 by Fastify once close() began', async (t) => {
  const { code, stdout } = await run(t, ['verify', ...FAST, '--ready-path', 'none', '--live-path', 'none', '--slow-path', '/slow?ms=1000', '--json', '--', process.execPath, 'test/fixtures/close-with-grace.js'])
  t.equal(code, 1)
  const result = JSON.parse(stdout)
  t.equal(result.verdict, 'fail')
  const kinds = result.findings.map((finding: { kind: string }) => finding.kind)
  t.ok(kinds.includes('status-503'), `findings: ${kinds.join(', ')}`)
  t.ok(result.requests.status503 > 0)
  t.ok(kinds.includes('no-report'))
})

test('--reload: a listener handoff and a cluster reload keep serving; a service that dies at the signal fails', async (t) => {
  const handoff = await run(t, ['verify', ...FAST, '--reload', 'SIGUSR2', '--json', '--', process.execPath, 'examples/service.js'], { RELOAD: 'handoff', PRE_STOP_DELAY_MS: '0' })
  t.equal(handoff.code, 0, 'handoff: pass')
  const result = JSON.parse(handoff.stdout)
  t.same({ mode: result.mode, lost: result.requests.lost, refused: result.requests.refused }, { mode: 'reload', lost: 0, refused: 0 })
  const cluster = await run(t, ['verify', ...FAST, '--reload', 'HUP', '--', process.execPath, 'examples/cluster.js'], { WORKERS: '2', PRE_STOP_DELAY_MS: '0' })
  t.equal(cluster.code, 0, 'cluster: pass')
  t.match(cluster.stdout, /^verify: PASS \(a reload under load/)
  const none = await run(t, ['verify', ...FAST, '--reload', 'SIGUSR2', '--json', '--', process.execPath, 'examples/service.js'], { PRE_STOP_DELAY_MS: '0' })
  t.equal(none.code, 1, 'no reload support: fail')
  const kinds = JSON.parse(none.stdout).findings.map((finding: { kind: string }) => finding.kind)
  t.ok(kinds.includes('reload-exit') && kinds.includes('not-serving'), `findings: ${kinds.join(', ')}`)
})

test('--rolling: replicas behind HAProxy replaced one by one; the example passes, the close-with-grace recipe loses requests, a replica that ignores the signal is killed', async (t) => {
  const pass = await run(t, ['verify', ...FAST, '--rolling', '2', '--slow-path', '/slow?ms=300', '--json', '--', process.execPath, 'examples/service.js'], { PRE_STOP_DELAY_MS: '1500' })
  t.equal(pass.code, 0, 'the example: pass')
  const result = JSON.parse(pass.stdout)
  t.match(result, { verdict: 'pass', mode: 'rolling', requests: { lost: 0, refused: 0 } })
  t.same(result.replicas.map((replica: { exit: string }) => replica.exit), ['code 0', 'code 0'])
  t.ok(result.requests.sent > 100, `${result.requests.sent} requests through HAProxy`)
  const fail = await run(t, ['verify', ...FAST, '--rolling', '2', '--ready-path', 'none', '--live-path', 'none', '--', process.execPath, 'test/fixtures/close-with-grace.js'])
  t.equal(fail.code, 1, 'the close-with-grace recipe: fail')
  t.match(fail.stdout, /^verify: FAIL \(a rolling restart behind HAProxy under load/)
  t.match(fail.stdout, /fail \d+ of \d+ request\(s\) through HAProxy failed during the rolling restart/)
  t.match(fail.stdout, /replica 2: exit code 0/)
  const script = 'require("http").createServer((q, s) => s.end("ok")).listen(process.env.PORT, process.env.HOST); process.on("SIGTERM", () => {})'
  const stuck = await run(t, ['verify', '--duration', '500', '--connections', '4', '--rolling', '2', '--ready-path', 'none', '--live-path', 'none', '--timeout', '1000', '--json', '--', process.execPath, '-e', script])
  t.equal(stuck.code, 1)
  t.equal(JSON.parse(stuck.stdout).findings.find((finding: { kind: string }) => finding.kind === 'no-exit')?.severity, 'fail')
  const unready = 'console.log("warming up, not ready"); require("http").createServer((q, s) => { s.statusCode = 503; s.end() }).listen(process.env.PORT, process.env.HOST)'
  const never = await run(t, ['verify', '--rolling', '2', '--ready-timeout', '1500', '--', process.execPath, '-e', unready])
  t.equal(never.code, 1, 'a replica HAProxy never sees up')
  t.match(never.stderr, /^verify: FAIL: replica 1 \(port \d+\) was not up in HAProxy within 1500 ms; the last output:\n {2}warming up, not ready/)
  const missing = await run(t, ['verify', '--rolling', '2', '--', process.execPath, 'examples/service.js'], { PATH: '/nonexistent' })
  t.equal(missing.code, 2)
  t.match(missing.stderr, /--rolling runs the service behind HAProxy, which is not installed: apt-get install -y haproxy/)
})

test('a service that never becomes ready fails with its last output', async (t) => {
  const exits = await run(t, ['verify', '--', process.execPath, '-e', 'console.log("boot failed: no DATABASE_URL"); process.exit(3)'])
  t.equal(exits.code, 1)
  t.match(exits.stderr, /verify: FAIL: the service exited before it was ready; its last output:\n {2}boot failed: no DATABASE_URL/)
  const silent = await run(t, ['verify', '--ready-timeout', '500', '--json', '--', process.execPath, '-e', 'setTimeout(() => {}, 60000)'])
  t.equal(silent.code, 1)
  t.match(JSON.parse(silent.stdout), { verdict: 'fail', error: /was not ready within 500 ms \(\/readyz answered ECONNREFUSED\)/ })
})

test('bad usage: exit status 2, the reason and the usage, no stack', async (t) => {
  for (const [args, reason] of [
    [['verify'], /give the command that starts the service after --/],
    [[], /say which command: verify/],
    [['check', '--', 'node'], /unknown command: check/],
    [['verify', '--replicas', '3', '--', 'node'], /Unknown option '--replicas'/],
    [['verify', '--signal', 'SIGKILL', '--', 'node'], /--signal must be one of SIGTERM/],
    [['verify', '--connections', '0', '--', 'node'], /--connections must be an integer of at least 1/],
    [['verify', '--path', 'x', '--', 'node'], /--path must start with \/, got "x"/],
    [['verify', '--ready-path', 'x', '--', 'node'], /--ready-path must start with \/ \(or be "none"\)/],
    [['verify', '--rolling', '1', '--', 'node'], /--rolling must be an integer of at least 2/],
    [['verify', '--rolling', '2', '--reload', 'SIGHUP', '--', 'node'], /--rolling and --reload are two ways to restart: choose one/]
  ] as Array<[string[], RegExp]>) {
    const { code, stderr } = await run(t, args)
    t.equal(code, 2, args.join(' '))
    t.match(stderr, reason)
    t.match(stderr, /Usage: fastify-lifecycle verify/)
    t.notMatch(stderr, /\n\s+at /, 'no stack')
  }
  const missing = await run(t, ['verify', '--', 'no-such-command-here'])
  t.equal(missing.code, 2)
  t.match(missing.stderr, /^fastify-lifecycle: could not start no-such-command-here: spawn no-such-command-here ENOENT/)
  const help = await run(t, ['--help'])
  t.equal(help.code, 0)
  t.match(help.stdout, /Exit status: 0 pass, 1 fail, 2 bad usage/)
})
