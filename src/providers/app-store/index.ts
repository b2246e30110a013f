// The App Store: StoreKit 2 transactions and Server Notifications V2 verified with Apple's own
// library, and a simulator that signs them with a test CA.
export { APPLE_ROOT_CA_G3_PEM } from './apple-root.ts';
export { APPLE_INTERMEDIATE_OID, APPLE_LEAF_OID, createTestCa, type TestCa } from './test-ca.ts';
export {
  APP_STORE_ENVIRONMENTS, appStoreVerifier, refusalOf,
  type AppStoreEnvironment, type AppStoreRefusal, type AppStoreVerifier, type AppStoreVerifierOptions, type DecodedNotification,
} from './verify.ts';
export { APPLE_STATUS, AppStoreSimulator, type AppStoreSimulatorOptions, type SignedNotification, type SimulatedAppleSubscription } from './simulator.ts';
export { appStoreAdapter, normalizeAppleNotification, verifyAppleNotification } from './adapter.ts';
export { appleChangeOf, IAP_CHANGES, type IapChange } from './changes.ts';
