// The IPC protocol between a process running the suite and the process that started it.
import { test } from 'tap'
import { forgetHandedOffSockets, handedOffSockets, ipcRole, protocolMessage, sendMessage } from '../lib/ipc.js'

test('only the protocol\'s messages are taken: objects with the fastify-lifecycle key', async (t) => {
  t.equal(protocolMessage(null), undefined)
  t.equal(protocolMessage('ready'), undefined, 'PM2\'s strings are not ours')
  t.equal(protocolMessage({ release: 'r-1' }), undefined, 'nor the app\'s own objects')
  t.equal(protocolMessage({ 'fastify-lifecycle': 1 }), undefined)
  t.same(protocolMessage({ 'fastify-lifecycle': 'ready', pid: 1 }), { 'fastify-lifecycle': 'ready', pid: 1 })
})

test('the role comes from the parent\'s variable, and only with an IPC channel', async (t) => {
  const send = (): boolean => true
  t.equal(ipcRole({ FST_LIFECYCLE_IPC: 'cluster' }, send), 'cluster')
  t.equal(ipcRole({ FST_LIFECYCLE_IPC: 'handoff' }, send), 'handoff')
  t.equal(ipcRole({ FST_LIFECYCLE_IPC: 'other' }, send), undefined)
  t.equal(ipcRole({}, send), undefined)
  t.equal(ipcRole({ FST_LIFECYCLE_IPC: 'cluster' }, null), undefined, 'no channel: started some other way')
})

test('a message to a closed channel resolves: nobody is left to tell', async (t) => {
  const send = ((_message: unknown, _handle: unknown, _options: unknown, callback: (err: Error) => void) => {
    process.nextTick(callback, Object.assign(new Error('Channel closed'), { code: 'ERR_IPC_CHANNEL_CLOSED' }))
    return false
  }) as unknown as NonNullable<typeof process.send>
  await sendMessage(send, { 'fastify-lifecycle': 'ready', pid: 1 })
  t.pass('resolved')
})

test('the sockets a handoff passed, read once and removed from the environment', async (t) => {
  t.teardown(forgetHandedOffSockets)
  forgetHandedOffSockets()
  const env: NodeJS.ProcessEnv = { FST_LIFECYCLE_HANDOFF_FDS: 'service:4,probes:5;inherited' }
  const sockets = handedOffSockets(env)
  t.same([...sockets.fds], [['service', 4], ['probes', 5]])
  t.equal(sockets.inherited, true)
  t.equal(env.FST_LIFECYCLE_HANDOFF_FDS, undefined, 'a later child does not take them for its own')
  t.equal(handedOffSockets({ FST_LIFECYCLE_HANDOFF_FDS: 'service:9' }), sockets, 'read once')
  forgetHandedOffSockets()
  const odd = handedOffSockets({ FST_LIFECYCLE_HANDOFF_FDS: 'service:4,:5,probes:x,stdin:0,' })
  t.same([...odd.fds], [['service', 4]], 'malformed entries and standard streams are left out')
  t.equal(odd.inherited, false)
  forgetHandedOffSockets()
  t.equal(handedOffSockets({}).fds.size, 0, 'none when started otherwise')
})
