import { ApiError, get } from './api'

export interface Health {
  repository: string
  stats?: { rawDataSize?: number; uncompressedSize?: number; fileCount?: number; snapshotsCount?: number; compressionRatio?: number; reportedAt?: string }
  lastCheck?: { at: string; ok: boolean; runId?: string; error?: string }
  locks?: { count: number; stale: number; checkedAt?: string }
  checkOverdue?: boolean
  checkOverdueAfterDays?: number
  history?: { date: string; rawDataSize?: number; fileCount?: number; snapshotsCount?: number; checkOk?: boolean }[]
}

/** health reads a repository's health, or null when this deployment reports none for it. */
export async function health(name: string): Promise<Health | null> {
  try {
    return await get<Health>(`/v1/repositories/${encodeURIComponent(name)}/health`)
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null
    throw e
  }
}
