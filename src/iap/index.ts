// In-app purchases: the store ↔ internal subscription ↔ member id mapping, the purchase saga
// (verify with the store, refuse another member's, billing start/renew, persist the mapping), and its facade.
export {
  claimStoreSubscription, reportClaimConflict, subscriptionOfStoreId,
  type ClaimRefusal, type IapPlatform, type IapSubscription, type StoreClaim,
} from './mapping.ts';
export { purchaseSaga, PURCHASE_SAGA, type PurchaseInput, type PurchaseSagaDeps, type VerifiedPurchase } from './purchase-saga.ts';
export { BILLING_ACTION, NOTIFICATION_SAGA, notificationSaga, registerNotificationHandlers, type NotificationInput } from './notification-saga.ts';
export { createIap, purchaseOutcome, runPurchase, storesOf, type Iap, type PurchaseOutcome } from './purchases.ts';
