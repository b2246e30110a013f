// Comparing the payer name of a bank transfer (振込依頼人名: half-width kana, as the bank's Zengin
// file carries it) with the kana name a user registered. Both go through the same normalization,
// then must be equal. Each rule says why it exists.
//
// Legal-entity abbreviations: 全銀協's 法人略語 (e.g. 京葉銀行「振込の入力方法」, 厚生労働省の記載例):
// the kana abbreviation takes ')' when the entity type precedes the name (ｶ)ﾔﾏﾀﾞ), '(' when it
// follows (ﾔﾏﾀﾞ(ｶ) and '(…)' in the middle (ﾔﾏﾀﾞ(ｶ)ﾄｳｷﾖｳｼﾃﾝ).

/** 法人略語 (kana abbreviation ← entity type), as normalized kana (large kana, no marks). */
const ENTITY_ABBREVIATIONS: ReadonlyArray<readonly [abbr: string, spelled: readonly string[]]> = [
  ['カ', ['カブシキガイシヤ', 'カブシキカイシヤ']], // 株式会社
  ['ユ', ['ユウゲンガイシヤ', 'ユウゲンカイシヤ']], // 有限会社
  ['メ', ['ゴウメイガイシヤ', 'ゴウメイカイシヤ']], // 合名会社
  ['シ', ['ゴウシガイシヤ', 'ゴウシカイシヤ']], // 合資会社
  ['ド', ['ゴウドウガイシヤ', 'ゴウドウカイシヤ']], // 合同会社
  ['ソ', ['ソウゴガイシヤ', 'ソウゴカイシヤ']], // 相互会社
  ['イ', ['イリヨウホウジンシヤダン', 'イリヨウホウジンザイダン', 'シヤカイイリヨウホウジン', 'イリヨウホウジン']], // 医療法人(社団/財団), 社会医療法人
  ['ザイ', ['イツパンザイダンホウジン', 'コウエキザイダンホウジン', 'ザイダンホウジン']], // (一般/公益)財団法人
  ['シヤ', ['イツパンシヤダンホウジン', 'コウエキシヤダンホウジン', 'シヤダンホウジン']], // (一般/公益)社団法人
  ['シユウ', ['シユウキヨウホウジン']], // 宗教法人
  ['ガク', ['ガツコウホウジン']], // 学校法人
  ['フク', ['シヤカイフクシホウジン']], // 社会福祉法人
  ['ホゴ', ['コウセイホゴホウジン']], // 更生保護法人
  ['トクヒ', ['トクテイヒエイリカツドウホウジン']], // 特定非営利活動法人 (NPO)
  ['ドク', ['ドクリツギヨウセイホウジン']], // 独立行政法人
  ['チドク', ['チホウドクリツギヨウセイホウジン']], // 地方独立行政法人
  ['ベン', ['ベンゴシホウジン']], // 弁護士法人
  ['チユウ', ['ユウゲンセキニンチユウカンホウジン', 'ムゲンセキニンチユウカンホウジン']], // 有限/無限責任中間法人
  ['ギヨ', ['ギヨウセイシヨシホウジン']], // 行政書士法人
  ['シホウ', ['シホウシヨシホウジン']], // 司法書士法人
  ['ゼイ', ['ゼイリシホウジン']], // 税理士法人
  ['ダイ', ['コクリツダイガクホウジン', 'コウリツダイガクホウジン']], // 国立/公立大学法人
  ['ノウ', ['ノウジクミアイホウジン']], // 農事組合法人
  ['カンリ', ['カンリクミアイホウジン']], // 管理組合法人
  ['ロウム', ['シヤカイホケンロウムシホウジン']], // 社会保険労務士法人
];

/** Kanji forms a registered name may carry (after NFKC, so ㈱ is already (株)). */
const KANJI_ENTITIES = [
  ...['株式会社', '有限会社', '合名会社', '合資会社', '合同会社', '相互会社', '医療法人社団', '医療法人財団', '社会医療法人', '医療法人'],
  ...['一般財団法人', '公益財団法人', '財団法人', '一般社団法人', '公益社団法人', '社団法人', '宗教法人', '学校法人', '社会福祉法人'],
  ...['特定非営利活動法人', '地方独立行政法人', '独立行政法人', '弁護士法人', '税理士法人', '司法書士法人', '行政書士法人', '農事組合法人'],
  ...['(株)', '(有)', '(合)', '(資)', '(名)', '(医)', '(財)', '(社)', '(宗)', '(学)', '(福)', '(特非)', '(独)'],
];

