/**
 * Money is integer minor units in a bigint, from 1 to 2^63−1 for an amount. Amount strings are
 * major units as written by a person ("12.34"); decimals are counted as written, so "1.000" is
 * invalid for USD even though it equals "1.00". No float is ever involved.
 */
import type { Currency } from './currency.js';

export const AMOUNT_MAX = (1n << 63n) - 1n;
export const BALANCE_MAX = AMOUNT_MAX;
export const BALANCE_MIN = -AMOUNT_MAX;
/** Amount syntax as regular-expression source (JSON Schemas use it too): digits, optionally a point and digits. */
export const AMOUNT_PATTERN_SOURCE = '^[0-9]+(\\.[0-9]+)?$';
const AMOUNT_PATTERN = new RegExp(AMOUNT_PATTERN_SOURCE);
/** An amount string longer than this cannot be valid (19 digits + point + 19 digits). */
export const AMOUNT_CHARS_MAX = 64;

/** Parses a major-unit amount string; returns undefined when it is not a valid amount. */
export function parseAmount(text: unknown, currency: Currency): bigint | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > AMOUNT_CHARS_MAX) return undefined;
  const short = parseShortAmount(text, currency.exponent);
  if (short !== NOT_SHORT) return short;
  if (!AMOUNT_PATTERN.test(text)) return undefined;
  const point = text.indexOf('.');
  const whole = point < 0 ? text : text.slice(0, point);
  const fraction = point < 0 ? '' : text.slice(point + 1);
  // A point is followed by at least one digit, so this also refuses any point for exponent 0.
  if (fraction.length > currency.exponent) return undefined;
  return amountInRange(BigInt(whole + fraction.padEnd(currency.exponent, '0')));
}

/** `minor` when it is a valid amount (1 to AMOUNT_MAX minor units), otherwise undefined. */
export function amountInRange(minor: bigint): bigint | undefined {
  return minor > 0n && minor <= AMOUNT_MAX ? minor : undefined;
}

const NOT_SHORT = -1n;
/** Digits an amount may have for the fast path: 10^15 < 2^53, so the integer sum is exact. */
const SHORT_DIGITS_MAX = 15;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
const POINT = 0x2e;

/**
 * The common case without a regular expression or string building: at most 15 digits in
 * all, summed as an integer (exact below 2^53, no fraction is ever formed). Returns the amount,
 * undefined when the text is certainly invalid, or NOT_SHORT to defer to the general parser.
 */
function parseShortAmount(text: string, exponent: number): bigint | undefined {
  let minor = 0;
  let digits = 0;
  let fractionDigits = -1; // -1: no point seen
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= DIGIT_0 && code <= DIGIT_9) {
      if (++digits > SHORT_DIGITS_MAX) return NOT_SHORT;
      minor = minor * 10 + (code - DIGIT_0);
      if (fractionDigits >= 0) fractionDigits++;
    } else if (code === POINT && fractionDigits < 0 && i > 0 && i < text.length - 1) {
      fractionDigits = 0;
    } else {
      return undefined;
    }
  }
  if (fractionDigits > exponent || (fractionDigits >= 0 && exponent === 0)) return undefined;
  for (let scale = Math.max(fractionDigits, 0); scale < exponent; scale++) {
    if (++digits > SHORT_DIGITS_MAX) return NOT_SHORT;
    minor *= 10;
  }
  return minor === 0 ? undefined : BigInt(minor);
}

/** Formats minor units with exactly the currency's decimals ("0.00", "1500" for JPY). */
export function formatAmount(minor: bigint, currency: Currency): string {
  const negative = minor < 0n;
  const digits = (negative ? -minor : minor).toString();
  const exponent = currency.exponent;
  if (exponent === 0) return (negative ? '-' : '') + digits;
  const padded = digits.padStart(exponent + 1, '0');
  const whole = padded.slice(0, padded.length - exponent);
  const fraction = padded.slice(padded.length - exponent);
  return `${negative ? '-' : ''}${whole}.${fraction}`;
}
