import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { propertyParams } from '../../test/helpers/property.ts';
import { normalizePayerName, payerNameMatches } from './payer-name.ts';

// [payer as the bank sends it (half-width), registered name, expected]
const PAIRS: Array<[string, string, boolean]> = [
  ['ﾔﾏﾀﾞ ﾀﾛｳ', 'ヤマダ タロウ', true],
  ['ﾔﾏﾀﾞ ﾀﾛｳ', 'やまだ　たろう', true],
  ['ﾔﾏﾀﾞﾀﾛｳ', 'ヤマダ　タロウ', true],
  ['ｻﾄｳ ｼﾖｳﾀ', 'サトウ ショウタ', true],
  ['ｷﾂｶﾜ ﾕｳｼﾞ', 'キッカワ　ユウジ', true],
  ['ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ', 'ヤマダショウジ株式会社', true],
  ['ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ', 'ﾔﾏﾀﾞｼﾖｳｼﾞ(ｶ', true],
  ['ﾔﾏﾀﾞｼﾖｳｼﾞ(ｶ)ﾄｳｷﾖｳｼﾃﾝ', 'ヤマダショウジ トウキョウシテン', true],
  ['ｶﾌﾞｼｷｶﾞｲｼﾔ ﾔﾏﾀﾞｼﾖｳｼﾞ', 'ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ', true],
  ['ﾕ)ｽｽﾞｷﾃﾞﾝｷ', 'ユウゲンガイシャ スズキデンキ', true],
  ['ﾄﾞ)ｴｲﾋﾞ-ｼ-', 'ゴウドウガイシャ エイビーシー', true],
  ['ｲ)ｹﾝｺｳｶｲ', 'イリョウホウジン ケンコウカイ', true],
  ['ｻﾞｲ)ﾆﾎﾝｷﾖｳｲｸｻﾞｲﾀﾞﾝ', '公益財団法人ニホンキョウイクザイダン', true],
  ['ｼﾔ)ﾆﾎﾝｲｼｶｲ', '一般社団法人ニホンイシカイ', true],
  ['ﾄｸﾋ)ｻｻｴﾙｶｲ', 'トクテイヒエイリカツドウホウジン ササエルカイ', true],
  ['ABC ｼﾖｳｼﾞ(ｶ', 'ａｂｃショウジ㈱', true],
  ['ｸﾞﾝﾏ ｻﾌﾞﾛｳ', 'ク゛ンマ サフ゛ロウ', true],
  ['ｽ-ﾊﾟ-ﾏ-ｹﾂﾄ ｱｵﾊﾞ', 'スーパーマーケット・アオバ', true],
  ['ﾔﾏﾀﾞ ﾀﾛｳ', 'ヤマダ ジロウ', false],
  ['ﾔﾏﾀﾞ ﾀﾛｳ', 'ヤマモト タロウ', false],
  ['ﾊﾞﾝﾀﾞｲ ﾊﾅｺ', 'ハンダイ ハナコ', false],
  ['ﾊﾟﾝﾔ', 'バンヤ', false],
  ['ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ', 'ユ)ヤマダショウジ ホンテン', false],
  ['ﾄｳｷﾖｳ ﾀﾛｳ', 'トウキョウ タロウ ジロウ', false],
  ['ｶ)', '株式会社', false],
  ['', '', false],
];

describe('payerNameMatches', () => {
  it.each(PAIRS)('%s ~ %s → %s', (payer, registered, expected) => {
    expect(payerNameMatches(payer, registered)).toBe(expected);
    expect(payerNameMatches(registered, payer)).toBe(expected);
  });

  it('accepts a payer name cut at the 48-character field, even through a voiced mark', () => {
    const head = [...'ｶ)ﾆﾎﾝｺｸｻｲｷﾖｳｲｸﾌﾞﾝｶｺｳﾘﾕｳｽｲｼﾝｷｺｳ ﾄｳｷﾖｳ ﾀﾞｲｲﾁﾌﾞ ｼﾞｷﾞﾖｳﾌﾞ'].slice(0, 47).join('');
    expect([...head]).toHaveLength(47);
    const registered = `${head}ﾌﾟﾛｼﾞｴｸﾄ ｼﾞﾑｷﾖｸ`;
    const cut = [...registered].slice(0, 48).join('');
    expect(cut.endsWith('ﾌ')).toBe(true); // the cut parted ﾌ from its ﾟ
    expect(payerNameMatches(cut, registered)).toBe(true);
    expect(payerNameMatches([...cut].slice(0, 47).join(''), registered)).toBe(false); // shorter: not cut, a different name
  });
});