const SMALL_TO_LARGE: Readonly<Record<string, string>> = {
  ァ: 'ア', ィ: 'イ', ゥ: 'ウ', ェ: 'エ', ォ: 'オ', ッ: 'ツ', ャ: 'ヤ', ュ: 'ユ', ョ: 'ヨ', ヮ: 'ワ', ヵ: 'カ', ヶ: 'ケ',
};

const escape = (s: string) => s.replace(/[()]/g, '\\$&');
const ABBR = ENTITY_ABBREVIATIONS.map(([a]) => escape(a)).join('|');
const SPELLED = ENTITY_ABBREVIATIONS.flatMap(([, s]) => s).sort((a, b) => b.length - a.length).join('|');
// ｶ) at the start, (ｶ at the end, (ｶ) anywhere; the spelled-out type at the start or the end.
const ENTITY_PATTERNS = [new RegExp(`^(?:${ABBR})\\)`), new RegExp(`\\((?:${ABBR})$`), new RegExp(`\\((?:${ABBR})\\)`, 'g'), new RegExp(`^(?:${SPELLED})`), new RegExp(`(?:${SPELLED})$`)];

export function normalizePayerName(s: string): string {
  // Applied until nothing changes (at most a few passes): removing one thing can expose another
  // (an entity type behind parentheses), and NFKC after upper-casing can compose again, so the
  // fixed point is what makes normalization idempotent.
  let n = normalizeOnce(s);
  for (let i = 0; i < 4; i++) {
    const next = normalizeOnce(n);
    if (next === n) break;
    n = next;
  }
  return n;
}

function normalizeOnce(s: string): string {
  let n = s
    // Separate voiced marks (゛゜ U+309B/C) would become space + combining mark under NFKC, and
    // the space would then be dropped; make them combining first so that ク゛ composes to グ.
    .replace(/\u309b/g, '\u3099')
    .replace(/\u309c/g, '\u309a')
    // NFKC: half-width katakana → full-width, joining ｶﾞ into ガ; full-width ASCII and the
    // ideographic space → ASCII; ㈱ → (株). One form for what banks and users type differently.
    .normalize('NFKC')
    // Hiragana → katakana: users may register ひらがな; the bank only ever sends katakana.
    .replace(/[\u3041-\u3096]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0x60))
    // Small kana → large: Zengin's character set has no small kana, so banks send ｼﾔ for シャ.
    .replace(/[ァィゥェォッャュョヮヵヶ]/g, (c) => SMALL_TO_LARGE[c] ?? c)
    // ASCII letters upper-cased: Zengin names carry capitals only (banks upper-case on sending).
    .toUpperCase()
    // Spaces (any width) removed: banks and users insert them between family and given name, or
    // instead of ・ and . which Zengin names may not carry.
    .replace(/[\s・.]/g, '')
    // Long vowel marks and hyphens removed: ｰ and - are used for one another, and the many dash
    // code points (‐ ‑ ‒ – — ― − ｰ ー) look alike to whoever typed the name.
    .replace(/[\u30fc\u002d\u2010-\u2015\u2212\uff70]/g, '');
  // Kanji entity types removed anywhere: a registered name may be written 株式会社ヤマダ.
  for (const k of KANJI_ENTITIES) n = n.split(k).join('');
  // Entity abbreviations (ｶ) (ｶ (ｶ)) and spelled-out types (ｶﾌﾞｼｷｶﾞｲｼﾔ…) removed: the entity type
  // says nothing about which customer paid, and each payer's bank writes it its own way.
  for (let prev = ''; prev !== n; ) {
    prev = n;
    for (const p of ENTITY_PATTERNS) n = n.replace(p, '');
  }
  // Remaining parentheses removed: they only ever delimited what was removed above.
  return n.replace(/[()]/g, '');
}

/** 振込依頼人名 is C(48): a longer name arrives cut at 48 half-width characters. */
const PAYER_NAME_FIELD_LENGTH = 48;

/**
 * True when both names normalize to the same non-empty string. When the payer name fills the
 * whole 48-character field it may have been cut, so then a registered name that starts with it
 * matches too — less its last character, which the cut may have parted from its voiced mark
 * (ﾌﾟ cut after ﾌ).
 */
export function payerNameMatches(payer: string, registered: string): boolean {
  const p = normalizePayerName(payer);
  const r = normalizePayerName(registered);
  if (p === '' || r === '') return false;
  if (p === r) return true;
  if ([...payer].length < PAYER_NAME_FIELD_LENGTH) return false;
  const kept = [...p].slice(0, -1).join('');
  return kept.length > 0 && r.startsWith(kept);
}
