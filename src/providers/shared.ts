// Small pieces every provider adapter needs: keeping the headers that matter, and reading a JSON
// body against the provider's schema with a message that names what is wrong.
import type { z } from 'zod';
import { err, ok, type Result } from '../kernel/errors.ts';

/** The named headers (lower-case) that are present, to store beside the raw body. */
export function keepHeaders(headers: Readonly<Record<string, string | undefined>>, names: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of names) {
    const v = headers[name];
    if (v !== undefined) out[name] = v;
  }
  return out;
}

/** One line naming every bad field: `data.amount Expected number; (root) Unrecognized key "x"`. */
export function zodIssues(e: z.ZodError): string {
  return e.issues.map((i) => `${i.path.join('.') || '(root)'} ${i.message}`).join('; ');
}

/** Parses a raw body as JSON and checks it against `schema`; `what` names the expected document. */
export function parseJsonBody<S extends z.ZodType>(body: Buffer, schema: S, what: string): Result<z.output<S>, string> {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return err('body is not valid JSON');
  }
  const r = schema.safeParse(json);
  return r.success ? ok(r.data) : err(`body is not ${what}: ${zodIssues(r.error)}`);
}
