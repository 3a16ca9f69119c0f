import { setTimeout as sleep } from 'node:timers/promises'

export default async function routes (fastify) {
  fastify.get('/', async function root () {
    return { root: true }
  })

  // A slow route, so that requests are in flight when the signal comes.
  fastify.get('/slow', async function slow (request) {
    request.log.info('slow route entered')
    await sleep(Number(request.query.ms ?? 200))
    return { slow: true }
  })

  fastify.get('/whoami', async function whoami () {
    return { pid: process.pid }
  })
}
