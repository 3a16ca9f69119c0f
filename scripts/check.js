// `npm run check`: the static checks of `npm test` (lint, type-check, type tests against the
// built .d.ts), run at the same time; fails if any fails, each one's output printed whole.
import { spawn } from 'node:child_process'

const checks = ['lint', 'typecheck', 'test:types']
const results = await Promise.all(checks.map((name) => new Promise((resolve) => {
  const child = spawn('npm', ['run', '--silent', name], { stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk) => { output += chunk })
  child.stderr.on('data', (chunk) => { output += chunk })
  child.on('close', (code) => resolve({ name, code, output }))
})))
let failed = 0
for (const { name, code, output } of /** @type {Array<{ name: string, code: number, output: string }>} */ (results)) {
  console.log(`${code === 0 ? 'ok' : 'FAILED'}: npm run ${name}`)
  if (output.trim() !== '') console.log(output.trimEnd())
  if (code !== 0) failed++
}
process.exitCode = failed === 0 ? 0 : 1
