import { onMounted, onUnmounted, ref, watch, type Ref, type WatchSource } from 'vue'
import { ApiError } from './api'

/**
 * usePoll loads data with load at once and again every `every` ms while the page is shown, so
 * the page keeps up without a reload. A change of any dependency reloads at once.
 */
export function usePoll<T>(load: () => Promise<T>, every = 5000, deps: WatchSource[] = []) {
  const data = ref<T | null>(null) as Ref<T | null>
  const error = ref<ApiError | Error | null>(null)
  const loading = ref(false)
  let timer: ReturnType<typeof setInterval> | undefined
  let seq = 0
  async function refresh() {
    const mine = ++seq
    loading.value = true
    try {
      const v = await load()
      if (mine === seq) {
        data.value = v
        error.value = null
      }
    } catch (e) {
      if (mine === seq) error.value = e as Error
    } finally {
      if (mine === seq) loading.value = false
    }
  }
  onMounted(() => {
    refresh()
    if (every > 0) timer = setInterval(() => document.visibilityState !== 'hidden' && refresh(), every)
  })
  onUnmounted(() => timer && clearInterval(timer))
  if (deps.length) watch(deps, refresh)
  return { data, error, loading, refresh }
}

/**
 * Cursor pagination: cursor is the page shown, history the cursors of the pages before it.
 */
export function useCursor() {
  const cursor = ref<string | undefined>(undefined)
  const history = ref<(string | undefined)[]>([])
  return {
    cursor,
    history,
    next(c: string | undefined) {
      if (!c) return
      history.value.push(cursor.value)
      cursor.value = c
    },
    prev() {
      cursor.value = history.value.pop()
    },
    reset() {
      cursor.value = undefined
      history.value = []
    },
  }
}
