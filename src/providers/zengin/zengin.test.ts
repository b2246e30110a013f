import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { propertyParams } from '../../../test/helpers/property.ts';
import { decodeHalfWidth, isHalfWidthByte } from './charset.ts';
import { DATA, END, HEADER, TRAILER, type FieldSpec } from './layout.ts';
import {
  formatTransferNotice,
  parseTransferNotice,
  type TransferNoticeFile,
  type TransferNoticeFileInput,
  type TransferNoticeHeaderInput,
  type TransferNoticeInput,
  type ZenginParseError,
} from './transfer-notice.ts';

// ---- a fixture written by hand, independent of formatTransferNotice -------------------------

/** Test-only encoder: half-width katakana U+FF61–U+FF9F → 0xA1–0xDF, ASCII as is. */
const sjis = (s: string) => Buffer.from([...s].map((c) => (c.codePointAt(0)! >= 0xff61 ? c.codePointAt(0)! - 0xff61 + 0xa1 : c.codePointAt(0)!)));
const padC = (s: string, n: number) => s + ' '.repeat(n - [...s].length);
const record = (...parts: string[]) => {
  const s = parts.join('');
  expect([...s].length).toBe(200);
  return s;
};

const HEADER_REC = record('1', '01', '0', '070402', '070401', '070402', '0005', padC('ﾐﾂﾋﾞｼUFJ', 15), '123', padC('ﾄｳｷﾖｳ', 15), '1', '1234567', padC('ｶ)ｾｲｺﾞ', 40), ' '.repeat(93));
const DATA_1 = record('2', '000123', '070401', '070401', '0000015000', '0000000000', ' '.repeat(10), padC('ﾔﾏﾀﾞ ﾀﾛｳ', 48), padC('ﾐｽﾞﾎ', 15), padC('ｼﾌﾞﾔ', 15), ' ', ' '.repeat(20), ' '.repeat(52));
const DATA_2 = record('2', '000124', '070402', '070402', '0000200000', '0000050000', '0000001234', padC('ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ', 48), padC('ﾕｳﾁﾖ', 15), padC('ｾﾞﾛｲﾁｷﾞ', 15), '0', padC('INV-2025-001', 20), ' '.repeat(52));
const TRAILER_REC = record('8', '000002', '000000215000', '000000', '000000000000', ' '.repeat(163));
const END_REC = record('9', ' '.repeat(199));
const LINES = [HEADER_REC, DATA_1, DATA_2, TRAILER_REC, END_REC];
const file = (lines: string[], sep = '\r\n') => sjis(lines.map((l) => l + sep).join(''));

const parseOk = (buf: Uint8Array, opts?: Parameters<typeof parseTransferNotice>[1]): TransferNoticeFile => {
  const r = parseTransferNotice(buf, opts);
  if (!r.ok) throw new Error(`expected ok, got ${JSON.stringify(r.error)}`);
  return r.value;
};
const parseErr = (buf: Uint8Array, opts?: Parameters<typeof parseTransferNotice>[1]): ZenginParseError => {
  const r = parseTransferNotice(buf, opts);
  if (r.ok) throw new Error('expected an error, got a parsed file');
  return r.error;
};
const withField = (line: string, f: FieldSpec, value: string) => {
  const cs = [...line];
  cs.splice(f.offset, f.length, ...[...value.padEnd(f.length, ' ')].slice(0, f.length));
  return cs.join('');
};

