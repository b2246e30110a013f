// Reader and writer for Zengin 振込入金通知 files (layout: ./layout.ts). The reader is all or
// nothing: any problem rejects the whole file with the record (line) number, the field and what is
// wrong, so an import never stores half a file.
import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../../kernel/errors.ts';
import { decodeHalfWidth, encodeHalfWidth, halfWidthByte, isHalfWidthByte } from './charset.ts';
import { formatZenginDate, parseZenginDate, type ZenginDateEra } from './dates.ts';
import { DATA, END, HEADER, KIND_CODE_TRANSFER_NOTICE, RECORD_LENGTH, RecordKind, TRAILER, type FieldSpec } from './layout.ts';

/** 預金種目: 1 普通, 2 当座, 4 貯蓄, 9 その他. */
export type DepositType = '1' | '2' | '4' | '9';
const DEPOSIT_TYPES: readonly string[] = ['1', '2', '4', '9'];

export interface TransferNoticeHeaderInput {
  /** 作成日, ISO date. */
  createdOn: string;
  /** 勘定日(自) / 勘定日(至), ISO dates. */
  accountingFrom: string;
  accountingTo: string;
  /** 銀行コード N(4), 支店コード N(3), 口座番号 N(7): digit strings (zero-padded on output). */
  bankCode: string;
  bankName: string;
  branchCode: string;
  branchName: string;
  depositType: DepositType;
  accountNumber: string;
  /** 口座名: half-width kana as in the file. */
  accountName: string;
}

export interface TransferNoticeInput {
  /** 照会番号: the bank's reference, digits; null when the bank leaves it blank. */
  inquiryNumber: string | null;
  /** 勘定日 (the day the credit is booked), ISO date. */
  transactionDate: string;
  /** 起算日 (value date), ISO date; normally equal to the transaction date. */
  valueDate: string;
  /** 金額, yen. */
  amount: bigint;
  /** うち他店券金額: part of the amount paid by other banks' cheques, yen. */
  otherBankChequeAmount: bigint;
  /** 振込依頼人コード, digits; null when blank. */
  payerCode: string | null;
  /** 振込依頼人名: half-width kana as in the file (trailing padding removed). */
  payerName: string;
  /** 仕向銀行名 / 仕向店名: the remitting bank and branch, half-width kana. */
  remittingBankName: string;
  remittingBranchName: string;
  /** 取消区分 = 1: this record cancels an earlier notice. */
  cancelled: boolean;
  /** EDI情報 (blank when none). */
  ediInfo: string;
}

export interface TransferNoticeHeader extends TransferNoticeHeaderInput {
  line: number;
}

export interface CreditedAccount {
  bankCode: string;
  branchCode: string;
  depositType: DepositType;
  accountNumber: string;
}

export interface TransferNotice extends TransferNoticeInput {
  /** Stable across re-imports of the same data; see `externalIdFor`. */
  externalId: string;
  /** Record (line) number in the file, 1-based. */
  line: number;
  /** The credited account, from the group's header. */
  account: CreditedAccount;
}

export interface TransferNoticeTrailer {
  line: number;
  /** 振込合計件数 / 振込合計金額 */
  count: number;
  total: bigint;
  /** 取消合計件数 / 取消合計金額 (blank reads as 0) */
  cancelCount: number;
  cancelTotal: bigint;
}

export interface TransferNoticeGroup {
  header: TransferNoticeHeader;
  transfers: TransferNotice[];
  trailer: TransferNoticeTrailer;
}

export interface TransferNoticeFile {
  /** One group per notified account, in file order. */
  groups: TransferNoticeGroup[];
  /** All groups' transfers, in file order. */
  transfers: TransferNotice[];
}

export interface ZenginParseError {
  /** Record (line) number, 1-based. */
  line: number;
  /** Field name as in the published layout (e.g. 金額), or 'レコード' for the record as a whole. */
  field: string;
  message: string;
  /** Another record the problem involves (e.g. the first of two duplicates). */
  relatedLine?: number;
}

export type ZenginEncoding = 'shift_jis' | 'utf8';

