// Zengin (全銀協) bank files: 振込入金通知 (transfer notification) reader and writer.
export {
  parseTransferNotice,
  formatTransferNotice,
  type CreditedAccount,
  type DepositType,
  type FormatTransferNoticeOptions,
  type ParseTransferNoticeOptions,
  type TransferNotice,
  type TransferNoticeFile,
  type TransferNoticeFileInput,
  type TransferNoticeGroup,
  type TransferNoticeHeader,
  type TransferNoticeHeaderInput,
  type TransferNoticeInput,
  type TransferNoticeTrailer,
  type ZenginEncoding,
  type ZenginParseError,
} from './transfer-notice.ts';
export { encodeHalfWidth } from './charset.ts';
export type { ZenginDateEra } from './dates.ts';
