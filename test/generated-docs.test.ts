// Docs generated from the code: the configuration reference from the zod schema (`npm run docs:config`)
// and the state diagrams from the transition tables (`npm run docs:states`). A change to either source
// without regenerating fails here.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CONFIG_REFERENCE_FILE, docComments, renderConfigReference } from '../scripts/config-reference.ts';
import { STATE_MACHINES_FILE, renderStateMachines } from '../scripts/state-machines.ts';
import { OPERATION_TRANSITIONS } from '../src/operations/operations.ts';

describe('docs/configuration.md', () => {
  it('is what the schema generates', () => {
    expect(readFileSync(CONFIG_REFERENCE_FILE, 'utf8')).toBe(renderConfigReference());
  });

  it('names every key a parsed configuration has, with its default', () => {
    const text = renderConfigReference();
    for (const key of ['port', 'intake.retrySchedule', 'worker.leaseMs', 'deposits.refundFee.payer', 'reconcile.deliveryDeadlineMs']) {
      expect(text).toContain(`| \`${key}\``);
    }
    expect(text).toMatch(/\| `worker\.leaseMs` \| duration \| `30000` \|/);
  });

  it('takes each key\'s meaning from the doc comment above it, a union member\'s by its discriminator', () => {
    const comments = docComments([
      'const a = z.object({',
      '  /** The port. */',
      '  port: z.number(),',
      '  inner: z.object({',
      '    /** Deep. */',
      '    deep: z.string(),',
      '  }),',
      '});',
      'const b = z.discriminatedUnion("kind", [z.object({',
      '  kind: z.literal("x"),',
      '  /** Only x. */',
      '  only: z.string(),',
      '})]);',
    ].join('\n'));
    expect(Object.fromEntries(comments)).toEqual({ 'a.port': 'The port.', 'a.inner.deep': 'Deep.', 'b.x.only': 'Only x.' });
  });
});

describe('docs/state-machines.md', () => {
  it('is what the transition tables draw', () => {
    expect(readFileSync(STATE_MACHINES_FILE, 'utf8')).toBe(renderStateMachines());
  });

  it('draws every allowed transition and marks final states', () => {
    const text = renderStateMachines();
    for (const [from, tos] of Object.entries(OPERATION_TRANSITIONS)) {
      for (const to of tos) expect(text).toContain(`    ${from} --> ${to}\n`);
      if (tos.length === 0) expect(text).toContain(`    ${from} --> [*]\n`);
    }
  });
});