describe('parseTransferNotice: a hand-written file', () => {
  it('reads header, transfers and trailer with typed fields', () => {
    const parsed = parseOk(file(LINES));
    expect(parsed.groups).toHaveLength(1);
    const g = parsed.groups[0]!;
    expect(g.header).toEqual({
      line: 1,
      createdOn: '2025-04-02',
      accountingFrom: '2025-04-01',
      accountingTo: '2025-04-02',
      bankCode: '0005',
      bankName: 'ﾐﾂﾋﾞｼUFJ',
      branchCode: '123',
      branchName: 'ﾄｳｷﾖｳ',
      depositType: '1',
      accountNumber: '1234567',
      accountName: 'ｶ)ｾｲｺﾞ',
    });
    expect(g.trailer).toEqual({ line: 4, count: 2, total: 215000n, cancelCount: 0, cancelTotal: 0n });
    expect(parsed.transfers).toEqual(g.transfers);
    const [a, b] = parsed.transfers;
    expect(a).toEqual({
      externalId: 'zengin:0005-123-1-1234567:2025-04-01:000123',
      line: 2,
      account: { bankCode: '0005', branchCode: '123', depositType: '1', accountNumber: '1234567' },
      inquiryNumber: '000123',
      transactionDate: '2025-04-01',
      valueDate: '2025-04-01',
      amount: 15000n,
      otherBankChequeAmount: 0n,
      payerCode: null,
      payerName: 'ﾔﾏﾀﾞ ﾀﾛｳ',
      remittingBankName: 'ﾐｽﾞﾎ',
      remittingBranchName: 'ｼﾌﾞﾔ',
      cancelled: false,
      ediInfo: '',
    });
    expect(b).toMatchObject({ line: 3, amount: 200000n, otherBankChequeAmount: 50000n, payerCode: '0000001234', payerName: 'ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ', ediInfo: 'INV-2025-001' });
  });

  it('reads CRLF, LF and unseparated files alike, with or without a final newline or DOS EOF', () => {
    const expected = parseOk(file(LINES));
    expect(parseOk(file(LINES, '\n'))).toEqual(expected);
    expect(parseOk(file(LINES, ''))).toEqual(expected);
    expect(parseOk(sjis(LINES.join('\r\n')))).toEqual(expected);
    expect(parseOk(Buffer.concat([file(LINES), Buffer.from([0x1a])]))).toEqual(expected);
  });

  it('reads the same characters from a UTF-8 file', () => {
    expect(parseOk(Buffer.from(LINES.join('\r\n'), 'utf8'), { encoding: 'utf8' })).toEqual(parseOk(file(LINES)));
  });

  it('reads Gregorian YYMMDD when told to', () => {
    const lines = [withField(withField(withField(HEADER_REC, HEADER.createdOn, '250402'), HEADER.accountingFrom, '250401'), HEADER.accountingTo, '250402'), withField(withField(DATA_1, DATA.accountingDate, '250401'), DATA.valueDate, '250401'), withField(withField(DATA_2, DATA.accountingDate, '250402'), DATA.valueDate, '250402'), TRAILER_REC, END_REC];
    expect(parseOk(file(lines), { dateEra: 'western' })).toEqual(parseOk(file(LINES)));
  });

  it('decodes C fields exactly as TextDecoder("shift_jis") does', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i).filter(isHalfWidthByte);
    expect(all.length).toBe(95 + 63);
    expect(decodeHalfWidth(all)).toBe(new TextDecoder('shift_jis').decode(all));
  });
});

