// The partner module's surface: partners and their keys, authentication and rate
// limits, the partner role's pool, and the products and gates partners own.
export {
  PARTNER_SCOPES, createPartner, findPartner, listPartners, listKeys, getKey, createKey, revokeKey, rotateKey, keyJson, parseKey, generateKey,
  type Partner, type PartnerKey, type IssuedKey, type PartnerScope, type RateLimitSpec, type PartnerAdminError, type CreateKeyInput,
} from './keys.ts';
export {
  authenticate, PartnerKeys, RateCounter, countHits, judgeKey, rateLimitHeaders, KEY_CACHE_MS,
  type PartnerCaller, type AuthError, type RateDecision,
} from './auth.ts';
export { createPartnerDb, withPartner, PartnerBusyError, PARTNER_ROLE, type PartnerDb } from './db.ts';
export {
  createProduct, createGate, getProduct, listProducts, getGate, listGates, productJson, gateJson,
  type Product, type Gate, type ProductInput,
} from './catalog.ts';
