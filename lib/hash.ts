// FNV-1a, 64-bit, over UTF-16 code units folded to bytes: a non-cryptographic hash for derived
// names and plan digests. node:crypto costs ~7 ms to load on every plugin start here
// (bench/runner-startup.mjs prints it); nothing these hashes protect is a secret, they only
// have to be stable and spread well.

const OFFSET_HI = 0xcbf29ce4;
const OFFSET_LO = 0x84222325;
// FNV prime 2^40 + 0x1b3, applied as 32-bit halves.

/** FNV-1a 64 of the UTF-8 bytes of `text`, as 16 hex digits. */
export function fnv1a64(text: string): string {
  return fnv1a64Bytes(Buffer.from(text, 'utf8'));
}

/** FNV-1a 64 of `bytes` (a file's content), as 16 hex digits. */
export function fnv1a64Bytes(bytes: Uint8Array): string {
  let hi = OFFSET_HI;
  let lo = OFFSET_LO;
  for (let i = 0; i < bytes.length; i++) {
    lo = (lo ^ bytes[i]!) >>> 0;
    // (hi:lo) * (2^40 + 0x1b3) mod 2^64
    const loMul = lo * 0x1b3;
    const carry = Math.floor(loMul / 0x100000000);
    const newLo = loMul >>> 0;
    const newHi = (Math.imul(hi, 0x1b3) + carry + ((lo << 8) >>> 0)) >>> 0;
    hi = newHi;
    lo = newLo;
  }
  return hi.toString(16).padStart(8, '0') + lo.toString(16).padStart(8, '0');
}

/** A longer digest: FNV-1a 64 of the text and of the text salted, 32 hex digits. */
export function digest128(text: string): string {
  return fnv1a64(text) + fnv1a64(`\u0000${text}`);
}
