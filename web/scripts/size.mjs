// Prints the gzipped size of the JavaScript the built dashboard loads first (the entry script
// and what index.html preloads) and of all its JavaScript; fails above the 200 KB budget.
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

const dir = new URL('../dist/app/', import.meta.url).pathname
const budget = 200 * 1024
const html = readFileSync(join(dir, 'index.html'), 'utf8')
const first = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1])
const gz = (p) => gzipSync(readFileSync(join(dir, p)), { level: 9 }).length
const kb = (n) => (n / 1024).toFixed(1) + ' KB'
let firstLoad = 0
for (const f of first) {
  const n = gz(f)
  firstLoad += n
  console.log(`first load  ${kb(n).padStart(9)}  ${f}`)
}
const all = readdirSync(join(dir, 'assets')).filter((f) => f.endsWith('.js'))
const total = all.reduce((s, f) => s + gz('assets/' + f), 0)
console.log(`dashboard first-load JavaScript: ${kb(firstLoad)} gzipped (budget ${kb(budget)}); all ${all.length} scripts: ${kb(total)} gzipped`)
if (firstLoad > budget) {
  console.error('over budget')
  process.exit(1)
}
