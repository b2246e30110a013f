// Adds package-lock entries for rollup's platform packages that the lock lacks (npm ci refuses to run otherwise).
import { readFileSync, writeFileSync } from 'node:fs';
const file = 'package-lock.json';
const lock = JSON.parse(readFileSync(file, 'utf8'));
const rollup = lock.packages['node_modules/rollup'];
const cpus = { arm: 'arm', arm64: 'arm64', x64: 'x64', ia32: 'ia32', loong64: 'loong64', ppc64: 'ppc64', riscv64: 'riscv64', s390x: 's390x' };
let added = 0;
for (const [name, version] of Object.entries(rollup.optionalDependencies ?? {})) {
  const key = `node_modules/${name}`;
  if (lock.packages[key]) continue;
  const parts = name.replace('@rollup/rollup-', '').split('-'); // e.g. linux-arm-musleabihf, win32-x64-msvc
  const [os, cpu, abi] = parts;
  if (!cpus[cpu]) throw new Error(`cannot parse ${name}`);
  const entry = { version, cpu: [cpu], dev: rollup.dev ?? undefined };
  if (os === 'linux' && abi) entry.libc = [abi.startsWith('musl') ? 'musl' : 'glibc'];
  Object.assign(entry, { license: 'MIT', optional: true, os: [os] });
  lock.packages[key] = JSON.parse(JSON.stringify(entry));
  added++;
}
lock.packages = Object.fromEntries(Object.entries(lock.packages).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : a > b ? 1 : 0)));
writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`added ${added} entries`);
