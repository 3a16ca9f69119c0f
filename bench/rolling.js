// `npm run bench:rolling [-- --lb haproxy|nginx] [--short]`: the rolling restart behind HAProxy
// (bench/rolling-restart.js, the default) or behind nginx as an ingress controller runs it
// (bench/rolling-nginx.js). Each reads the rest of the arguments itself.
const at = process.argv.indexOf('--lb')
const lb = at === -1 ? 'haproxy' : process.argv[at + 1]
if (lb === 'nginx') await import('./rolling-nginx.js')
else if (lb === 'haproxy') await import('./rolling-restart.js')
else {
  console.error(`--lb must be haproxy or nginx, got ${lb}`)
  process.exitCode = 2
}
