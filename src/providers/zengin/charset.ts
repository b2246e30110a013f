// The character set of Zengin C fields: JIS X 0201 as carried by Shift_JIS — ASCII 0x20–0x7E and
// half-width katakana 0xA1–0xDF (U+FF61–U+FF9F). Every allowed character is one byte, so byte
// offsets are character offsets. This mapping is exactly what WHATWG `TextDecoder('shift_jis')`
// produces for these bytes (checked in the tests); a table keeps it total and dependency-free.

const KANA_FIRST_BYTE = 0xa1;
const KANA_LAST_BYTE = 0xdf;
const KANA_FIRST_CP = 0xff61;
const KANA_LAST_CP = 0xff9f;

/** True for a byte that may appear in a C (character) field. */
export function isHalfWidthByte(b: number): boolean {
  return (b >= 0x20 && b <= 0x7e) || (b >= KANA_FIRST_BYTE && b <= KANA_LAST_BYTE);
}

/** Decodes bytes already checked with `isHalfWidthByte`. */
export function decodeHalfWidth(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b >= KANA_FIRST_BYTE ? KANA_FIRST_CP + (b - KANA_FIRST_BYTE) : b);
  return s;
}

/** The single byte for one code point, or undefined when it is outside JIS X 0201. */
export function halfWidthByte(cp: number): number | undefined {
  if (cp >= 0x20 && cp <= 0x7e) return cp;
  if (cp >= KANA_FIRST_CP && cp <= KANA_LAST_CP) return KANA_FIRST_BYTE + (cp - KANA_FIRST_CP);
  if (cp === 0xa5) return 0x5c; // ¥ is JIS X 0201's 0x5C
  if (cp === 0x203e) return 0x7e; // ‾ is JIS X 0201's 0x7E
  return undefined;
}

/** Encodes a string of half-width characters; undefined if any character has no single byte. */
export function encodeHalfWidth(s: string): Uint8Array | undefined {
  const out: number[] = [];
  for (const ch of s) {
    const b = halfWidthByte(ch.codePointAt(0)!);
    if (b === undefined) return undefined;
    out.push(b);
  }
  return Uint8Array.from(out);
}
