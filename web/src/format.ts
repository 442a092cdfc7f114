export function bytes(n: number | undefined | null): string {
  if (n === undefined || n === null) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB']
  let i = 0
  let v = n
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return (i === 0 ? String(v) : v.toFixed(v < 10 ? 1 : 0)) + ' ' + units[i]
}

/** ago says how long before now t was: "3 minutes ago", "5 hours ago". */
export function ago(t: string | undefined | null, now = Date.now()): string {
  if (!t) return 'never'
  const s = Math.round((now - Date.parse(t)) / 1000)
  if (s < 0) return 'in ' + span(-s)
  if (s < 5) return 'just now'
  return span(s) + ' ago'
}

function span(s: number): string {
  const steps: [number, string][] = [
    [86400, 'day'],
    [3600, 'hour'],
    [60, 'minute'],
    [1, 'second'],
  ]
  for (const [n, name] of steps) {
    if (s >= n) {
      const v = Math.floor(s / n)
      return v + ' ' + name + (v === 1 ? '' : 's')
    }
  }
  return '0 seconds'
}

/** duration between two times, or from start until now while running. */
export function duration(start: string | undefined, end: string | undefined, now = Date.now()): string {
  if (!start) return '—'
  const s = Math.max(0, Math.round(((end ? Date.parse(end) : now) - Date.parse(start)) / 1000))
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (h) return `${h}h ${m}m`
  if (m) return `${m}m ${sec}s`
  return `${sec}s`
}

export function time(t: string | undefined | null): string {
  if (!t) return '—'
  return new Date(t).toLocaleString()
}

export function short(id: string | undefined): string {
  return id ? id.slice(-8) : '—'
}
