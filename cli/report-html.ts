// `verify --report FILE.html`: one self-contained page (no script, no network) with the
// verdict, the timeline of requests per 100 ms by outcome (the signal, the readiness flip, the
// listener close and the exit marked on it), the counts and the findings.
import { exitText, modeText } from './verdict.js'
import type { VerifyResult } from './verify.js'

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

const WIDTH = 960
const HEIGHT = 240
const TOP = 30
const BOTTOM = 20

/** The timeline as an SVG picture: stacked bars (answered, refused, lost) and the marks. */
export function timelineSvg (result: VerifyResult): string {
  const { slots } = result.timeline
  const slotMs = 100
  const spanMs = Math.max(slots.length * slotMs, 1)
  const peak = Math.max(1, ...slots.map((slot) => slot.ok + slot.refused + slot.lost))
  const x = (ms: number): number => (ms / spanMs) * WIDTH
  const h = (n: number): number => (n / peak) * (HEIGHT - TOP - BOTTOM)
  const barWidth = Math.max(1, x(slotMs) - 1)
  const bars: string[] = []
  for (const slot of slots) {
    let y = HEIGHT - BOTTOM
    for (const [count, cls] of [[slot.ok, 'ok'], [slot.refused, 'refused'], [slot.lost, 'lost']] as const) {
      if (count === 0) continue
      y -= h(count)
      bars.push(`<rect class="${cls}" x="${x(slot.atMs).toFixed(1)}" y="${y.toFixed(1)}" width="${barWidth.toFixed(1)}" height="${h(count).toFixed(1)}"><title>${slot.atMs} ms: ${count} ${cls}</title></rect>`)
    }
  }
  const marks: string[] = []
  const { signalMs, readinessFlipMs, listenerClosedMs, exitMs } = result.timeline
  for (const [ms, label] of [[signalMs, result.mode === 'reload' ? 'reload signal' : 'signal'], [readinessFlipMs, 'readiness 503'], [listenerClosedMs, 'listener closed'], [exitMs, 'exit']] as const) {
    if (ms === undefined) continue
    const at = x(ms).toFixed(1)
    marks.push(`<line class="mark" x1="${at}" x2="${at}" y1="${TOP - 12}" y2="${HEIGHT - BOTTOM}"/><text class="label" x="${at}" y="${TOP - 16}">${label} (${ms} ms)</text>`)
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="requests per 100 ms by outcome">
<line class="axis" x1="0" x2="${WIDTH}" y1="${HEIGHT - BOTTOM}" y2="${HEIGHT - BOTTOM}"/>
${bars.join('\n')}
${marks.join('\n')}
<text class="label" x="0" y="${HEIGHT - 4}">0 ms</text><text class="label end" x="${WIDTH}" y="${HEIGHT - 4}">${spanMs} ms</text>
</svg>`
}

/** The whole page. */
export function renderReport (result: VerifyResult): string {
  const r = result.requests
  const rows: Array<[string, string | number]> = [
    ['command', result.command],
    ['requests sent', r.sent],
    ['answered 2xx', r.answered],
    ['lost (reset, hung up, timed out, 5xx)', r.lost],
    ['resets on reused keep-alive sockets', r.resetsOnReused],
    ['answered 503', r.status503],
    ['refused (nothing listening)', r.refused],
    ['in flight at the signal', result.inFlightAtSignal],
    ['readiness failed after the signal', result.readiness.flipMs === undefined ? 'never' : `${result.readiness.flipMs} ms`],
    ['liveness failures', result.liveness.failures ?? 'not probed'],
    ['idle keep-alive sockets open at the exit', `${result.idleSockets.openAtExit} of ${result.idleSockets.opened}`],
    ['exit', exitText(result.exit)],
    ['signal to exit', result.exit.afterSignalMs === undefined ? '-' : `${result.exit.afterSignalMs} ms`]
  ]
  const findings = result.findings.map((finding) => `<li class="${finding.severity}"><strong>${escape(finding.severity)}</strong> ${escape(finding.message)}<br><span class="fix">fix: ${escape(finding.fix)}</span></li>`)
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>fastify-lifecycle verify: ${result.verdict}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222 }
h1 .pass { color: #1a7f37 } h1 .fail { color: #c62828 }
rect.ok { fill: #4caf50 } rect.refused { fill: #9e9e9e } rect.lost { fill: #e53935 }
line.mark { stroke: #1565c0; stroke-dasharray: 4 3 } line.axis { stroke: #999 }
text.label { font-size: 11px; fill: #1565c0 } text.end { text-anchor: end }
table { border-collapse: collapse } td { padding: 2px 12px 2px 0 }
li.fail strong { color: #c62828 } li.warn strong { color: #ef6c00 } li.info strong { color: #1565c0 }
.fix { color: #555 } .legend span { display: inline-block; width: 10px; height: 10px; margin: 0 4px 0 12px }
</style></head><body>
<h1>verify: <span class="${result.verdict}">${result.verdict}</span></h1>
<p>Verified: ${escape(modeText(result.mode))} under load of <code>${escape(result.command)}</code> at ${escape(result.origin)}.</p>
<h2>Requests per 100 ms</h2>
<p class="legend"><span style="background:#4caf50"></span>answered <span style="background:#9e9e9e"></span>refused <span style="background:#e53935"></span>lost</p>
${timelineSvg(result)}
<h2>Findings</h2>
${findings.length === 0 ? '<p>None.</p>' : `<ul>${findings.join('\n')}</ul>`}
<h2>Counts</h2>
<table>${rows.map(([label, value]) => `<tr><td>${escape(label)}</td><td>${escape(String(value))}</td></tr>`).join('')}</table>
</body></html>
`
}