export interface ParseTransferNoticeOptions {
  /** Byte encoding of the file; default shift_jis (the banks' JIS 8-bit code). */
  encoding?: ZenginEncoding;
  /** How YY in YYMMDD is read; default 'reiwa' (the published layout's 和暦). */
  dateEra?: ZenginDateEra;
}

export interface FormatTransferNoticeOptions {
  encoding?: ZenginEncoding;
  dateEra?: ZenginDateEra;
  /** Record separator; default CRLF. */
  newline?: 'crlf' | 'lf' | 'none';
}

const RECORD = 'レコード';
const CR = 0x0d;
const LF = 0x0a;
const DOS_EOF = 0x1a;

class Reject extends Error {
  constructor(readonly detail: ZenginParseError) {
    super(detail.message);
  }
}

const reject = (line: number, field: string, message: string, relatedLine?: number): never => {
  throw new Reject(relatedLine === undefined ? { line, field, message } : { line, field, message, relatedLine });
};

const showByte = (b: number) => `0x${b.toString(16).padStart(2, '0').toUpperCase()}`;

// ---------------------------------------------------------------------------------------------
// Reading

export function parseTransferNotice(buf: Uint8Array, opts: ParseTransferNoticeOptions = {}): Result<TransferNoticeFile, ZenginParseError> {
  try {
    const bytes = opts.encoding === 'utf8' ? utf8ToUnits(buf) : buf;
    return ok(readFile(splitRecords(bytes), opts.dateEra ?? 'reiwa'));
  } catch (e) {
    if (e instanceof Reject) return err(e.detail);
    throw e;
  }
}

/**
 * UTF-8 files carry the same characters; each code point becomes the one JIS X 0201 byte it stands
 * for, so the rest of the reader counts characters exactly as it counts Shift_JIS bytes. A code
 * point with no such byte becomes 0x80, which no field accepts (the error then names its field).
 */
function utf8ToUnits(buf: Uint8Array): Uint8Array {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(buf);
  } catch {
    return reject(1, RECORD, 'the file is not valid UTF-8');
  }
  const out: number[] = [];
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    out.push(cp === CR || cp === LF || cp === DOS_EOF ? cp : (halfWidthByte(cp) ?? 0x80));
  }
  return Uint8Array.from(out);
}

/**
 * Records are exactly 200 bytes, either back to back or each followed by CRLF or LF (the byte
 * after the first record tells which). Walking at a fixed stride, rather than splitting on line
 * breaks, keeps every error on the record where it is.
 */
function splitRecords(bytes: Uint8Array): Uint8Array[] {
  let end = bytes.length;
  if (end > 0 && bytes[end - 1] === DOS_EOF) end--; // a trailing DOS end-of-file mark
  if (end === 0) return reject(1, RECORD, 'the file is empty');
  const sep = bytes[RECORD_LENGTH] === CR && bytes[RECORD_LENGTH + 1] === LF ? [CR, LF] : bytes[RECORD_LENGTH] === LF ? [LF] : [];
  const stride = RECORD_LENGTH + sep.length;
  const records: Uint8Array[] = [];
  for (let off = 0; off < end; off += stride) {
    const line = records.length + 1;
    if (sep.length > 0 && bytes.subarray(off, end).every((b) => b === CR || b === LF)) break; // trailing blank lines
    if (off + RECORD_LENGTH > end) return reject(line, RECORD, `the record is ${end - off} bytes; records are ${RECORD_LENGTH} bytes`);
    const rec = bytes.subarray(off, off + RECORD_LENGTH);
    const brk = rec.findIndex((b) => b === CR || b === LF);
    if (brk >= 0) return reject(line, RECORD, `line break at byte ${brk + 1}: the record is shorter than ${RECORD_LENGTH} bytes`);
    const after = bytes.subarray(off + RECORD_LENGTH, Math.min(off + stride, end));
    if (after.length > 0 && !sep.every((b, i) => after[i] === b)) {
      return reject(line, RECORD, sep.length === 0 ? 'unexpected bytes' : `the record is longer than ${RECORD_LENGTH} bytes or lacks its ${sep.length === 2 ? 'CRLF' : 'LF'}`);
    }
    records.push(rec);
  }
  return records;
}

