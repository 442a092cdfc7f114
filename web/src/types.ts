export interface Disk {
  mount: string
  freeBytes: number
  totalBytes: number
}
export interface Agent {
  id: string
  hostname: string
  os: string
  arch: string
  agentVersion: string
  resticVersion: string
  labels?: Record<string, string>
  status: string
  lastSeenAt?: string
  disks?: Disk[]
  limits: { maxConcurrentTasks: number; uploadKbps?: number; downloadKbps?: number; cpuQuotaPercent?: number }
  backoffUntil?: string
  backoffReason?: string
  lastError?: string
  version: number
}
export interface Schedule {
  cron?: string
  interval?: string
  timezone?: string
  spread?: string
}
export interface Policy {
  id: string
  name: string
  description?: string
  enabled: boolean
  repository: string
  paths: string[]
  excludes?: string[]
  tags?: string[]
  schedule: Schedule
  retention: Record<string, unknown>
  version: number
  [k: string]: unknown
}
export interface Summary {
  snapshotId?: string
  filesNew: number
  filesChanged: number
  dataAdded: number
  totalFilesProcessed: number
  totalBytesProcessed: number
  durationSeconds: number
}
export interface Run {
  id: string
  agentId: string
  taskId: string
  policyId?: string
  type: string
  attempt: number
  status: string
  startedAt: string
  finishedAt?: string
  progress?: { percentDone: number; bytesDone?: number; totalBytes?: number; filesDone?: number; totalFiles?: number }
  summary?: Summary
  error?: string
  logLines: number
  restoreTarget?: string
}
export interface Snapshot {
  id: string
  shortId?: string
  repository: string
  time: string
  hostname: string
  paths: string[] | null
  tags?: string[]
  policyId?: string
  sizeBytes?: number
}
export interface Task {
  id: string
  agentId: string
  type: string
  status: string
  runId?: string
  error?: string
}
