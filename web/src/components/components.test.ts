import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { defineComponent, h } from 'vue'
import FormField from './FormField.vue'
import SizeChart from './SizeChart.vue'
import SchedulePreview from './SchedulePreview.vue'
import SecretBox from './SecretBox.vue'

afterEach(() => {
  vi.unstubAllGlobals()
  vi.useRealTimers()
})

describe('FormField', () => {
  it('labels its control and shows the reason next to it', () => {
    const w = mount(FormField, {
      props: { label: 'Cron', error: 'not a valid cron expression' },
      slots: { default: (p: { id: string; describedBy?: string }) => h('input', { id: p.id, 'aria-describedby': p.describedBy }) },
    })
    const input = w.get('input')
    const label = w.get('label')
    expect(label.attributes('for')).toBe(input.attributes('id'))
    const err = w.get('.field-error')
    expect(err.text()).toBe('not a valid cron expression')
    expect(input.attributes('aria-describedby')).toContain(err.attributes('id'))
  })
})

describe('SizeChart', () => {
  it('draws one point a day and says what it shows', () => {
    const w = mount(SizeChart, {
      props: {
        title: 'Size of demo',
        points: [
          { date: '2026-12-04', rawDataSize: 1024 },
          { date: '2026-12-05' },
          { date: '2026-12-06', rawDataSize: 4096 },
        ],
      },
    })
    expect(w.findAll('circle')).toHaveLength(2)
    expect(w.get('svg').attributes('aria-label')).toContain('from 1.0 KiB on 2026-12-04 to 4.0 KiB on 2026-12-06')
    expect(w.get('path.line').attributes('d')).toMatch(/^M[\d.]+ [\d.]+ L[\d.]+ [\d.]+$/)
  })
  it('copes with no history', () => {
    const w = mount(SizeChart, { props: { title: 'Size', points: [] } })
    expect(w.text()).toContain('no size recorded yet')
    expect(w.findAll('circle')).toHaveLength(0)
  })
})

describe('SchedulePreview', () => {
  it('shows the next runs, and the reason when the API refuses the expression', async () => {
    vi.useFakeTimers()
    const f = vi.fn(async (url: string) => {
      if (url.includes('cron=bad'))
        return new Response(JSON.stringify({ error: { code: 'invalid_request', message: 'invalid cron', fields: [{ field: 'cron', reason: 'expected 5 fields' }] } }), { status: 400 })
      return new Response(JSON.stringify({ timezone: 'Europe/Berlin', times: [], localTimes: ['2026-12-07T02:15:00+01:00', '2026-12-08T02:15:00+01:00'] }), { status: 200 })
    })
    vi.stubGlobal('fetch', f)
    const w = mount(SchedulePreview, { props: { cron: '15 2 * * *', timezone: 'Europe/Berlin' } })
    await vi.advanceTimersByTimeAsync(400)
    await flushPromises()
    expect(f.mock.calls[0][0]).toBe('/v1/schedule-preview?cron=15+2+*+*+*&timezone=Europe%2FBerlin&count=5')
    expect(w.findAll('li').map((l) => l.text())).toEqual(['2026-12-07 02:15 (+01:00)', '2026-12-08 02:15 (+01:00)'])
    await w.setProps({ cron: 'bad' })
    await vi.advanceTimersByTimeAsync(400)
    await flushPromises()
    expect(w.text()).toContain('cron: expected 5 fields')
    expect(w.findAll('li')).toHaveLength(0)
  })
})

describe('SecretBox', () => {
  it('copies the secret and the enroll command', async () => {
    const writeText = vi.fn(async () => {})
    vi.stubGlobal('navigator', { clipboard: { writeText } })
    const w = mount(SecretBox, { props: { title: 'Enrollment token', secret: 'rme_x_y', command: "RM_ENROLL_TOKEN='rme_x_y' restic-monitor-agent enroll" } })
    await w.get('button').trigger('click')
    expect(writeText).toHaveBeenCalledWith('rme_x_y')
    expect(w.get('[data-testid=command]').text()).toContain('restic-monitor-agent enroll')
  })
})

// Role-aware pages: a viewer sees no write controls.
describe('roles', () => {
  it('hides write controls from viewers', async () => {
    const { session } = await import('../session')
    const Policies = (await import('../pages/Policies.vue')).default
    vi.stubGlobal('fetch', vi.fn(async () => new Response(JSON.stringify({ items: [] }), { status: 200 })))
    const Link = defineComponent({ props: ['to'], setup: (p, { slots }) => () => h('a', { href: String(p.to) }, slots.default?.()) })
    session.me = { tenantId: 't', keyId: 'k', name: 'v', role: 'viewer' }
    let w = mount(Policies, { global: { stubs: { RouterLink: Link } } })
    await flushPromises()
    expect(w.find('[data-testid=new-policy]').exists()).toBe(false)
    w.unmount()
    session.me = { tenantId: 't', keyId: 'k', name: 'o', role: 'operator' }
    w = mount(Policies, { global: { stubs: { RouterLink: Link } } })
    await flushPromises()
    expect(w.find('[data-testid=new-policy]').exists()).toBe(true)
    w.unmount()
  })
})
