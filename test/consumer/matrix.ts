// `npm run test:consumer` (part of `npm test`, after the tap suite: it is CPU-bound and measures
// nothing of the coverage).
// The packed tarball, installed as users install it, in fresh projects: ESM and CommonJS
// JavaScript, TypeScript under nodenext (ESM and CommonJS), bundler with skipLibCheck off, and
// strict with exactOptionalPropertyTypes; one program per subpath; fastify at the lowest 5.x
// the package claims and at the latest. Each program is type-checked (TypeScript) and run, and
// must answer /readyz with 200. Installs come from the registry or npm's cache.
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { test } from 'tap'

const exec = promisify(execFile)
// Children run without tap's coverage hooks (NODE_OPTIONS): they measure the package as users
// run it, and instrumenting tsc would only slow the type-checks down.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => key !== 'NODE_OPTIONS' && !key.startsWith('_TAPJS') && !key.startsWith('TAP')))
const run = (file: string, args: string[], options: { cwd?: string, timeout?: number } = {}) => exec(file, args, { ...options, env })
const root = fileURLToPath(new URL('../../', import.meta.url))
const here = fileURLToPath(new URL('./', import.meta.url))
const tsc = join(root, 'node_modules/typescript/bin/tsc')
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { peerDependencies: { fastify: string }, exports: Record<string, unknown> }
const LOWEST = pkg.peerDependencies.fastify.replace(/^\^/, '')
const LATEST = (JSON.parse(readFileSync(join(root, 'node_modules/fastify/package.json'), 'utf8')) as { version: string }).version
const SUBPATHS = Object.keys(pkg.exports).filter((key) => key !== '.' && key !== './package.json' && key !== './lifecycle' && key !== './errors' && key !== './cluster').map((key) => key.slice(2))

const JS_ESM = `import Fastify from 'fastify'
import lifecycle from 'fastify-lifecycle'
const app = Fastify()
await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
await app.listen({ port: 0, host: '127.0.0.1' })
const res = await fetch('http://127.0.0.1:' + app.server.address().port + '/readyz')
const report = await app.lifecycle.shutdown()
console.log(JSON.stringify({ readyz: res.status, clean: report.clean }))
`
const JS_CJS = `const Fastify = require('fastify')
const lifecycle = require('fastify-lifecycle').default
async function main () {
  const app = Fastify()
  await app.register(lifecycle, { graceful: false, preStop: { delay: 0 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await fetch('http://127.0.0.1:' + app.server.address().port + '/readyz')
  const report = await app.lifecycle.shutdown()
  console.log(JSON.stringify({ readyz: res.status, clean: report.clean }))
}
main()
`

interface TsSetup { name: string, type: 'module' | 'commonjs', file: string, options: Record<string, unknown> }
// Every set-up is strict with skipLibCheck off. The nodenext ESM one also has
// exactOptionalPropertyTypes: a program that passes with it passes without.
const TS_SETUPS: TsSetup[] = [
  { name: 'ts-nodenext-esm-exact', type: 'module', file: 'app.ts', options: { module: 'nodenext', moduleResolution: 'nodenext', exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true } },
  { name: 'ts-nodenext-cjs', type: 'commonjs', file: 'app.cts', options: { module: 'nodenext', moduleResolution: 'nodenext' } },
  { name: 'ts-bundler', type: 'module', file: 'app.ts', options: { module: 'esnext', moduleResolution: 'bundler' } }
]

function tsconfig (options: Record<string, unknown>): string {
  return JSON.stringify({
    compilerOptions: { target: 'es2022', strict: true, skipLibCheck: false, outDir: 'out', typeRoots: [join(root, 'node_modules/@types')], types: ['node'], ...options }
  })
}

async function node (file: string): Promise<{ readyz: number, clean: boolean }> {
  const { stdout } = await run(process.execPath, [file], { timeout: 30_000 })
  return JSON.parse(stdout.trim().split('\n').at(-1) as string)
}

/** Runs `tasks` two at a time: type-checks are CPU-bound and this machine has two cores. */
async function twoAtATime (tasks: Array<() => Promise<void>>): Promise<void> {
  const queue = [...tasks]
  const worker = async (): Promise<void> => { for (let task = queue.shift(); task !== undefined; task = queue.shift()) await task() }
  await Promise.all([worker(), worker()])
}