interface OpenGroup {
  header: TransferNoticeHeader;
  account: CreditedAccount;
  transfers: TransferNotice[];
}

function readFile(records: Uint8Array[], era: ZenginDateEra): TransferNoticeFile {
  const groups: TransferNoticeGroup[] = [];
  const ids = new Map<string, number>();
  const identical = new Map<string, number>();
  let open: OpenGroup | undefined;
  let ended = false;
  records.forEach((rec, i) => {
    const line = i + 1;
    const r = new RecordReader(rec, line);
    const kind = String.fromCharCode(rec[0]!);
    if (ended) reject(line, HEADER.recordKind.name, 'a record after the end record (データ区分=9)');
    switch (kind) {
      case RecordKind.header: {
        if (open) reject(line, HEADER.recordKind.name, `a header while the group from line ${open.header.line} has no trailer (データ区分=8)`);
        const header = readHeader(r, era);
        const { bankCode, branchCode, depositType, accountNumber } = header;
        open = { header, account: { bankCode, branchCode, depositType, accountNumber }, transfers: [] };
        break;
      }
      case RecordKind.data: {
        if (!open) return reject(line, DATA.recordKind.name, 'a data record outside a group (no header before it)');
        const t = readData(r, era, open, identical);
        const seen = ids.get(t.externalId);
        if (seen !== undefined) reject(line, DATA.inquiryNumber.name, `duplicate transfer: same account, 勘定日 and 照会番号 as line ${seen}`, seen);
        ids.set(t.externalId, line);
        open.transfers.push(t);
        break;
      }
      case RecordKind.trailer: {
        if (!open) return reject(line, TRAILER.recordKind.name, 'a trailer outside a group (no header before it)');
        const trailer = readTrailer(r, open.transfers);
        groups.push({ header: open.header, transfers: open.transfers, trailer });
        open = undefined;
        break;
      }
      case RecordKind.end: {
        if (open) reject(line, END.recordKind.name, `the end record comes before the trailer of the group from line ${open.header.line}`);
        if (groups.length === 0) reject(line, END.recordKind.name, 'the end record comes before any header');
        r.blank(END.dummy);
        ended = true;
        break;
      }
      default:
        reject(line, HEADER.recordKind.name, `unknown record kind ${JSON.stringify(isHalfWidthByte(rec[0]!) ? kind : showByte(rec[0]!))}; expected 1, 2, 8 or 9`);
    }
  });
  if (!ended) reject(records.length, END.recordKind.name, 'the file ends without an end record (データ区分=9)');
  return { groups, transfers: groups.flatMap((g) => g.transfers) };
}

class RecordReader {
  constructor(
    readonly rec: Uint8Array,
    readonly line: number,
  ) {}

  private slice(f: FieldSpec) {
    return this.rec.subarray(f.offset, f.offset + f.length);
  }

  /** A required N field: digits only. */
  digits(f: FieldSpec): string {
    const s = this.slice(f);
    const bad = s.findIndex((b) => b < 0x30 || b > 0x39);
    if (bad >= 0) reject(this.line, f.name, `byte ${f.offset + bad + 1} is ${describe(s[bad]!)}; N(${f.length}) takes digits only`);
    return String.fromCharCode(...s);
  }

  /** An optional N field: all spaces (→ null) or all digits. */
  optionalDigits(f: FieldSpec): string | null {
    if (this.slice(f).every((b) => b === 0x20)) return null;
    return this.digits(f);
  }

  /** A C field: half-width characters; trailing padding removed. */
  chars(f: FieldSpec): string {
    const s = this.slice(f);
    const bad = s.findIndex((b) => !isHalfWidthByte(b));
    if (bad >= 0) reject(this.line, f.name, `byte ${f.offset + bad + 1} is ${describe(s[bad]!)}, not a half-width character`);
    return decodeHalfWidth(s).replace(/ +$/, '');
  }

  /** A field that must be spaces (the dummy areas of trailer and end records). */
  blank(f: FieldSpec): void {
    const s = this.slice(f);
    const bad = s.findIndex((b) => b !== 0x20);
    if (bad >= 0) reject(this.line, f.name, `byte ${f.offset + bad + 1} is ${describe(s[bad]!)}; this area must be spaces`);
  }

