import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { defineComponent, h } from 'vue'
import RunDetail from './RunDetail.vue'

const Link = defineComponent({ props: ['to'], setup: (p, { slots }) => () => h('a', { href: String(p.to) }, slots.default?.()) })

afterEach(() => {
  vi.unstubAllGlobals()
  vi.useRealTimers()
})

describe('RunDetail', () => {
  it('follows the log while the run runs, each line once, and stops when it ended', async () => {
    vi.useFakeTimers()
    const chunks: { seq: number; lines: string[] }[] = []
    const add = (n: number) => {
      for (let i = 0; i < n; i++) chunks.push({ seq: chunks.length, lines: [`line ${chunks.length}`] })
    }
    let status = 'running'
    const logCalls: string[] = []
    vi.stubGlobal(
      'fetch',
      vi.fn(async (url: string) => {
        const u = new URL(url, 'http://x')
        if (u.pathname.endsWith('/logs')) {
          logCalls.push(u.search)
          const from = Number(u.searchParams.get('cursor') ?? 0)
          const items = chunks.slice(from, from + 10)
          const body: Record<string, unknown> = { items }
          if (from + 10 < chunks.length) body.nextCursor = String(from + 10)
          return new Response(JSON.stringify(body), { status: 200 })
        }
        return new Response(
          JSON.stringify({ id: 'R1', agentId: 'A1', taskId: 'T1', type: 'backup', attempt: 1, status, startedAt: '2026-12-06T01:00:00Z', logLines: chunks.length }),
          { status: 200 },
        )
      }),
    )
    add(12)
    const w = mount(RunDetail, { props: { id: 'R1' }, global: { stubs: { RouterLink: Link } } })
    await flushPromises()
    const log = () => w.get('[data-testid=log]').text().split('\n')
    expect(log()).toEqual(Array.from({ length: 12 }, (_, i) => `line ${i}`))
    expect(w.text()).toContain('live')

    add(3)
    await vi.advanceTimersByTimeAsync(2000)
    await flushPromises()
    expect(log()).toEqual(Array.from({ length: 15 }, (_, i) => `line ${i}`))

    add(1)
    status = 'succeeded'
    await vi.advanceTimersByTimeAsync(2000)
    await flushPromises()
    expect(log()).toHaveLength(16)
    expect(w.text()).not.toContain('live')
    const calls = logCalls.length
    await vi.advanceTimersByTimeAsync(4000)
    await flushPromises()
    expect(logCalls.length).toBe(calls)
    w.unmount()
  })
})