describe('parseTransferNotice: rejects the whole file, naming line and field', () => {
  const cases: Array<[string, string[] | Buffer, Partial<ZenginParseError>]> = [
    ['a record one byte short', [HEADER_REC, DATA_1.slice(0, 199), DATA_2, TRAILER_REC, END_REC], { line: 2, field: 'レコード' }],
    ['a record one byte long', [HEADER_REC, DATA_1 + ' ', DATA_2, TRAILER_REC, END_REC], { line: 2, field: 'レコード' }],
    ['an unknown record kind', [HEADER_REC, withField(DATA_1, DATA.recordKind, '3'), DATA_2, TRAILER_REC, END_REC], { line: 2, field: 'データ区分' }],
    ['a data record before any header', [DATA_1, HEADER_REC, DATA_2, TRAILER_REC, END_REC], { line: 1, field: 'データ区分' }],
    ['a missing trailer', [HEADER_REC, DATA_1, DATA_2, END_REC], { line: 4, field: 'データ区分' }],
    ['a missing end record', [HEADER_REC, DATA_1, DATA_2, TRAILER_REC], { line: 4, field: 'データ区分' }],
    ['a record after the end record', [...LINES, DATA_1], { line: 6, field: 'データ区分' }],
    ['a trailer count that is off by one', [HEADER_REC, DATA_1, DATA_2, withField(TRAILER_REC, TRAILER.count, '000003'), END_REC], { line: 4, field: '振込合計件数' }],
    ['a trailer total that is off by one yen', [HEADER_REC, DATA_1, DATA_2, withField(TRAILER_REC, TRAILER.total, '000000215001'), END_REC], { line: 4, field: '振込合計金額' }],
    ['a letter in an amount', [HEADER_REC, withField(DATA_1, DATA.amount, '00000150O0'), DATA_2, TRAILER_REC, END_REC], { line: 2, field: '金額' }],
    ['a zero amount', [HEADER_REC, withField(DATA_1, DATA.amount, '0000000000'), DATA_2, withField(TRAILER_REC, TRAILER.total, '000000200000'), END_REC], { line: 2, field: '金額' }],
    ['February 30th', [HEADER_REC, withField(DATA_1, DATA.accountingDate, '070230'), DATA_2, TRAILER_REC, END_REC], { line: 2, field: '勘定日' }],
    ['a 令和 date before 令和 began', [HEADER_REC, withField(DATA_1, DATA.accountingDate, '010430'), DATA_2, TRAILER_REC, END_REC], { line: 2, field: '勘定日' }],
    ['another business (総合振込, 21)', [withField(HEADER_REC, HEADER.kindCode, '21'), DATA_1, DATA_2, TRAILER_REC, END_REC], { line: 1, field: '種別コード' }],
    ['EBCDIC', [withField(HEADER_REC, HEADER.codeKind, '1'), DATA_1, DATA_2, TRAILER_REC, END_REC], { line: 1, field: 'コード区分' }],
    ['a blank payer name', [HEADER_REC, withField(DATA_1, DATA.payerName, ''), DATA_2, TRAILER_REC, END_REC], { line: 2, field: '振込依頼人名' }],
    ['an unknown 取消区分', [HEADER_REC, withField(DATA_1, DATA.cancelKind, '7'), DATA_2, TRAILER_REC, END_REC], { line: 2, field: '取消区分' }],
    ['text in the end record', [HEADER_REC, DATA_1, DATA_2, TRAILER_REC, withField(END_REC, END.dummy, 'X')], { line: 5, field: 'ダミー' }],
    ['the same 照会番号 twice on one 勘定日', [HEADER_REC, DATA_1, withField(withField(DATA_2, DATA.inquiryNumber, '000123'), DATA.accountingDate, '070401'), TRAILER_REC, END_REC], { line: 3, field: '照会番号', relatedLine: 2 }],
    ['an empty file', Buffer.alloc(0), { line: 1 }],
  ];
  it.each(cases)('%s', (_name, input, expected) => {
    const e = parseErr(Buffer.isBuffer(input) ? input : file(input));
    expect(e).toMatchObject(expected);
    expect(e.message.length).toBeGreaterThan(0);
  });

  it('rejects a full-width (double-byte) character in a name field', () => {
    const buf = file(LINES);
    buf.set([0x83, 0x4a], 202 + DATA.payerName.offset); // カ in Shift_JIS, full-width
    expect(parseErr(buf)).toMatchObject({ line: 2, field: '振込依頼人名' });
  });

  it('rejects a character with no half-width byte in a UTF-8 file', () => {
    const text = [HEADER_REC, withField(DATA_1, DATA.payerName, 'ヤマダ'), DATA_2, TRAILER_REC, END_REC].join('\n');
    expect(parseErr(Buffer.from(text, 'utf8'), { encoding: 'utf8' })).toMatchObject({ line: 2, field: '振込依頼人名' });
  });
});

