// Zengin (全銀協) 振込入金通知 (transfer notification, 種別コード 01), フォーマットA: every record is
// 200 bytes in JIS X 0201 (Shift_JIS single-byte subset); N = digits, right-aligned, zero-filled;
// C = half-width characters, left-aligned, space-filled. Offsets below are 0-based byte offsets.
//
// Sources (cross-checked, all agree): 阿波銀行「振込入金通知（全銀協制定フォーマット）」
// http://www.awabank.co.jp/houjin/service/fb/zengin/tsuchi/ (header + data layout), and the
// record classes of github.com/diva-osaka/Diva.Zengin (振込入金通知Header/DataA/Trailer/End.cs),
// whose lengths sum to 200 for each record.
//
// A file is one or more groups (one per notified account) and one end record:
//   (header(1) data(2)* trailer(8))+ end(9)

export interface FieldSpec {
  /** Japanese field name as in the published layout; used in error messages. */
  readonly name: string;
  readonly offset: number;
  readonly length: number;
  /** N = digits; C = half-width characters. */
  readonly kind: 'N' | 'C';
}

const f = (name: string, offset: number, length: number, kind: 'N' | 'C'): FieldSpec => ({ name, offset, length, kind });

export const RECORD_LENGTH = 200;

export const RecordKind = { header: '1', data: '2', trailer: '8', end: '9' } as const;

/** 種別コード for 振込入金通知. */
export const KIND_CODE_TRANSFER_NOTICE = '01';

export const HEADER = {
  recordKind: f('データ区分', 0, 1, 'N'),
  kindCode: f('種別コード', 1, 2, 'N'),
  codeKind: f('コード区分', 3, 1, 'N'),
  createdOn: f('作成日', 4, 6, 'N'),
  accountingFrom: f('勘定日(自)', 10, 6, 'N'),
  accountingTo: f('勘定日(至)', 16, 6, 'N'),
  bankCode: f('銀行コード', 22, 4, 'N'),
  bankName: f('銀行名', 26, 15, 'C'),
  branchCode: f('支店コード', 41, 3, 'N'),
  branchName: f('支店名', 44, 15, 'C'),
  depositType: f('預金種目', 59, 1, 'N'),
  accountNumber: f('口座番号', 60, 7, 'N'),
  accountName: f('口座名', 67, 40, 'C'),
  dummy: f('ダミー', 107, 93, 'C'),
} as const;

export const DATA = {
  recordKind: f('データ区分', 0, 1, 'N'),
  inquiryNumber: f('照会番号', 1, 6, 'N'),
  accountingDate: f('勘定日', 7, 6, 'N'),
  valueDate: f('起算日', 13, 6, 'N'),
  amount: f('金額', 19, 10, 'N'),
  otherBankChequeAmount: f('うち他店券金額', 29, 10, 'N'),
  payerCode: f('振込依頼人コード', 39, 10, 'N'),
  payerName: f('振込依頼人名', 49, 48, 'C'),
  remittingBankName: f('仕向銀行名', 97, 15, 'C'),
  remittingBranchName: f('仕向店名', 112, 15, 'C'),
  cancelKind: f('取消区分', 127, 1, 'N'),
  ediInfo: f('EDI情報', 128, 20, 'C'),
  dummy: f('ダミー', 148, 52, 'C'),
} as const;

export const TRAILER = {
  recordKind: f('データ区分', 0, 1, 'N'),
  count: f('振込合計件数', 1, 6, 'N'),
  total: f('振込合計金額', 7, 12, 'N'),
  cancelCount: f('取消合計件数', 19, 6, 'N'),
  cancelTotal: f('取消合計金額', 25, 12, 'N'),
  dummy: f('ダミー', 37, 163, 'C'),
} as const;

export const END = {
  recordKind: f('データ区分', 0, 1, 'N'),
  dummy: f('ダミー', 1, 199, 'C'),
} as const;
