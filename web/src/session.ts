import { reactive, computed } from 'vue'
import { request, storeKey, storedKey } from './api'

export type Role = 'admin' | 'operator' | 'viewer'
export interface Me {
  tenantId: string
  keyId: string
  name: string
  role: Role
}

export const session = reactive<{ me: Me | null }>({ me: null })

export const canWrite = computed(() => session.me?.role === 'admin' || session.me?.role === 'operator')
export const isAdmin = computed(() => session.me?.role === 'admin')

/** signIn checks the key with GET /v1/me and keeps it in sessionStorage (never localStorage). */
export async function signIn(key: string): Promise<Me> {
  const me = await request<Me>('GET', '/v1/me', undefined, key.trim())
  storeKey(key.trim())
  session.me = me
  return me
}

/** restore signs in again with the key this tab kept, after a reload. */
export async function restore(): Promise<boolean> {
  const key = storedKey()
  if (!key) return false
  try {
    await signIn(key)
    return true
  } catch {
    storeKey(null)
    return false
  }
}

export function signOut() {
  storeKey(null)
  session.me = null
}
