// A fastify-cli app in the layout `npm init fastify` generates: plugins/ and routes/ loaded by
// @fastify/autoload. Start it with fastify-cli, as such apps are started:
//   npx fastify start -l info examples/fastify-cli/app.js
// fastify-lifecycle is registered from plugins/lifecycle.js; on SIGTERM the app gets the same
// shutdown as `node server.js`: readiness fails, the pre-stop delay is served, then the drain,
// the teardown, one report, exit 0. See docs/fastify-cli.md.
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autoLoad from '@fastify/autoload'

const here = fileURLToPath(new URL('.', import.meta.url))

export default async function app (fastify, opts) {
  await fastify.register(autoLoad, { dir: join(here, 'plugins'), options: { ...opts } })
  await fastify.register(autoLoad, { dir: join(here, 'routes'), options: { ...opts } })
}

// fastify-cli passes these to Fastify() when started with `--options`.
export const options = {}