describe('externalId', () => {
  it('is the same when the same data is re-imported in another line format', () => {
    const ids = (b: Buffer) => parseOk(b).transfers.map((t) => t.externalId);
    expect(ids(file(LINES, ''))).toEqual(ids(file(LINES)));
  });

  it('without 照会番号: a content hash, numbered among identical records, independent of position', () => {
    const noRef = withField(DATA_1, DATA.inquiryNumber, '');
    const other = withField(DATA_2, DATA.inquiryNumber, '');
    const t1 = record('8', '000003', '000000230000', '000000', '000000000000', ' '.repeat(163));
    const a = parseOk(file([HEADER_REC, noRef, other, noRef, t1, END_REC])).transfers.map((t) => t.externalId);
    const b = parseOk(file([HEADER_REC, other, noRef, noRef, t1, END_REC])).transfers.map((t) => t.externalId);
    expect(new Set(a).size).toBe(3);
    expect(a[0]).toMatch(/^zengin:0005-123-1-1234567:2025-04-01:h[0-9a-f]{24}\.1$/);
    expect(a[2]).toBe(a[0]!.replace(/\.1$/, '.2'));
    expect(new Set(b)).toEqual(new Set(a));
  });

  it('differs for a cancellation that repeats the 照会番号 it cancels', () => {
    const cancel = withField(DATA_1, DATA.cancelKind, '1');
    const t = record('8', '000002', '000000215000', '000001', '000000015000', ' '.repeat(163));
    const [x, , y] = parseOk(file([HEADER_REC, DATA_1, DATA_2, cancel, t, END_REC])).transfers;
    expect(y!.cancelled).toBe(true);
    expect(y!.externalId).toBe(`${x!.externalId}:cancel`);
  });
});

// ---- properties over generated files ---------------------------------------------------------

const KANA = [...'ｦｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝﾞﾟ'];
const CHARS = [...KANA, ...'0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ', ' ', '(', ')', '-', '.', '/'];
const text = (min: number, max: number) =>
  fc
    .string({ unit: fc.constantFrom(...CHARS), minLength: min, maxLength: max })
    .map((s) => s.trimEnd())
    .filter((s) => s.length >= min);
