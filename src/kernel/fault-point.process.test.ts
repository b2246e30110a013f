// The chaos harness's crash points: off unless SEIGO_FAULT_POINTS names them, then a real SIGKILL.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const MODULE = fileURLToPath(new URL('./fault-point.ts', import.meta.url));

function runPoint(env: Record<string, string>) {
  const script = `const { faultPoint } = await import(${JSON.stringify(MODULE)}); faultPoint('operations.after-call'); console.log('alive');`;
  return spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000,
  });
}

describe('faultPoint', () => {
  it('does nothing when no fault point is configured', () => {
    const r = runPoint({ SEIGO_FAULT_POINTS: '' });
    expect(r.signal).toBeNull();
    expect(r.stdout.trim()).toBe('alive');
  });

  it('does nothing at a point that is not named', () => {
    const r = runPoint({ SEIGO_FAULT_POINTS: 'inbox.after-claim=1' });
    expect(r.stdout.trim()).toBe('alive');
  });

  it('kills the process with SIGKILL at a named point with probability 1', () => {
    const r = runPoint({ SEIGO_FAULT_POINTS: 'inbox.after-claim=0.5, operations.after-call=1', SEIGO_FAULT_SEED: '7' });
    expect(r.signal).toBe('SIGKILL');
    expect(r.stdout).toBe('');
  });
});
