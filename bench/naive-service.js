// The contrast target: the same routes, shut down the common way: close-with-grace calling
// app.close(), everything else at Fastify's defaults. `node bench/naive-service.js`, PORT/HOST.
import closeWithGrace from 'close-with-grace'
import Fastify from 'fastify'

const app = Fastify({ logger: true })
app.get('/', async () => ({ hello: 'world' }))
app.get('/slow', async (request) => {
  const ms = Math.min(Number(/** @type {{ ms?: string }} */ (request.query).ms ?? 1000), 60_000)
  await new Promise((resolve) => setTimeout(resolve, ms))
  return { waitedMs: ms }
})
app.get('/livez', async () => 'ok')
app.get('/readyz', async () => 'ok')

closeWithGrace(async ({ err }) => {
  if (err) app.log.error({ err }, 'closing on error')
  await app.close()
})

await app.listen({ port: Number(process.env.PORT ?? 0), host: process.env.HOST ?? '127.0.0.1' })
