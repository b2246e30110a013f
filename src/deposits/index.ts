// Deposits (D1–D4): the realtime (card) flow, the reservation (konbini / Pay-easy) flow
// (reservation.ts) and bank transfers asked for in advance (bank-transfer-deposit.ts), on one table
// and state machine; transfers into virtual accounts (bank-transfer.ts).
export {
  createDeposits, depositMessage, DEFAULT_MAX_DEPOSIT,
  type Deposits, type DepositsEngine, type DepositsOptions, type CardDepositInput, type CreateDepositError, type DepositEvent,
} from './deposits.ts';
export {
  DEPOSIT_METHODS, DEPOSIT_STATUSES, DEPOSIT_TRANSITIONS, IN_FLIGHT_STATUSES, canTransition, isFinal, transitionDeposit,
  type Deposit, type DepositMethod, type DepositStatus, type DepositChange,
} from './state.ts';
export { RESERVATION_METHODS, type CreditOn, type ReservationDepositInput, type ReservationMethod } from './reservation.ts';
export {
  accountTypeOf, assignVirtualAccount, importTransfer, importTransferNoticeFile, listBankTransfers,
  type BankTransferPolicy, type CreditedAccountRef, type ImportCounts, type TransferAccountType,
} from './bank-transfer.ts';
