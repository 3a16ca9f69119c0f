import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { once } from 'node:events'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import type { Test } from 'tap'
import pg from 'pg'
import { Redis } from 'ioredis'
import { freePort } from '../../cli/verify.js'

export const PG_URL = process.env.PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

const HOW_TO = {
  pg: 'start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (or `bash .ci/run`), or point PG_URL at one',
  redis: 'start it with `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log` (or `bash .ci/run`), or point REDIS_URL at one'
}

/** Fails the test loudly, with how to start PostgreSQL, when it does not answer. */
export async function requirePg (): Promise<void> {
  const client = new pg.Client({ connectionString: PG_URL, connectionTimeoutMillis: 3000 })
  try {
    await client.connect()
    await client.query('SELECT 1')
  } catch (err) {
    throw new Error(`PostgreSQL is not reachable at PG_URL=${PG_URL} (${(err as Error).message}); ${HOW_TO.pg}`)
  } finally {
    await client.end().catch(() => {})
  }
}

/** Fails the test loudly, with how to start Redis, when it does not answer. */
export async function requireRedis (url = REDIS_URL): Promise<void> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 3000 })
  try {
    await client.connect()
    await client.ping()
  } catch (err) {
    throw new Error(`Redis is not reachable at REDIS_URL=${url} (${(err as Error).message}); ${HOW_TO.redis}`)
  } finally {
    client.disconnect()
  }
}

/** Connections PostgreSQL still has open for an application_name. */
export async function pgConnections (applicationName: string): Promise<number> {
  const client = new pg.Client({ connectionString: PG_URL })
  await client.connect()
  try {
    const { rows } = await client.query('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [applicationName])
    return rows[0].n as number
  } finally {
    await client.end()
  }
}

/** Clients Redis still has connected under a client name. */
export async function redisClients (name: string): Promise<number> {
  const client = new Redis(REDIS_URL)
  try {
    const list = await client.client('LIST') as string
    return list.split('\n').filter((line) => line.includes(` name=${name} `)).length
  } finally {
    client.disconnect()
  }
}

/** A port free on 127.0.0.1 right now: the verify command's own. */
export { freePort }

/**
 * A redis-server of the test's own, on its own port, so a test can stop it without touching
 * the machine's shared one. Stopped when the test ends, if the test has not stopped it.
 */
export async function startOwnRedis (t: Test): Promise<{ url: string, stop: () => Promise<void> }> {
  const port = await freePort()
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = once(child, 'exit')
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  }
  t.teardown(stop)
  // redis-server logs this line once it accepts connections.
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => { if (chunk.toString().includes('Ready to accept connections')) resolve() })
    exited.then(() => reject(new Error(`redis-server on port ${port} exited at start; is redis-server installed?`)), reject)
  })
  const url = `redis://127.0.0.1:${port}`
  await requireRedis(url)
  return { url, stop }
}

/**
 * A TCP proxy on 127.0.0.1 to `target` (host:port): a dependency the test can take away. `cut()`
 * destroys every connection through it and stops listening, as when the database host goes.
 */
export async function tcpProxy (t: Test, target: { host: string, port: number }): Promise<{ port: number, url: (base: string) => string, cut: () => Promise<void> }> {
  const pairs = new Set<Socket>()
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host)
    pairs.add(client)
    pairs.add(upstream)
    for (const socket of [client, upstream]) {
      socket.on('error', () => {})
      socket.once('close', () => { pairs.delete(socket); client.destroy(); upstream.destroy() })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const port = (server.address() as AddressInfo).port
  const cut = async (): Promise<void> => {
    if (!server.listening) return
    const closed = once(server, 'close')
    server.close()
    for (const socket of pairs) socket.destroy()
    await closed
  }
  t.teardown(cut)
  return {
    port,
    url: (base) => { const url = new URL(base); url.port = String(port); url.hostname = '127.0.0.1'; return url.toString() },
    cut
  }
}

/** A line a helper script printed, parsed. */
type HelperLine = Record<string, unknown>

/**
 * Runs one of test/helpers' Python scripts, following its JSON lines; stopped by pid when the
 * test ends. Fails loudly when python3 is missing.
 */
export function startPythonHelper (t: Test, script: string, args: string[], opts: { stdin?: boolean, env?: Record<string, string> } = {}): { lines: HelperLine[], waitFor: (test: (line: HelperLine) => boolean) => Promise<HelperLine>, write: (text: string) => void, pid: number } {
  const child = spawn('python3', [fileURLToPath(new URL(script, import.meta.url)), ...args], { stdio: [opts.stdin === true ? 'pipe' : 'ignore', 'pipe', 'inherit'], env: { ...process.env, ...opts.env } })
  child.on('error', (err) => { throw new Error(`python3 is needed for ${script} (${err.message}); install it (Debian: apt-get install -y python3)`) })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const lines: HelperLine[] = []
  const waiters: Array<{ test: (line: HelperLine) => boolean, resolve: (line: HelperLine) => void }> = []
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: HelperLine
    try { line = JSON.parse(text) } catch { line = { text } }
    lines.push(line)
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (waiters[i].test(line)) { waiters[i].resolve(line); waiters.splice(i, 1) }
    }
  })
  return {
    lines,
    pid: child.pid as number,
    write: (text) => { child.stdin!.write(text) },
    waitFor: (test) => {
      const found = lines.find(test)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        waiters.push({ test, resolve })
        child.once('exit', (code, signal) => reject(new Error(`${script} exited (${code ?? signal}); it printed:\n${lines.slice(-5).map((l) => JSON.stringify(l)).join('\n')}`)))
      })
    }
  }
}
