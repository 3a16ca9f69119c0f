#!/usr/bin/env node
// The `fastify-lifecycle` bin (see cli/command.ts): `npx fastify-lifecycle verify -- node server.js`.
import { main } from './command.js'

process.exitCode = await main(process.argv.slice(2))