const digits = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: n, maxLength: n });
const isoDate = fc.date({ min: new Date('2019-05-01T00:00:00Z'), max: new Date('2099-12-31T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10));
const MAX_AMOUNT = 9_999_999_999n;

const headerArb: fc.Arbitrary<TransferNoticeHeaderInput> = fc
  .record({
    createdOn: isoDate,
    dates: fc.tuple(isoDate, isoDate).map(([a, b]) => (a <= b ? [a, b] : [b, a])),
    bankCode: digits(4),
    bankName: text(0, 15),
    branchCode: digits(3),
    branchName: text(0, 15),
    depositType: fc.constantFrom('1', '2', '4', '9' as const),
    accountNumber: digits(7),
    accountName: text(0, 40),
  })
  .map(({ dates, ...h }) => ({ ...h, accountingFrom: dates[0]!, accountingTo: dates[1]! }));

const transferArb: fc.Arbitrary<Omit<TransferNoticeInput, 'inquiryNumber'> & { hasRef: boolean }> = fc
  .record({
    hasRef: fc.boolean(),
    transactionDate: isoDate,
    valueDate: isoDate,
    amount: fc.bigInt({ min: 1n, max: MAX_AMOUNT }),
    other: fc.bigInt({ min: 0n, max: MAX_AMOUNT }),
    payerCode: fc.option(digits(10), { nil: null }),
    payerName: text(1, 48),
    remittingBankName: text(0, 15),
    remittingBranchName: text(0, 15),
    cancelled: fc.boolean(),
    ediInfo: text(0, 20),
  })
  .map(({ other, ...t }) => ({ ...t, otherBankChequeAmount: other > t.amount ? t.amount : other }));

/** Files of 1–3 groups; 照会番号 are unique in the file (as the bank's references are). */
const fileArb: fc.Arbitrary<TransferNoticeFileInput> = fc
  .array(fc.record({ header: headerArb, transfers: fc.array(transferArb, { maxLength: 6 }) }), { minLength: 1, maxLength: 3 })
  .map((groups) => {
    let n = 0;
    return {
      groups: groups.map((g) => ({
        header: g.header,
        transfers: g.transfers.map(({ hasRef, ...t }) => ({ ...t, inquiryNumber: hasRef ? String(++n * 7).padStart(6, '0') : null })),
      })),
    };
  });

const newlineArb = fc.constantFrom('crlf', 'lf', 'none' as const);

const strip = (f: TransferNoticeFile): TransferNoticeFileInput => ({
  groups: f.groups.map((g) => ({
    header: (({ line: _l, ...h }) => h)(g.header),
    transfers: g.transfers.map(({ line: _l, externalId: _e, account: _a, ...t }) => t),
  })),
});

describe('properties', () => {
  it('format → parse gives back the same groups and transfers, with unique externalIds', () => {
    fc.assert(
      fc.property(fileArb, newlineArb, fc.constantFrom('shift_jis', 'utf8' as const), (input, newline, encoding) => {
        const parsed = parseOk(formatTransferNotice(input, { newline, encoding }), { encoding });
        expect(strip(parsed)).toEqual(input);
        expect(new Set(parsed.transfers.map((t) => t.externalId)).size).toBe(parsed.transfers.length);
      }),
      propertyParams('zengin format → parse round trip', { runs: 300 }),
    );
  });

  const N_FIELDS: Record<string, FieldSpec[]> = {
    '1': Object.values(HEADER).filter((f) => f.kind === 'N'),
    '2': Object.values(DATA).filter((f) => f.kind === 'N'),
    '8': Object.values(TRAILER).filter((f) => f.kind === 'N'),
    '9': [END.recordKind],
  };

  it('one changed byte in a numeric field or record kind: a different file or an error on the right line, never a crash', () => {
    fc.assert(
      fc.property(fileArb, newlineArb, fc.nat(), fc.nat(), fc.nat(), fc.oneof(fc.integer({ min: 0x30, max: 0x39 }), fc.integer({ min: 0, max: 255 })), (input, newline, pickLine, pickField, pickByte, value) => {
        const buf = formatTransferNotice(input, { newline });
        const original = parseOk(buf);
        const stride = 200 + (newline === 'crlf' ? 2 : newline === 'lf' ? 1 : 0);
        const lines = buf.length / stride === Math.floor(buf.length / stride) ? buf.length / stride : Math.ceil(buf.length / stride);
        const line = (pickLine % lines) + 1;
        const start = (line - 1) * stride;
        const kind = String.fromCharCode(buf[start]!);
        const fields = N_FIELDS[kind]!;
        const field = fields[pickField % fields.length]!;
        const at = start + field.offset + (pickByte % field.length);
        fc.pre(buf[at] !== value);
        const mutated = Buffer.from(buf);
        mutated[at] = value;

        // The trailer that closes the mutated record's group: sums are checked there.
        const trailerLines = original.groups.map((g) => g.trailer.line);
        const trailerOfLine = trailerLines.find((t) => t >= line);

        const r = parseTransferNotice(mutated);
        if (r.ok) {
          // 取消区分 '0' and ' ' both mean "not a cancellation": the one equivalent spelling.
          const equivalent = field === DATA.cancelKind && [0x20, 0x30].includes(value) && [0x20, 0x30].includes(buf[at]!);
          if (!equivalent) expect(r.value).not.toEqual(original);
          expect(r.value.transfers.length).toBe(r.value.groups.reduce((n, g) => n + g.transfers.length, 0));
          for (const g of r.value.groups) {
            // Whatever is accepted is consistent with its trailer.
            const sum = (ts: typeof g.transfers) => ts.reduce((s, t) => s + t.amount, 0n);
            const credits = g.transfers.filter((t) => !t.cancelled);
            expect(g.trailer.total).toBe(sum(credits));
            expect(g.trailer.count).toBe(credits.length);
            expect(g.trailer.cancelTotal).toBe(sum(g.transfers) - sum(credits));
          }
        } else {
          const e = r.error;
          const sumField = [TRAILER.count.name, TRAILER.total.name, TRAILER.cancelCount.name, TRAILER.cancelTotal.name].includes(e.field);
          const onRightLine = e.line === line || e.relatedLine === line || (kind === '2' && sumField && e.line === trailerOfLine);
          expect(onRightLine, JSON.stringify({ line, field: field.name, value, e })).toBe(true);
        }
      }),
      propertyParams('zengin one changed byte', { runs: 1000 }),
    );
  });
});
