// Alert messages in Slack's incoming-webhook format: `text` for the notification, `blocks` with one
// section per rule listing its subjects (at most MAX_SUBJECTS each, then a count of the rest).
import type { Finding } from './rules.ts';

export const MAX_SUBJECTS = 15;
export type AlertKind = 'firing' | 'still_firing' | 'resolved';

const HEADINGS: Record<AlertKind, string> = {
  firing: ':rotating_light: seigo alert firing',
  still_firing: ':warning: seigo alert still firing',
  resolved: ':white_check_mark: seigo alert resolved',
};

/** One Slack message for every finding of one kind in one evaluation. */
export function slackAlertMessage(kind: AlertKind, findings: readonly Finding[], now: Date): { text: string; blocks: unknown[] } {
  const byRule = new Map<string, Finding[]>();
  for (const f of findings) byRule.set(f.rule, [...(byRule.get(f.rule) ?? []), f]);
  const rules = [...byRule.keys()];
  const text = `${HEADINGS[kind]}: ${rules.map((r) => `${r} (${byRule.get(r)!.length})`).join(', ')}`;
  const sections = rules.map((rule) => {
    const list = byRule.get(rule)!;
    const lines = list.slice(0, MAX_SUBJECTS).map((f) => `• \`${f.subject}\`: ${f.summary}`);
    if (list.length > MAX_SUBJECTS) lines.push(`…and ${list.length - MAX_SUBJECTS} more`);
    return { type: 'section', text: { type: 'mrkdwn', text: `*${rule}*\n${lines.join('\n')}` } };
  });
  return {
    text,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: HEADINGS[kind].replace(/^:[a-z_]+: /, '') } },
      ...sections,
      { type: 'context', elements: [{ type: 'mrkdwn', text: `evaluated ${now.toISOString()}` }] },
    ],
  };
}
