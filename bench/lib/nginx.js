// nginx for the benchmarks, as an ingress controller runs it: one upstream with keep-alive
// connections, no passive failure marking (max_fails=0), no retries (proxy_next_upstream off).
import { execFileSync } from 'node:child_process'
import { connect } from 'node:net'

/** Exits 2 with how to install nginx when it is not there. */
export function requireNginx () {
  try {
    execFileSync('nginx', ['-v'], { stdio: 'ignore' })
  } catch {
    console.error('nginx is not installed. Install it with: apt-get update && apt-get install -y nginx (as root)')
    process.exit(2)
  }
}

/**
 * nginx's configuration, its files under `prefix`, for the upstream servers `ports`. Client
 * connections are not kept alive (`keepalive_timeout 0`): a reload closes the old workers' idle
 * client connections, a race of nginx's own that would add failures to every run; upstream
 * connections are.
 * @param {string} prefix
 * @param {number} frontPort
 * @param {number[]} ports
 */
export function nginxConfig (prefix, frontPort, ports) {
  return [
    'worker_processes 1;',
    'user root;',
    `pid ${prefix}/nginx.pid;`,
    `error_log ${prefix}/error.log warn;`,
    'events { worker_connections 4096; }',
    'http {',
    '  access_log off;',
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((kind) => `  ${kind}_temp_path ${prefix}/${kind};`),
    '  keepalive_timeout 0;',
    '  upstream replicas {',
    ...ports.map((port) => `    server 127.0.0.1:${port} max_fails=0;`),
    '    keepalive 64;',
    '  }',
    '  server {',
    `    listen 127.0.0.1:${frontPort};`,
    '    location / {',
    '      proxy_pass http://replicas;',
    '      proxy_http_version 1.1;',
    '      proxy_set_header Connection "";',
    '      proxy_next_upstream off;',
    '    }',
    '  }',
    '}',
    ''
  ].join('\n')
}

/**
 * Resolves once 127.0.0.1:`port` accepts connections (nginx says nothing when it listens),
 * bounded in time.
 * @param {number} port
 */
export async function listening (port) {
  const until = Date.now() + 10_000
  while (Date.now() < until) {
    const socket = connect(port, '127.0.0.1')
    const up = await new Promise((resolve) => {
      socket.once('connect', () => resolve(true))
      socket.once('error', () => resolve(false))
    })
    socket.destroy()
    if (up) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listened on 127.0.0.1:${port}`)
}
