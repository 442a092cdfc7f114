/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// The build lands in dist/app: dist/ itself holds the README Go's embed needs when nothing is
// built yet. `npx vite` proxies the API to the dev stack on its default address.
export default defineConfig({
  plugins: [vue()],
  build: { outDir: 'dist/app', emptyOutDir: true, sourcemap: false },
  server: { proxy: { '/v1': 'http://127.0.0.1:8080' } },
  test: { environment: 'jsdom', include: ['src/**/*.test.ts'] },
})
