import { readdirSync, readFileSync } from 'node:fs'
import { test } from 'tap'
import Fastify from 'fastify'
import { parseAllDocuments } from 'yaml'
import { Deployment } from 'kubernetes-models/apps/v1'
import { Service } from 'kubernetes-models/v1'
import lifecycle from '../plugins/index.js'

const dir = new URL('../docs/kubernetes/', import.meta.url)
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'))
const models: Record<string, new (data: any) => { validate: () => void }> = { 'apps/v1/Deployment': Deployment, 'v1/Service': Service }

function documents (file: string): Array<Record<string, any>> {
  return parseAllDocuments(readFileSync(new URL(file, dir), 'utf8')).map((doc) => doc.toJS())
}

test('every manifest in docs/kubernetes is valid against the Kubernetes schemas', async (t) => {
  t.ok(files.length >= 3)
  for (const file of files) {
    for (const doc of documents(file)) {
      const Model = models[`${doc.apiVersion}/${doc.kind}`]
      t.ok(Model, `${file}: a model for ${doc.apiVersion} ${doc.kind}`)
      t.doesNotThrow(() => new Model(doc).validate(), `${file}: ${doc.kind} ${doc.metadata.name} is valid`)
    }
  }
})

test('the schema check catches a broken manifest', async (t) => {
  const [doc] = documents('deployment.yaml')
  doc.spec.template.spec.containers[0].readinessProbe.httpGet.port = { name: 'probes' }
  t.throws(() => new Deployment(doc).validate())
})

test('the Deployments follow the shutdown arithmetic of the suite\'s defaults', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(lifecycle, { graceful: false })
  await app.ready()
  const phases = Object.values(app.lifecycle.budget).reduce((a, b) => a + b, 0)
  const gracefulDefault = 25_000
  for (const file of files) {
    for (const doc of documents(file).filter((d) => d.kind === 'Deployment')) {
      const pod = doc.spec.template.spec
      const container = pod.containers[0]
      const grace = pod.terminationGracePeriodSeconds * 1000
      const kubeletSleep = (container.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000
      t.ok(phases < gracefulDefault, `${file}: pre-stop + drain + teardown (${phases} ms) fit in graceful.timeout`)
      t.ok(kubeletSleep + gracefulDefault < grace, `${file}: kubelet sleep + graceful deadline (${kubeletSleep + gracefulDefault} ms) end before SIGKILL (${grace} ms)`)
      if (kubeletSleep > 0) {
        t.equal(container.env.find((e: { name: string }) => e.name === 'PRE_STOP_DELAY_MS')?.value, '0', `${file}: with the kubelet's sleep, the in-app delay is off`)
      }
      t.same(container.command.slice(0, 1), ['node'], `${file}: exec form, so SIGTERM reaches Node`)
      t.ok(container.livenessProbe.httpGet.path === '/livez' && container.readinessProbe.httpGet.path === '/readyz', `${file}: probes on the suite's paths`)
    }
  }
})
