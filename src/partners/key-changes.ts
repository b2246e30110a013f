// The key caches of this process (auth.ts), so that a key revoked or rotated here is forgotten at
// once, before the NOTIFY that tells every other process arrives.

interface ForgetsKeys { forget(keyId: string): void }
const caches = new Set<ForgetsKeys>();

export function registerKeyCache(c: ForgetsKeys): () => void {
  caches.add(c);
  return () => caches.delete(c);
}

/** Forgets `keyId` in every key cache of this process. */
export function forgetKey(keyId: string): void {
  for (const c of caches) c.forget(keyId);
}