test('the packed package works in fresh projects, as users install it', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'fastify-lifecycle-consumer-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))
  // dist/ is built by `npm test` before the tests run: pack it as it is.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--silent', '--pack-destination', work], { cwd: root })
  const tarball = join(work, stdout.trim().split('\n').at(-1) as string)
  const versions = [...new Set([LOWEST, LATEST])]

  // Both projects installed at once: the installs wait on the network or npm's cache.
  await Promise.all(versions.map(async (version) => {
    const dir = join(work, `fastify-${version}`)
    mkdirSync(dir)
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
    await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', tarball, `fastify@${version}`], { cwd: dir, timeout: 120_000 })
  }))

  // The bin, as `npx fastify-lifecycle` finds it: its runtime dependencies come with it.
  const help = await run(join(work, `fastify-${LATEST}`, 'node_modules/.bin/fastify-lifecycle'), ['--help'], { timeout: 30_000 })
  t.match(help.stdout, /^Usage: fastify-lifecycle verify/, 'the fastify-lifecycle bin runs from the installed package')

  const tasks: Array<() => Promise<void>> = []
  for (const version of versions) {
    const dir = join(work, `fastify-${version}`)
    const label = `fastify ${version}`
    const installed = JSON.parse(readFileSync(join(dir, 'node_modules/fastify/package.json'), 'utf8')) as { version: string }
    t.equal(installed.version, version, `${label}: the fastify the project pinned, with no second copy`)
    t.notOk(existsSync(join(dir, 'node_modules/fastify-lifecycle/node_modules/fastify')), `${label}: fastify-lifecycle brings no fastify of its own`)
    tasks.push(async () => {
      writeFileSync(join(dir, 'esm.mjs'), JS_ESM)
      writeFileSync(join(dir, 'cjs.cjs'), JS_CJS)
      t.match(await node(join(dir, 'esm.mjs')), { readyz: 200, clean: true }, `${label}: ESM JavaScript`)
      t.match(await node(join(dir, 'cjs.cjs')), { readyz: 200, clean: true }, `${label}: CommonJS require()`)
    })
    for (const setup of TS_SETUPS) {
      tasks.push(async () => {
        const project = join(dir, setup.name)
        mkdirSync(project)
        writeFileSync(join(project, 'package.json'), JSON.stringify({ type: setup.type }))
        writeFileSync(join(project, 'tsconfig.json'), tsconfig(setup.options))
        copyFileSync(join(here, setup.file), join(project, setup.file))
        const checked = await run(process.execPath, [tsc, '-p', project]).then(() => true, (err: { stdout: string }) => {
          t.fail(`${label}, ${setup.name}: does not type-check\n${err.stdout}`)
          return false
        })
        if (!checked) return
        const out = join(project, 'out', setup.file.replace(/\.ts$/, '.js').replace(/\.cts$/, '.cjs'))
        t.match(await node(out), { readyz: 200, clean: true, primary: true }, `${label}, ${setup.name}: type-checks and runs`)
      })
    }
  }
  // One program per subpath, each a project of its own: in one project, one file's import
  // would bring the decorator's type to all the others. skipLibCheck on: what is checked is
  // the program's own use of `app.lifecycle`.
  const latest = join(work, `fastify-${LATEST}`)
  const template = readFileSync(join(here, 'subpath.ts.txt'), 'utf8')
  for (const subpath of SUBPATHS) {
    tasks.push(async () => {
      const project = join(latest, `subpath-${subpath}`)
      mkdirSync(project)
      writeFileSync(join(project, 'package.json'), JSON.stringify({ type: 'module' }))
      writeFileSync(join(project, 'tsconfig.json'), tsconfig({ module: 'nodenext', moduleResolution: 'nodenext', exactOptionalPropertyTypes: true, skipLibCheck: true }))
      writeFileSync(join(project, 'app.ts'), template.replaceAll('SUBPATH', subpath))
      const checked = await run(process.execPath, [tsc, '-p', project]).then(() => true, (err: { stdout: string }) => {
        t.fail(`fastify-lifecycle/${subpath} alone does not type-check\n${err.stdout}`)
        return false
      })
      if (!checked) return
      const { stdout } = await run(process.execPath, [join(project, 'out', 'app.js')])
      t.match(JSON.parse(stdout), { subpath, phase: 'starting', now: 'ready' }, `fastify-lifecycle/${subpath} alone: app.lifecycle typed and working`)
    })
  }
  await twoAtATime(tasks)
})
