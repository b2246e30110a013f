// A test certificate authority shaped like Apple's: root → intermediate (marked with Apple's
// intermediate OID) → leaf (marked with the App Store signing OID), EC P-256. The App Store
// simulator signs with it; tests and dev pass its root to the verifier instead of Apple Root CA G3.
import { generateKeyPairSync, randomInt, X509Certificate } from 'node:crypto';
import jsrsasign from 'jsrsasign';

/** The extensions SignedDataVerifier requires on the leaf and on the intermediate. */
export const APPLE_LEAF_OID = '1.2.840.113635.100.6.11.1';
export const APPLE_INTERMEDIATE_OID = '1.2.840.113635.100.6.2.1';

export interface TestCa {
  /** DER of the root: what the verifier is given as its trusted root. */
  rootDer: Buffer;
  /** The JWS `x5c` header: leaf, intermediate, root, base64 DER. */
  x5c: [string, string, string];
  /** The leaf's private key (PKCS#8 PEM), which signs the JWS. */
  leafKeyPem: string;
}

type KeyPair = { publicKey: string; privateKey: string };
const ecKey = (): KeyPair => generateKeyPairSync('ec', {
  namedCurve: 'P-256', publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
});
/** ASN.1 UTCTime, as jsrsasign takes it: YYMMDDhhmmssZ. */
const utcTime = (d: Date): string => `${d.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`;

interface CertSpec { subject: string; issuer: string; publicKey: string; issuerKey: string; ca: boolean; markerOid?: string | undefined; from: Date; to: Date }

function certificate(s: CertSpec): string {
  const cert = new jsrsasign.KJUR.asn1.x509.Certificate({
    version: 3, serial: { int: randomInt(1, 2 ** 47) }, issuer: { str: s.issuer }, subject: { str: s.subject },
    notbefore: utcTime(s.from), notafter: utcTime(s.to), sbjpubkey: s.publicKey, sigalg: 'SHA256withECDSA', cakey: s.issuerKey,
    ext: [
      { extname: 'basicConstraints', cA: s.ca, critical: true },
      // Apple's marker extensions carry ASN.1 NULL: only their presence is checked.
      ...(s.markerOid ? [{ extname: s.markerOid, extn: '0500' }] : []),
    ],
  } as unknown as ConstructorParameters<typeof jsrsasign.KJUR.asn1.x509.Certificate>[0]);
  return cert.getPEM();
}

/** A fresh CA valid from a day ago for ten years (`now` for tests that move time). */
export function createTestCa(o: { name?: string; now?: Date } = {}): TestCa {
  const name = o.name ?? 'seigo App Store simulator';
  const now = o.now ?? new Date();
  const from = new Date(now.getTime() - 86_400_000);
  const to = new Date(now.getTime() + 3_650 * 86_400_000);
  const root = ecKey();
  const inter = ecKey();
  const leaf = ecKey();
  const rootDn = `/CN=${name} Root CA/O=seigo test`;
  const interDn = `/CN=${name} Intermediate/O=seigo test`;
  const pems = [
    certificate({ subject: `/CN=${name} Signing/O=seigo test`, issuer: interDn, publicKey: leaf.publicKey, issuerKey: inter.privateKey, ca: false, markerOid: APPLE_LEAF_OID, from, to }),
    certificate({ subject: interDn, issuer: rootDn, publicKey: inter.publicKey, issuerKey: root.privateKey, ca: true, markerOid: APPLE_INTERMEDIATE_OID, from, to }),
    certificate({ subject: rootDn, issuer: rootDn, publicKey: root.publicKey, issuerKey: root.privateKey, ca: true, from, to }),
  ];
  const ders = pems.map((p) => new X509Certificate(p).raw);
  return { rootDer: ders[2]!, x5c: [ders[0]!.toString('base64'), ders[1]!.toString('base64'), ders[2]!.toString('base64')], leafKeyPem: leaf.privateKey };
}