  date(f: FieldSpec, era: ZenginDateEra): string {
    const raw = this.digits(f);
    const iso = parseZenginDate(raw, era);
    if (iso === undefined) reject(this.line, f.name, `${raw} is not a date (YYMMDD, ${era === 'reiwa' ? '令和' : '西暦'} year)`);
    return iso!;
  }

  amount(f: FieldSpec): bigint {
    return BigInt(this.digits(f));
  }

  optionalAmount(f: FieldSpec): bigint {
    const d = this.optionalDigits(f);
    return d === null ? 0n : BigInt(d);
  }
}

function describe(b: number): string {
  if (b === 0x20) return 'a space';
  return isHalfWidthByte(b) ? JSON.stringify(decodeHalfWidth(Uint8Array.of(b))) : showByte(b);
}

function readHeader(r: RecordReader, era: ZenginDateEra): TransferNoticeHeader {
  const kindCode = r.digits(HEADER.kindCode);
  if (kindCode !== KIND_CODE_TRANSFER_NOTICE) reject(r.line, HEADER.kindCode.name, `${kindCode} is not 01 (振込入金通知)`);
  const codeKind = r.digits(HEADER.codeKind);
  if (codeKind === '1') reject(r.line, HEADER.codeKind.name, '1 (EBCDIC) is not supported; only 0 (JIS)');
  if (codeKind !== '0') reject(r.line, HEADER.codeKind.name, `${codeKind} is neither 0 (JIS) nor 1 (EBCDIC)`);
  const createdOn = r.date(HEADER.createdOn, era);
  const accountingFrom = r.date(HEADER.accountingFrom, era);
  const accountingTo = r.date(HEADER.accountingTo, era);
  if (accountingTo < accountingFrom) reject(r.line, HEADER.accountingTo.name, `${accountingTo} is before 勘定日(自) ${accountingFrom}`);
  const depositType = r.digits(HEADER.depositType);
  if (!DEPOSIT_TYPES.includes(depositType)) reject(r.line, HEADER.depositType.name, `${depositType} is not 1, 2, 4 or 9`);
  return {
    line: r.line,
    createdOn,
    accountingFrom,
    accountingTo,
    bankCode: r.digits(HEADER.bankCode),
    bankName: r.chars(HEADER.bankName),
    branchCode: r.digits(HEADER.branchCode),
    branchName: r.chars(HEADER.branchName),
    depositType: depositType as DepositType,
    accountNumber: r.digits(HEADER.accountNumber),
    accountName: r.chars(HEADER.accountName),
  };
}

function readData(r: RecordReader, era: ZenginDateEra, group: OpenGroup, identical: Map<string, number>): TransferNotice {
  const inquiryNumber = r.optionalDigits(DATA.inquiryNumber);
  const transactionDate = r.date(DATA.accountingDate, era);
  const valueDate = r.date(DATA.valueDate, era);
  const amount = r.amount(DATA.amount);
  if (amount === 0n) reject(r.line, DATA.amount.name, 'the amount is 0');
  const otherBankChequeAmount = r.optionalAmount(DATA.otherBankChequeAmount);
  if (otherBankChequeAmount > amount) reject(r.line, DATA.otherBankChequeAmount.name, `${otherBankChequeAmount} is more than 金額 ${amount}`);
  const payerCode = r.optionalDigits(DATA.payerCode);
  const payerName = r.chars(DATA.payerName);
  if (payerName.trim() === '') reject(r.line, DATA.payerName.name, 'the payer name is blank');
  const cancelKind = r.optionalDigits(DATA.cancelKind);
  if (cancelKind !== null && cancelKind !== '0' && cancelKind !== '1') reject(r.line, DATA.cancelKind.name, `${cancelKind} is not 1 (取消) or blank`);
  const cancelled = cancelKind === '1';
  const input: TransferNoticeInput = {
    inquiryNumber,
    transactionDate,
    valueDate,
    amount,
    otherBankChequeAmount,
    payerCode,
    payerName,
    remittingBankName: r.chars(DATA.remittingBankName),
    remittingBranchName: r.chars(DATA.remittingBranchName),
    cancelled,
    ediInfo: r.chars(DATA.ediInfo),
  };
  return { ...input, externalId: externalIdFor(group.account, input, r.rec, identical), line: r.line, account: group.account };
}

