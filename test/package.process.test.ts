// The published package holds what runs and nothing else: compiled JavaScript, its migrations, the
// built console and the docs; no sources, tests, fixtures or benchmarks. Its `seigo` runs from dist/
// alone, with no TypeScript loader.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
let files: string[] = [];
let unpacked = '';

function run(cmd: string, args: string[], cwd = root) {
  return spawnSync(cmd, args, { cwd, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
}

beforeAll(() => {
  const build = run(process.execPath, ['scripts/build.mjs']);
  expect(build.status, build.stderr + build.stdout).toBe(0);
  const pack = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
  expect(pack.status, pack.stderr).toBe(0);
  files = (JSON.parse(pack.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  // The package's files as npm would install them, next to this clone's node_modules (the runtime
  // dependencies; tsx is there too, and must not be needed).
  unpacked = mkdtempSync(join(tmpdir(), 'seigo-pkg-'));
  for (const f of files) {
    mkdirSync(dirname(join(unpacked, f)), { recursive: true });
    cpSync(join(root, f), join(unpacked, f));
  }
  cpSync(join(root, 'package.json'), join(unpacked, 'package.json'));
  symlinkSync(join(root, 'node_modules'), join(unpacked, 'node_modules'));
}, 300_000);

afterAll(() => {
  if (unpacked) rmSync(unpacked, { recursive: true, force: true });
});

describe('the published package', () => {
  it('ships compiled code, migrations, the console and docs, and no sources, tests or benchmarks', () => {
    expect(files).toContain('bin/seigo.js');
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('dist/engine/engine.js');
    const migrations = readdirSync(join(root, 'src', 'migrations')).filter((f) => f.endsWith('.sql'));
    for (const m of migrations) expect(files).toContain(`dist/migrations/${m}`);
    expect(files).toContain('console/dist/index.html');
    expect(files).toContain('README.md');
    const unwanted = files.filter((f) => f.startsWith('src/') || f.startsWith('test/') || f.startsWith('dist/bench/')
      || f.includes('.test.') || f.includes('/fixtures/') || f.startsWith('scripts/') || f.endsWith('.tsbuildinfo'));
    expect(unwanted).toEqual([]);
  });

  it('runs its command from dist/ alone', () => {
    const version = run(process.execPath, [join(unpacked, 'bin', 'seigo.js'), '--version'], unpacked);
    expect(version.status, version.stderr).toBe(0);
    expect(version.stdout.trim()).toBe((JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version);
    const help = run(process.execPath, [join(unpacked, 'bin', 'seigo.js'), 'start', '--help'], unpacked);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('--port');
  });

  it('says benchmarks are not installed, as a problem and without a stack', () => {
    const r = run(process.execPath, [join(unpacked, 'bin', 'seigo.js'), 'bench', 'reconcile', '--rows', '10'], unpacked);
    expect(r.status).toBe(1);
    expect(r.stderr + r.stdout).toContain('bench_not_installed');
    expect(r.stderr + r.stdout).not.toMatch(/\n\s+at /);
  });
});
