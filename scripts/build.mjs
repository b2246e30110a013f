// `npm run build` (and `npm install`'s prepare step): compiles src/ to dist/ (tests left out) and copies
// the SQL migrations beside it, so `seigo` and `npm start` run plain JavaScript. Without TypeScript
// installed (a production install of the published package, which ships dist/) there is nothing to do.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
let tsc;
try {
  tsc = join(dirname(createRequire(join(root, 'package.json')).resolve('typescript/package.json')), 'bin', 'tsc');
} catch {
  console.log(existsSync(join(root, 'dist', 'cli', 'main.js')) ? 'seigo: using the shipped dist/' : 'seigo: typescript is not installed and there is no dist/; run npm install in a clone');
  process.exit(0);
}
if (!existsSync(join(root, 'src'))) process.exit(0);
const r = spawnSync(process.execPath, [tsc, '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
if (r.status !== 0) process.exit(r.status ?? 1);
const from = join(root, 'src', 'migrations');
const to = join(root, 'dist', 'migrations');
mkdirSync(to, { recursive: true });
for (const f of readdirSync(from)) if (f.endsWith('.sql')) cpSync(join(from, f), join(to, f));
// bin/seigo.js compares this stamp with src/: sources edited after it run through tsx instead.
writeFileSync(join(root, 'dist', '.built'), `${new Date().toISOString()}\n`);