/**
 * The id is built from what the bank put in the file, never from where the record sits in it:
 * credited account + 勘定日 + 照会番号 (the bank's own reference) when present; otherwise a hash of
 * the record's 200 bytes, numbered among identical records for the same account (two equal
 * transfers from one payer on one day are two transfers). A cancellation (取消区分=1) gets its own id, since it
 * may repeat the 照会番号 of the notice it cancels.
 */
function externalIdFor(a: CreditedAccount, t: TransferNoticeInput, rec: Uint8Array, identical: Map<string, number>): string {
  const base = `zengin:${a.bankCode}-${a.branchCode}-${a.depositType}-${a.accountNumber}:${t.transactionDate}`;
  const suffix = t.cancelled ? ':cancel' : '';
  if (t.inquiryNumber !== null && /[1-9]/.test(t.inquiryNumber)) return `${base}:${t.inquiryNumber}${suffix}`;
  const hash = createHash('sha256').update(rec).digest('hex').slice(0, 24);
  const n = (identical.get(`${base}:${hash}`) ?? 0) + 1;
  identical.set(`${base}:${hash}`, n);
  return `${base}:h${hash}.${n}${suffix}`;
}

/**
 * 振込合計 counts the data records that are not cancellations and 取消合計 those that are.
 * [VERIFY] with a bank's sample file carrying cancellations: some may count every data record
 * in 振込合計, so that reading is accepted too.
 */
function readTrailer(r: RecordReader, transfers: readonly TransferNotice[]): TransferNoticeTrailer {
  const count = Number(r.digits(TRAILER.count));
  const total = r.amount(TRAILER.total);
  const cancelCount = Number(r.optionalDigits(TRAILER.cancelCount) ?? '0');
  const cancelTotal = r.optionalAmount(TRAILER.cancelTotal);
  r.blank(TRAILER.dummy);
  const sum = (ts: readonly TransferNotice[]) => ts.reduce((s, t) => s + t.amount, 0n);
  const cancels = transfers.filter((t) => t.cancelled);
  const credits = transfers.filter((t) => !t.cancelled);
  const countsAll = cancels.length > 0 && count === transfers.length && total === sum(transfers);
  if (!countsAll) {
    if (count !== credits.length) reject(r.line, TRAILER.count.name, `${count} but the group has ${credits.length} data records`);
    if (total !== sum(credits)) reject(r.line, TRAILER.total.name, `${total} but the data records add up to ${sum(credits)}`);
  }
  if (cancelCount !== cancels.length) reject(r.line, TRAILER.cancelCount.name, `${cancelCount} but the group has ${cancels.length} cancellations`);
  if (cancelTotal !== sum(cancels)) reject(r.line, TRAILER.cancelTotal.name, `${cancelTotal} but the cancellations add up to ${sum(cancels)}`);
  return { line: r.line, count, total, cancelCount, cancelTotal };
}

// ---------------------------------------------------------------------------------------------
// Writing (for tests and the bank simulator)

export interface TransferNoticeFileInput {
  groups: ReadonlyArray<{ header: TransferNoticeHeaderInput; transfers: readonly TransferNoticeInput[] }>;
}

/**
 * Writes a file the reader accepts; trailers are computed. Throws RangeError naming the field
 * when a value does not fit its field (a caller's bug, not an expected outcome).
 */