describe('normalizePayerName', () => {
  it.each([
    ['ｶ)ﾔﾏﾀﾞｼﾖｳｼﾞ', 'ヤマダシヨウジ'],
    ['ﾔﾏﾀﾞｼﾖｳｼﾞ(ｶ', 'ヤマダシヨウジ'],
    ['ﾔﾏﾀﾞ(ｶ)ﾄｳｷﾖｳ', 'ヤマダトウキヨウ'],
    ['ﾁﾄﾞｸ)ｹﾝﾘﾂﾋﾞﾖｳｲﾝ', 'ケンリツビヨウイン'],
    ['ｶﾞｯｺｳ', 'ガツコウ'],
    ['ａｂｃ　ｄｅｆ', 'ABCDEF'],
    ['ｻｰﾋﾞｽ', 'サビス'],
  ])('%s → %s', (input, out) => {
    expect(normalizePayerName(input)).toBe(out);
  });

  // Full-width katakana that have both a hiragana and a half-width form.
  const KATAKANA = [...'アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワヲンガギグゲゴザジズゼゾダヂヅデドバビブベボパピプペポァィゥェォッャュョヴ'];
  const HALF = [...'ｦｧｨｩｪｫｬｭｮｯｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ'];
  const toHalf = new Map(HALF.map((h) => [h.normalize('NFKC'), h]));
  const halfWidth = (s: string) =>
    [...s.normalize('NFD')].map((c) => (c === '\u3099' ? 'ﾞ' : c === '\u309a' ? 'ﾟ' : c === ' ' ? ' ' : (toHalf.get(c) ?? c))).join('');
  const hiragana = (s: string) => s.replace(/[\u30a1-\u30f6]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x60));
  const SMALL = new Map([...'ァィゥェォッャュョ'].map((c, i) => [c, [...'アイウエオツヤユヨ'][i]!]));
  const zengin = (s: string) => halfWidth([...s].map((c) => SMALL.get(c) ?? c).join('')); // no small kana in Zengin
  const kanaName = fc.array(fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...KATAKANA) }, { weight: 1, arbitrary: fc.constantFrom(' ', '　') }), { minLength: 1, maxLength: 20 }).map((cs) => cs.join(''));

  it('is idempotent, on any string and on kana names', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 30 }), kanaName, fc.string({ unit: fc.constantFrom(...'ｶ)(ﾕﾄﾞｼﾔｲｻﾞｶﾌﾞｷｶﾞ ー-ァっ株式会社㈱'), maxLength: 20 })), (s) => {
        const once = normalizePayerName(s);
        expect(normalizePayerName(once)).toBe(once);
      }),
      propertyParams('payer name normalization is idempotent', { runs: 2000 }),
    );
  });

  it('gives one form for a name in full-width, half-width, hiragana and Zengin spelling, with or without its entity type', () => {
    fc.assert(
      fc.property(kanaName, fc.constantFrom(['ｶ)', '株式会社'], ['ﾕ)', '有限会社'], ['ﾄﾞ)', 'ゴウドウガイシャ'], ['ｼﾔ)', '一般社団法人']), (name, [abbr, full]) => {
        const n = normalizePayerName(name);
        expect(normalizePayerName(halfWidth(name))).toBe(n);
        expect(normalizePayerName(hiragana(name))).toBe(n);
        expect(normalizePayerName(zengin(name))).toBe(n);
        expect(normalizePayerName(abbr + zengin(name))).toBe(normalizePayerName(full + hiragana(name)));
        if (n !== '') expect(payerNameMatches(abbr + zengin(name), full + ' ' + name)).toBe(true);
      }),
      propertyParams('payer name spellings agree', { runs: 1000 }),
    );
  });
});
