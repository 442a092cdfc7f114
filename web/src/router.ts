import { createRouter, createWebHistory, type RouteRecordRaw } from 'vue-router'
import { session, restore } from './session'
import { setUnauthorizedHandler } from './api'
import SignIn from './pages/SignIn.vue'
import Overview from './pages/Overview.vue'

// The overview and sign-in come with the first load; every other page loads when first opened.
const routes: RouteRecordRaw[] = [
  { path: '/sign-in', name: 'sign-in', component: SignIn, meta: { public: true, title: 'Sign in' } },
  { path: '/', name: 'overview', component: Overview, meta: { title: 'Overview' } },
  { path: '/agents', name: 'agents', component: () => import('./pages/Agents.vue'), meta: { title: 'Agents' } },
  { path: '/agents/:id', name: 'agent', component: () => import('./pages/AgentDetail.vue'), props: true, meta: { title: 'Agent' } },
  {
    path: '/agents/:id/snapshots/:snapshot',
    name: 'snapshot',
    component: () => import('./pages/SnapshotBrowse.vue'),
    props: true,
    meta: { title: 'Snapshot' },
  },
  { path: '/policies', name: 'policies', component: () => import('./pages/Policies.vue'), meta: { title: 'Policies' } },
  { path: '/policies/new', name: 'policy-new', component: () => import('./pages/PolicyEdit.vue'), meta: { title: 'New policy' } },
  { path: '/policies/:id', name: 'policy', component: () => import('./pages/PolicyEdit.vue'), props: true, meta: { title: 'Policy' } },
  { path: '/runs', name: 'runs', component: () => import('./pages/Runs.vue'), meta: { title: 'Runs' } },
  { path: '/runs/:id', name: 'run', component: () => import('./pages/RunDetail.vue'), props: true, meta: { title: 'Run' } },
  { path: '/repositories', name: 'repositories', component: () => import('./pages/Repositories.vue'), meta: { title: 'Repositories' } },
  {
    path: '/repositories/:name',
    name: 'repository',
    component: () => import('./pages/RepositoryDetail.vue'),
    props: true,
    meta: { title: 'Repository' },
  },
  { path: '/channels', name: 'channels', component: () => import('./pages/Channels.vue'), meta: { title: 'Notifications' } },
  { path: '/channels/:id', name: 'channel', component: () => import('./pages/ChannelDetail.vue'), props: true, meta: { title: 'Channel' } },
  { path: '/audit', name: 'audit', component: () => import('./pages/Audit.vue'), meta: { title: 'Audit log' } },
  { path: '/keys', name: 'keys', component: () => import('./pages/Keys.vue'), meta: { title: 'Keys and tokens' } },
  { path: '/:rest(.*)*', name: 'missing', component: () => import('./pages/NotFound.vue'), meta: { title: 'Not found' } },
]

export const router = createRouter({ history: createWebHistory(), routes })

let restored = false
router.beforeEach(async (to) => {
  if (!restored) {
    restored = true
    await restore()
  }
  if (!to.meta.public && !session.me) return { name: 'sign-in', query: to.fullPath !== '/' ? { next: to.fullPath } : {} }
  return true
})
router.afterEach((to) => {
  document.title = `${to.meta.title ?? 'restic-monitor'} · restic-monitor`
})

setUnauthorizedHandler(() => {
  session.me = null
  sessionStorage.removeItem('rm.apiKey')
  if (router.currentRoute.value.name !== 'sign-in') router.push({ name: 'sign-in' })
})
