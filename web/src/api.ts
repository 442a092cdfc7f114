// The one way the dashboard talks to the API: same origin, the API key from sessionStorage in
// the Authorization header, errors turned into ApiError with the API's field errors.

export interface FieldError {
  field: string
  reason: string
}

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public fields: FieldError[] = [],
  ) {
    super(message)
  }
  /** The reason the API gave for field, if it named that field. */
  reason(field: string): string | undefined {
    return this.fields.find((f) => f.field === field)?.reason
  }
}

export interface Page<T> {
  items: T[]
  nextCursor?: string
}

const KEY = 'rm.apiKey'

export function storedKey(): string | null {
  return sessionStorage.getItem(KEY)
}
export function storeKey(key: string | null) {
  if (key) sessionStorage.setItem(KEY, key)
  else sessionStorage.removeItem(KEY)
}

/** Called when the API refuses the key (401), so the app can go back to sign-in. */
let onUnauthorized: () => void = () => {}
export function setUnauthorizedHandler(f: () => void) {
  onUnauthorized = f
}

export async function request<T>(method: string, path: string, body?: unknown, key = storedKey()): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (key) headers.Authorization = 'Bearer ' + key
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) })
  if (res.status === 204) return undefined as T
  const text = await res.text()
  let data: any = undefined
  try {
    data = text ? JSON.parse(text) : undefined
  } catch {
    data = undefined
  }
  if (!res.ok) {
    const e = data?.error
    if (res.status === 401) onUnauthorized()
    throw new ApiError(res.status, e?.code ?? 'http_' + res.status, e?.message ?? res.statusText ?? 'request failed', e?.fields ?? [])
  }
  return data as T
}

export const get = <T>(path: string) => request<T>('GET', path)
export const post = <T>(path: string, body?: unknown) => request<T>('POST', path, body ?? {})
export const put = <T>(path: string, body: unknown) => request<T>('PUT', path, body)
export const patch = <T>(path: string, body: unknown) => request<T>('PATCH', path, body)
export const del = <T>(path: string) => request<T>('DELETE', path)

/** query builds a query string from the parameters that are set. */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams()
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') q.set(k, String(v))
  const s = q.toString()
  return s ? '?' + s : ''
}

export function enc(s: string): string {
  return encodeURIComponent(s)
}
