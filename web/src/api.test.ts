import { afterEach, describe, expect, it, vi } from 'vitest'
import { ApiError, request, storeKey } from './api'

function answer(status: number, body: unknown) {
  return vi.fn(async () => new Response(body === undefined ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } }))
}

afterEach(() => {
  vi.unstubAllGlobals()
  sessionStorage.clear()
  localStorage.clear()
})

describe('request', () => {
  it('sends the key from sessionStorage and never keeps it in localStorage', async () => {
    const f = answer(200, { ok: true })
    vi.stubGlobal('fetch', f)
    storeKey('rm_key_secret')
    await request('GET', '/v1/overview')
    const [, init] = f.mock.calls[0] as unknown as [string, RequestInit]
    expect((init.headers as Record<string, string>).Authorization).toBe('Bearer rm_key_secret')
    expect(sessionStorage.getItem('rm.apiKey')).toBe('rm_key_secret')
    expect(localStorage.length).toBe(0)
  })
  it('turns the error body into an ApiError naming the fields', async () => {
    vi.stubGlobal(
      'fetch',
      answer(422, { error: { code: 'unprocessable', message: 'the request is not valid', fields: [{ field: 'schedule.cron', reason: 'not a valid cron expression' }] } }),
    )
    const e = (await request('POST', '/v1/policies', {}).catch((e) => e)) as ApiError
    expect(e).toBeInstanceOf(ApiError)
    expect(e.status).toBe(422)
    expect(e.reason('schedule.cron')).toBe('not a valid cron expression')
    expect(e.reason('name')).toBeUndefined()
  })
})
