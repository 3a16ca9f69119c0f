// The example service (examples/service.js) under the cluster primary of fastify-lifecycle:
// the primary holds the listening socket and runs WORKERS workers (default 2); `kill -HUP
// <primary pid>` replaces them one at a time with the code on disk now, start-first, and
// keeps the old ones if a new one fails; SIGTERM shuts them all down gracefully. PORT and HOST
// as for service.js (PORT 0 picks a free port, the same for every worker). GET /whoami answers
// the worker's pid: run `npm run build`, then `PORT=3000 node examples/cluster.js`, and
// `curl localhost:3000/whoami` across a `kill -HUP`.
import { fileURLToPath } from 'node:url'
import { startPrimary } from 'fastify-lifecycle/cluster'

await startPrimary({
  exec: fileURLToPath(new URL('./service.js', import.meta.url)),
  workers: Number(process.env.WORKERS ?? 2)
})
