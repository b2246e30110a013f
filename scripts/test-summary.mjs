#!/usr/bin/env node
// Sums vitest JSON reports (Jest-compatible format) over several test runs and prints, as its LAST
// line, exactly `tests: N passed, N failed`. Exits 1 if any run exited non-zero or any test failed.
//
// Usage: node scripts/test-summary.mjs <label>=<report.json>:<exit code> ...
//   e.g. node scripts/test-summary.mjs embedded=reports/embedded.json:0 pg15=reports/pg15.json:1
//
// A run whose report is missing or unreadable (the runner crashed before writing it, or never ran)
// counts as 1 failed test, and a line before the summary says so.
import { readFileSync } from 'node:fs';

const runs = process.argv.slice(2).map((arg) => {
  const m = /^([^=]+)=(.+):(-?\d+)$/.exec(arg);
  if (!m) {
    console.error(`test-summary: bad argument ${JSON.stringify(arg)} (want label=report.json:exitcode)`);
    process.exit(2);
  }
  return { label: m[1], file: m[2], code: Number(m[3]) };
});

let passed = 0;
let failed = 0;
let ok = runs.length > 0;
const lines = [];

for (const { label, file, code } of runs) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, 'utf8'));
    if (typeof report?.numPassedTests !== 'number' || typeof report?.numFailedTests !== 'number') {
      throw new Error('no numPassedTests/numFailedTests in it');
    }
  } catch (err) {
    const why = err?.code === 'ENOENT' ? 'no report' : `unreadable report (${String(err?.message ?? err).replace(/\s+/g, ' ').trim()})`;
    lines.push(`${label}: ${why} at ${file} (exit code ${code}): the run crashed or did not run; counting it as 1 failed`);
    failed += 1;
    ok = false;
    continue;
  }
  const p = report.numPassedTests;
  const f = report.numFailedTests;
  const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  const files = Array.isArray(report.testResults) ? report.testResults : [];
  const badFiles = files.filter((t) => t.status === 'failed').length;
  passed += p;
  failed += f;
  let line = `${label}: ${p} passed, ${f} failed, ${skipped} skipped of ${report.numTotalTests ?? p + f + skipped} tests (exit code ${code})`;
  if (badFiles > 0) line += `; ${badFiles} of ${files.length} test files failed`;
  lines.push(line);
  if (code !== 0 || f > 0 || report.success === false) {
    ok = false;
    if (f === 0) lines.push(`${label}: run failed (exit code ${code}) although no test failed: see the errors above (a test file that failed to load, an unhandled error, a setup/teardown failure)`);
  }
}

for (const l of lines) console.log(l);
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exitCode = ok ? 0 : 1;
