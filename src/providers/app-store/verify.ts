// App Store JWS verification with Apple's own library (`SignedDataVerifier`): the x5c chain to a
// trusted root (Apple Root CA G3 unless configured otherwise), the signature, the bundle id and the
// environment. Refusals come back as values with a stable code; nothing unverified is returned.
import { X509Certificate } from 'node:crypto';
import {
  Environment, SignedDataVerifier, VerificationException, VerificationStatus,
  type JWSRenewalInfoDecodedPayload, type JWSTransactionDecodedPayload, type ResponseBodyV2DecodedPayload,
} from '@apple/app-store-server-library';
import { err, ok, type Result } from '../../kernel/errors.ts';
import { APPLE_ROOT_CA_G3_PEM } from './apple-root.ts';

/** Only the two environments the App Store signs for: Xcode and local testing skip verification in the library. */
export const APP_STORE_ENVIRONMENTS = ['Production', 'Sandbox'] as const;
export type AppStoreEnvironment = (typeof APP_STORE_ENVIRONMENTS)[number];

export interface AppStoreVerifierOptions {
  bundleId: string;
  environment: AppStoreEnvironment;
  /** The app's Apple id; required by Apple's library in Production. */
  appAppleId?: number | undefined;
  /** Trusted roots as PEM or base64 DER; default Apple Root CA G3. Tests and the simulator pass their test root. */
  rootCertificates?: readonly (string | Buffer)[] | undefined;
  /** Revocation (OCSP) and expiry checked against now; Apple's advice in production. Default true. */
  onlineChecks?: boolean | undefined;
}

export type AppStoreRefusal =
  | { code: 'invalid_signature'; message: string }
  | { code: 'wrong_bundle_id'; message: string }
  | { code: 'wrong_environment'; message: string }
  /** An OCSP responder could not be reached: the same JWS may verify later. */
  | { code: 'store_unavailable'; message: string };

export interface DecodedNotification {
  payload: ResponseBodyV2DecodedPayload;
  transaction: JWSTransactionDecodedPayload | undefined;
  renewal: JWSRenewalInfoDecodedPayload | undefined;
}

export interface AppStoreVerifier {
  transaction(jws: string): Promise<Result<JWSTransactionDecodedPayload, AppStoreRefusal>>;
  /** A Server Notifications V2 `signedPayload`, and the signed transaction and renewal info inside it. */
  notification(signedPayload: string): Promise<Result<DecodedNotification, AppStoreRefusal>>;
}

const toDer = (c: string | Buffer): Buffer =>
  Buffer.isBuffer(c) ? c : c.includes('-----BEGIN') ? new X509Certificate(c).raw : Buffer.from(c.replace(/\s+/g, ''), 'base64');

/** The library's exception as our refusal; anything else is a broken invariant and is thrown. */
export function refusalOf(e: unknown): AppStoreRefusal {
  if (!(e instanceof VerificationException)) throw e;
  const why = e.cause?.message ? `: ${e.cause.message}` : '';
  switch (e.status) {
    case VerificationStatus.INVALID_APP_IDENTIFIER: return { code: 'wrong_bundle_id', message: 'the JWS is for another app (bundle id or app Apple id)' };
    case VerificationStatus.INVALID_ENVIRONMENT: return { code: 'wrong_environment', message: 'the JWS is for another App Store environment' };
    case VerificationStatus.RETRYABLE_VERIFICATION_FAILURE: return { code: 'store_unavailable', message: `certificate status could not be checked${why}` };
    case VerificationStatus.INVALID_CHAIN_LENGTH: return { code: 'invalid_signature', message: 'the x5c chain must hold three certificates' };
    case VerificationStatus.INVALID_CERTIFICATE: return { code: 'invalid_signature', message: `a certificate of the x5c chain is invalid${why}` };
    case VerificationStatus.FAILURE: return { code: 'invalid_signature', message: 'the JWS is malformed or not of the expected kind' };
    default: return { code: 'invalid_signature', message: 'the JWS does not verify against the trusted root' };
  }
}

export function appStoreVerifier(o: AppStoreVerifierOptions): AppStoreVerifier {
  const roots = (o.rootCertificates ?? [APPLE_ROOT_CA_G3_PEM]).map(toDer);
  const env = o.environment === 'Production' ? Environment.PRODUCTION : Environment.SANDBOX;
  const v = new SignedDataVerifier(roots, o.onlineChecks ?? true, env, o.bundleId, o.appAppleId);
  const attempt = async <T>(fn: () => Promise<T>): Promise<Result<T, AppStoreRefusal>> => {
    try {
      return ok(await fn());
    } catch (e) {
      return err(refusalOf(e));
    }
  };
  return {
    transaction: (jws) => attempt(() => v.verifyAndDecodeTransaction(jws)),
    notification: (signedPayload) => attempt(async () => {
      const payload = await v.verifyAndDecodeNotification(signedPayload);
      const t = payload.data?.signedTransactionInfo;
      const r = payload.data?.signedRenewalInfo;
      return {
        payload,
        transaction: t ? await v.verifyAndDecodeTransaction(t) : undefined,
        renewal: r ? await v.verifyAndDecodeRenewalInfo(r) : undefined,
      };
    }),
  };
}
