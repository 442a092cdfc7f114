import { afterEach, describe, expect, it, vi } from 'vitest'
import { flushPromises, mount } from '@vue/test-utils'
import { defineComponent, h } from 'vue'
import RepositoryDetail from './RepositoryDetail.vue'
import Audit from './Audit.vue'
import { session } from '../session'

const Link = defineComponent({ props: ['to'], setup: (p, { slots }) => () => h('a', { href: String(p.to) }, slots.default?.()) })
const stubs = { global: { stubs: { RouterLink: Link } } }

function api(routes: Record<string, [number, unknown]>) {
  return vi.fn(async (url: string) => {
    const path = url.split('?')[0]
    const [status, body] = routes[path] ?? [404, { error: { code: 'not_found', message: 'no such route' } }]
    return new Response(JSON.stringify(body), { status })
  })
}

afterEach(() => vi.unstubAllGlobals())

describe('RepositoryDetail', () => {
  const repo: [number, unknown] = [200, { name: 'demo', backend: 'local', location: '/srv/restic' }]
  it('shows the health the API reports, with the size chart', async () => {
    vi.stubGlobal(
      'fetch',
      api({
        '/v1/repositories/demo': repo,
        '/v1/repositories/demo/health': [
          200,
          {
            repository: 'demo',
            stats: { rawDataSize: 2 * 1024 * 1024, uncompressedSize: 4 * 1024 * 1024, fileCount: 10, snapshotsCount: 3, compressionRatio: 2, reportedAt: '2026-12-06T01:00:00Z' },
            lastCheck: { at: '2026-12-05T03:00:00Z', ok: false, runId: '01J0000000000000000000000R', error: 'pack 1a2b is damaged' },
            locks: { count: 2, stale: 1, checkedAt: '2026-12-06T01:00:00Z' },
            checkOverdue: true,
            checkOverdueAfterDays: 7,
            history: [
              { date: '2026-12-05', rawDataSize: 1024 * 1024, fileCount: 8, snapshotsCount: 2 },
              { date: '2026-12-06', rawDataSize: 2 * 1024 * 1024, fileCount: 10, snapshotsCount: 3, checkOk: false },
            ],
          },
        ],
      }),
    )
    const w = mount(RepositoryDetail, { props: { name: 'demo' }, ...stubs })
    await flushPromises()
    const text = w.get('[data-testid=health]').text()
    expect(text).toContain('2.0 MiB')
    expect(text).toContain('ratio 2.00')
    expect(text).toContain('failed')
    expect(text).toContain('pack 1a2b is damaged')
    expect(text).toContain('no successful check for 7 days')
    expect(text).toContain('2, 1 stale')
    expect(w.findAll('circle')).toHaveLength(2)
    w.unmount()
  })
  it('says nothing was reported when the API has no health for the repository', async () => {
    vi.stubGlobal('fetch', api({ '/v1/repositories/demo': repo }))
    const w = mount(RepositoryDetail, { props: { name: 'demo' }, ...stubs })
    await flushPromises()
    expect(w.find('[data-testid=no-health]').exists()).toBe(true)
    expect(w.find('[role=alert]').exists()).toBe(false)
    w.unmount()
  })
})

describe('Audit', () => {
  it('lists who changed what, with redacted secrets as the API sends them', async () => {
    session.me = { tenantId: 't', keyId: 'k', name: 'ops', role: 'operator' }
    vi.stubGlobal(
      'fetch',
      api({
        '/v1/audit': [
          200,
          {
            items: [
              {
                id: '01J0000000000000000000000A',
                time: '2026-12-06T01:02:03Z',
                actor: { type: 'apiKey', id: '01J0000000000000000000000K', name: 'ops-key' },
                action: 'PATCH /v1/policies/{policyId}',
                resource: { type: 'policy', id: '01J0000000000000000000000P' },
                changes: [
                  { field: 'schedule.cron', from: '0 2 * * *', to: '15 2 * * *' },
                  { field: 'slackUrl', to: '[redacted]' },
                ],
                requestId: 'r1',
                sourceIp: '203.0.113.7',
              },
            ],
            nextCursor: 'c2',
          },
        ],
      }),
    )
    const w = mount(Audit, stubs)
    await flushPromises()
    const row = w.get('[data-testid=audit-row]').text()
    expect(row).toContain('ops-key')
    expect(row).toContain('PATCH /v1/policies/{policyId}')
    expect(row).toContain('policy/01J0000000000000000000000P')
    expect(row).toContain('"0 2 * * *" → "15 2 * * *"')
    expect(row).toContain('— → "[redacted]"')
    expect(w.get('nav.pager button:last-child').attributes('disabled')).toBeUndefined()
    w.unmount()
  })
  it('tells a viewer the audit log is not for their role', async () => {
    vi.stubGlobal('fetch', api({ '/v1/audit': [403, { error: { code: 'forbidden', message: 'not allowed for this credential' } }] }))
    const w = mount(Audit, stubs)
    await flushPromises()
    expect(w.text()).toContain('Only admins and operators read the audit log.')
    w.unmount()
  })
})
