// CLI failures in the API's shape: one RFC 9457 problem (type, title, status, code, detail) on stderr,
// so a script reads `code` from a failed command as it does from a failed request; never a stack trace.
import { SeigoError, problem, type Problem } from '../kernel/errors.ts';

/** The problem for anything a command threw: a SeigoError as it says, anything else as internal_error with its message. */
export function problemOf(e: unknown): Problem {
  if (e instanceof SeigoError) return problem(e.status, e.code, e.message, e.detail);
  const message = e instanceof Error ? e.message : String(e);
  return problem(500, 'internal_error', message);
}

/** Writes the problem to stderr: indented on a terminal, one line otherwise. */
export function printProblem(p: Problem, stream: NodeJS.WriteStream = process.stderr): void {
  stream.write(`${JSON.stringify(p, null, stream.isTTY ? 2 : 0)}\n`);
}
