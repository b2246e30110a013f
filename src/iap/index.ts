// In-app purchases (issue 10, F2): the store ↔ internal subscription ↔ member id mapping. The purchase
// facade (store verification, the billing saga, POST /v1/iap/purchases) builds on it.
export {
  claimStoreSubscription, reportClaimConflict, subscriptionOfStoreId,
  type ClaimRefusal, type IapPlatform, type IapSubscription, type StoreClaim,
} from './mapping.ts';
