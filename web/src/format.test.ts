import { describe, expect, it } from 'vitest'
import { ago, bytes, duration } from './format'

describe('format', () => {
  it('writes sizes in binary units', () => {
    expect(bytes(512)).toBe('512 B')
    expect(bytes(1536)).toBe('1.5 KiB')
    expect(bytes(300 * 1024 * 1024)).toBe('300 MiB')
    expect(bytes(undefined)).toBe('—')
  })
  it('says how long ago', () => {
    const now = Date.parse('2026-12-06T12:00:00Z')
    expect(ago('2026-12-06T09:00:00Z', now)).toBe('3 hours ago')
    expect(ago('2026-12-06T11:59:00Z', now)).toBe('1 minute ago')
    expect(ago(undefined, now)).toBe('never')
  })
  it('measures durations, up to now while running', () => {
    expect(duration('2026-12-06T12:00:00Z', '2026-12-06T12:01:05Z')).toBe('1m 5s')
    expect(duration('2026-12-06T10:00:00Z', undefined, Date.parse('2026-12-06T12:30:00Z'))).toBe('2h 30m')
  })
})
