// Zengin dates are N(6) YYMMDD. The published layout says 和暦 (Japanese era year); some banks
// let the customer choose 西暦 (two-digit Gregorian year) instead, so the reader is told which.
// The era itself is not in the file: 'reiwa' reads YY as 令和 (2018 + YY) and refuses dates
// before 令和 began (2019-05-01); 平成 files (before May 2019) are not supported.

export type ZenginDateEra = 'reiwa' | 'western';

const REIWA_START = '2019-05-01';

const pad = (n: number, w: number) => String(n).padStart(w, '0');

/** YYMMDD → ISO date (YYYY-MM-DD), or undefined when it is no real date in that era. */
export function parseZenginDate(yymmdd: string, era: ZenginDateEra): string | undefined {
  if (!/^\d{6}$/.test(yymmdd)) return undefined;
  const yy = Number(yymmdd.slice(0, 2));
  const mm = Number(yymmdd.slice(2, 4));
  const dd = Number(yymmdd.slice(4, 6));
  if (era === 'reiwa' && yy === 0) return undefined;
  const year = era === 'reiwa' ? 2018 + yy : 2000 + yy;
  const d = new Date(Date.UTC(year, mm - 1, dd));
  if (d.getUTCFullYear() !== year || d.getUTCMonth() !== mm - 1 || d.getUTCDate() !== dd) return undefined;
  const iso = `${pad(year, 4)}-${pad(mm, 2)}-${pad(dd, 2)}`;
  if (era === 'reiwa' && iso < REIWA_START) return undefined;
  return iso;
}

/** ISO date → YYMMDD in that era; undefined when the date cannot be written in it. */
export function formatZenginDate(iso: string, era: ZenginDateEra): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso);
  if (!m) return undefined;
  const year = Number(m[1]);
  const yy = era === 'reiwa' ? year - 2018 : year - 2000;
  if (yy < 0 || yy > 99) return undefined;
  const out = `${pad(yy, 2)}${m[2]}${m[3]}`;
  return parseZenginDate(out, era) === iso ? out : undefined;
}
