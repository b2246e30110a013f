// Zengin transfer-notice files (振込入金通知) as the bank would send them, for tests of bank transfers.
import { formatTransferNotice, type TransferNoticeHeaderInput, type TransferNoticeInput } from '../../src/providers/zengin/index.ts';

let ref = 0;

/** One transfer (a data record) with a fresh 照会番号, booked on 2026-11-20. */
export function transfer(amount: bigint, payerName: string): TransferNoticeInput {
  return {
    inquiryNumber: String(++ref).padStart(6, '0'), transactionDate: '2026-11-20', valueDate: '2026-11-20', amount, otherBankChequeAmount: 0n,
    payerCode: null, payerName, remittingBankName: 'ﾐｽﾞﾎ', remittingBranchName: 'ﾎﾝﾃﾝ', cancelled: false, ediInfo: '',
  };
}

/** The header of the group of one credited (virtual) account. */
export function header(accountNumber: string): TransferNoticeHeaderInput {
  return {
    createdOn: '2026-11-20', accountingFrom: '2026-11-20', accountingTo: '2026-11-20', bankCode: '0001', bankName: 'ｾｲｺﾞｷﾞﾝｺｳ',
    branchCode: '001', branchName: 'ﾎﾝﾃﾝ', depositType: '1', accountNumber, accountName: 'ｾｲｺﾞ',
  };
}

/** One group per credited account, as the bank sends them (Shift_JIS). */
export function file(groups: { accountNumber: string; transfers: TransferNoticeInput[] }[]): Buffer {
  return formatTransferNotice({ groups: groups.map((g) => ({ header: header(g.accountNumber), transfers: g.transfers })) });
}