export function formatTransferNotice(file: TransferNoticeFileInput, opts: FormatTransferNoticeOptions = {}): Buffer {
  const era = opts.dateEra ?? 'reiwa';
  if (file.groups.length === 0) throw new RangeError('a transfer notice file needs at least one group');
  const records: Uint8Array[] = [];
  for (const g of file.groups) {
    const h = g.header;
    const w = new RecordWriter();
    w.put(HEADER.recordKind, RecordKind.header);
    w.put(HEADER.kindCode, KIND_CODE_TRANSFER_NOTICE);
    w.put(HEADER.codeKind, '0');
    w.date(HEADER.createdOn, h.createdOn, era);
    w.date(HEADER.accountingFrom, h.accountingFrom, era);
    w.date(HEADER.accountingTo, h.accountingTo, era);
    w.num(HEADER.bankCode, h.bankCode);
    w.text(HEADER.bankName, h.bankName);
    w.num(HEADER.branchCode, h.branchCode);
    w.text(HEADER.branchName, h.branchName);
    w.num(HEADER.depositType, h.depositType);
    w.num(HEADER.accountNumber, h.accountNumber);
    w.text(HEADER.accountName, h.accountName);
    records.push(w.bytes);
    for (const t of g.transfers) {
      const d = new RecordWriter();
      d.put(DATA.recordKind, RecordKind.data);
      if (t.inquiryNumber !== null) d.num(DATA.inquiryNumber, t.inquiryNumber);
      d.date(DATA.accountingDate, t.transactionDate, era);
      d.date(DATA.valueDate, t.valueDate, era);
      d.num(DATA.amount, t.amount);
      d.num(DATA.otherBankChequeAmount, t.otherBankChequeAmount);
      if (t.payerCode !== null) d.num(DATA.payerCode, t.payerCode);
      d.text(DATA.payerName, t.payerName);
      d.text(DATA.remittingBankName, t.remittingBankName);
      d.text(DATA.remittingBranchName, t.remittingBranchName);
      d.put(DATA.cancelKind, t.cancelled ? '1' : '0');
      d.text(DATA.ediInfo, t.ediInfo);
      records.push(d.bytes);
    }
    const credits = g.transfers.filter((t) => !t.cancelled);
    const cancels = g.transfers.filter((t) => t.cancelled);
    const tr = new RecordWriter();
    tr.put(TRAILER.recordKind, RecordKind.trailer);
    tr.num(TRAILER.count, credits.length);
    tr.num(TRAILER.total, credits.reduce((s, t) => s + t.amount, 0n));
    tr.num(TRAILER.cancelCount, cancels.length);
    tr.num(TRAILER.cancelTotal, cancels.reduce((s, t) => s + t.amount, 0n));
    records.push(tr.bytes);
  }
  const e = new RecordWriter();
  e.put(END.recordKind, RecordKind.end);
  records.push(e.bytes);

  const sep = opts.newline === 'none' ? [] : opts.newline === 'lf' ? [LF] : [CR, LF];
  const out = Buffer.concat(records.flatMap((r) => [r, Uint8Array.from(sep)]));
  // decodeHalfWidth keeps CR and LF as they are, so the UTF-8 file has the same records.
  return opts.encoding === 'utf8' ? Buffer.from(decodeHalfWidth(out), 'utf8') : out;
}

class RecordWriter {
  readonly bytes = new Uint8Array(RECORD_LENGTH).fill(0x20);

  put(f: FieldSpec, s: string): void {
    const enc = encodeHalfWidth(s);
    if (enc === undefined) throw new RangeError(`${f.name}: ${JSON.stringify(s)} has characters outside half-width JIS X 0201`);
    if (enc.length > f.length) throw new RangeError(`${f.name}: ${JSON.stringify(s)} is longer than ${f.length}`);
    this.bytes.set(enc, f.offset);
  }

  num(f: FieldSpec, v: string | number | bigint): void {
    const s = String(v);
    if (!/^\d+$/.test(s)) throw new RangeError(`${f.name}: ${s} is not a non-negative integer`);
    if (s.length > f.length) throw new RangeError(`${f.name}: ${s} does not fit N(${f.length})`);
    this.put(f, s.padStart(f.length, '0'));
  }

  text(f: FieldSpec, s: string): void {
    this.put(f, s);
  }

  date(f: FieldSpec, iso: string, era: ZenginDateEra): void {
    const s = formatZenginDate(iso, era);
    if (s === undefined) throw new RangeError(`${f.name}: ${iso} cannot be written as YYMMDD (${era})`);
    this.put(f, s);
  }
}
