// In-app purchases: the store ↔ internal subscription ↔ member id mapping, and the
// purchase saga (verify with the store, refuse another member's, billing start/renew, persist the mapping).
export {
  claimStoreSubscription, reportClaimConflict, subscriptionOfStoreId,
  type ClaimRefusal, type IapPlatform, type IapSubscription, type StoreClaim,
} from './mapping.ts';
export { purchaseSaga, PURCHASE_SAGA, type PurchaseInput, type PurchaseSagaDeps } from './purchase-saga.ts';
